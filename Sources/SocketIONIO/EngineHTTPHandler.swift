import EngineIO
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// What every HTTP connection of one server shares: the endpoints to route to and the
/// fallback for other paths.
struct EngineHTTPRoutes: Sendable {
    var endpoints: [EngineIOEndpoint]
    var fallback: HTTPFallbackHandler?
    var maxFallbackBodyBytes: Int
    var logger: Logger
    /// Node-wide caps and the trusted proxies, shared by every connection.
    var admission: EngineAdmissionControl

    func endpoint(for path: Substring) -> EngineIOEndpoint? {
        endpoints.first { $0.matches(path) }
    }
}

/// Serves the HTTP side of one client connection: Engine.IO long-polling (handshake, GET,
/// POST), CORS preflight, the error table, and the fallback handler for all other paths.
/// One request at a time (NIO's pipelining handler queues the next one until we answer).
final class EngineHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let name = "engine-http"

    private enum Target {
        case engine(EngineIOEndpoint, query: [String: String])
        case fallback(path: String, query: [String: String])
    }

    private let routes: EngineHTTPRoutes
    private var head: HTTPRequestHead?
    private var target: Target?
    private var body: ByteBuffer?
    private var bodyTooLarge = false
    /// A GET parked in a session: told to that session if this connection goes away first.
    private var parkedPoll: (session: EngineSession, promise: EventLoopPromise<PollAnswer>)?

    init(routes: EngineHTTPRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body = nil
            self.bodyTooLarge = false
            let (path, query) = EngineURI.split(head.uri)
            if let endpoint = routes.endpoint(for: path) {
                target = .engine(endpoint, query: query)
            } else {
                target = .fallback(path: String(path), query: query)
            }
        case .body(var chunk):
            let limit: Int
            switch target {
            case .engine(let endpoint, _): limit = endpoint.configuration.maxPayload
            default: limit = routes.maxFallbackBodyBytes
            }
            guard !bodyTooLarge else { return }
            if (body?.readableBytes ?? 0) + chunk.readableBytes > limit {
                bodyTooLarge = true
                body = nil
                return
            }
            if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
        case .end:
            guard let head, let target else { return }
            self.target = nil
            switch target {
            case .engine(let endpoint, let query):
                serveEngine(context: context, head: head, endpoint: endpoint, query: query)
            case .fallback(let path, let query):
                serveFallback(context: context, head: head, path: path, query: query)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let (session, promise) = parkedPoll {
            parkedPoll = nil
            if session.eventLoop.inEventLoop {
                session.pollConnectionClosed(answer: promise)
            } else {
                session.eventLoop.execute { session.pollConnectionClosed(answer: promise) }
            }
        }
        context.fireChannelInactive()
    }

    /// A malformed request (NIO's protocol error handler has answered 400 already): nothing
    /// more can be parsed on this connection, so it is closed now rather than left to a
    /// timeout. Other errors pass (a refused WebSocket upgrade reports one, and its request
    /// still gets its answer here).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            context.close(promise: nil)
        } else {
            context.fireErrorCaught(error)
        }
    }

    // MARK: Engine.IO

    private func serveEngine(context: ChannelHandlerContext, head: HTTPRequestHead, endpoint: EngineIOEndpoint, query: [String: String]) {
        let cors = corsHeaders(head: head, endpoint: endpoint)
        if head.method == .OPTIONS {
            var headers = cors
            headers.add(name: "Access-Control-Allow-Methods", value: "GET, POST")
            if let requested = head.headers.first(name: "Access-Control-Request-Headers") {
                headers.add(name: "Access-Control-Allow-Headers", value: requested)
            }
            respond(context: context, head: head, status: .noContent, headers: headers, body: nil)
            return
        }
        let isUpgrade = head.headers.first(name: "upgrade")?.lowercased() == "websocket"
        let kind = EngineRequestKind.classify(
            query: query, isGET: head.method == .GET, isWebSocketUpgrade: isUpgrade,
            enabledTransports: endpoint.configuration.transports
        )
        switch kind {
        case .failure(let error):
            respondError(context: context, head: head, error: error, cors: cors, closeConnection: isUpgrade)
        case .success(.handshake(.polling)):
            let request = Self.handshakeRequest(head: head, query: query, channel: context.channel, routes: routes)
            let session = endpoint.createSession(transport: .polling, on: context.eventLoop, handshake: request)
            respondPackets(context: context, head: head, packets: [session.openPacket], cors: cors)
            session.opened(webSocket: nil)
        case .success(.handshake(.websocket)), .success(.session(_, .websocket)):
            // The WebSocket upgrader refused it (unknown sid, bad upgrade headers).
            let error: EngineRequestError =
                if case .success(.session(let id, _)) = kind, endpoint.session(id: id) == nil { .unknownSessionID } else { .badRequest }
            respondError(context: context, head: head, error: error, cors: cors, closeConnection: true)
        case .success(.session(let id, .polling)):
            guard let session = endpoint.session(id: id) else {
                respondError(context: context, head: head, error: .unknownSessionID, cors: cors, closeConnection: false)
                return
            }
            if bodyTooLarge {
                respond(context: context, head: head, status: .payloadTooLarge, headers: cors, body: nil, closeConnection: true)
                return
            }
            let promise = context.eventLoop.makePromise(of: PollAnswer.self)
            switch head.method {
            case .GET:
                parkedPoll = (session, promise)
                onSessionLoop(session) { $0.pollRequestArrived(answer: promise) }
            case .POST:
                let body = self.body ?? ByteBuffer()
                self.body = nil
                onSessionLoop(session) { $0.pollDataArrived(body, answer: promise) }
            default:
                respondError(context: context, head: head, error: .badRequest, cors: cors, closeConnection: false)
                promise.succeed(.postAccepted)
                return
            }
            promise.futureResult.assumeIsolated().whenSuccess { answer in
                self.parkedPoll = nil
                guard context.channel.isActive else { return }
                switch answer {
                case .packets(let packets):
                    self.respondPackets(context: context, head: head, packets: packets, cors: cors)
                case .postAccepted:
                    self.respond(context: context, head: head, status: .ok, headers: Self.textPlain(cors), body: ByteBuffer(string: "ok"))
                case .error(let error):
                    self.respondError(context: context, head: head, error: error, cors: cors, closeConnection: false)
                }
            }
        }
    }

    private func onSessionLoop(_ session: EngineSession, _ body: @escaping @Sendable (EngineSession) -> Void) {
        if session.eventLoop.inEventLoop {
            body(session)
        } else {
            session.eventLoop.execute { body(session) }
        }
    }

    private func corsHeaders(head: HTTPRequestHead, endpoint: EngineIOEndpoint) -> HTTPHeaders {
        var headers = HTTPHeaders()
        guard let cors = endpoint.configuration.cors,
            let allowOrigin = cors.allowOriginHeader(forRequestOrigin: head.headers.first(name: "origin"))
        else { return headers }
        headers.add(name: "Access-Control-Allow-Origin", value: allowOrigin)
        if cors.allowCredentials { headers.add(name: "Access-Control-Allow-Credentials", value: "true") }
        if allowOrigin != "*" { headers.add(name: "Vary", value: "Origin") }
        return headers
    }

    private static func textPlain(_ headers: HTTPHeaders) -> HTTPHeaders {
        var headers = headers
        headers.add(name: "Content-Type", value: "text/plain; charset=UTF-8")
        return headers
    }

    private func respondPackets(context: ChannelHandlerContext, head: HTTPRequestHead, packets: [EnginePacket], cors: HTTPHeaders) {
        let body = EnginePacketCodec.encodePayload(packets, allocator: context.channel.allocator)
        respond(context: context, head: head, status: .ok, headers: Self.textPlain(cors), body: body)
    }

    private func respondError(
        context: ChannelHandlerContext, head: HTTPRequestHead, error: EngineRequestError, cors: HTTPHeaders, closeConnection: Bool
    ) {
        var headers = cors
        headers.add(name: "Content-Type", value: "application/json")
        respond(
            context: context, head: head, status: HTTPResponseStatus(statusCode: error.httpStatusCode), headers: headers,
            body: ByteBuffer(string: error.jsonBody), closeConnection: closeConnection
        )
    }

    // MARK: Fallback

    private func serveFallback(context: ChannelHandlerContext, head: HTTPRequestHead, path: String, query: [String: String]) {
        guard let fallback = routes.fallback else {
            let notFound = HTTPFallbackResponse.notFound
            respond(context: context, head: head, status: notFound.status, headers: notFound.headers, body: notFound.body)
            return
        }
        if bodyTooLarge {
            respond(context: context, head: head, status: .payloadTooLarge, headers: [:], body: nil, closeConnection: true)
            return
        }
        let request = HTTPFallbackRequest(
            method: head.method, uri: head.uri, path: path, query: query, headers: head.headers,
            body: body ?? ByteBuffer(), remoteAddress: context.channel.remoteAddress
        )
        body = nil
        let promise = context.eventLoop.makePromise(of: HTTPFallbackResponse.self)
        promise.completeWithTask { await fallback(request) }
        promise.futureResult.assumeIsolated().whenSuccess { response in
            self.respond(context: context, head: head, status: response.status, headers: response.headers, body: response.body)
        }
    }

    // MARK: Writing

    private func respond(
        context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, headers: HTTPHeaders,
        body: ByteBuffer?, closeConnection: Bool = false
    ) {
        let keepAlive = head.isKeepAlive && !closeConnection
        var headers = headers
        headers.replaceOrAdd(name: "Content-Length", value: String(body?.readableBytes ?? 0))
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        let responseHead = HTTPResponseHead(version: head.version, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if let body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Headers kept for the handshake (`socket.handshake.headers`). Node keeps up to 2,000
    /// (`maxHeadersCount`); a browser sends about 20, so 100 leaves room for any proxy
    /// chain while bounding what every CONNECT of the session reads.
    static let maxHandshakeHeaders = 100

    static func handshakeRequest(
        head: HTTPRequestHead, query: [String: String], channel: any Channel, routes: EngineHTTPRoutes
    ) -> EngineHandshakeRequest {
        let peer = channel.remoteAddress
        return handshakeRequest(head: head, query: query, peer: peer, client: routes.admission.clientAddress(head: head, peer: peer))
    }

    /// The request as the upper layer keeps it for the whole session, built once per
    /// connection. Header names are lower-cased and repeated headers joined with ", " as
    /// Node's `req.headers` does, so nothing above has to join them again (a CONNECT per
    /// namespace used to, quadratically in the number of repeats); at most
    /// `maxHandshakeHeaders` distinct names are kept, the first ones.
    static func handshakeRequest(
        head: HTTPRequestHead, query: [String: String], peer: SocketAddress?, client: IPAddress?
    ) -> EngineHandshakeRequest {
        var headers: [(name: String, value: String)] = []
        var positions: [String: Int] = [:]
        for header in head.headers {
            let lowered = header.name.lowercased()
            let name = internedHeaderNames[lowered] ?? lowered
            if let position = positions[name] {
                headers[position].value += ", " + header.value
            } else if headers.count < maxHandshakeHeaders {
                positions[name] = headers.count
                headers.append((name: name, value: header.value))
            }
        }
        return EngineHandshakeRequest(
            uri: head.uri,
            headers: headers,
            query: query,
            remoteAddress: peer?.ipAddress,
            isSecure: false,
            issuedAt: Date().timeIntervalSince1970,
            clientAddress: client?.description
        )
    }

    /// Names browsers and WebSocket clients send that are too long for Swift's inline strings
    /// (over 15 bytes): kept as these literals, a session's handshake holds no copy of them.
    static let internedHeaderNames: [String: String] = Dictionary(uniqueKeysWithValues: [
        "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
        "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "upgrade-insecure-requests",
        "sec-ch-ua-platform", "sec-ch-ua-mobile", "sec-fetch-storage-access", "access-control-request-method",
        "access-control-request-headers",
    ].map { ($0, $0) })
}
