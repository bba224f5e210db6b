import ChatCore
import NIOCore
import SocketIO

/// One client's chat state beside its socket: the per-connection rate buckets of `typing`,
/// `join` and `set-name`. Every handler of the socket captures this one object (and through
/// it the service): one small allocation here instead of a locked box per bucket, and closure
/// contexts of one reference each instead of four or five.
///
/// @unchecked Sendable: the buckets are touched only by the socket's handlers, which Socket.IO
/// runs on the socket's event loop (asserted).
final class ChatConnection: @unchecked Sendable {
    let service: ChatService
    let socket: SocketIOSocket
    /// Who the client is for the node-wide message limits (`ChatRateLimiter`).
    let address: String
    private var typingBucket: TokenBucket
    private var changeBucket: TokenBucket

    init(service: ChatService, socket: SocketIOSocket, now: Double) {
        self.service = service
        self.socket = socket
        self.address = socket.clientAddress
        let limits = service.limits
        typingBucket = TokenBucket(ratePerSecond: limits.typingPerSecond, burst: limits.typingBurst, now: now)
        changeBucket = TokenBucket(ratePerSecond: limits.roomChangesPerSecond, burst: limits.roomChangeBurst, now: now)
    }

    func takeTyping(now: Double) -> Bool {
        socket.eventLoop.assertInEventLoop()
        return typingBucket.tryTake(now: now)
    }

    /// `join` and `set-name` share one bucket.
    func takeRoomChange(now: Double) -> Bool {
        socket.eventLoop.assertInEventLoop()
        return changeBucket.tryTake(now: now)
    }
}
