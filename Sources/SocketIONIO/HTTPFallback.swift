import NIOCore
import NIOHTTP1

/// A request for a path no Engine.IO endpoint serves (static files, /healthz, /metrics...).
/// The body is collected completely first, up to the server's `maxFallbackBodyBytes`.
public struct HTTPFallbackRequest: Sendable {
    public var method: HTTPMethod
    /// The full request target, e.g. `/metrics?x=1`.
    public var uri: String
    /// The path without the query.
    public var path: String
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    public var remoteAddress: SocketAddress?
}

public struct HTTPFallbackResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: ByteBuffer

    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public init(status: HTTPResponseStatus, contentType: String, body: String) {
        self.init(status: status, headers: ["Content-Type": contentType], body: ByteBuffer(string: body))
    }

    public static let notFound = HTTPFallbackResponse(status: .notFound, contentType: "text/plain; charset=UTF-8", body: "Not Found")
}

/// Serves everything that is not Engine.IO. Runs as an async function (one short-lived Task
/// per fallback request; Engine.IO traffic never goes through it).
public typealias HTTPFallbackHandler = @Sendable (HTTPFallbackRequest) async -> HTTPFallbackResponse
