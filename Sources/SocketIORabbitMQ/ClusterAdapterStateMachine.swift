import DequeModule
import EngineIO
import NIOCore

/// Every decision of one namespace's cluster adapter, with no I/O: no broker, no lock, no
/// task, no clock (callers pass `now`, monotonic nanoseconds). Each event is a `mutating
/// func` returning the `Action`s the adapter must run (postgres-nio style); the adapter owns
/// channels, timers and continuations, this struct owns what they mean.
///
/// It combines the pure parts: the outbox (`ClusterOutbox`), membership, request bookkeeping,
/// duplicate filters, room bindings, the recovery log and restore holds. What only exists
/// because they meet lives here: publish epochs, queued / refused / broker-away for
/// recoverable packets, packets delivered at once during an outage, claims, and which
/// waiter to wake.
///
/// `Waiter` is whatever the adapter parks (continuations, ack callbacks); tests use plain
/// values. The machine only stores waiters and hands them back in actions.
struct ClusterAdapterStateMachine<Waiter: Sendable>: Sendable {
    struct Configuration: Sendable {
        var nodeID: String
        var namespace: String
        var exchangeName: String
        /// `<prefix>#<namespace>#<node>` is a node's queue, where answers to it go.
        var exchangePrefix: String
        /// nil without connection state recovery.
        var recoveryStreamName: String?
        var outboxCapacity: Int
        var outboxOverflowPolicy: OutboxOverflowPolicy
        var roomAwareRouting: Bool
        var heartbeatTimeoutNanoseconds: UInt64
        /// The recovery log's window and size (connection state recovery's
        /// `maxDisconnectionDuration` and `maxLoggedPackets`).
        var recoveryWindowNanoseconds: UInt64 = 0
        var maxLoggedPackets: Int = 1000
        var maxLoggedBytes: Int = 32 * 1024 * 1024
        /// A publish not confirmed within this is republished on a new channel (+Publishing).
        var publishConfirmTimeoutNanoseconds: UInt64 = 5_000_000_000
        var maxBatchMessages = 256
        var maxBatchBytes = 256 * 1024
        /// Far above a restore plus its middlewares: a hold whose socket never connected nor
        /// was abandoned (it should not happen) stops holding after this rather than growing.
        var restoreHoldLifetimeNanoseconds: UInt64 = 300_000_000_000
        /// How often a connected socket's record is re-written; nil: a quarter of the window.
        var sessionRefreshNanoseconds: UInt64?
        /// Something outside the adapter reads the namespace's recoverable packets (the
        /// chat's history): they are handed over in stream order (`RecoverablePacketFeed`).
        var observesRecoverablePackets = false

        var effectiveSessionRefreshNanoseconds: UInt64 {
            sessionRefreshNanoseconds ?? max(recoveryWindowNanoseconds / 4, 1_000_000_000)
        }
    }

    /// What the adapter runs, in the order returned.
    enum Action: Sendable {
        /// Write these Engine.IO messages to the local sockets selected by rooms and except,
        /// leaving out `heldSockets` (restoring sockets that get the packet from their hold).
        case deliver(messages: [EngineMessage], rooms: Set<String>, except: Set<String>, heldSockets: [String], volatile: Bool)
        /// Deliveries whose order matters are waiting and nobody is making them: take the
        /// turn, running `nextOrderedActions()` until it returns nothing.
        case deliverInOrder
        /// Jobs are waiting: let the publisher take a batch (`nextBatch`).
        case wakePublisher
        /// Binding operations are waiting: let the binding runner take them (`nextBindingOperation`).
        case wakeBindingRunner
        /// A fetch-sockets or server-side-emit request finished (complete, partial or timed out).
        case completeRequest(Waiter, ClusterRequestTracker.Completion)
        /// A broadcast with acks: a node reports how many of its clients got it.
        case forwardClientCount(Waiter, UInt32)
        /// A broadcast with acks: one client's answer.
        case forwardAck(Waiter, EncodedPacket)
        /// A join's rooms are routed to this node (or waiting stopped making sense).
        case resumeRouteWaiter(Waiter)
        /// The outbox is empty (or the wait timed out): `close` goes on.
        case resumeDrainWaiter(Waiter)
        /// A restore's claim was read and decided here; nil: it timed out or the adapter closed.
        case resumeClaimWaiter(Waiter, ClaimOutcome?)
        /// A message from another node that needs the local adapter or the namespace.
        case handleRemote(RemoteWork)
        /// The publisher's channel is stuck or refused a batch: open a new confirm channel
        /// (after `afterNanoseconds`, a back-off), then feed `publishChannelReplaced`.
        case republishOnNewChannel(afterNanoseconds: UInt64)
        /// Hand these recoverable packets, in this order, to the namespace's observer.
        case observeRecoverable([StreamedPacket])
        /// `isReady` may have changed.
        case readinessMayHaveChanged
        case log(LogEvent)
    }

