import ChatCore
import NIOConcurrencyHelpers
import SocketIO

/// `ChatRateLimits` shared by every connection of the node (they run on several event
/// loops): one short critical section per message or CONNECT.
final class ChatRateLimiter: Sendable {
    private let limits: ChatLimits
    private let state: NIOLockedValueBox<ChatRateLimits>
    private let metrics: ChatMetrics

    init(limits: ChatLimits, metrics: ChatMetrics) {
        self.limits = limits
        self.state = NIOLockedValueBox(ChatRateLimits(limits: limits))
        self.metrics = metrics
    }

    func allowMessage(address: String, name: String) -> Bool {
        let now = ChatService.now()
        return state.withLockedValue { $0.allowMessage(address: address, name: name, now: now) }
    }

    /// `SocketIOServerConfiguration.connectAdmission`: CONNECTs and recovery claims (which
    /// skip middlewares and, in a cluster, cost a stream round trip) per client address.
    func admit(_ attempt: ConnectAttempt) -> ConnectAdmission {
        let now = ChatService.now()
        guard state.withLockedValue({ $0.allowConnect(address: attempt.address, now: now) }) else {
            metrics.connectsRateLimited.increment()
            return .refuse(ConnectError(
                message: "Too many connection attempts from your address (at most \(Self.trimmed(limits.connectsPerSecond)) per second); retry in a moment.",
                data: ["code": "rate_limited"]))
        }
        return .accept
    }

    private static func trimmed(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
