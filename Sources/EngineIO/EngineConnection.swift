import Atomics
import NIOCore

// Changes since the skeleton (all behaviour-preserving, no API change):
// - `EngineHandshakeRequest.header(_:)` no longer uses Foundation's caseInsensitiveCompare
//   (EngineIO does not import Foundation, so it did not compile).

// The seam between Engine.IO and whatever rides on it (Socket.IO, or the bare echo
// server of the conformance fixture). Engine.IO owns transports, heartbeats and
// upgrades; the upper layer sees only messages in, messages out and one close.

/// One Engine.IO `message` packet, encoded once so it can be written to any number of
/// connections without being serialised again (a broadcast shares the same bytes).
public struct EngineMessage: Sendable, Hashable {
    /// Text payload as UTF-8, or raw binary payload. Never carries the `4` type prefix:
    /// transports add their own framing. When `sharedTail` is set, this is only the start.
    public let payload: ByteBuffer
    /// More payload after `payload`, for text messages that differ per recipient only in
    /// their first bytes (a welcome: the client's own name, then the room's history). Many
    /// messages hold the same tail buffer, and WebSocket writes it by reference, so N
    /// recipients cost one copy of the tail instead of N.
    public let sharedTail: ByteBuffer?
    public let isBinary: Bool
    /// The transport's framing of this message, made by the first connection that writes
    /// it and reused by every other recipient of the same broadcast.
    public let framing: EngineFramingCache

    public init(text: String) {
        self.init(payload: ByteBuffer(string: text), sharedTail: nil, isBinary: false)
    }

    /// `utf8` must hold valid UTF-8 (typically JSON the caller just encoded).
    public init(textUTF8 utf8: ByteBuffer) {
        self.init(payload: utf8, sharedTail: nil, isBinary: false)
    }

    /// A text message whose payload is `head` followed by `sharedTail`; together they must be
    /// valid UTF-8 (each alone need not be).
    public init(textUTF8 head: ByteBuffer, sharedTail: ByteBuffer) {
        self.init(payload: head, sharedTail: sharedTail, isBinary: false)
    }

    public init(binary: ByteBuffer) {
        self.init(payload: binary, sharedTail: nil, isBinary: true)
    }

    private init(payload: ByteBuffer, sharedTail: ByteBuffer?, isBinary: Bool) {
        self.payload = payload
        self.sharedTail = sharedTail
        self.isBinary = isBinary
        self.framing = EngineFramingCache()
    }

    /// The whole payload in one buffer: `payload` itself, or a copy of head and tail.
    public var wholePayload: ByteBuffer { EngineMessage.joined(payload, sharedTail) }

    /// Bytes of the whole payload, without copying.
    public var payloadByteCount: Int { payload.readableBytes + (sharedTail?.readableBytes ?? 0) }

    public static func == (lhs: EngineMessage, rhs: EngineMessage) -> Bool {
        lhs.isBinary == rhs.isBinary && lhs.wholePayload == rhs.wholePayload
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(isBinary)
        hasher.combine(wholePayload)
    }

    /// The payload as a String; only meaningful for text messages.
    public var text: String { String(buffer: wholePayload) }

    static func joined(_ head: ByteBuffer, _ tail: ByteBuffer?) -> ByteBuffer {
        guard let tail else { return head }
        var whole = ByteBuffer()
        whole.reserveCapacity(head.readableBytes + tail.readableBytes)
        whole.writeImmutableBuffer(head)
        whole.writeImmutableBuffer(tail)
        return whole
    }
}

/// What the HTTP request that opened a session looked like: the upper layer needs it for
/// the Socket.IO handshake object (headers, query, address, time).
public struct EngineHandshakeRequest: Sendable {
    public var uri: String
    public var headers: [(name: String, value: String)]
    public var query: [String: String]
    /// The TCP peer's address (socket.io's `handshake.address`).
    public var remoteAddress: String?
    /// The client's address: the peer's, or, when the peer is a trusted proxy, the one it
    /// reported in `X-Forwarded-For` (see `EngineIOHTTPServerConfiguration.trustedProxies`).
    /// Per-address limits use it.
    public var clientAddress: String?
    public var isSecure: Bool
    /// Seconds since 1970.
    public var issuedAt: Double

