import EngineIO
import Logging
import NIOCore

/// Connection state recovery (socket.io's `connectionStateRecovery` option): a client that
/// lost its connection gets back its socket id, rooms, data and the packets it missed,
/// if it reconnects within `maxDisconnectionDuration`.
public struct ConnectionStateRecovery: Sendable {
    public var maxDisconnectionDuration: TimeAmount
    /// Whether a recovered socket skips the namespace middlewares.
    public var skipMiddlewares: Bool
    /// Hard cap on logged packets, so memory stays bounded under any emission rate.
    public var maxLoggedPackets: Int
    /// Hard cap on the bytes those packets hold: a count alone let a client that reconnects
    /// over and over (each welcome a large packet) make the log hold gigabytes. The oldest
    /// packets go first; a client whose offset went with them connects as new.
    public var maxLoggedBytes: Int

    public init(
        maxDisconnectionDuration: TimeAmount = .minutes(2), skipMiddlewares: Bool = true, maxLoggedPackets: Int = 10_000,
        maxLoggedBytes: Int = 32 * 1024 * 1024
    ) {
        self.maxDisconnectionDuration = maxDisconnectionDuration
        self.skipMiddlewares = skipMiddlewares
        self.maxLoggedPackets = maxLoggedPackets
        self.maxLoggedBytes = maxLoggedBytes
    }
}

public struct SocketIOServerConfiguration: Sendable {
    /// An Engine.IO connection that has joined no namespace after this long is closed.
    public var connectTimeout: TimeAmount = .seconds(45)
    /// Most binary attachments one packet may announce (socket.io-parser's default: 10).
    public var maxAttachments: Int = 10
    /// Default timeout of `emitWithAck` when none is given.
    public var defaultAckTimeout: TimeAmount = .seconds(10)
    /// `nil` disables recovery: packets then carry no offset and CONNECT replies no `pid`.
    public var connectionStateRecovery: ConnectionStateRecovery?
    /// Makes the adapter of each namespace; `InMemoryAdapter` unless replaced (e.g. by a
    /// cluster adapter).
    public var adapterFactory: @Sendable (SocketIONamespace) -> any SocketIOAdapter = { InMemoryAdapter(namespace: $0) }
    public var logger = Logger(label: "socket.io")
    /// Runs on the client's event loop for every namespace CONNECT, before recovery and
    /// middlewares: the place for per-address limits on connects and recovery claims (which
    /// skip middlewares). Keep it cheap and non-blocking. `nil` accepts everything.
    public var connectAdmission: (@Sendable (ConnectAttempt) -> ConnectAdmission)?

    public init(
        connectTimeout: TimeAmount = .seconds(45),
        maxAttachments: Int = 10,
        connectionStateRecovery: ConnectionStateRecovery? = nil
    ) {
        self.connectTimeout = connectTimeout
        self.maxAttachments = maxAttachments
        self.connectionStateRecovery = connectionStateRecovery
    }
}

/// What the client sent when it connected: socket.io's `socket.handshake`.
///
/// Every socket keeps one, for its whole life: so the headers stay the Engine.IO request's
/// own list (shared, not copied) and the dictionary and the date string are built when read,
/// not once per connection (they were ~0.4 KB of every idle connection's heap).
public struct SocketIOHandshake: Sendable, Hashable {
    /// Header names lower-cased, repeated headers joined with ", " (as Node's `req.headers`).
    /// Built on each read from the request's list; assigning replaces it.
    public var headers: [String: String] {
        get {
            switch headerStorage {
            case .joined(let headers): headers
            case .request(let list): Self.joinedHeaders(list)
            }
        }
        set { headerStorage = .joined(newValue) }
    }
    public var query: [String: String]
    /// The CONNECT payload (`{}` when the client sent none).
    public var auth: JSONValue
    public var address: String
    public var secure: Bool
    public var url: String
    /// Milliseconds since 1970 when the Engine.IO session was opened.
    public var issued: Int64
    /// `issued` as a human readable date string (built when read unless one was given).
    public var time: String {
        get { timeGiven ?? Self.httpDate(secondsSince1970: Self.floorDivide(issued, by: 1000)) }
        set { timeGiven = newValue }
    }

    private enum HeaderStorage: Sendable {
        case joined([String: String])
        /// The Engine.IO request's headers, as it keeps them for the session.
        case request([(name: String, value: String)])
    }

    private var headerStorage: HeaderStorage
    private var timeGiven: String?

    public init(headers: [String: String], query: [String: String], auth: JSONValue, address: String, secure: Bool, url: String, issued: Int64, time: String) {
        self.headerStorage = .joined(headers)
        self.query = query
        self.auth = auth
        self.address = address
        self.secure = secure
        self.url = url
        self.issued = issued
        self.timeGiven = time
    }

    /// The handshake of a socket opened over `request`: its header list is shared with the
    /// Engine.IO session, not copied.
    init(engine request: EngineHandshakeRequest, auth: JSONValue) {
        self.headerStorage = .request(request.headers)
        self.query = request.query
        self.auth = auth
        self.address = request.remoteAddress ?? ""
        self.secure = request.isSecure
        self.url = request.uri
        self.issued = Int64(request.issuedAt * 1000)
        self.timeGiven = nil
    }