    /// A claim read back from the stream: the log's decision, and where the claim stands.
    typealias ClaimOutcome = (decision: RecoveryLog.Decision, claimedAt: StreamPosition)

    /// Work from another node's message that the machine cannot do without the local adapter.
    enum RemoteWork: Sendable {
        case broadcastWithAck(ClusterSocketSelection, ClusterBroadcastFlags, EncodedPacket, request: ClusterRequestID, replyQueue: String)
        case socketsJoin(ClusterSocketSelection, rooms: [String])
        case socketsLeave(ClusterSocketSelection, rooms: [String])
        case disconnectSockets(ClusterSocketSelection, close: Bool)
        case fetchSockets(request: ClusterRequestID, selection: ClusterSocketSelection, replyQueue: String)
        case serverSideEmit(request: ClusterRequestID?, packet: EncodedPacket, replyQueue: String)
    }

    enum LogEvent: Sendable {
        case outboxFull(overflow: UInt64, policy: OutboxOverflowPolicy)
        /// A message could not be encoded (a field over the format's limits): dropped, counted.
        case encodingFailed(ClusterMessageEncodingError, count: UInt64)
        case undecodable(ClusterMessageDecodingError)
        case streamMessageWithoutOffset
        case replaying(count: Int)
        case holdOverflow(socketId: String, dropped: Int)
        case streamRecreated(lastOffset: Int64)
        /// No confirm within the deadline: the unconfirmed batches go out again on a new channel.
        case confirmTimedOut(unconfirmed: Int, timeouts: UInt64)
        case publishNacked(republishing: Int)
        /// Live packets over the feed's capacity waited for the replay: the observer missed these.
        case observerBacklogDropped(UInt64)
    }

