import AMQPClient
import AMQPProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketIO

/// One Socket.IO node's membership in a RabbitMQ cluster: the AMQP connection, this node's
/// unique id, the options, and one `RabbitMQAdapter` per namespace.
///
/// ```swift
/// let cluster = try await RabbitMQCluster.connect(urls: ["amqp://guest:guest@127.0.0.1"], nodeName: "a")
/// var configuration = SocketIOServerConfiguration()
/// configuration.adapterFactory = cluster.adapterFactory
/// ```
public final class RabbitMQCluster: Sendable {
    /// `nodeName` plus a random suffix: a restarted process is a new node, so peers never
    /// mistake its fresh sequence numbers for copies of the old ones.
    public let nodeID: String
    public let options: RabbitMQAdapterOptions
    let connection: AMQPConnection
    let logger: Logger
    private let adapters = NIOLockedValueBox<[RabbitMQAdapter]>([])
    private let readiness = NIOLockedValueBox<ReadinessState>(ReadinessState())
    /// Observers of recoverable events by namespace name (+EventObservers); set before the
    /// namespace's adapter exists, read once when it is made.
    let eventObservers = NIOLockedValueBox<[String: RecoverableEventObserver]>([:])

    private struct ReadinessState {
        var connected = true
        var observers: [Int: AsyncStream<Bool>.Continuation] = [:]
        var nextObserver = 0
    }

    /// Connects this node to the broker. With `waitingForBroker`, a broker that does not
    /// answer yet is waited for (AMQPClient retries with its back-off; the callback hears of
    /// every failed attempt) until it does or the task is cancelled; without it, the first
    /// failure is thrown.
    public static func connect(
        urls: [String], nodeName: String, options: RabbitMQAdapterOptions = RabbitMQAdapterOptions(),
        logger: Logger = Logger(label: "socket.io.rabbitmq"),
        waitingForBroker: (@Sendable (_ attempt: Int, _ error: any Error) -> Void)? = nil
    ) async throws -> RabbitMQCluster {
        try options.validate()
        var configuration = try AMQPConnectionConfiguration(urls: urls)
        configuration.connectionName = "socket.io node \(nodeName)"
        let connection = if let waitingForBroker {
            try await AMQPConnection.connectWaitingForBroker(configuration, logger: logger, onFailure: waitingForBroker)
        } else {
            try await AMQPConnection.connect(configuration, logger: logger)
        }
        return RabbitMQCluster(connection: connection, nodeName: nodeName, options: options, logger: logger)
    }

    public init(connection: AMQPConnection, nodeName: String, options: RabbitMQAdapterOptions, logger: Logger) {
        self.connection = connection
        self.nodeID = "\(Self.wireSafe(nodeName))-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
        self.options = options
        self.logger = logger
        let states = connection.stateChanges
        Task { [weak self] in
            for await state in states {
                guard let self else { return }
                self.connectionStateChanged(state)
            }
        }
    }