    public static func == (lhs: SocketIOHandshake, rhs: SocketIOHandshake) -> Bool {
        lhs.headers == rhs.headers && lhs.query == rhs.query && lhs.auth == rhs.auth && lhs.address == rhs.address
            && lhs.secure == rhs.secure && lhs.url == rhs.url && lhs.issued == rhs.issued && lhs.time == rhs.time
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(headers)
        hasher.combine(query)
        hasher.combine(auth)
        hasher.combine(address)
        hasher.combine(secure)
        hasher.combine(url)
        hasher.combine(issued)
        hasher.combine(time)
    }

    private static func floorDivide(_ value: Int64, by divisor: Int64) -> Int64 {
        value >= 0 ? value / divisor : -((-(value + 1)) / divisor) - 1
    }

    /// Header names lower-cased; repeated headers joined with ", " as Node.js does. Linear in
    /// the total size: the values of a name are collected first and joined once (appending
    /// to the joined string per repetition copied it every time: 39,000 repeated headers
    /// cost 55 ms per CONNECT).
    static func joinedHeaders(_ headers: [(name: String, value: String)]) -> [String: String] {
        var values: [String: [String]] = [:]
        for header in headers { values[header.name.lowercased(), default: []].append(header.value) }
        return values.mapValues { $0.count == 1 ? $0[0] : $0.joined(separator: ", ") }
    }

    /// The handshake as a JSON object (what a cluster adapter sends for `fetchSockets`).
    public var jsonValue: JSONValue {
        .object(JSONObject([
            (key: "headers", value: .object(JSONObject(headers.sorted { $0.key < $1.key }.map { (key: $0.key, value: .string($0.value)) }))),
            (key: "time", value: .string(time)),
            (key: "address", value: .string(address)),
            (key: "xdomain", value: .bool(headers["origin"] != nil)),
            (key: "secure", value: .bool(secure)),
            (key: "issued", value: .number(String(issued))),
            (key: "url", value: .string(url)),
            (key: "query", value: .object(JSONObject(query.sorted { $0.key < $1.key }.map { (key: $0.key, value: .string($0.value)) }))),
            (key: "auth", value: auth),
        ]))
    }

    public init?(jsonValue: JSONValue) {
        guard case .object(let object) = jsonValue else { return nil }
        func strings(_ key: String) -> [String: String] {
            var result: [String: String] = [:]
            for member in object[key]?.objectValue ?? JSONObject() { result[member.key] = member.value.stringValue ?? member.value.jsonText }
            return result
        }
        self.init(
            headers: strings("headers"), query: strings("query"), auth: object["auth"] ?? .object(JSONObject()),
            address: object["address"]?.stringValue ?? "", secure: object["secure"]?.boolValue ?? false,
            url: object["url"]?.stringValue ?? "", issued: Int64(object["issued"]?.doubleValue ?? 0),
            time: object["time"]?.stringValue ?? "")
    }

    /// RFC 7231 date, e.g. `Fri, 27 Nov 2026 03:40:00 GMT` (civil-from-days, no Foundation).
    static func httpDate(secondsSince1970 seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        let weekday = weekdays[Int(((days % 7) + 7) % 7)]
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekday), \(two(day)) \(months[Int(month - 1)]) \(year) \(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60)) GMT"
    }
}

/// Why a socket left its namespace. Raw values are socket.io's reason strings.
public enum SocketDisconnectReason: String, Sendable, Hashable {
    case transportError = "transport error"
    case transportClose = "transport close"
    case forcedClose = "forced close"
    case pingTimeout = "ping timeout"
    case parseError = "parse error"
    case serverShuttingDown = "server shutting down"
    case forcedServerClose = "forced server close"
    case clientNamespaceDisconnect = "client namespace disconnect"
    case serverNamespaceDisconnect = "server namespace disconnect"
    case slowClient = "slow client"

    init(_ engineReason: EngineCloseReason) {
        switch engineReason {
        case .transportClose: self = .transportClose
        case .transportError: self = .transportError
        case .pingTimeout: self = .pingTimeout
        case .parseError: self = .parseError
        case .forcedClose: self = .forcedClose
        case .serverShuttingDown: self = .serverShuttingDown
        case .slowClient: self = .slowClient
        }
    }

    /// Whether connection state recovery keeps the session (socket.io's list).
    var isRecoverable: Bool {
        switch self {
        case .transportError, .transportClose, .forcedClose, .pingTimeout, .serverShuttingDown, .forcedServerClose, .slowClient: return true
        case .parseError, .clientNamespaceDisconnect, .serverNamespaceDisconnect: return false
        }
    }
}

/// Thrown by middleware to refuse a connection: the client gets CONNECT_ERROR
/// `{"message": message, "data": data}` (no `data` key when `nil`).
public struct ConnectError: Error, Sendable, Hashable {
    public var message: String
    public var data: JSONValue?

    public init(message: String, data: JSONValue? = nil) {
        self.message = message
        self.data = data
    }

    var payload: JSONValue {
        var object = JSONObject()
        object["message"] = .string(message)
        if let data { object["data"] = data }
        return .object(object)
    }
}

/// Why an acknowledgement did not arrive.
public enum SocketIOAckError: Error, Sendable, Hashable {
    case timedOut
    /// The socket left the namespace before answering.
    case disconnected
}
