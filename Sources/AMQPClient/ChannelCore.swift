import AMQPProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The per-channel state the connection core keeps across reconnects.
///
/// Concurrency: like `ConnectionCore`, used only on the connection's event loop, except
/// `generationSnapshot`, which is lock-protected so acks can check staleness without a hop.
final class ChannelCore: @unchecked Sendable {
    let id: UInt16
    var machine: ChannelStateMachine?
    /// Bumped on every (re)open; deliveries remember it so stale acks are caught.
    var generation = 0 {
        didSet { generationSnapshot.withLockedValue { $0 = generation } }
    }
    let generationSnapshot = NIOLockedValueBox(0)
    /// Restored after a reconnect, in this order: qos, confirm mode, consumers.
    var qos: BasicQos?
    var confirmMode = false
    var consumers: [String: ConsumerSink] = [:]
    var returnListeners: [AsyncStream<AMQPReturnedMessage>.Continuation] = []
    /// Set once the channel is gone for good (closed by us or by the broker); it is not recovered.
    var terminalError: AMQPError?

    init(id: UInt16) {
        self.id = id
    }
}
