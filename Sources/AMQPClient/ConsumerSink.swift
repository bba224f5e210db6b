import AMQPProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One consumer's buffer between the event loop and the application's `for try await`.
/// Concurrency: event-loop confined like `ChannelCore`; `source` itself is thread-safe.
final class ConsumerSink: @unchecked Sendable {
    typealias Source = NIOThrowingAsyncSequenceProducer<
        AMQPMessage, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, ConsumerFlowDelegate
    >.Source

    let tag: String
    let source: Source
    /// Called on the loop with each delivery as it is read, before it is batched for `source`.
    let onDelivery: (@Sendable (AMQPMessage) -> Void)?
    var batch: [AMQPMessage] = []
    /// True while this consumer's buffer is over its high watermark and holds the socket's reads.
    var isHoldingReads = false

    init(tag: String, source: Source, onDelivery: (@Sendable (AMQPMessage) -> Void)? = nil) {
        self.tag = tag
        self.source = source
        self.onDelivery = onDelivery
    }
}

/// Bridges the async sequence's back-pressure to socket reads: above the high watermark the core
/// stops reading from the socket; when the application drains below the low watermark, reading resumes.
struct ConsumerFlowDelegate: NIOAsyncSequenceProducerDelegate {
    let core: ConnectionCore
    let channelID: UInt16
    let tag: String

    func produceMore() {
        core.eventLoop.execute { core.consumerWantsMore(channelID: channelID, tag: tag) }
    }

    func didTerminate() {
        core.eventLoop.execute { core.consumerTerminated(channelID: channelID, tag: tag) }
    }
}
