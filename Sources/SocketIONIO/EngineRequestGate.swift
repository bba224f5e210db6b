import EngineIO
import NIOCore
import NIOHTTP1

/// Decides whether an Engine.IO request is served at all, before anything else looks at
/// it (the WebSocket upgrader included, so an upgrade is refused with the same answers as
/// a polling handshake): the endpoint's origin policy for every request, then for a
/// handshake the server's admission caps and the application's `allowRequest`. A refused
/// request gets its status with `{"code":4,"message":"…"}` and the connection is closed.
final class EngineRequestGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let name = "engine-gate"

    private let routes: EngineHTTPRoutes
    /// A request was refused: the rest of it, and anything pipelined after it, is dropped.
    private var refused = false

    init(routes: EngineHTTPRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        guard case .head(let head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let (path, query) = EngineURI.split(head.uri)
        guard let endpoint = routes.endpoint(for: path),
            let refusal = Self.check(head: head, query: query, endpoint: endpoint, routes: routes, peer: context.channel.remoteAddress)
        else {
            context.fireChannelRead(data)
            return
        }
        refuse(context: context, head: head, refusal: refusal, endpoint: endpoint)
    }

    /// The refusal for this request, or nil to serve it.
    static func check(
        head: HTTPRequestHead, query: [String: String], endpoint: EngineIOEndpoint, routes: EngineHTTPRoutes, peer: SocketAddress?
    ) -> EngineAdmissionRefusal? {
        let configuration = endpoint.configuration
        guard configuration.allowedOrigins.allows(origin: head.headers.first(name: "origin"), host: head.headers.first(name: "host"))
        else { return .originNotAllowed }
        // Only a handshake (a GET without a sid) opens a session; requests of an existing
        // session were admitted with it.
        guard head.method == .GET, query["sid"].map(\.isEmpty) ?? true else { return nil }
        let client = routes.admission.clientAddress(head: head, peer: peer)
        if let refusal = routes.admission.admitHandshake(address: client?.admissionKey) { return refusal }
        guard let allowRequest = configuration.allowRequest else { return nil }
        let request = EngineHTTPHandler.handshakeRequest(head: head, query: query, peer: peer, client: client)
        switch allowRequest(request) {
        case .allow:
            return nil
        case .refuse(let status, let message):
            return EngineAdmissionRefusal(reason: .allowRequest, status: status, message: message)
        }
    }

    private func refuse(context: ChannelHandlerContext, head: HTTPRequestHead, refusal: EngineAdmissionRefusal, endpoint: EngineIOEndpoint) {
        refused = true
        EngineMetrics.admissionRefused(refusal.reason).increment()
        endpoint.logger.debug(
            "refused request",
            metadata: ["reason": "\(refusal.reason.rawValue)", "peer": "\(context.channel.remoteAddress?.ipAddress ?? "?")"]
        )
        let body = ByteBuffer(string: refusal.jsonBody)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Connection", value: "close")
        // Clients with a back-off (socket.io's reconnection) are told when to come back.
        if refusal.status == 429 || refusal.status == 503 { headers.add(name: "Retry-After", value: "1") }
        let status = HTTPResponseStatus(statusCode: refusal.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        // Closed right after the flush: a refused client that does not read gets no more
        // of the server's memory than this answer.
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.close(promise: nil)
    }
}