    let configuration: Configuration
    var outbox: ClusterOutbox<ClusterOutgoing>
    /// Bumped on every connection loss and recovery: jobs and confirms of an older channel are stale.
    var epoch: UInt64 = 0
    private(set) var lastSequence: UInt64 = 0
    var lastRecoveryOffset: UInt64 = 0
    var membership: ClusterMembership
    var requests = ClusterRequestTracker()
    var duplicates = ClusterDuplicateFilter()
    /// Copies in the recovery stream (re-published after an outage), dropped alike on every node.
    var streamCopies = ClusterDuplicateFilter()
    /// Jobs for the publisher, in outbox order (the order of sequence numbers).
    var pendingJobs = Deque<PublishJob>()
    var roomBindings = RoomBindingTracker()
    /// Binding operations for the broker, in number order.
    var pendingBindings = Deque<RoomBindingTracker.Operation>()
    var routeWaiters: [(operation: UInt64, deadline: UInt64, waiter: Waiter)] = []
    var drainWaiters: [(deadline: UInt64, waiter: Waiter)] = []
    /// Fetch-sockets and server-side-emit continuations, and broadcast-with-ack callbacks.
    var requestWaiters: [ClusterRequestID: Waiter] = [:]
    var metrics = RabbitMQAdapterMetrics()
    /// The last recovery-stream message the live stream consumer handled.
    var lastStreamPosition: StreamPosition?
    /// The body of the last recovery-stream message handled (a reference, not a copy), to
    /// tell after a broker cancel whether the stream at that offset is still the same one.
    var lastStreamBody: ByteBuffer?
    /// This node's recoverable packets on their way through the stream, oldest first.
    var ownUndelivered = Deque<OwnPacket>()
    /// This node's recoverable packets up to this sequence were delivered to its clients at
    /// once, because the broker was away; their stream records are skipped here.
    var deliveredAtOnceUpTo: UInt64 = 0
    /// This node's local deliveries of recoverable packets (and the restores they wake), in
    /// the order decided. Whoever finds nobody delivering takes the turn (`.deliverInOrder`)
    /// and runs them until none is left: every node's clients get the stream's order, and
    /// no lock is held while writing.
    var orderedActions = Deque<Action>()
    var isDeliveringInOrder = false
    /// What the live stream consumer has read (nil without connection state recovery).
    var recoveryLog: RecoveryLog?
    /// This node's connected sockets' sessions, written ahead to the recovery stream.
    var sessionJournal: SessionJournal
    /// Recoverable packets on their way to the namespace's observer, if it has one.
    var packetFeed: RecoverablePacketFeed?
    /// Restores in progress on this node, by claim id.
    var restoreHolds: [String: RestoreHold] = [:]
    /// Restores waiting for the live stream consumer to read their claim, by claim id.
    var pendingClaims: [String: PendingClaim] = [:]
    private(set) var isConsuming = false
    /// The node-queue consumer ended while the adapter was open: nothing from other nodes arrives.
    var nodeConsumerLost = false
    /// Whether the publisher makes progress (confirm deadlines, republishing; +Publishing).
    var publisherHealth = PublisherHealth()
    /// The live recovery-stream consumer ended while the connection stayed up (the broker
    /// cancelled it): nothing recoverable is delivered here until it is back.
    var streamConsumerLost = false
    private(set) var isClosed = false

    struct PendingClaim: Sendable {
        var offset: String
        var deadline: UInt64
        var outcome: ClaimOutcome?
        var waiter: Waiter?
    }

    init(configuration: Configuration) {
        self.configuration = configuration
        self.outbox = ClusterOutbox(capacity: max(configuration.outboxCapacity, 1), overflowPolicy: configuration.outboxOverflowPolicy)
        self.membership = ClusterMembership(heartbeatTimeoutNanoseconds: configuration.heartbeatTimeoutNanoseconds)
        // A crashed node's clients count their disconnection from its last heartbeat.
        self.membership.departedMemoryNanoseconds = configuration.recoveryWindowNanoseconds &+ configuration.effectiveSessionRefreshNanoseconds
        self.sessionJournal = SessionJournal(refreshNanoseconds: configuration.effectiveSessionRefreshNanoseconds)
        if configuration.observesRecoverablePackets { packetFeed = RecoverablePacketFeed(capacity: configuration.outboxCapacity) }
    }

    // MARK: Queries

    var isReady: Bool { isConsuming && outbox.isConnected && !streamConsumerLost && !nodeConsumerLost && !publisherHealth.isStalled }

    var metricsSnapshot: RabbitMQAdapterMetrics {
        var snapshot = metrics
        snapshot.outboxSize = outbox.count
        snapshot.outboxOverflow = outbox.overflowCount
        snapshot.outboxOldestEnqueuedAtNanoseconds = outbox.oldestEnqueuedAtNanoseconds
        snapshot.duplicatesDropped = duplicates.duplicateCount &+ streamCopies.duplicateCount
        return snapshot
    }

    func replyQueue(of node: String) -> String { "\(configuration.exchangePrefix)#\(configuration.namespace)#\(node)" }

    // MARK: Lifecycle

