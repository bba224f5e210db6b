import AMQPClient

extension RabbitMQAdapter {
    /// Reads a one-off stream consumer (a restore's scan, the start-up replay) in stream order,
    /// acknowledging in batches, and hands every cluster message of this namespace that
    /// decodes, with its position, to `read` until it answers true (stop: the consumer is
    /// cancelled). True when `read` stopped it; false when the consumer ended first.
    func readStreamMessages(_ consumer: AMQPConsumer, onDelivery: () -> Void = {},
                            _ read: (ClusterMessage, StreamPosition) -> Bool) async throws -> Bool {
        var unacked = 0
        for try await delivery in consumer {
            onDelivery()
            unacked += 1
            if unacked >= 500 {
                try await delivery.ack(multiple: true)
                unacked = 0
            }
            guard let streamOffset = Self.streamOffset(of: delivery) else { continue }
            for (index, body) in ((try? ClusterBatchCodec.split(delivery.body)) ?? []).enumerated() {
                guard let message = try? ClusterMessageCodec.decode(body), message.namespace == namespace.name else { continue }
                if read(message, StreamPosition(offset: streamOffset, index: index)) {
                    try? await delivery.ack(multiple: true)
                    try? await consumer.cancel()
                    return true
                }
            }
        }
        return false
    }
}
