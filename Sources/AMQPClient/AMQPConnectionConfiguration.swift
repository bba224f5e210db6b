import Foundation
import NIOSSL

/// One broker address the client may connect to. Recovery walks the list in order.
public struct AMQPEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// `amqps` endpoints are wrapped in TLS.
    public var useTLS: Bool

    public init(host: String, port: Int? = nil, useTLS: Bool = false) {
        self.host = host
        self.useTLS = useTLS
        self.port = port ?? (useTLS ? 5671 : 5672)
    }

    public var description: String { "\(useTLS ? "amqps" : "amqp")://\(host):\(port)" }
}

/// Everything needed to open (and re-open) a connection. Plain values; build from a URL or by hand.
public struct AMQPConnectionConfiguration: Sendable {
    public var endpoints: [AMQPEndpoint]
    public var username: String
    public var password: String
    public var virtualHost: String
    /// Shown in the management UI; sent as the `connection_name` client property.
    public var connectionName: String?
    /// Seconds; 0 asks for no heartbeats. Negotiated as the lower non-zero value of both peers.
    public var heartbeat: UInt16
    /// 0 means "no limit from our side"; then the broker's value wins.
    public var channelMax: UInt16
    public var frameMax: UInt32
    /// Used for `amqps` endpoints; default verifies the broker certificate against the system roots
    /// (set `trustRoots` for a private CA).
    public var tlsConfiguration: TLSConfiguration?
    /// The name the broker's certificate must carry, also sent as SNI. Nil: the endpoint's host (an IP
    /// address is then checked against the certificate's IP entries). Set it when the address you
    /// connect to is not a name the certificate lists, e.g. a load balancer's IP.
    public var tlsServerName: String?
    public var connectTimeout: Duration
    public var recovery: Recovery

    public struct Recovery: Sendable {
        /// Turn off to get a connection that simply closes on failure.
        public var isEnabled: Bool
        public var initialDelay: Duration
        public var maximumDelay: Duration
        /// Give up (state `.closed`) after this many failed attempts; nil retries forever.
        public var maximumAttempts: Int?

        public init(isEnabled: Bool = true, initialDelay: Duration = .milliseconds(100),
                    maximumDelay: Duration = .seconds(5), maximumAttempts: Int? = nil) {
            self.isEnabled = isEnabled
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
            self.maximumAttempts = maximumAttempts
        }
    }

    public init(
        endpoints: [AMQPEndpoint] = [AMQPEndpoint(host: "127.0.0.1")],
        username: String = "guest",
        password: String = "guest",
        virtualHost: String = "/",
        connectionName: String? = nil,
        heartbeat: UInt16 = 60,
        channelMax: UInt16 = 2047,
        frameMax: UInt32 = 131_072,
        tlsConfiguration: TLSConfiguration? = nil,
        tlsServerName: String? = nil,
        connectTimeout: Duration = .seconds(10),
        recovery: Recovery = Recovery()
    ) {
        self.endpoints = endpoints
        self.username = username
        self.password = password
        self.virtualHost = virtualHost
        self.connectionName = connectionName
        self.heartbeat = heartbeat
        self.channelMax = channelMax
        self.frameMax = frameMax
        self.tlsConfiguration = tlsConfiguration
        self.tlsServerName = tlsServerName
        self.connectTimeout = connectTimeout
        self.recovery = recovery
    }

    /// Parses `amqp://user:pass@host:port/vhost?heartbeat=10&connection_name=x&channel_max=100&frame_max=131072`.
    ///
    /// Follows the RabbitMQ URI spec: user, password and vhost are percent-decoded (`%2f` is `/`);
    /// an absent path means vhost `/`, while a bare `/` path means the empty vhost name.
    public init(url: String) throws(AMQPError) {
        try self.init(urls: [url])
    }

