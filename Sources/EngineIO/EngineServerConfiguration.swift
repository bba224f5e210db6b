import NIOCore

/// The two Engine.IO transports.
public enum EngineTransport: String, Sendable, Hashable, CaseIterable {
    case polling
    case websocket
}

/// Cross-origin rules for the polling endpoints (browsers on other origins).
public struct EngineCORSConfiguration: Sendable, Hashable {
    public enum AllowedOrigins: Sendable, Hashable {
        /// `Access-Control-Allow-Origin: *` (or the request's Origin when credentials are allowed,
        /// because browsers refuse `*` together with credentials).
        case any
        /// Only these exact origins are echoed back; other origins get no CORS headers.
        case list([String])
    }

    public var allowedOrigins: AllowedOrigins
    public var allowCredentials: Bool

    public init(allowedOrigins: AllowedOrigins = .any, allowCredentials: Bool = false) {
        self.allowedOrigins = allowedOrigins
        self.allowCredentials = allowCredentials
    }

    /// The value of `Access-Control-Allow-Origin` for a request from `origin`, or nil when
    /// that origin is not allowed.
    public func allowOriginHeader(forRequestOrigin origin: String?) -> String? {
        switch allowedOrigins {
        case .any:
            if allowCredentials, let origin { return origin }
            return "*"
        case .list(let origins):
            guard let origin, origins.contains(origin) else { return nil }
            return origin
        }
    }
}

/// Options of one Engine.IO server (one endpoint such as `/socket.io/`). The defaults are
/// the reference implementation's.
public struct EngineServerConfiguration: Sendable {
    /// Time between the server's pings.
    public var pingInterval: TimeAmount = .milliseconds(25_000)
    /// How long the server waits for a pong before closing the session.
    public var pingTimeout: TimeAmount = .milliseconds(20_000)
    /// Largest POST body or WebSocket message accepted, in bytes (`maxHttpBufferSize`).
    public var maxPayload: Int = 1_000_000
    public var transports: Set<EngineTransport> = [.polling, .websocket]
    /// Whether polling sessions may move to WebSocket.
    public var allowUpgrades: Bool = true
    /// How long a probe WebSocket may take to send `5` before it is dropped.
    public var upgradeTimeout: TimeAmount = .milliseconds(10_000)
    /// nil: no CORS headers at all.
    public var cors: EngineCORSConfiguration? = nil
    /// Bytes that may wait to be written to one client. A client that lets more pile up is
    /// closed with `EngineCloseReason.slowClient`, so one stalled reader cannot grow memory.
    public var maxOutboundBufferBytes: Int = 1 << 20
    /// When several messages are sent to one WebSocket in the same event-loop tick, the
    /// first goes out at once and the rest together this long after the tick. Keeps a
    /// reply and what follows it in separate TCP reads (which the official suite's client
    /// needs) at the cost of this delay for the rest of a burst.
    public var webSocketMinimumFlushGap: TimeAmount = .milliseconds(1)
    /// TCP accept backlog: connections the kernel queues before the server accepts them.
    public var maxPendingConnections: Int = 1024
    /// Browser origins served (checked on every request of this endpoint). Default: any,
    /// as socket.io, which leaves origin checks to `allowRequest`.
    public var allowedOrigins: EngineOriginPolicy = .any
    /// socket.io's `allowRequest`: sees every handshake (after the origin check and the
    /// server's admission caps) and may refuse it. nil: every handshake is allowed.
    public var allowRequest: EngineAllowRequest? = nil

    public init() {}

    public init(
        pingInterval: TimeAmount,
        pingTimeout: TimeAmount,
        maxPayload: Int = 1_000_000,
        transports: Set<EngineTransport> = [.polling, .websocket],
        allowUpgrades: Bool = true,
        upgradeTimeout: TimeAmount = .milliseconds(10_000),
        cors: EngineCORSConfiguration? = nil,
        maxOutboundBufferBytes: Int = 1 << 20,
        maxPendingConnections: Int = 1024
    ) {
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.maxPayload = maxPayload
        self.transports = transports
        self.allowUpgrades = allowUpgrades
        self.upgradeTimeout = upgradeTimeout
        self.cors = cors
        self.maxOutboundBufferBytes = maxOutboundBufferBytes
        self.maxPendingConnections = maxPendingConnections
    }

    /// The `upgrades` list of the open packet for a session that started on `transport`.
    public func upgrades(from transport: EngineTransport) -> [EngineTransport] {
        guard transport == .polling, allowUpgrades, transports.contains(.websocket) else { return [] }
        return [.websocket]
    }
}

/// The open packet's JSON: exactly the keys the protocol lists, in the reference order.
public struct EngineHandshake: Sendable, Hashable {
    public var sid: String
    public var upgrades: [EngineTransport]
    public var pingIntervalMilliseconds: Int64
    public var pingTimeoutMilliseconds: Int64
    public var maxPayload: Int

    public init(sid: String, transport: EngineTransport, configuration: EngineServerConfiguration) {
        self.sid = sid
        self.upgrades = configuration.upgrades(from: transport)
        self.pingIntervalMilliseconds = configuration.pingInterval.nanoseconds / 1_000_000
        self.pingTimeoutMilliseconds = configuration.pingTimeout.nanoseconds / 1_000_000
        self.maxPayload = configuration.maxPayload
    }

    /// `{"sid":"…","upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`.
    /// Session ids are generated from a JSON-safe alphabet, so no escaping is needed.
    public var json: String {
        let upgradeList = upgrades.map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        return "{\"sid\":\"\(sid)\",\"upgrades\":[\(upgradeList)],\"pingInterval\":\(pingIntervalMilliseconds),"
            + "\"pingTimeout\":\(pingTimeoutMilliseconds),\"maxPayload\":\(maxPayload)}"
    }

    public var openPacket: EnginePacket { EnginePacket(type: .open, text: json) }
}

/// Session ids: 20 characters of base64url from the system CSPRNG (120 bits), like the
/// reference server's, so they cannot be guessed and never need escaping in JSON or URLs.
public enum EngineSessionID {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func generate() -> String {
        // Two 64-bit draws, 10 characters of 6 bits from each: every draw is a getrandom(2)
        // system call, and drawing per character cost 20 of them per id (40-60 per new
        // connection with the Socket.IO ids) in a connect storm.
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 20)
        for half in 0..<2 {
            var bits: UInt64 = generator.next()
            for index in (half * 10)..<(half * 10 + 10) {
                bytes[index] = alphabet[Int(bits & 63)]
                bits >>= 6
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
