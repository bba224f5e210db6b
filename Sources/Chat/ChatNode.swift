import AMQPClient
import ChatCore
import EngineIO
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketIO
import SocketIORabbitMQ

/// Everything of one chat node behind its HTTP server: the Socket.IO server, the cluster
/// adapter and the history it feeds. The HTTP server starts first (so /healthz answers at
/// once); the Socket.IO side comes up once the broker is reachable, and until then
/// /readyz says why the node is not ready and new connections are closed so clients retry.
final class ChatNode: Sendable {
    struct Settings: Sendable {
        var adapter: ChatCommand.AdapterKind
        var amqpURLs: [String]
        var nodeName: String
        var limits: ChatLimits
        var recoveryWindow: TimeAmount
        var presenceInterval: Duration
        var roomAwareRouting: Bool
        /// `x-initial-cluster-size` of the recovery stream when this node declares it first.
        var streamReplicas: Int = 3
        /// Sign-in tokens and the admin page (ChatAccessOptions).
        var access: ChatAccess = .open
    }

    let settings: Settings
    let metrics: ChatMetrics
    let logger: Logger
    /// What the Engine.IO endpoint talks to: nothing until the node is up.
    let engineDelegate = DeferredEngineDelegate()
    let parts = NIOLockedValueBox(Parts())

    struct Parts {
        var io: SocketIOServer?
        var cluster: RabbitMQCluster?
        /// The admin page's rate sampler (a timer on a loop), stopped at close.
        var adminSampler: RepeatedTask?
        var waitingFor: String = "starting"
        var closing = false
    }

    init(settings: Settings, metrics: ChatMetrics, logger: Logger) {
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
    }

    var isReady: Bool {
        parts.withLockedValue { parts in
            guard parts.io != nil, !parts.closing else { return false }
            switch settings.adapter {
            case .memory: return true
            case .rabbitmq: return parts.cluster?.isReady ?? false
            }
        }
    }

    var readinessDetail: String {
        parts.withLockedValue { parts in
            if parts.closing { return "shutting down" }
            guard parts.io != nil else { return parts.waitingFor }
            switch settings.adapter {
            case .memory: return "single node, in-memory adapter"
            case .rabbitmq:
                let reasons = parts.cluster?.notReadyReasons ?? ["no cluster connection"]
                return reasons.isEmpty ? "cluster adapter connected" : "cluster adapter: " + reasons.joined(separator: "; ")
            }
        }
    }

    /// Brings the Socket.IO side up; returns once the node accepts Socket.IO clients (or
    /// when cancelled while the broker is still unreachable).
    func start() async throws {
        var configuration = SocketIOServerConfiguration(
            // Middlewares run for recovered sessions too: the sign-in token is checked again.
            connectionStateRecovery: ConnectionStateRecovery(maxDisconnectionDuration: settings.recoveryWindow, skipMiddlewares: false)
        )
        configuration.logger = logger
        let history: any ChatHistoryStore
        var brokerState: @Sendable () -> String = { "none (in-memory adapter)" }
        switch settings.adapter {
        case .memory:
            history = InMemoryChatHistory(limits: settings.limits)
        case .rabbitmq:
            guard let cluster = await connectCluster() else { return }
            configuration.adapterFactory = cluster.adapterFactory
            // Before the namespace's adapter exists: it replays the stream for the history at start.
            history = ClusterChatHistory(limits: settings.limits, cluster: cluster)
            parts.withLockedValue { $0.cluster = cluster }
            brokerState = { cluster.isReady ? "connected" : "unreachable (holding messages)" }
        }
        let rateLimits = ChatRateLimiter(limits: settings.limits, metrics: metrics)
        configuration.connectAdmission = { rateLimits.admit($0) }
        let io = SocketIOServer(configuration)
        let presence = PresencePublisher(io: io, limits: settings.limits, interval: settings.presenceInterval, logger: logger)
        settings.access.installSignIn(on: io)
        ChatService(io: io, limits: settings.limits, history: history, presence: presence, rateLimits: rateLimits,
                    metrics: metrics, logger: logger, namesFromTokens: settings.access.namesFromTokens).install()
        installAdmin(io: io, history: history, brokerState: brokerState)
        guard await startRetrying(io) else { return }
        parts.withLockedValue { $0.io = io }
        engineDelegate.target.withLockedValue { $0 = io }
        logger.info("chat node ready", metadata: ["adapter": "\(settings.adapter.rawValue)"])
    }

