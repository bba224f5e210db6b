import AMQPClient
import EngineIO
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketIO

/// The Socket.IO adapter of one namespace on one node of a RabbitMQ cluster.
///
/// Local state (rooms, local delivery) is an `InMemoryAdapter`; everything that must reach
/// other nodes is encoded once as a `ClusterMessage` and published, with publisher confirms,
/// to the namespace's exchange. Topology and delivery guarantees: docs/CLUSTER.md.
///
/// Every decision is taken by `ClusterAdapterStateMachine`; this class feeds it events and
/// runs the actions it returns (`run`). Its parts, one file each: the `SocketIOAdapter` API
/// (+API), the publisher (+Publisher), the recovery-stream consumer (+RecoveryStream),
/// topology and binding changes (+Topology), work for other nodes (+RemoteWork).
///
/// Concurrency: the machine sits behind one lock, held only to feed it one event; actions run
/// after it is released. Timers run on the AMQP connection's event loop. Deliveries whose
/// order matters (recoverable packets) queue in the machine; whoever is told to
/// `.deliverInOrder` makes them, in the machine's order, with no lock held.
public final class RabbitMQAdapter: SocketIOAdapter {
    typealias Machine = ClusterAdapterStateMachine<Waiter>

    /// What the adapter parks in the machine until an action hands it back.
    enum Waiter: Sendable {
        case request(CheckedContinuation<ClusterRequestTracker.Completion, Never>)
        case acks(clientCount: @Sendable (Int) -> Void, ack: @Sendable (String, [JSONValue]) -> Void)
        case route(CheckedContinuation<Void, Never>)
        case claim(CheckedContinuation<(decision: RecoveryLog.Decision, claimedAt: StreamPosition)?, Never>)
        case drain(CheckedContinuation<Void, Never>)
    }

    public unowned let namespace: SocketIONamespace
    let cluster: RabbitMQCluster
    let local: InMemoryAdapter
    public let exchangeName: String
    public let queueName: String
    /// The RabbitMQ stream holding recoverable packets and session records, when the server
    /// has connection state recovery on.
    public let recoveryStreamName: String?
    let options: RabbitMQAdapterOptions
    let logger: Logger
    let machine: NIOLockedValueBox<Machine>
    let publishWakeups: AsyncStream<Void>.Continuation
    let publishWakeupStream: AsyncStream<Void>
    let bindingWakeups: AsyncStream<Void>.Continuation
    let bindingWakeupStream: AsyncStream<Void>
    let tasks = NIOLockedValueBox<[Task<Void, Never>]>([])
    let heartbeat = NIOLockedValueBox<RepeatedTask?>(nil)
    /// Set when the machine asks the publisher for a new channel: the back-off before it.
    let channelReplacement = NIOLockedValueBox<UInt64?>(nil)
    /// The channel this node's queue is consumed and bound on (replaced when its consumer restarts).
    let nodeChannel = NIOLockedValueBox<AMQPChannel?>(nil)
    /// Recent answers of the broker to "is this node's queue still consumed?" (+Restore).
    let originChecks = NIOLockedValueBox<[String: (task: Task<Bool, Never>, at: UInt64)]>([:])
    /// Who reads this namespace's recoverable events (+EventReplay), if anyone.
    let eventObserver: RecoverableEventObserver?