    /// The node name as it goes into node ids and recovery offsets: at most 100 characters of
    /// `A-Z a-z 0-9 . _ -` (others become `_`), so every offset this node issues passes
    /// `RecoveryCredentials.isWellFormed(offset:)` whatever name it was given.
    static func wireSafe(_ nodeName: String) -> String {
        let safe = nodeName.unicodeScalars.prefix(100).map { scalar -> Character in
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", ".", "_", "-": Character(scalar)
            default: "_"
            }
        }
        return safe.isEmpty ? "node" : String(safe)
    }

    /// Give this to `SocketIOServerConfiguration.adapterFactory`.
    public var adapterFactory: @Sendable (SocketIONamespace) -> any SocketIOAdapter {
        { [self] namespace in
            let adapter = RabbitMQAdapter(namespace: namespace, cluster: self)
            self.adapters.withLockedValue { $0.append(adapter) }
            return adapter
        }
    }

    /// True while the broker is reachable and every namespace's queue is consuming: what a
    /// `/readyz` endpoint reports. While false the node still serves its local clients and
    /// holds cluster messages in each adapter's outbox.
    public var isReady: Bool {
        readiness.withLockedValue { $0.connected } && adapters.withLockedValue { $0 }.allSatisfy(\.isReady)
    }

    /// Why the node is not ready, one line each (empty when ready): for `/readyz`, so an
    /// operator sees which part is stuck (connection, a consumer, the publisher) and since when.
    public var notReadyReasons: [String] {
        var reasons: [String] = readiness.withLockedValue { $0.connected } ? [] : ["RabbitMQ connection lost; reconnecting"]
        for adapter in adapters.withLockedValue({ $0 }) {
            reasons += adapter.notReadyReasons.map { "namespace \(adapter.namespace.name): \($0)" }
        }
        return reasons
    }

    /// The current readiness, then every change.
    public func readinessChanges() -> AsyncStream<Bool> {
        let (stream, continuation) = AsyncStream<Bool>.makeStream(bufferingPolicy: .bufferingNewest(8))
        let id = readiness.withLockedValue { state -> Int in
            state.nextObserver += 1
            state.observers[state.nextObserver] = continuation
            return state.nextObserver
        }
        continuation.onTermination = { [weak self] _ in self?.readiness.withLockedValue { _ = $0.observers.removeValue(forKey: id) } }
        continuation.yield(isReady)
        return stream
    }

    /// Counters summed over every namespace.
    public var metrics: RabbitMQAdapterMetrics {
        adapters.withLockedValue { $0 }.reduce(into: RabbitMQAdapterMetrics()) { $0.add($1.metrics) }
    }

    public var namespaceAdapters: [RabbitMQAdapter] { adapters.withLockedValue { $0 } }

    public func close() async {
        for adapter in adapters.withLockedValue({ $0 }) { await adapter.close() }
        try? await connection.close()
        readiness.withLockedValue { state in
            for observer in state.observers.values { observer.finish() }
            state.observers.removeAll()
        }
    }

    private func connectionStateChanged(_ state: AMQPConnectionState) {
        switch state {
        case .disconnected:
            logger.warning("RabbitMQ connection lost; holding cluster messages", metadata: ["node": "\(nodeID)"])
            setConnected(false)
            for adapter in adapters.withLockedValue({ $0 }) { adapter.brokerConnectionLost() }
        case .recovered, .connected:
            logger.info("RabbitMQ connection recovered; flushing outboxes", metadata: ["node": "\(nodeID)"])
            for adapter in adapters.withLockedValue({ $0 }) { adapter.brokerConnectionRecovered() }
            setConnected(true)
        case .closed:
            setConnected(false)
        default:
            break
        }
    }

    func readinessMayHaveChanged() {
        let ready = isReady
        let observers = readiness.withLockedValue { Array($0.observers.values) }
        for observer in observers { observer.yield(ready) }
    }

    private func setConnected(_ connected: Bool) {
        readiness.withLockedValue { $0.connected = connected }
        readinessMayHaveChanged()
    }
}

/// Plain counters for metrics exporters. Latency is from enqueue to broker confirm.
public struct RabbitMQAdapterMetrics: Sendable, Hashable {
    /// Cluster messages confirmed by the broker.
    public var published: UInt64 = 0
    /// AMQP publishes that carried them (several messages share one under load).
    public var publishedBatches: UInt64 = 0
    public var received: UInt64 = 0
    /// Broadcasts from other nodes that reached this node (room-aware routing lowers it).
    public var receivedBroadcasts: UInt64 = 0
    /// Recoverable packets (every node's, this one's included) read from the recovery stream.
    public var receivedStreamPackets: UInt64 = 0
    public var duplicatesDropped: UInt64 = 0
    public var undecodable: UInt64 = 0
    /// Messages of this node dropped because they could not be encoded (a field over the
    /// format's limits, `ClusterMessageEncodingError`).
    public var encodingFailures: UInt64 = 0
    public var outboxSize: Int = 0
    public var outboxOverflow: UInt64 = 0
    public var publishFailures: UInt64 = 0
    /// Publishes not confirmed within `publishConfirmTimeoutSeconds` (then republished on a new channel).
    public var confirmTimeouts: UInt64 = 0
    /// Age of the oldest message waiting for a confirm, in seconds (0: the outbox is empty).
    /// Summed metrics keep the largest.
    public var outboxOldestAgeSeconds: Double = 0
    var outboxOldestEnqueuedAtNanoseconds: UInt64?
    public var publishLatencyTotalNanoseconds: UInt64 = 0
    public var publishLatencyMaxNanoseconds: UInt64 = 0

    public init() {}

    public var meanPublishLatencyMilliseconds: Double {
        published == 0 ? 0 : Double(publishLatencyTotalNanoseconds) / Double(published) / 1e6
    }

    mutating func add(_ other: RabbitMQAdapterMetrics) {
        published += other.published
        publishedBatches += other.publishedBatches
        received += other.received
        receivedBroadcasts += other.receivedBroadcasts
        receivedStreamPackets += other.receivedStreamPackets
        duplicatesDropped += other.duplicatesDropped
        undecodable += other.undecodable
        encodingFailures += other.encodingFailures
        outboxSize += other.outboxSize
        outboxOverflow += other.outboxOverflow
        publishFailures += other.publishFailures
        confirmTimeouts += other.confirmTimeouts
        outboxOldestAgeSeconds = max(outboxOldestAgeSeconds, other.outboxOldestAgeSeconds)
        publishLatencyTotalNanoseconds += other.publishLatencyTotalNanoseconds
        publishLatencyMaxNanoseconds = max(publishLatencyMaxNanoseconds, other.publishLatencyMaxNanoseconds)
    }
}
