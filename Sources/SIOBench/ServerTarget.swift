/// One Socket.IO endpoint to load, parsed from `http://host:port[/path/]`.
struct ServerTarget: Sendable, Hashable {
    var host: String
    var port: Int
    /// Engine.IO path, `/socket.io/` unless the URL names another.
    var path: String

    init(url: String) throws(BenchUsageError) {
        var rest = Substring(url)
        if rest.hasPrefix("http://") { rest = rest.dropFirst(7) } else if rest.hasPrefix("ws://") { rest = rest.dropFirst(5) }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        let pathPart = rest[slash...]
        guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]),
              (1...65535).contains(port), colon > authority.startIndex
        else { throw .badURL(url) }
        host = String(authority[..<colon])
        self.port = port
        path = pathPart.isEmpty || pathPart == "/" ? "/socket.io/" : String(pathPart)
        if !path.hasSuffix("/") { path += "/" }
    }

    var description: String { "\(host):\(port)\(path)" }
}

enum BenchUsageError: Error, CustomStringConvertible {
    case badURL(String)
    case invalid(String)

    var description: String {
        switch self {
        case .badURL(let url): "cannot read \(url) as http://host:port[/path/]"
        case .invalid(let reason): reason
        }
    }
}