    public init(
        uri: String,
        headers: [(name: String, value: String)],
        query: [String: String],
        remoteAddress: String?,
        isSecure: Bool,
        issuedAt: Double,
        clientAddress: String? = nil
    ) {
        self.uri = uri
        self.headers = headers
        self.query = query
        self.remoteAddress = remoteAddress
        self.clientAddress = clientAddress ?? remoteAddress
        self.isSecure = isSecure
        self.issuedAt = issuedAt
    }

    public func header(_ name: String) -> String? {
        // ASCII case folding is enough for header names and keeps EngineIO free of Foundation.
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// Why an Engine.IO connection ended. Raw values are the reason strings socket.io uses,
/// so they can be passed through to `disconnect` listeners unchanged.
public enum EngineCloseReason: String, Sendable, Hashable {
    case transportClose = "transport close"
    case transportError = "transport error"
    case pingTimeout = "ping timeout"
    case parseError = "parse error"
    case forcedClose = "forced close"
    case serverShuttingDown = "server shutting down"
    case slowClient = "slow client"
}

/// One live Engine.IO connection, as the upper layer sees it. Implementations are
/// thread-safe: `send` and `close` may be called from anywhere; they hop to `eventLoop`.
/// Writes made during one event-loop tick are flushed together at its end.
public protocol EngineConnection: AnyObject, Sendable {
    /// The Engine.IO session id (`sid` of the open packet).
    var id: String { get }
    /// The loop every callback of this connection runs on. Upper-layer per-connection
    /// state may be confined to it without locks.
    var eventLoop: any EventLoop { get }
    var handshake: EngineHandshakeRequest { get }
    /// `"polling"` or `"websocket"`; changes once on upgrade.
    var transportName: String { get }

    /// Whether a message sent now would go out at once: on WebSocket, nothing is waiting for
    /// the peer to read; on long-polling, a GET is parked. Volatile packets (typing
    /// indicators, positions) are dropped for a connection that is not writable instead of
    /// queueing behind what the client has not read. Read it on `eventLoop`.
    var isWritable: Bool { get }

    /// Queue messages; they go out in order. If the connection's bounded outbound
    /// buffer is full the connection is closed with `.slowClient`.
    func send(_ messages: [EngineMessage])
    /// Close the connection; `delegate.connectionDidClose` follows exactly once.
    func close(reason: EngineCloseReason)

    /// Set by the upper layer in `EngineServerDelegate.engineDidOpen`, before any
    /// message is delivered.
    var delegate: (any EngineConnectionDelegate)? { get set }
}

extension EngineConnection {
    public func send(_ message: EngineMessage) { send([message]) }
}

/// Receives what one connection delivers. Every call happens on the connection's
/// `eventLoop`, in order; `connectionDidClose` is the last call.
public protocol EngineConnectionDelegate: AnyObject, Sendable {
    func connection(_ connection: any EngineConnection, didReceive message: EngineMessage)
    func connectionDidClose(_ connection: any EngineConnection, reason: EngineCloseReason)
}

/// Told about every new connection of one Engine.IO server (one path, e.g. `/socket.io/`).
/// Called on the new connection's `eventLoop`; set `connection.delegate` before returning.
public protocol EngineServerDelegate: AnyObject, Sendable {
    func engineDidOpen(_ connection: any EngineConnection)
}

/// Holds one transport encoding of a message (for WebSocket: the whole frame, header
/// included). Server frames are not masked, so the bytes are the same for every recipient:
/// a broadcast to N WebSockets frames its message once instead of N times.
public final class EngineFramingCache: Sendable {
    private final class Frame: Sendable {
        let bytes: ByteBuffer
        init(_ bytes: ByteBuffer) { self.bytes = bytes }
    }

    /// Lock-free: every recipient after the first only loads a reference. Two loops that
    /// frame the message at the same moment both encode; the first store wins.
    private let frame = ManagedAtomicLazyReference<Frame>()

    public init() {}

    /// The cached frame, or the result of `encode` (then cached).
    public func frame(orEncode encode: () -> ByteBuffer) -> ByteBuffer {
        if let cached = frame.load() { return cached.bytes }
        return frame.storeIfNilThenLoad(Frame(encode())).bytes
    }
}
