import EngineIO
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// Where and how the HTTP server listens.
public struct EngineIOHTTPServerConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port (see `EngineIOHTTPServer.port`).
    public var port: Int
    /// Largest request body the fallback handler is given; larger requests get 413.
    public var maxFallbackBodyBytes: Int = 1 << 20
    /// How long shutdown waits for close frames and final polls to go out before it
    /// closes the remaining sockets.
    public var shutdownGracePeriod: TimeAmount = .milliseconds(300)
    /// Node's headers, keep-alive and request timeouts (60 s, 5 s, 300 s). They time the
    /// client sending requests only: not a parked long-poll GET, nor a WebSocket.
    public var timeouts = HTTPConnectionTimeouts()
    /// Node-wide caps on connections, sessions and handshakes (all off by default).
    public var admission = EngineAdmissionLimits()
    /// Proxies (IP addresses or CIDR ranges, e.g. `127.0.0.1`, `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client. Empty: the client is always the TCP peer.
    /// Invalid entries make `start()` throw.
    public var trustedProxies: [String] = []
    /// Requests one connection may have waiting for answers (HTTP/1.1 pipelining); a
    /// client with more is closed. Browsers never pipeline.
    public var maxPipelinedRequests: Int = 16

    public init(host: String = "127.0.0.1", port: Int = 0) {
        self.host = host
        self.port = port
    }
}

public enum EngineIOHTTPServerError: Error, Sendable {
    case alreadyStarted
    /// Two endpoints claim the same path.
    case duplicateEndpointPath(String)
    /// A configuration value cannot work; the text says which and why.
    case invalidConfiguration(String)
}

extension EngineIOHTTPServerError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .alreadyStarted: "the HTTP server is already started"
        case .duplicateEndpointPath(let path): "two Engine.IO endpoints share the path \(path)"
        case .invalidConfiguration(let reason): reason
        }
    }
}

