import AMQPClient
import AMQPProtocol

/// The publisher: one task per adapter takes batches from the machine in outbox order and
/// waits for each confirm (concurrent publishes from separate tasks could overtake each
/// other). Whatever queued up meanwhile goes out as one batch, so throughput does not stop
/// at one message per confirm round trip. What a confirm, nack or failure means is the
/// machine's decision.
extension RabbitMQAdapter {
    func runPublisher(on channel: AMQPChannel) async {
        for await _ in publishWakeupStream {
            while let batch = machine.withLockedValue({ $0.nextBatch() }) {
                var properties = AMQPBasicProperties(deliveryMode: 2)
                if !batch.ccRoutingKeys.isEmpty {
                    properties.headers = ["CC": .array(batch.ccRoutingKeys.map { .longString($0) })]
                }
                do {
                    try await channel.publish(batch.body, exchange: batch.exchange, routingKey: batch.routingKey, properties: properties)
                    feed { machine, now in machine.publishConfirmed(batch, now: now) }
                } catch AMQPError.publishNacked {
                    machine.withLockedValue { $0.publishNacked(batch) }
                } catch {
                    // Connection lost or not connected: everything unconfirmed waits for
                    // recovery; this node's packets in flight are delivered here, in order.
                    feed { machine, _ in machine.publishFailed(batch) }
                }
            }
        }
    }
}