    /// Queues and consumers are up: the outbox publishes (what queued before start first),
    /// the recovery log starts, and this node says hello with an initial heartbeat.
    mutating func started(now: UInt64) -> [Action] {
        isConsuming = true
        if configuration.recoveryStreamName != nil {
            recoveryLog = RecoveryLog(windowNanoseconds: configuration.recoveryWindowNanoseconds,
                                      capacity: configuration.maxLoggedPackets, byteBudget: configuration.maxLoggedBytes,
                                      startedAtNanoseconds: now,
                                      liveRecordRefreshNanoseconds: configuration.effectiveSessionRefreshNanoseconds)
        }
        epoch += 1
        let restoredEpoch = epoch
        pendingJobs.append(contentsOf: outbox.connectionRestored().map {
            PublishJob(outgoing: $0.item, publishNumber: $0.publishNumber, epoch: restoredEpoch)
        })
        var actions: [Action] = [.wakePublisher]
        actions += send(.heartbeat(isInitial: true), now: now)
        actions.append(.readinessMayHaveChanged)
        return actions
    }

    /// The broker connection dropped: everything unconfirmed waits for recovery, and this
    /// node's packets still on their way through the stream are delivered to its clients now,
    /// before any packet emitted while the broker is away, so they keep their order (their
    /// stream records are skipped when read back).
    mutating func connectionLost() -> [Action] {
        guard outbox.isConnected else { return [] }
        outbox.connectionLost()
        epoch += 1
        let inFlight = ownUndelivered
        ownUndelivered.removeAll()
        if let last = inFlight.last { deliveredAtOnceUpTo = max(deliveredAtOnceUpTo, last.sequence) }
        var actions = inOrder(inFlight.map { packet in
            Action.deliver(messages: packet.messages, rooms: Set(packet.selection.rooms), except: Set(packet.selection.exceptRooms),
                           heldSockets: [], volatile: false)
        })
        actions.append(.readinessMayHaveChanged)
        return actions
    }

    // MARK: Ordered deliveries

    /// Queues actions behind the deliveries decided before them; `.deliverInOrder` when the
    /// caller must take the turn.
    mutating func inOrder(_ actions: [Action]) -> [Action] {
        guard !actions.isEmpty else { return [] }
        orderedActions.append(contentsOf: actions)
        guard !isDeliveringInOrder else { return [] }
        isDeliveringInOrder = true
        return [.deliverInOrder]
    }

    /// The turn-holder takes everything queued; nothing left ends its turn.
    mutating func nextOrderedActions() -> [Action] {
        guard !orderedActions.isEmpty else {
            isDeliveringInOrder = false
            return []
        }
        defer { orderedActions.removeAll(keepingCapacity: true) }
        return Array(orderedActions)
    }

    /// The AMQP client recovered the connection (channels, confirm mode, topology, consumers):
    /// replay the outbox in order on the new channel, re-bind every room with members, give
    /// every peer a full heartbeat timeout (our silence proved nothing about theirs), and say hello.
    mutating func connectionRecovered(now: UInt64) -> [Action] {
        guard isConsuming, !isClosed else { return [] }
        if outbox.isConnected { outbox.connectionLost() }
        epoch += 1
        membership.refreshAll(atNanoseconds: now)
        let restoredEpoch = epoch
        let replay = outbox.connectionRestored().map { PublishJob(outgoing: $0.item, publishNumber: $0.publishNumber, epoch: restoredEpoch) }
        pendingJobs.append(contentsOf: replay)
        var actions: [Action] = [.log(.replaying(count: replay.count)), .wakePublisher]
        if configuration.roomAwareRouting {
            pendingBindings.append(contentsOf: roomBindings.rebindAll())
            actions.append(.wakeBindingRunner)
        }
        actions += send(.heartbeat(isInitial: true), now: now)
        actions.append(.readinessMayHaveChanged)
        return actions
    }

    /// `close()` was called. Returns false when it was closed already; otherwise the goodbye
    /// is queued (peers drop this node at once instead of after a heartbeat timeout).
    mutating func closeRequested(now: UInt64) -> (first: Bool, actions: [Action]) {
        guard !isClosed else { return (false, []) }
        isClosed = true
        return (true, send(.adapterClose, now: now))
    }