    init(namespace: SocketIONamespace, cluster: RabbitMQCluster) {
        self.namespace = namespace
        self.cluster = cluster
        self.local = InMemoryAdapter(namespace: namespace)
        self.options = cluster.options
        self.logger = cluster.logger
        self.exchangeName = "\(cluster.options.exchangePrefix)#\(namespace.name)"
        self.queueName = "\(cluster.options.exchangePrefix)#\(namespace.name)#\(cluster.nodeID)"
        let recovery = namespace.server.configuration.connectionStateRecovery
        self.recoveryStreamName = recovery == nil ? nil : "\(cluster.options.exchangePrefix)#\(namespace.name)#recovery"
        self.eventObserver = recovery == nil ? nil : cluster.eventObservers.withLockedValue { $0[namespace.name] }
        self.machine = NIOLockedValueBox(Machine(configuration: .init(
            nodeID: cluster.nodeID, namespace: namespace.name, exchangeName: exchangeName, exchangePrefix: cluster.options.exchangePrefix,
            recoveryStreamName: recoveryStreamName, outboxCapacity: cluster.options.outboxCapacity,
            outboxOverflowPolicy: cluster.options.outboxOverflowPolicy, roomAwareRouting: cluster.options.roomAwareRouting,
            heartbeatTimeoutNanoseconds: Self.nanoseconds(seconds: cluster.options.heartbeatTimeoutSeconds),
            recoveryWindowNanoseconds: UInt64(max(recovery?.maxDisconnectionDuration.nanoseconds ?? 0, 0)),
            maxLoggedPackets: recovery?.maxLoggedPackets ?? 1000, maxLoggedBytes: recovery?.maxLoggedBytes ?? 32 * 1024 * 1024,
            publishConfirmTimeoutNanoseconds: Self.nanoseconds(seconds: cluster.options.publishConfirmTimeoutSeconds),
            observesRecoverablePackets: eventObserver != nil)))
        (publishWakeupStream, publishWakeups) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        (bindingWakeupStream, bindingWakeups) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public var nodeID: String { cluster.nodeID }
    var isReady: Bool { machine.withLockedValue { $0.isReady } }
    public var metrics: RabbitMQAdapterMetrics {
        var snapshot = machine.withLockedValue { $0.metricsSnapshot }
        if let oldest = snapshot.outboxOldestEnqueuedAtNanoseconds {
            let now = Self.now()
            snapshot.outboxOldestAgeSeconds = Double(now &- min(oldest, now)) / 1e9
        }
        return snapshot
    }
    /// Why this namespace's adapter is not ready (empty when it is), for `/readyz`.
    public var notReadyReasons: [String] { machine.withLockedValue { $0.notReadyReasons(now: Self.now()) } }
    /// Live peers by heartbeat (not counting this node).
    public var liveNodes: Set<String> { machine.withLockedValue { $0.membership.liveNodes } }
    public func serverCount() async -> Int { machine.withLockedValue { $0.membership.serverCount } }

    // MARK: Running the machine

    /// Feeds one event to the machine and runs what it decided.
    func feed(_ event: (inout Machine, UInt64) -> [Machine.Action]) {
        let now = Self.now()
        run(machine.withLockedValue { event(&$0, now) })
    }

    /// The only place that acts on the machine's decisions.
    func run(_ actions: [Machine.Action]) {
        for action in actions {
            switch action {
            case .deliver(let messages, let rooms, let except, let held, let volatile):
                namespace.deliver(messages, to: localRecipients(rooms: rooms, except: except, held: held), volatile: volatile)
            case .deliverInOrder:
                // This caller took the turn: it makes every ordered delivery, its own and
                // those queued meanwhile by others, until none is left.
                while true {
                    let ordered = machine.withLockedValue { $0.nextOrderedActions() }
                    if ordered.isEmpty { break }
                    run(ordered)
                }
            case .wakePublisher:
                publishWakeups.yield()
            case .wakeBindingRunner:
                bindingWakeups.yield()
            case .completeRequest(.request(let continuation), let completion):
                continuation.resume(returning: completion)
            case .forwardClientCount(.acks(let clientCount, _), let count):
                clientCount(Int(count))
            case .forwardAck(.acks(_, let ack), let packet):
                if let decoded = Self.decodePacket(packet), let socketId = decoded.eventName { ack(socketId, decoded.arguments) }
            case .resumeRouteWaiter(.route(let continuation)), .resumeDrainWaiter(.drain(let continuation)):
                continuation.resume()
            case .resumeClaimWaiter(.claim(let continuation), let outcome):
                continuation.resume(returning: outcome)
            case .handleRemote(let work):
                handleRemote(work)
            case .republishOnNewChannel(let delay):
                publisherNeedsNewChannel(after: delay)
            case .observeRecoverable(let packets):
                for packet in packets { if let event = RecoverableEvent(packet) { eventObserver?(event) } }
            case .readinessMayHaveChanged:
                cluster.readinessMayHaveChanged()
            case .log(let event):
                log(event)
            case .completeRequest, .forwardClientCount, .forwardAck, .resumeRouteWaiter, .resumeDrainWaiter, .resumeClaimWaiter:
                // A waiter of another kind: the machine hands back what it was given, so this
                // means a bug in the adapter's calls, never input.
                logger.error("cluster adapter: waiter of the wrong kind", metadata: ["action": "\(action)"])
            }
        }
    }

    /// Arms a one-shot timer on the connection's event loop for a deadline (monotonic nanoseconds).
    func armDeadline(_ deadline: UInt64) {
        cluster.connection.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(deadline &+ 1_000_000)) { [weak self] in
            self?.feed { machine, now in machine.deadlinesPassed(now: now) }
        }
    }

