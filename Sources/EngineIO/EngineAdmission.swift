/// Which browser origins may use an Engine.IO endpoint. A request without an `Origin`
/// header (a non-browser client: it could set any header anyway) is always served; a
/// browser page from an origin that is not allowed gets 403 on the handshake, the
/// WebSocket upgrade and every polling request.
///
/// This is the server's decision; `EngineCORSConfiguration` only says which origins
/// browsers may read answers from. List a cross-origin page in both.
public struct EngineOriginPolicy: Sendable, Hashable {
    /// Any origin (socket.io's default: it checks no origin itself).
    public static let any = EngineOriginPolicy(allowsAnyOrigin: true, origins: [], allowsSameHost: false)

    public var allowsAnyOrigin: Bool
    /// Exact origins, `scheme://host[:port]`, compared case-insensitively.
    public var origins: Set<String>
    /// Also allow a page served by this very host: an `http` or `https` origin whose
    /// `host[:port]` equals the request's `Host` header (behind a proxy, forward `Host`
    /// with its port, e.g. nginx `proxy_set_header Host $http_host`).
    public var allowsSameHost: Bool

    /// `origins` may hold `*` (or `any`) to allow every origin; trailing slashes are ignored.
    public init(allowing origins: [String], allowsSameHost: Bool = false) {
        var normalized = Set<String>()
        var any = false
        for origin in origins {
            let trimmed = Self.normalize(Substring(origin))
            if trimmed == "*" || trimmed == "any" { any = true } else if !trimmed.isEmpty { normalized.insert(trimmed) }
        }
        self.init(allowsAnyOrigin: any, origins: normalized, allowsSameHost: allowsSameHost)
    }

    private init(allowsAnyOrigin: Bool, origins: Set<String>, allowsSameHost: Bool) {
        self.allowsAnyOrigin = allowsAnyOrigin
        self.origins = origins
        self.allowsSameHost = allowsSameHost
    }

    /// Whether a request with this `Origin` (nil: none) and `Host` header is served.
    public func allows(origin: String?, host: String?) -> Bool {
        guard let origin, !allowsAnyOrigin else { return true }
        let normalized = Self.normalize(Substring(origin))
        if origins.contains(normalized) { return true }
        guard allowsSameHost, let host = host.map({ Self.normalize(Substring($0)) }), !host.isEmpty else { return false }
        for scheme in ["http://", "https://"] where normalized.hasPrefix(scheme) {
            return normalized.dropFirst(scheme.count) == host
        }
        return false
    }

    /// Lower-cased, surrounding spaces and trailing slashes dropped. Linear in the input.
    private static func normalize(_ text: Substring) -> String {
        var view = text.utf8[...]
        while let last = view.last, last == UInt8(ascii: "/") || last == UInt8(ascii: " ") { view = view.dropLast() }
        while let first = view.first, first == UInt8(ascii: " ") { view = view.dropFirst() }
        return String(decoding: view, as: UTF8.self).lowercased()
    }
}

/// What socket.io's `allowRequest` answers for one handshake (a new session, on polling
/// or WebSocket): let it in, or refuse it with an HTTP status and a message that goes to
/// the client as `{"code":4,"message":"…"}` (engine.io answers a refusal with 403 and
/// code 4, "Forbidden").
public enum EngineAdmissionDecision: Sendable, Hashable {
    case allow
    case refuse(status: Int = 403, message: String = "Forbidden")
}

/// socket.io's `allowRequest(req, callback)`, synchronous: it runs on the connection's
/// event loop for every handshake and must not block (do slow checks, such as a token
/// lookup, in Socket.IO middleware instead).
public typealias EngineAllowRequest = @Sendable (EngineHandshakeRequest) -> EngineAdmissionDecision

/// Why a request or connection was refused before it reached Engine.IO, as answered to the
/// client and counted in metrics.
public struct EngineAdmissionRefusal: Error, Sendable, Hashable {
    public enum Reason: String, Sendable, Hashable, CaseIterable {
        /// `Origin` not allowed (403).
        case origin
        /// The application's `allowRequest` refused (its status, 403 by default).
        case allowRequest = "allow_request"
        /// The node holds its maximum of Engine.IO sessions (503).
        case nodeFull = "node_full"
        /// The node holds its maximum of TCP connections (closed at accept, like Node's
        /// `server.maxConnections`).
        case maxConnections = "max_connections"
        /// The client address holds its maximum of sessions (429).
        case connectionsPerAddress = "connections_per_address"
        /// The client address opened sessions faster than its handshake rate (429).
        case handshakeRate = "handshake_rate"
        /// A connection with too many pipelined requests waiting for answers (closed).
        case pipelining
    }

    public var reason: Reason
    public var status: Int
    public var message: String

    public init(reason: Reason, status: Int, message: String) {
        self.reason = reason
        // A status outside 400...599 would tell the client it was served.
        self.status = (400...599).contains(status) ? status : 403
        self.message = message
    }

    public static let originNotAllowed = Self(reason: .origin, status: 403, message: "Origin not allowed")
    public static let nodeFull = Self(reason: .nodeFull, status: 503, message: "Server full, retry later")
    public static let tooManyConnections = Self(
        reason: .connectionsPerAddress, status: 429, message: "Too many connections from this address"
    )
    public static let tooManyHandshakes = Self(
        reason: .handshakeRate, status: 429, message: "Too many connection attempts from this address, retry later"
    )

    /// `{"code":4,"message":"…"}`: engine.io's shape and its `FORBIDDEN` code, the message
    /// escaped for JSON.
    public var jsonBody: String {
        var escaped = ""
        escaped.reserveCapacity(message.utf8.count + 2)
        for scalar in message.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                escaped += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return "{\"code\":\(EngineRequestError.forbidden.code),\"message\":\"\(escaped)\"}"
    }
}
