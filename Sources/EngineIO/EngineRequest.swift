/// The engine.io error table: what an HTTP request that Engine.IO refuses is answered with.
public enum EngineRequestError: Int, Error, Sendable, Hashable, CaseIterable {
    case unknownTransport = 0
    case unknownSessionID = 1
    case badHandshakeMethod = 2
    case badRequest = 3
    case forbidden = 4
    case unsupportedProtocolVersion = 5

    public var code: Int { rawValue }

    public var message: String {
        switch self {
        case .unknownTransport: "Transport unknown"
        case .unknownSessionID: "Session ID unknown"
        case .badHandshakeMethod: "Bad handshake method"
        case .badRequest: "Bad request"
        case .forbidden: "Forbidden"
        case .unsupportedProtocolVersion: "Unsupported protocol version"
        }
    }

    /// HTTP status: 403 for `forbidden`, 400 for everything else.
    public var httpStatusCode: Int { self == .forbidden ? 403 : 400 }

    /// `{"code":N,"message":"…"}`
    public var jsonBody: String { "{\"code\":\(code),\"message\":\"\(message)\"}" }
}

/// What an HTTP request on an Engine.IO path asks for, once its query has been checked.
public enum EngineRequestKind: Sendable, Hashable {
    /// No `sid`: open a new session on this transport.
    case handshake(EngineTransport)
    /// A request for an existing session (to be looked up by the caller).
    case session(id: String, transport: EngineTransport)

    /// Checks the parts of a request that do not depend on server state, in the reference
    /// server's order: transport first, then protocol version, then handshake method.
    /// - Parameters:
    ///   - isGET: the HTTP method is GET.
    ///   - isWebSocketUpgrade: the request carries `Upgrade: websocket`.
    public static func classify(
        query: [String: String],
        isGET: Bool,
        isWebSocketUpgrade: Bool,
        enabledTransports: Set<EngineTransport>
    ) -> Result<EngineRequestKind, EngineRequestError> {
        guard let transportName = query["transport"], let transport = EngineTransport(rawValue: transportName),
            enabledTransports.contains(transport)
        else { return .failure(.unknownTransport) }
        guard query["EIO"] == "4" else { return .failure(.unsupportedProtocolVersion) }
        if let sid = query["sid"], !sid.isEmpty {
            // A WebSocket request with a sid is an upgrade probe of a polling session; the
            // caller checks the session. Any other request must use the session's transport.
            if transport == .websocket && !isWebSocketUpgrade { return .failure(.badRequest) }
            return .success(.session(id: sid, transport: transport))
        }
        guard isGET else { return .failure(.badHandshakeMethod) }
        if transport == .websocket && !isWebSocketUpgrade { return .failure(.badRequest) }
        return .success(.handshake(transport))
    }
}

/// Splits `path?query` and decodes the query the way the reference server's `querystring`
/// does: `%XX` escapes and `+` as a space.
public enum EngineURI {
    public static func split(_ uri: String) -> (path: Substring, query: [String: String]) {
        guard let questionMark = uri.firstIndex(of: "?") else { return (uri[...], [:]) }
        let path = uri[..<questionMark]
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: questionMark)...].split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecode(parts[0])
            let value = parts.count > 1 ? percentDecode(parts[1]) : ""
            // The first occurrence wins, so a repeated parameter cannot change meaning later.
            if query[name] == nil { query[name] = value }
        }
        return (path, query)
    }

    static func percentDecode(_ text: Substring) -> String {
        guard text.contains("%") || text.contains("+") else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                let high = iterator.next().flatMap(hexValue)
                let low = iterator.next().flatMap(hexValue)
                if let high, let low { bytes.append(high << 4 | low) } else { bytes.append(byte) }
            default:
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