    func log(_ event: Machine.LogEvent) {
        switch event {
        case .outboxFull(let overflow, let policy):
            logger.warning("cluster outbox full; message dropped", metadata: ["overflow": "\(overflow)", "policy": "\(policy)"])
        case .encodingFailed(let error, let count):
            logger.error("cluster message over the format's limits dropped", metadata: [
                "error": "\(error)", "namespace": "\(namespace.name)", "droppedSoFar": "\(count)",
            ])
        case .undecodable(let error):
            logger.warning("undecodable cluster message dropped", metadata: ["error": "\(error)"])
        case .streamMessageWithoutOffset:
            logger.warning("recovery stream message without x-stream-offset dropped")
        case .replaying(let count):
            logger.info("replaying held cluster messages", metadata: ["count": "\(count)", "namespace": "\(namespace.name)"])
        case .holdOverflow(let socketId, let dropped):
            logger.error("restore: held packets over capacity were dropped", metadata: ["socket": "\(socketId)", "dropped": "\(dropped)"])
        case .streamRecreated(let lastOffset):
            logger.warning("recovery stream was recreated; reading it from its start", metadata: ["lastOffset": "\(lastOffset)"])
        case .confirmTimedOut(let unconfirmed, let timeouts):
            logger.warning("publisher confirm timed out; republishing on a new channel", metadata: [
                "unconfirmed": "\(unconfirmed)", "timeouts": "\(timeouts)", "namespace": "\(namespace.name)",
            ])
        case .publishNacked(let count):
            logger.warning("RabbitMQ refused a publish (nack); republishing on a new channel", metadata: ["outbox": "\(count)"])
        case .observerBacklogDropped(let count):
            logger.error("events that arrived during the start-up replay were over the backlog; the event observer missed them",
                         metadata: ["dropped": "\(count)", "namespace": "\(namespace.name)"])
        }
    }

    /// Local socket ids selected by rooms and except-rooms (socket.io-adapter's `apply`).
    /// `held`: restoring sockets that get this packet from their `RestoreHold` instead.
    func localRecipients(rooms: Set<String>, except: Set<String>, held: [String] = []) -> Set<String> {
        var recipients = local.sockets(in: rooms)
        if !except.isEmpty, !recipients.isEmpty { recipients.subtract(local.sockets(in: except)) }
        for socketId in held { recipients.remove(socketId) }
        return recipients
    }

    /// Encodes and queues one message (published now if connected, otherwise held in order).
    func send(_ payload: ClusterPayload, routingKeys: [String] = [RoomRoutingKeys.everyNode], toQueue queue: String? = nil) {
        feed { machine, now in machine.send(payload, routingKeys: routingKeys, toQueue: queue, now: now) }
    }

    // MARK: Lifecycle

    public func close() async {
        let (first, goodbye) = machine.withLockedValue { $0.closeRequested(now: Self.now()) }
        guard first else { return }
        run(goodbye)
        // Give the goodbye a moment to be confirmed (bounded): peers would otherwise wait a
        // heartbeat timeout to drop this node.
        let deadline = Self.now() &+ Self.closeDrainNanoseconds
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            feed { machine, _ in machine.waitForDrain(waiter: .drain(continuation), deadline: deadline) }
            armDeadline(deadline)
        }
        publishWakeups.finish()
        bindingWakeups.finish()
        heartbeat.withLockedValue { $0?.cancel() }
        for task in tasks.withLockedValue({ $0 }) { task.cancel() }
        feed { machine, _ in machine.closed() }
    }

    static let closeDrainNanoseconds: UInt64 = 500_000_000

    func brokerConnectionLost() {
        feed { machine, _ in machine.connectionLost() }
    }

    func brokerConnectionRecovered() {
        feed { machine, now in machine.connectionRecovered(now: now) }
    }

    // MARK: Helpers

    static func now() -> UInt64 { UInt64(NIODeadline.now().uptimeNanoseconds) }

    /// Seconds from options as nanoseconds, saturating (a huge or negative option never traps).
    static func nanoseconds(seconds: Double) -> UInt64 {
        let value = seconds * 1e9
        guard value.isFinite, value > 0 else { return 0 }
        return value >= Double(UInt64.max) ? .max : UInt64(value)
    }

    static func decodePacket(_ encoded: EncodedPacket) -> SocketIOPacket? {
        var decoder = SocketIOPacketDecoder(maxAttachments: max(encoded.messages.count, 1))
        var packet: SocketIOPacket?
        for message in encoded.messages {
            do {
                if let decoded = try decoder.decode(message) { packet = decoded }
            } catch {
                return nil
            }
        }
        return packet
    }

    /// The event array of a packet (event name first).
    static func decodeArguments(_ encoded: EncodedPacket) -> [JSONValue]? {
        decodePacket(encoded)?.data?.arrayValue
    }
}