    /// Starts the Socket.IO server (the adapters declare their queues and streams and start
    /// consuming), retrying with back-off (0.5 s doubling to 10 s) until it works or the node
    /// stops: in a RabbitMQ cluster the broker can refuse for a while (a stream just declared
    /// is not up on every node yet, 541; its replica is moving, 406). Every failure is logged
    /// and shown on /readyz. False when cancelled first.
    private func startRetrying(_ io: SocketIOServer) async -> Bool {
        var attempt = 0
        while !Task.isCancelled {
            do {
                try await io.start()
                if attempt > 0 { logger.notice("chat node started", metadata: ["failedAttempts": "\(attempt)"]) }
                return true
            } catch {
                attempt += 1
                let delay = min(500_000_000 << UInt64(min(attempt - 1, 5)), 10_000_000_000)
                let reason = "start failed (attempt \(attempt)): \(error); retrying in \(Double(delay) / 1e9) s"
                parts.withLockedValue { $0.waitingFor = reason }
                logger.error("chat node could not start; retrying", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                try? await Task.sleep(nanoseconds: UInt64(delay))
            }
        }
        return false
    }

    /// Connects to RabbitMQ, waiting for it as long as it takes (AMQPClient retries with its
    /// back-off, 0.1 s doubling to 5 s). The first failure is logged as one clear line; later
    /// ones only at debug level, so an outage does not flood the log. Nil when cancelled first.
    private func connectCluster() async -> RabbitMQCluster? {
        var options = RabbitMQAdapterOptions()
        options.roomAwareRouting = settings.roomAwareRouting
        options.streamInitialClusterSize = settings.streamReplicas
        // The recovery stream is also the rooms' history (ClusterChatHistory): kept far longer
        // than a reconnect needs. A restore reads only its window of it (by timestamp).
        options.recoveryStreamMaxAge = Self.historyMaxAge
        options.recoveryStreamMaxLengthBytes = Self.historyMaxBytes
        let urls = AMQPURLRedaction.redact(settings.amqpURLs)
        do {
            let cluster = try await RabbitMQCluster.connect(
                urls: settings.amqpURLs, nodeName: settings.nodeName, options: options, logger: logger,
                waitingForBroker: { [self] attempt, error in
                    // Shown on /readyz and in the log: the URLs without their passwords.
                    let reason = "RabbitMQ at \(urls) is not reachable (\(error)); retrying (attempt \(attempt))"
                    parts.withLockedValue { $0.waitingFor = reason }
                    if attempt == 1 { logger.error("\(reason)") } else { logger.debug("\(reason)") }
                }
            )
            if parts.withLockedValue({ $0.waitingFor }) != "starting" { logger.notice("RabbitMQ is reachable again; starting") }
            return cluster
        } catch {
            if !(error is CancellationError) { logger.error("could not connect to RabbitMQ", metadata: ["error": "\(error)"]) }
            return nil
        }
    }

    /// How long and how large the recovery stream, and so the rooms' history, is kept.
    static let historyMaxAge = "7D"
    static let historyMaxBytes = 200_000_000

    /// Stops the Socket.IO side after the HTTP server closed its clients: the adapter flushes
    /// what it still holds for the other nodes, then the broker connection closes.
    func close() async {
        let (io, cluster, sampler) = parts.withLockedValue { parts in
            parts.closing = true
            return (parts.io, parts.cluster, parts.adminSampler)
        }
        sampler?.cancel()
        await io?.close()
        await cluster?.close()
    }

    /// Cluster counters for /metrics, read at scrape time.
    func updateClusterMetrics() {
        guard let cluster = parts.withLockedValue({ $0.cluster }) else { return }
        metrics.record(cluster: cluster.metrics, ready: isReady)
    }
}

/// Hands new Engine.IO connections to the Socket.IO server once there is one; before that
/// it closes them, and the clients retry with their usual back-off.
final class DeferredEngineDelegate: EngineServerDelegate {
    let target = NIOLockedValueBox<(any EngineServerDelegate)?>(nil)

    func engineDidOpen(_ connection: any EngineConnection) {
        if let target = target.withLockedValue({ $0 }) {
            target.engineDidOpen(connection)
        } else {
            connection.close(reason: .serverShuttingDown)
        }
    }
}
