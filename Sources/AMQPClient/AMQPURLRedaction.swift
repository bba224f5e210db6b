/// URLs as they may appear in logs, errors and status pages: the password of the userinfo
/// replaced by `***`. Works on any text, valid URL or not (a password with a bad
/// percent-escape is exactly the case where a parser would give up and echo it).
public enum AMQPURLRedaction {
    /// `amqp://user:secret@host/vhost` -> `amqp://user:***@host/vhost` (also without the
    /// scheme). Text without `user:password@` is returned unchanged.
    public static func redact(_ url: String) -> String {
        let authorityStart = url.range(of: "://")?.upperBound ?? url.startIndex
        // The authority ends at the first '/', '?' or '#'; the userinfo at its last '@'.
        let authorityEnd = url[authorityStart...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
        guard let at = url[authorityStart..<authorityEnd].lastIndex(of: "@"),
              let colon = url[authorityStart..<at].firstIndex(of: ":") else { return url }
        return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
    }

    /// Several URLs, comma-separated as `AMQP_URL` takes them.
    public static func redact(_ urls: [String]) -> String {
        urls.map(redact).joined(separator: ",")
    }
}

// A configuration printed into a log line or an error shows everything but the password.
extension AMQPConnectionConfiguration: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "AMQPConnectionConfiguration(endpoints: \(endpoints), username: \(username), password: ***, virtualHost: \(virtualHost))"
    }

    public var customMirror: Mirror {
        Mirror(self, children: ["endpoints": endpoints, "username": username, "password": "***", "virtualHost": virtualHost,
                                "connectionName": connectionName as Any, "heartbeat": heartbeat])
    }
}