    /// Several URLs of the same cluster: credentials, vhost and options come from the first, every URL
    /// contributes an endpoint for recovery.
    public init(urls: [String]) throws(AMQPError) {
        guard let firstURL = urls.first else { throw AMQPError.invalidURL("no URL given") }
        let primary = try ParsedURL(firstURL)
        var endpoints = [primary.endpoint]
        for url in urls.dropFirst() { endpoints.append(try ParsedURL(url).endpoint) }
        self.init(endpoints: endpoints, username: primary.username, password: primary.password,
                  virtualHost: primary.virtualHost)
        if let heartbeat = primary.query["heartbeat"] {
            guard let value = UInt16(heartbeat) else { throw AMQPError.invalidURL("heartbeat must be 0...65535 seconds, got '\(heartbeat)'") }
            self.heartbeat = value
        }
        if let channelMax = primary.query["channel_max"] {
            guard let value = UInt16(channelMax) else { throw AMQPError.invalidURL("channel_max must be 0...65535, got '\(channelMax)'") }
            self.channelMax = value
        }
        if let frameMax = primary.query["frame_max"] {
            guard let value = UInt32(frameMax) else { throw AMQPError.invalidURL("frame_max must be a 32-bit number, got '\(frameMax)'") }
            // The spec's smallest frame is 4096 octets; smaller would break method frames.
            guard value == 0 || value >= 4096 else { throw AMQPError.invalidURL("frame_max must be 0 or at least 4096, got \(value)") }
            self.frameMax = value
        }
        if let name = primary.query["connection_name"] {
            self.connectionName = name
        }
        if endpoints.contains(where: \.useTLS) {
            self.tlsConfiguration = .makeClientConfiguration()
        }
    }
}

/// A hand-written parser: Foundation's URL would accept but misreport several of the cases the
/// RabbitMQ URI spec cares about (empty vs absent vhost, `%2f`). Its errors show the URL with
/// the password redacted (`AMQPURLRedaction`), never the password itself.
struct ParsedURL {
    var endpoint: AMQPEndpoint
    var username: String
    var password: String
    var virtualHost: String
    var query: [String: String]

    init(_ url: String) throws(AMQPError) {
        let shown = AMQPURLRedaction.redact(url)
        let useTLS: Bool
        var rest: Substring
        if url.lowercased().hasPrefix("amqp://") {
            useTLS = false
            rest = url.dropFirst("amqp://".count)
        } else if url.lowercased().hasPrefix("amqps://") {
            useTLS = true
            rest = url.dropFirst("amqps://".count)
        } else {
            throw AMQPError.invalidURL("scheme must be amqp:// or amqps://: \(shown)")
        }

        var queryPart: Substring = ""
        if let questionMark = rest.firstIndex(of: "?") {
            queryPart = rest[rest.index(after: questionMark)...]
            rest = rest[..<questionMark]
        }
        var pathPart: Substring?
        if let slash = rest.firstIndex(of: "/") {
            pathPart = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }

        var username = "guest"
        var password = "guest"
        var hostPort = rest
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            hostPort = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                username = try Self.decode(userInfo[..<colon], what: "user")
                password = try Self.decode(userInfo[userInfo.index(after: colon)...], what: "password")
            } else {
                username = try Self.decode(userInfo, what: "user")
                password = ""
            }
        }

        var host: Substring = hostPort
        var port: Int?
        if hostPort.hasPrefix("[") {
            // IPv6 literal: [::1]:5672
            guard let close = hostPort.firstIndex(of: "]") else { throw AMQPError.invalidURL("unterminated IPv6 host in \(shown)") }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let afterHost = hostPort[hostPort.index(after: close)...]
            if afterHost.hasPrefix(":") {
                guard let value = Int(afterHost.dropFirst()), (1...65535).contains(value) else {
                    throw AMQPError.invalidURL("bad port in \(shown)")
                }
                port = value
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            let portText = hostPort[hostPort.index(after: colon)...]
            if !portText.isEmpty {
                guard let value = Int(portText), (1...65535).contains(value) else {
                    throw AMQPError.invalidURL("bad port '\(portText)' in \(shown)")
                }
                port = value
            }
        }
        let decodedHost = try Self.decode(host, what: "host")

        self.endpoint = AMQPEndpoint(host: decodedHost.isEmpty ? "localhost" : decodedHost, port: port, useTLS: useTLS)
        self.username = username
        self.password = password
        if let pathPart {
            guard !pathPart.contains("/") else {
                throw AMQPError.invalidURL("vhost must be one path segment; write '/' inside it as %2f: \(shown)")
            }
            self.virtualHost = try Self.decode(pathPart, what: "vhost")
        } else {
            self.virtualHost = "/"
        }

        var query: [String: String] = [:]
        for pair in queryPart.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try Self.decode(parts[0], what: "query key")
            let value = parts.count > 1 ? try Self.decode(parts[1], what: "query value") : ""
            query[key] = value
        }
        self.query = query
    }

    private static func decode(_ text: Substring, what: String) throws(AMQPError) -> String {
        guard let decoded = String(text).removingPercentEncoding else {
            // The password is the one part never echoed, even when it is what is malformed.
            let shown = what == "password" ? "" : ": '\(text)'"
            throw AMQPError.invalidURL("bad percent-encoding in \(what)\(shown); write '%' as %25")
        }
        return decoded
    }
}
