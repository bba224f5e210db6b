import NIOCore

/// The deliveries of one consumer, in order. Survives connection recovery: after a reconnect the
/// consumer is re-registered at the broker and the same sequence continues. It ends when the consumer
/// is cancelled (by `cancel()`, or with `AMQPError.consumerCancelledByBroker` when the broker cancels it),
/// or with an error when its channel or connection closes for good.
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPMessage
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        AMQPMessage, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, ConsumerFlowDelegate
    >

    public let consumerTag: String
    public let channel: AMQPChannel
    private let sequence: Producer

    init(tag: String, channel: AMQPChannel, sequence: Producer) {
        self.consumerTag = tag
        self.channel = channel
        self.sequence = sequence
    }

    public func cancel() async throws {
        try await channel.cancel(consumerTag: consumerTag)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: Producer.AsyncIterator

        public mutating func next() async throws -> AMQPMessage? {
            try await base.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: sequence.makeAsyncIterator())
    }
}