    /// The adapter stopped: every parked waiter is released, so nobody waits for an adapter
    /// that will never answer.
    mutating func closed() -> [Action] {
        var actions: [Action] = []
        let waiting = requests.expire(atNanoseconds: .max)
        for completion in waiting {
            if let waiter = requestWaiters.removeValue(forKey: completion.request), completion.kind != .broadcastWithAck {
                actions.append(.completeRequest(waiter, completion))
            }
        }
        requestWaiters.removeAll()
        actions += routeWaiters.map { .resumeRouteWaiter($0.waiter) }
        routeWaiters.removeAll()
        actions += drainWaiters.map { .resumeDrainWaiter($0.waiter) }
        drainWaiters.removeAll()
        for (id, claim) in pendingClaims {
            restoreHolds.removeValue(forKey: id)
            if let waiter = claim.waiter { actions.append(.resumeClaimWaiter(waiter, nil)) }
        }
        pendingClaims.removeAll()
        pendingBindings.removeAll()
        pendingJobs.removeAll()
        return actions
    }

    /// The node-queue consumer ended while the adapter was open: not ready until restarted.
    mutating func nodeConsumerEnded() -> [Action] {
        guard !isClosed else { return [] }
        nodeConsumerLost = true
        return [.readinessMayHaveChanged]
    }

    // MARK: Sending

    /// Numbers, encodes and queues one message: a job for the publisher if connected,
    /// otherwise held in order in the outbox.
    mutating func send(_ payload: ClusterPayload, routingKeys: [String] = [RoomRoutingKeys.everyNode],
                       toQueue queue: String? = nil, now: UInt64) -> [Action] {
        let (actions, _) = enqueue(payload, routingKeys: routingKeys, toQueue: queue, now: now)
        return actions
    }

    /// `kept` is false when the message was dropped: the full outbox refused it
    /// (`rejectNew`) or it could not be encoded.
    mutating func enqueue(_ payload: ClusterPayload, routingKeys: [String] = [RoomRoutingKeys.everyNode],
                          toQueue queue: String? = nil, now: UInt64) -> (actions: [Action], kept: Bool) {
        let message = ClusterMessage(origin: configuration.nodeID, sequence: lastSequence &+ 1, namespace: configuration.namespace, payload: payload)
        let body: ByteBuffer
        do throws(ClusterMessageEncodingError) {
            body = try ClusterMessageCodec.encode(message)
        } catch {
            // Dropped before it took a sequence number: peers see no gap, nothing waits for it.
            // Logged at the 1st, 2nd, 4th, 8th... failure: a caller that keeps sending oversized
            // messages cannot flood the log, and the line says how many so far.
            metrics.encodingFailures &+= 1
            let count = metrics.encodingFailures
            return (count & (count &- 1) == 0 ? [.log(.encodingFailed(error, count: count))] : [], false)
        }
        lastSequence &+= 1
        let outgoing = queue.map { ClusterOutgoing(body: body, exchange: "", routingKeys: [$0]) }
            ?? ClusterOutgoing(body: body, exchange: configuration.exchangeName, routingKeys: routingKeys)
        switch outbox.enqueue(outgoing, nowNanoseconds: now) {
        case .publish(let item, let number):
            pendingJobs.append(PublishJob(outgoing: item, publishNumber: number, epoch: epoch))
            return ([.wakePublisher], true)
        case .held:
            return ([], true)
        case .heldDroppingOldest:
            return ([.log(.outboxFull(overflow: outbox.overflowCount, policy: outbox.overflowPolicy))], true)
        case .rejected:
            return ([.log(.outboxFull(overflow: outbox.overflowCount, policy: outbox.overflowPolicy))], false)
        }
    }
}

/// A message ready for the broker: encoded once, published as is (also when re-sent).
struct ClusterOutgoing: Sendable {
    var body: ByteBuffer
    var exchange: String
    var routingKeys: [String]
}

struct PublishJob: Sendable {
    var outgoing: ClusterOutgoing
    var publishNumber: UInt64
    /// The connection epoch it was numbered in: jobs of an older channel are skipped.
    var epoch: UInt64
}

/// A recoverable packet of this node, queued for the stream and not delivered here yet.
struct OwnPacket: Sendable {
    var sequence: UInt64
    var selection: ClusterSocketSelection
    var messages: [EngineMessage]
}