/// An HTTP/1.1 server on raw SwiftNIO that serves any number of Engine.IO endpoints by
/// path prefix (long-polling and WebSocket on the same path) and hands every other path
/// to an application fallback handler.
///
/// ```swift
/// let server = EngineIOHTTPServer(
///     configuration: .init(host: "127.0.0.1", port: 3000),
///     endpoints: [EngineIOEndpoint(path: "/socket.io/", configuration: options, delegate: io)],
///     fallback: { request in request.path == "/healthz" ? .init(status: .ok) : .notFound })
/// try await server.start()
/// ...
/// await server.shutdown()
/// ```
public final class EngineIOHTTPServer: Sendable {
    public let configuration: EngineIOHTTPServerConfiguration
    public let endpoints: [EngineIOEndpoint]
    private let routes: EngineHTTPRoutes
    /// Why the configuration cannot be served, reported by `start()`.
    private let configurationError: String?
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)
    /// Accepted connections, so shutdown can close those that outlive the grace period.
    private let openChannels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    /// Receive buffers start small (an HTTP upgrade request fits in two reads) and adapt
    /// between 64 bytes and 64 KB to what the connection reads.
    static let receiveBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65_536)

    public init(
        configuration: EngineIOHTTPServerConfiguration,
        endpoints: [EngineIOEndpoint],
        fallback: HTTPFallbackHandler? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "engine.io.http")
    ) {
        self.configuration = configuration
        self.endpoints = endpoints
        let proxies: TrustedProxies
        do {
            proxies = try TrustedProxies(configuration.trustedProxies)
            configurationError = nil
        } catch {
            proxies = .none
            configurationError = error.description
        }
        let admission = EngineAdmissionControl(limits: configuration.admission, trustedProxies: proxies)
        for endpoint in endpoints { endpoint.attach(admission) }
        self.routes = EngineHTTPRoutes(
            endpoints: endpoints, fallback: fallback, maxFallbackBodyBytes: configuration.maxFallbackBodyBytes, logger: logger,
            admission: admission
        )
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    /// The address the server is bound to, once started.
    public var localAddress: SocketAddress? { serverChannel.withLockedValue { $0?.localAddress } }
    public var port: Int? { localAddress?.port }

    /// Open Engine.IO connections of all endpoints, by transport.
    public var connectionCounts: EngineConnectionCounts {
        endpoints.reduce(into: EngineConnectionCounts()) {
            let counts = $1.connectionCounts
            $0.polling += counts.polling
            $0.websocket += counts.websocket
        }
    }

    /// Binds and starts accepting. Returns once the socket is listening.
    public func start() async throws {
        if serverChannel.withLockedValue({ $0 != nil }) { throw EngineIOHTTPServerError.alreadyStarted }
        if let configurationError { throw EngineIOHTTPServerError.invalidConfiguration(configurationError) }
        EngineMetrics.registerAll()
        var seen = Set<String>()
        for endpoint in endpoints where !seen.insert(endpoint.path).inserted {
            throw EngineIOHTTPServerError.duplicateEndpointPath(endpoint.path)
        }
        let routes = self.routes
        let openChannels = self.openChannels
        let backlog = endpoints.map(\.configuration.maxPendingConnections).max() ?? 1024
        let maxConnections = configuration.admission.maxConnections
        let timeouts = configuration.timeouts
        let maxPipelinedRequests = configuration.maxPipelinedRequests
        let channel = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: Int32(clamping: backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            // Every channel keeps its receive buffer between reads: NIO's default starts at
            // 2 KB, the largest single cost of an idle connection (heaptrack). An idle client
            // sends a few bytes per heartbeat; the buffer still grows for larger reads.
            .childChannelOption(.recvAllocator, value: Self.receiveBuffers)
            .childChannelInitializer { channel in
                let id = ObjectIdentifier(channel)
                let admitted = openChannels.withLockedValue { open in
                    if let maxConnections, open.count >= maxConnections { return false }
                    open[id] = channel
                    return true
                }
                guard admitted else {
                    // Node's `server.maxConnections`: the socket is closed unanswered, before
                    // it costs a pipeline.
                    EngineMetrics.admissionRefused(.maxConnections).increment()
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in _ = openChannels.withLockedValue { $0.removeValue(forKey: id) } }
                return Self.configureChildChannel(
                    channel, routes: routes, timeouts: timeouts, maxPipelinedRequests: maxPipelinedRequests
                )
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        serverChannel.withLockedValue { $0 = channel }
        logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
    }

    /// Stops accepting, closes every Engine.IO connection with `.serverShuttingDown` (so
    /// WebSockets get a close frame and parked polls a `1`), waits until every session has
    /// ended or the grace period passed, whichever comes first, then closes whatever is still
    /// open (idle keep-alive connections, clients that never answered).
    public func shutdown() async {
        let listener = serverChannel.withLockedValue { $0 }
        try? await listener?.close()
        for endpoint in endpoints { endpoint.closeAllConnections(reason: .serverShuttingDown) }
        let loop = eventLoopGroup.any()
        let ended = EventLoopFuture.andAllComplete(endpoints.map { $0.sessionsEnded(on: loop) }, on: loop)
        let graceOver = loop.scheduleTask(in: configuration.shutdownGracePeriod) {}
        // Both complete on `loop`: the first one there ends the wait.
        let first = loop.makePromise(of: Void.self)
        let waiting = NIOLoopBoundBox.makeBoxSendingValue(true, eventLoop: loop)
        let finish: @Sendable () -> Void = {
            guard waiting.value else { return }
            waiting.value = false
            graceOver.cancel()
            first.succeed()
        }
        ended.whenComplete { _ in finish() }
        graceOver.futureResult.whenComplete { _ in finish() }
        try? await first.futureResult.get()
        let remaining = openChannels.withLockedValue { Array($0.values) }
        for channel in remaining { try? await channel.close() }
    }

    // MARK: Pipeline

    private static func configureChildChannel(
        _ channel: any Channel, routes: EngineHTTPRoutes, timeouts: HTTPConnectionTimeouts,
        maxPipelinedRequests: Int
    ) -> EventLoopFuture<Void> {
        let upgrader = EngineWebSocketUpgrader(
            shouldUpgrade: { channel, head in
                guard webSocketRole(head: head, routes: routes, channel: channel) != nil else {
                    return channel.eventLoop.makeSucceededFuture(nil)
                }
                removeHTTPGuards(from: channel)
                return channel.eventLoop.makeSucceededFuture(HTTPHeaders())
            },
            makeHandler: { channel, head in
                guard let (role, endpoint) = webSocketRole(head: head, routes: routes, channel: channel) else { return nil }
                return EngineWebSocketHandler(
                    role: role, channelLoop: channel.eventLoop, outboundBudget: endpoint.configuration.maxOutboundBufferBytes,
                    minimumFlushGap: endpoint.configuration.webSocketMinimumFlushGap, maxPayload: endpoint.configuration.maxPayload
                )
            }
        )
        return channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            // Reads stop while the client does not take our answers: pipelined requests
            // then wait in the kernel, not in our memory as unsent responses.
            try sync.addHandler(BackPressureHandler(), name: Self.backPressureName)
            try sync.configureHTTPServerPipeline(withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
            // Counted as parsed, before the pipelining handler queues them.
            let pipelining = try sync.handler(type: HTTPServerPipelineHandler.self)
            try sync.addHandler(HTTPPipeliningLimitHandler(limit: maxPipelinedRequests), name: HTTPPipeliningLimitHandler.name, position: .before(pipelining))
            // All three before the upgrade handler: they see every request, upgrades included.
            let upgradeHandler = try sync.handler(type: HTTPServerUpgradeHandler.self)
            try sync.addHandler(HTTPWritabilityGate(), name: HTTPWritabilityGate.name, position: .before(upgradeHandler))
            try sync.addHandler(HTTPConnectionTimeoutHandler(timeouts: timeouts), name: HTTPConnectionTimeoutHandler.name, position: .before(upgradeHandler))
            try sync.addHandler(EngineRequestGate(routes: routes), name: EngineRequestGate.name, position: .before(upgradeHandler))
            try sync.addHandler(EngineHTTPHandler(routes: routes), name: EngineHTTPHandler.name)
        }
    }

    private static let backPressureName = "back-pressure"

    /// HTTP's guards do not apply to a WebSocket: Engine.IO's ping timeout times it, and its
    /// outbound budget bounds what it may queue. They go as soon as the upgrade is decided,
    /// before NIO removes its HTTP decoder: the decoder then passes on the bytes that followed
    /// the upgrade request as raw bytes, which a handler expecting HTTP parts must never see.
    private static func removeHTTPGuards(from channel: any Channel) {
        let sync = channel.pipeline.syncOperations
        for name in [
            HTTPPipeliningLimitHandler.name, HTTPWritabilityGate.name, HTTPConnectionTimeoutHandler.name,
            EngineRequestGate.name, backPressureName,
        ] {
            sync.removeHandler(name: name, promise: nil)
        }
    }

    /// What a WebSocket upgrade request opens, or nil to refuse the upgrade (the HTTP
    /// handler then answers it with the matching 400).
    private static func webSocketRole(
        head: HTTPRequestHead, routes: EngineHTTPRoutes, channel: any Channel
    ) -> (EngineWebSocketHandler.Role, EngineIOEndpoint)? {
        let (path, query) = EngineURI.split(head.uri)
        guard let endpoint = routes.endpoint(for: path) else { return nil }
        let kind = EngineRequestKind.classify(
            query: query, isGET: head.method == .GET, isWebSocketUpgrade: true,
            enabledTransports: endpoint.configuration.transports
        )
        switch kind {
        case .success(.handshake(.websocket)):
            let request = EngineHTTPHandler.handshakeRequest(head: head, query: query, channel: channel, routes: routes)
            return (.handshake(endpoint, request), endpoint)
        case .success(.session(let id, .websocket)):
            // A second WebSocket for an upgrading or upgraded session is accepted and then
            // closed by the session (the reference client expects a close, not a 400).
            guard let session = endpoint.session(id: id) else { return nil }
            return (.probe(session), endpoint)
        default:
            return nil
        }
    }
}
