import AMQPClient
import AMQPProtocol
import DequeModule
import EngineIO
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The Socket.IO adapter of one namespace on one node of a RabbitMQ cluster.
///
/// Local state (rooms, local delivery) is an `InMemoryAdapter`; everything that must reach
/// other nodes is encoded once as a `ClusterMessage` and published, with publisher confirms,
/// to the namespace's exchange. Topology and delivery guarantees: docs/CLUSTER.md.
public final class RabbitMQAdapter: SocketIOAdapter {
    public unowned let namespace: SocketIONamespace
    let cluster: RabbitMQCluster
    let local: InMemoryAdapter
    public let exchangeName: String
    public let queueName: String
    /// The RabbitMQ stream holding recoverable packets and session records, when the server
    /// has connection state recovery on.
    public let recoveryStreamName: String?
    private let options: RabbitMQAdapterOptions
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    /// Jobs for the publisher, in outbox order; it takes what has queued up as one batch.
    private let pendingJobs = NIOLockedValueBox<Deque<PublishJob>>([])
    private let publishWakeups: AsyncStream<Void>.Continuation
    private let publishWakeupStream: AsyncStream<Void>
    private let bindingChanges: AsyncStream<RoomBindingTracker.Operation>.Continuation
    private let bindingChangeStream: AsyncStream<RoomBindingTracker.Operation>
    private let channels = NIOLockedValueBox<(publish: AMQPChannel, consume: AMQPChannel)?>(nil)
    private let tasks = NIOLockedValueBox<[Task<Void, Never>]>([])
    /// Orders this node's local deliveries of recoverable packets: those of the live stream
    /// consumer, and those made at once while the broker is away. Taken before `state`.
    private let localDeliveryOrder = NIOLock()

    /// A message ready for the broker: encoded once, published as is (also when re-sent).
    struct Outgoing: Sendable {
        var body: ByteBuffer
        var exchange: String
        var routingKeys: [String]
    }

    struct PublishJob: Sendable {
        var outgoing: Outgoing
        var publishNumber: UInt64
        /// Bumped on every connection loss: jobs of an older channel are skipped.
        var epoch: UInt64
    }

    /// A recoverable packet of this node, queued for the stream and not delivered here yet.
    struct OwnPacket: Sendable {
        var sequence: UInt64
        var selection: ClusterSocketSelection
        var messages: [EngineMessage]
    }

    private struct State {
        var outbox: ClusterOutbox<Outgoing>
        var epoch: UInt64 = 0
        var lastSequence: UInt64 = 0
        var lastRecoveryOffset: UInt64 = 0
        var membership: ClusterMembership
        var requests = ClusterRequestTracker()
        var duplicates = ClusterDuplicateFilter()
        /// Copies in the recovery stream (re-published after an outage), dropped alike on every node.
        var streamCopies = ClusterDuplicateFilter()
        /// The last recovery-stream message the live stream consumer handled.
        var lastStreamPosition: StreamPosition?
        /// The body of the last recovery-stream message handled (a reference, not a copy), to
        /// tell after a broker cancel whether the stream at that offset is still the same one.
        var lastStreamBody: ByteBuffer?
        /// This node's recoverable packets on their way through the stream, oldest first.
        var ownUndelivered = Deque<OwnPacket>()
        /// This node's recoverable packets up to this sequence were delivered to its clients
        /// at once, because the broker was away; their stream records are skipped here.
        var deliveredAtOnceUpTo: UInt64 = 0
        var roomBindings = RoomBindingTracker()
        /// Joins waiting until the binding operation they need has finished.
        var routeWaiters: [(operation: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        var fetchWaiters: [ClusterRequestID: CheckedContinuation<ClusterRequestTracker.Completion, Never>] = [:]
        var ackCallbacks: [ClusterRequestID: (clientCount: @Sendable (Int) -> Void, ack: @Sendable (String, [JSONValue]) -> Void)] = [:]
        var metrics = RabbitMQAdapterMetrics()
        /// Restores in progress on this node, by restore id (`RestoreHold`).
        var restoreHolds: [String: RestoreHold] = [:]
        /// Restores waiting for the live stream consumer to read their claim, by claim id.
        var pendingClaims: [String: PendingClaim] = [:]
        /// What the live stream consumer has read (nil without connection state recovery).
        var recoveryLog: RecoveryLog?
        var isConsuming = false
        /// The live recovery-stream consumer ended while the connection stayed up (the broker
        /// cancelled it): nothing recoverable is delivered here until it is back.
        var streamConsumerLost = false
        var isClosed = false
        var reportedUnencodable = false
    }

    init(namespace: SocketIONamespace, cluster: RabbitMQCluster) {
        self.namespace = namespace
        self.cluster = cluster
        self.local = InMemoryAdapter(namespace: namespace)
        self.options = cluster.options
        self.logger = cluster.logger
        self.exchangeName = "\(cluster.options.exchangePrefix)#\(namespace.name)"
        self.queueName = "\(cluster.options.exchangePrefix)#\(namespace.name)#\(cluster.nodeID)"
        self.recoveryStreamName = namespace.server.configuration.connectionStateRecovery == nil
            ? nil : "\(cluster.options.exchangePrefix)#\(namespace.name)#recovery"
        self.state = NIOLockedValueBox(State(
            outbox: ClusterOutbox(capacity: cluster.options.outboxCapacity, overflowPolicy: cluster.options.outboxOverflowPolicy),
            membership: ClusterMembership(heartbeatTimeoutNanoseconds: RabbitMQAdapterOptions.clampedNanoseconds(cluster.options.heartbeatTimeoutSeconds))))
        (publishWakeupStream, publishWakeups) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        (bindingChangeStream, bindingChanges) = AsyncStream<RoomBindingTracker.Operation>.makeStream()
    }

    public var nodeID: String { cluster.nodeID }
    var isReady: Bool { state.withLockedValue { $0.isConsuming && $0.outbox.isConnected && !$0.streamConsumerLost } }

    public var metrics: RabbitMQAdapterMetrics {
        state.withLockedValue { state in
            var metrics = state.metrics
            metrics.outboxSize = state.outbox.count
            metrics.outboxOverflow = state.outbox.overflowCount
            metrics.duplicatesDropped = state.duplicates.duplicateCount + state.streamCopies.duplicateCount
            return metrics
        }
    }

    /// Live peers by heartbeat (not counting this node).
    public var liveNodes: Set<String> { state.withLockedValue { $0.membership.liveNodes } }

    // MARK: Lifecycle

    /// Deliveries acknowledged together (see `start`).
    static let ackBatch = 32

    public func start() async throws {
        let publish = try await cluster.connection.openChannel()
        try await publish.confirmSelect()
        let consume = try await cluster.connection.openChannel()
        try await consume.basicQos(prefetchCount: 512)
        try await publish.exchangeDeclare(exchangeName, type: "direct", durable: true)
        var arguments: AMQPFieldTable = ["x-expires": .int32(Int32(clamping: options.queueExpiresMilliseconds))]
        if let ttl = options.queueMessageTTLMilliseconds {
            arguments = ["x-expires": .int32(Int32(clamping: options.queueExpiresMilliseconds)), "x-message-ttl": .int32(Int32(clamping: ttl))]
        }
        try await consume.queueDeclare(queueName, durable: true, arguments: arguments)
        try await consume.queueBind(queue: queueName, exchange: exchangeName, routingKey: RoomRoutingKeys.everyNode)
        if let recoveryStreamName {
            try await consume.queueDeclare(recoveryStreamName, durable: true, arguments: [
                "x-queue-type": .longString("stream"),
                "x-max-age": .longString(options.recoveryStreamMaxAge),
                "x-max-length-bytes": .int64(Int64(options.recoveryStreamMaxLengthBytes)),
            ])
        }
        // Manual acks: a message the broker handed over but this node had not handled when its
        // connection died is redelivered after recovery (the duplicate filter drops copies).
        let consumer = try await consume.consume(queue: queueName, noAck: false, exclusive: true)
        let streamConsumer = try await startStreamConsumer(recoveryStreamName)
        channels.withLockedValue { $0 = (publish, consume) }
        state.withLockedValue { state in
            state.isConsuming = true
            if let recovery = namespace.server.configuration.connectionStateRecovery, recoveryStreamName != nil {
                state.recoveryLog = RecoveryLog(windowNanoseconds: UInt64(max(recovery.maxDisconnectionDuration.nanoseconds, 0)),
                                                capacity: recovery.maxLoggedPackets, startedAtNanoseconds: Self.now())
            }
            state.epoch += 1
            let epoch = state.epoch
            enqueueLocked(state.outbox.connectionRestored().map { PublishJob(outgoing: $0.item, publishNumber: $0.publishNumber, epoch: epoch) })
        }
        publishWakeups.yield()

        let heartbeatNanoseconds = RabbitMQAdapterOptions.clampedNanoseconds(options.heartbeatIntervalSeconds)
        let started: [Task<Void, Never>] = [
            Task { [weak self] in
                do {
                    var handled = 0
                    for try await message in consumer {
                        self?.received(message.body)
                        handled += 1
                        // One ack per batch (multiple: true) keeps the broker round trips low;
                        // the prefetch window (512) is far above the batch.
                        if handled % Self.ackBatch == 0 { try? await message.ack(multiple: true) }
                    }
                } catch {
                    self?.logger.error("cluster consumer ended", metadata: ["error": "\(error)"])
                }
            },
            Task { [weak self] in await self?.runPublisher(on: publish) },
            Task { [weak self] in await self?.runStreamConsumer(streamConsumer) },
            Task { [weak self] in await self?.runBindingChanges(on: consume) },
            Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: heartbeatNanoseconds)
                    self?.heartbeatTick()
                }
            },
        ]
        tasks.withLockedValue { $0.append(contentsOf: started) }
        send(.heartbeat(isInitial: true))
        cluster.readinessMayHaveChanged()
    }

    /// Every node, the emitting one included, delivers recoverable packets to its clients when
    /// it reads them from the recovery stream, so all nodes deliver them in one order and a
    /// client's last offset says exactly what it has (docs/CLUSTER.md). After a connection
    /// recovery the consumer resumes after the last message it handled.
    private func startStreamConsumer(_ streamName: String?, resuming: Bool = false) async throws -> AMQPConsumer? {
        guard let streamName else { return nil }
        let channel = try await cluster.connection.openChannel()
        try await channel.basicQos(prefetchCount: 1000)
        let startedAt = UInt64(max(0, time(nil)))
        let resumeArguments: @Sendable () -> AMQPFieldTable = { [weak self] in
            // Nothing handled yet: from when this node started (older packets reach none of its sockets).
            let last = self?.state.withLockedValue { $0.lastStreamPosition }
            return ["x-stream-offset": last.map { .int64($0.offset + 1) } ?? .timestamp(startedAt - 1)]
        }
        var arguments: AMQPFieldTable = ["x-stream-offset": .longString("next")]
        if resuming {
            arguments = try await isStreamStillTheOneRead(streamName) ? resumeArguments() : ["x-stream-offset": .longString("first")]
        }
        return try await channel.consume(queue: streamName, noAck: false, arguments: arguments, argumentsOnRecovery: resumeArguments)
    }

    /// After the broker cancelled the live consumer: reads the message at the last offset
    /// handled. The same body means the same stream (resume after it); another body, or none
    /// (the stream is shorter now), means it was deleted and declared again, and this node
    /// starts over at its first message. A first message past that offset means retention
    /// dropped what followed; resuming is right then too.
    private func isStreamStillTheOneRead(_ streamName: String) async throws -> Bool {
        guard let (last, lastBody) = state.withLockedValue({ state in state.lastStreamPosition.map { ($0, state.lastStreamBody) } }) else {
            return true
        }
        let channel = try await cluster.connection.openChannel()
        defer { Task { try? await channel.close() } }
        try await channel.basicQos(prefetchCount: 1)
        let probe = try await channel.consume(queue: streamName, noAck: false, arguments: ["x-stream-offset": .int64(last.offset)])
        let timeout = Task {
            try? await Task.sleep(nanoseconds: 1_000_000_000)
            if !Task.isCancelled { try? await probe.cancel() }
        }
        defer { timeout.cancel() }
        var firstMessage: AMQPMessage?
        for try await message in probe {
            firstMessage = message
            break
        }
        let same: Bool
        if let firstMessage, let offset = Self.streamOffset(of: firstMessage) {
            same = offset > last.offset || (offset == last.offset && firstMessage.body == lastBody)
        } else {
            same = false
        }
        if !same {
            logger.warning("recovery stream was recreated; reading it from its start", metadata: ["lastOffset": "\(last.offset)"])
            state.withLockedValue { state in
                state.lastStreamPosition = nil
                state.lastStreamBody = nil
                state.streamCopies = ClusterDuplicateFilter()
            }
        }
        return same
    }

    /// Feeds the live stream consumer's messages to `streamDelivered`. Connection recovery
    /// restarts the consumer by itself; if the broker cancels it while the connection stays up
    /// (the stream's member went away, or the stream was deleted), the node reports itself not
    /// ready and starts a new consumer after its last message, every 2 s until one starts.
    private func runStreamConsumer(_ first: AMQPConsumer?) async {
        var consumer = first
        while let current = consumer {
            do {
                var handled = 0
                for try await message in current {
                    streamDelivered(message)
                    handled += 1
                    if handled % Self.ackBatch == 0 { try? await message.ack(multiple: true) }
                }
            } catch where !Task.isCancelled {
                logger.error("recovery stream consumer ended", metadata: ["error": "\(error)"])
            } catch {}
            consumer = nil
            while consumer == nil {
                guard !Task.isCancelled, !state.withLockedValue({ $0.isClosed }) else { return }
                state.withLockedValue { $0.streamConsumerLost = true }
                cluster.readinessMayHaveChanged()
                try? await Task.sleep(nanoseconds: 2_000_000_000)
                guard !Task.isCancelled else { return }
                do {
                    consumer = try await startStreamConsumer(recoveryStreamName, resuming: true)
                    logger.info("recovery stream consumer restarted")
                } catch {
                    logger.error("recovery stream consumer could not restart", metadata: ["error": "\(error)"])
                }
            }
            state.withLockedValue { $0.streamConsumerLost = false }
            cluster.readinessMayHaveChanged()
        }
    }

    public func close() async {
        let wasClosed = state.withLockedValue { state in
            defer { state.isClosed = true }
            return state.isClosed
        }
        guard !wasClosed else { return }
        send(.adapterClose)
        // Give the goodbye a moment to be confirmed; peers would otherwise wait a heartbeat timeout.
        for _ in 0..<20 where state.withLockedValue({ $0.outbox.count }) > 0 {
            try? await Task.sleep(nanoseconds: 25_000_000)
        }
        publishWakeups.finish()
        bindingChanges.finish()
        for task in tasks.withLockedValue({ $0 }) { task.cancel() }
        let waiters = state.withLockedValue { state in
            defer { state.fetchWaiters.removeAll() }
            return state.fetchWaiters
        }
        for (request, waiter) in waiters {
            waiter.resume(returning: .init(request: request, kind: .fetchSockets, sockets: [], replies: [], unansweredNodes: []))
        }
        let joins = state.withLockedValue { state in
            defer { state.routeWaiters.removeAll() }
            return state.routeWaiters
        }
        for join in joins { join.continuation.resume() }
    }

    public func serverCount() async -> Int { state.withLockedValue { $0.membership.serverCount } }

    // MARK: Rooms (local sockets)

    // With room-aware routing, the local room table and the binding tracker change under the
    // state lock together, and binding operations are queued in that same critical section:
    // the broker sees binds and unbinds in exactly the order the memberships changed, so a
    // leave's unbind can never land after a new join's bind of the same room.

    public func addAll(_ socketId: String, rooms: Set<String>) {
        guard options.roomAwareRouting else { return local.addAll(socketId, rooms: rooms) }
        state.withLockedValue { state in
            local.addAll(socketId, rooms: rooms)
            for room in rooms {
                if let operation = state.roomBindings.socketJoined(socketId, room: room) { bindingChanges.yield(operation) }
            }
        }
    }

    public func del(_ socketId: String, room: String) {
        guard options.roomAwareRouting else { return local.del(socketId, room: room) }
        state.withLockedValue { state in
            local.del(socketId, room: room)
            if let operation = state.roomBindings.socketLeft(socketId, room: room) { bindingChanges.yield(operation) }
        }
    }

    public func delAll(_ socketId: String) {
        guard options.roomAwareRouting else { return local.delAll(socketId) }
        state.withLockedValue { state in
            let rooms = local.socketRooms(socketId) ?? []
            local.delAll(socketId)
            for room in rooms.sorted() {
                if let operation = state.roomBindings.socketLeft(socketId, room: room) { bindingChanges.yield(operation) }
            }
        }
    }

    /// Returns once the broker confirmed (bind-ok) the bindings of `rooms`: a broadcast another
    /// node publishes after that is routed to this node's queue. Without room-aware routing
    /// every node gets every broadcast, so there is nothing to wait for.
    public func waitUntilRoomsRouted(_ rooms: Set<String>) async {
        guard options.roomAwareRouting else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiting = state.withLockedValue { state -> Bool in
                guard !state.isClosed, let operation = state.roomBindings.operationToAwait(rooms: rooms) else { return false }
                state.routeWaiters.append((operation, continuation))
                return true
            }
            if !waiting { continuation.resume() }
        }
    }

    /// Binding operation `number` has finished (or failed): wakes the joins that waited for it.
    private func bindingOperationFinished(_ number: UInt64) {
        let ready = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.roomBindings.finished(number)
            let done = state.routeWaiters.filter { $0.operation <= number }
            state.routeWaiters.removeAll { $0.operation <= number }
            return done.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    public func sockets(in rooms: Set<String>) -> Set<String> { local.sockets(in: rooms) }
    public func socketRooms(_ socketId: String) -> Set<String>? { local.socketRooms(socketId) }

    /// Local socket ids selected by rooms and except-rooms (socket.io-adapter's `apply`).
    /// `held`: restoring sockets that get this packet from their `RestoreHold` instead.
    private func localRecipients(rooms: Set<String>, except: Set<String>, held: [String] = []) -> Set<String> {
        var recipients = local.sockets(in: rooms)
        if !except.isEmpty, !recipients.isEmpty { recipients.subtract(local.sockets(in: except)) }
        for socketId in held { recipients.remove(socketId) }
        return recipients
    }

    // MARK: Broadcast

    public func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions) {
        let selection = ClusterSocketSelection(rooms: options.rooms.sorted(), exceptRooms: options.except.sorted())
        guard let recoveryStreamName, !options.flags.local, !options.flags.volatile, packet.ackId == nil,
              packet.type == .event || packet.type == .binaryEvent, case .array(var items)? = packet.data else {
            // Encode once: the same bytes go to local sockets and, inside the AMQP body, to
            // every other node's sockets.
            let messages = SocketIOPacketEncoder.encode(packet)
            namespace.deliver(messages, to: localRecipients(rooms: options.rooms, except: options.except), volatile: options.flags.volatile)
            guard !options.flags.local else { return }
            send(.broadcast(selection: selection, flags: ClusterBroadcastFlags(isVolatile: options.flags.volatile), packet: EncodedPacket(messages: messages), ackRequest: nil),
                 routingKeys: RoomRoutingKeys.keys(forBroadcastTo: selection.rooms, roomAware: self.options.roomAwareRouting))
            return
        }
        // A recoverable packet goes to the recovery stream only; every node, this one included,
        // delivers it when it reads it there (`streamDelivered`). As socket.io does, the offset
        // is the last argument, and the client sends the last one it saw back as `auth.offset`
        // when it reconnects (to any node).
        let offset = state.withLockedValue { state -> String in
            state.lastRecoveryOffset += 1
            return "\(cluster.nodeID)-\(String(state.lastRecoveryOffset, radix: 36))"
        }
        var withOffset = packet
        items.append(.string(offset))
        withOffset.data = .array(items)
        let encoded = EncodedPacket(messages: SocketIOPacketEncoder.encode(withOffset))
        enum Route { case queued, refused, brokerAway }
        let route = state.withLockedValue { state -> Route in
            guard state.outbox.isConnected else { return .brokerAway }
            return queueOwnPacket(offset: offset, selection: selection, packet: encoded, in: &state) ? .queued : .refused
        }
        switch route {
        case .queued:
            break
        case .refused:
            // The full outbox refused it (`rejectNew`): at least this node's clients get it.
            namespace.deliver(SocketIOPacketEncoder.encode(packet), to: localRecipients(rooms: options.rooms, except: options.except))
        case .brokerAway:
            // This node's clients get it at once (local delivery never waits for RabbitMQ),
            // without an offset since it has no place in the stream yet; the other nodes get it
            // from the stream once the outbox is flushed.
            let plain = SocketIOPacketEncoder.encode(packet)
            localDeliveryOrder.withLock {
                let deliverNow = state.withLockedValue { state -> Bool in
                    if state.outbox.isConnected {  // back meanwhile
                        return !queueOwnPacket(offset: offset, selection: selection, packet: encoded, in: &state)
                    }
                    let (job, _) = enqueue(.recoverablePacket(offset: offset, selection: selection, packet: encoded, deliveredByOrigin: true),
                                           toQueue: recoveryStreamName, in: &state)
                    if let job { enqueueLocked([job]) }
                    state.deliveredAtOnceUpTo = state.lastSequence
                    return true
                }
                if deliverNow { namespace.deliver(plain, to: localRecipients(rooms: options.rooms, except: options.except)) }
            }
        }
        publishWakeups.yield()
    }

    /// Queues a recoverable packet of this node for the stream, to be delivered here when read
    /// back. False when the full outbox refused it.
    private func queueOwnPacket(offset: String, selection: ClusterSocketSelection, packet: EncodedPacket, in state: inout State) -> Bool {
        guard let recoveryStreamName else { return false }
        let (job, kept) = enqueue(.recoverablePacket(offset: offset, selection: selection, packet: packet, deliveredByOrigin: false),
                                  toQueue: recoveryStreamName, in: &state)
        guard kept else { return false }
        if let job { enqueueLocked([job]) }
        if state.ownUndelivered.count >= options.outboxCapacity { state.ownUndelivered.removeFirst() }
        state.ownUndelivered.append(OwnPacket(sequence: state.lastSequence, selection: selection, messages: packet.messages))
        return true
    }

    /// The broker went away: this node's packets still on their way through the stream are
    /// delivered to its clients now, before any packet emitted while it is away, so they keep
    /// their order; their stream records are skipped when read back.
    private func deliverOwnPacketsInFlight(_ packets: [OwnPacket]) {
        for packet in packets {
            namespace.deliver(packet.messages, to: localRecipients(rooms: Set(packet.selection.rooms), except: Set(packet.selection.exceptRooms)))
        }
    }

    /// Marks the connection lost (under the state lock) and takes this node's packets in flight.
    private func connectionLostLocked(_ state: inout State) -> [OwnPacket] {
        state.outbox.connectionLost()
        state.epoch += 1
        let inFlight = Array(state.ownUndelivered)
        state.ownUndelivered.removeAll()
        if let last = inFlight.last { state.deliveredAtOnceUpTo = max(state.deliveredAtOnceUpTo, last.sequence) }
        return inFlight
    }

    public func broadcastWithAck(
        _ packet: SocketIOPacket, options: BroadcastOptions,
        clientCount: @escaping @Sendable (Int) -> Void,
        ack: @escaping @Sendable (String, [JSONValue]) -> Void
    ) {
        local.broadcastWithAck(packet, options: options, clientCount: clientCount, ack: ack)
        guard !options.flags.local else { return }
        let timeout = options.flags.timeout ?? namespace.server.configuration.defaultAckTimeout
        let request = state.withLockedValue { state -> ClusterRequestID in
            let (request, _) = state.requests.begin(.broadcastWithAck, awaiting: state.membership.liveNodes, deadlineNanoseconds: Self.now() + UInt64(timeout.nanoseconds))
            state.ackCallbacks[request] = (clientCount, ack)
            return request
        }
        scheduleExpiry(after: timeout.nanoseconds)
        let selection = ClusterSocketSelection(rooms: options.rooms.sorted(), exceptRooms: options.except.sorted())
        send(.broadcast(selection: selection, flags: ClusterBroadcastFlags(isVolatile: options.flags.volatile),
                        packet: EncodedPacket(messages: SocketIOPacketEncoder.encode(packet)), ackRequest: request),
             routingKeys: RoomRoutingKeys.keys(forBroadcastTo: selection.rooms, roomAware: self.options.roomAwareRouting))
    }

    // MARK: Bulk operations

    public func fetchSockets(_ options: BroadcastOptions) async throws(SocketIOAdapterError) -> [SocketDescription] {
        let localSockets = try await local.fetchSockets(options)
        guard !options.flags.local else { return localSockets }
        let selection = ClusterSocketSelection(rooms: options.rooms.sorted(), exceptRooms: options.except.sorted())
        let completion = await ask(.fetchSockets, timeoutNanoseconds: Int64(RabbitMQAdapterOptions.clampedNanoseconds(self.options.requestTimeoutSeconds))) { request in
            .fetchSockets(request: request, selection: selection)
        }
        let remote = completion.sockets.compactMap { record -> SocketDescription? in
            guard let handshake = try? JSONValue(parsing: record.handshake), let data = ClusterValueEncoding.decode(record.data) else { return nil }
            return SocketDescription(id: record.id, namespace: namespace.name, handshake: Self.handshake(from: handshake), rooms: Set(record.rooms), data: data)
        }
        return localSockets + remote
    }

    public func addSockets(_ options: BroadcastOptions, rooms: Set<String>) {
        local.addSockets(options, rooms: rooms)
        guard !options.flags.local else { return }
        send(.socketsJoin(selection: .init(rooms: options.rooms.sorted(), exceptRooms: options.except.sorted()), rooms: rooms.sorted()))
    }

    public func delSockets(_ options: BroadcastOptions, rooms: Set<String>) {
        local.delSockets(options, rooms: rooms)
        guard !options.flags.local else { return }
        send(.socketsLeave(selection: .init(rooms: options.rooms.sorted(), exceptRooms: options.except.sorted()), rooms: rooms.sorted()))
    }

    public func disconnectSockets(_ options: BroadcastOptions, close: Bool) {
        local.disconnectSockets(options, close: close)
        guard !options.flags.local else { return }
        send(.disconnectSockets(selection: .init(rooms: options.rooms.sorted(), exceptRooms: options.except.sorted()), closeUnderlyingConnection: close))
    }

    public func serverSideEmit(_ args: [JSONValue], expectAcks: Bool, timeout: TimeAmount) async throws(SocketIOAdapterError) -> [JSONValue] {
        let packet = EncodedPacket(messages: SocketIOPacketEncoder.encode(SocketIOPacket(type: .event, namespace: namespace.name, data: .array(args))))
        guard expectAcks else {
            send(.serverSideEmit(request: nil, packet: packet))
            return []
        }
        let completion = await ask(.serverSideEmit, timeoutNanoseconds: timeout.nanoseconds) { request in
            .serverSideEmit(request: request, packet: packet)
        }
        guard completion.isComplete else { throw .timedOut }
        return completion.replies.compactMap { Self.decodeArguments($0)?.first }
    }

    // MARK: Connection state recovery (across nodes, through the recovery stream)

    public func persistSession(_ session: PersistedSession) async {
        guard let recoveryStreamName else { return }
        let record = SessionRecord(privateId: session.privateId, socketId: session.socketId, rooms: session.rooms.sorted(), data: ClusterValueEncoding.encode(session.data))
        send(.sessionRecord(record), toQueue: recoveryStreamName)
    }

    /// Restores a session from the recovery stream, on any node:
    ///
    /// 1. Appends a claim for `privateId` to the stream (through the outbox).
    /// 2. When this node's live stream consumer reads the claim, it decides from what it has
    ///    read (`RecoveryLog`): the latest session record, whether this claim is the first after
    ///    it (a session is restored at most once across all nodes), and the packets after
    ///    `offset` that reach the session's rooms. In the same step it starts a hold
    ///    (`RestoreHold`) for the packets after the claim. A node that started too recently to
    ///    know reads the stream instead, from `maxDisconnectionDuration` ago up to the claim
    ///    (`RecoveryStreamScan`).
    /// 3. Joins and routes the session's rooms; `restoredSocketConnecting` hands the held
    ///    packets over in the task that connects the socket.
    ///
    /// Every node delivered the stream's packets in the stream's order, so the client had
    /// exactly those before its offset: nothing is missed and nothing comes twice, whichever
    /// nodes were sending around the cut.
    public func restoreSession(privateId: String, offset: String) async -> RestoredSession? {
        guard let recoveryStreamName, let recovery = namespace.server.configuration.connectionStateRecovery else { return nil }
        let restoreId = "\(cluster.nodeID)-claim-\(UInt64.random(in: 0...UInt64.max))"
        state.withLockedValue { $0.pendingClaims[restoreId] = PendingClaim(offset: offset) }
        guard send(.restoreClaim(id: restoreId, privateId: privateId), toQueue: recoveryStreamName) else {
            _ = state.withLockedValue { $0.pendingClaims.removeValue(forKey: restoreId) }
            return nil
        }
        let timeoutNanoseconds = max(RabbitMQAdapterOptions.clampedNanoseconds(options.requestTimeoutSeconds), 100_000_000)
        guard let (decision, claimedAt) = await waitForClaim(restoreId, timeoutNanoseconds: timeoutNanoseconds) else {
            logger.warning("session restore: the claim did not come back from the recovery stream in time")
            return nil
        }
        let session: ClaimedSession
        let missed: [StreamedPacket]
        switch decision {
        case .restored(let found, let packets):
            (session, missed) = (found, packets)
        case .refused(let reason):
            logger.debug("session not restored", metadata: ["reason": "\(reason)"])
            return nil
        case .unknown:
            guard case .restored(let found, _, let packets)? = await scanStream(recoveryStreamName, privateId: privateId, offset: offset,
                                                                                 claimId: restoreId, recovery: recovery) else {
                _ = state.withLockedValue { $0.restoreHolds.removeValue(forKey: restoreId) }
                return nil
            }
            state.withLockedValue { $0.restoreHolds[restoreId]?.sessionFound(found, claimedAt: claimedAt) }
            (session, missed) = (found, packets)
        }
        guard let data = ClusterValueEncoding.decode(session.record.data) else {
            _ = state.withLockedValue { $0.restoreHolds.removeValue(forKey: restoreId) }
            return nil
        }
        // Rooms matter for what still travels through node queues (volatile broadcasts and
        // broadcasts with acks): with room-aware routing they are bound before the CONNECT reply.
        addAll(session.record.socketId, rooms: session.rooms)
        await waitUntilRoomsRouted(session.rooms)
        return RestoredSession(
            session: PersistedSession(socketId: session.record.socketId, privateId: session.record.privateId, rooms: Set(session.record.rooms), data: data),
            missedPackets: missed.compactMap { Self.decodePacket($0.packet)?.data })
    }

    /// A restore of this node whose claim the live stream consumer has not read yet.
    struct PendingClaim {
        var offset: String
        var outcome: (RecoveryLog.Decision, StreamPosition)?
        var continuation: CheckedContinuation<(RecoveryLog.Decision, StreamPosition)?, Never>?
    }

    /// Waits until the live stream consumer has read claim `id` and decided; nil after the
    /// timeout (the broker is away, or the consumer is).
    private func waitForClaim(_ id: String, timeoutNanoseconds: UInt64) async -> (RecoveryLog.Decision, StreamPosition)? {
        let timer = Task { [weak self] in
            try? await Task.sleep(nanoseconds: timeoutNanoseconds)
            guard !Task.isCancelled, let self else { return }
            let waiter = self.state.withLockedValue { state in
                state.restoreHolds.removeValue(forKey: id)
                return state.pendingClaims.removeValue(forKey: id)?.continuation
            }
            waiter?.resume(returning: nil)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let ready = state.withLockedValue { state -> (RecoveryLog.Decision, StreamPosition)?? in
                guard var pending = state.pendingClaims[id] else { return .some(nil) }
                if let outcome = pending.outcome {
                    state.pendingClaims[id] = nil
                    return .some(outcome)
                }
                pending.continuation = continuation
                state.pendingClaims[id] = pending
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// The fallback of a node that started too recently: reads the stream from
    /// `maxDisconnectionDuration` ago up to the claim.
    private func scanStream(_ streamName: String, privateId: String, offset: String, claimId: String,
                            recovery: ConnectionStateRecovery) async -> RecoveryStreamScan.Outcome? {
        var scan = RecoveryStreamScan(privateId: privateId, offset: offset, claimId: claimId)
        do {
            let channel = try await cluster.connection.openChannel()
            defer { Task { try? await channel.close() } }
            try await channel.basicQos(prefetchCount: 1000)
            let windowSeconds = UInt64(max(1, recovery.maxDisconnectionDuration.nanoseconds / 1_000_000_000))
            let nowSeconds = UInt64(max(0, time(nil)))
            let consumer = try await channel.consume(queue: streamName, noAck: false, arguments: [
                "x-stream-offset": .timestamp(nowSeconds - min(nowSeconds, windowSeconds + 5)),
            ])
            var unacked = 0
            for try await delivery in consumer {
                unacked += 1
                if unacked >= 500 {
                    try await delivery.ack(multiple: true)
                    unacked = 0
                }
                guard let streamOffset = Self.streamOffset(of: delivery) else { continue }
                for (index, body) in ((try? ClusterBatchCodec.split(delivery.body)) ?? []).enumerated() {
                    guard let message = try? ClusterMessageCodec.decode(body), message.namespace == namespace.name else { continue }
                    if let found = scan.read(message, at: StreamPosition(offset: streamOffset, index: index)) {
                        try? await delivery.ack(multiple: true)
                        try? await consumer.cancel()
                        if case .refused(let reason) = found { logger.debug("session not restored", metadata: ["reason": "\(reason)"]) }
                        return found
                    }
                }
            }
        } catch {
            logger.warning("session restore failed", metadata: ["error": "\(error)"])
        }
        return nil
    }

    /// The stream offset RabbitMQ puts in the headers of every message a stream consumer gets.
    static func streamOffset(of message: AMQPMessage) -> Int64? {
        switch message.properties.headers?["x-stream-offset"] {
        case .int64(let offset)?: return offset
        case .int32(let offset)?: return Int64(offset)
        default: return nil
        }
    }

    public func restoredSocketConnecting(_ socketId: String) -> [[EngineMessage]] {
        let hold = state.withLockedValue { state -> RestoreHold? in
            guard let restoreId = state.restoreHolds.first(where: { $0.value.socketId == socketId })?.key else { return nil }
            return state.restoreHolds.removeValue(forKey: restoreId)
        }
        guard let hold else { return [] }
        if hold.overflow > 0 {
            logger.error("restore: held packets over capacity were dropped", metadata: ["socket": "\(socketId)", "dropped": "\(hold.overflow)"])
        }
        return hold.release().map(\.packet.messages)
    }

    public func restoreAbandoned(_ socketId: String) {
        state.withLockedValue { state in
            guard let restoreId = state.restoreHolds.first(where: { $0.value.socketId == socketId })?.key else { return }
            state.restoreHolds.removeValue(forKey: restoreId)
        }
    }

    // MARK: Recovery stream (live)

    /// One message of the recovery stream, read by this node's live stream consumer: its
    /// recoverable packets go to the local sockets they reach, and to restores in progress.
    func streamDelivered(_ message: AMQPMessage) {
        guard let streamOffset = Self.streamOffset(of: message) else {
            state.withLockedValue { $0.metrics.undecodable += 1 }
            logger.warning("recovery stream message without x-stream-offset dropped")
            return
        }
        let bodies: [ByteBuffer]
        do {
            bodies = try ClusterBatchCodec.split(message.body)
        } catch {
            state.withLockedValue { $0.metrics.undecodable += 1 }
            return
        }
        for (index, body) in bodies.enumerated() {
            let position = StreamPosition(offset: streamOffset, index: index)
            let decoded = try? ClusterMessageCodec.decode(body)
            localDeliveryOrder.lock()
            defer { localDeliveryOrder.unlock() }
            var claimWaiter: (CheckedContinuation<(RecoveryLog.Decision, StreamPosition)?, Never>, (RecoveryLog.Decision, StreamPosition))?
            let recipients = state.withLockedValue { state -> (packet: StreamedPacket, held: [String])? in
                // Redelivered after a recovery: handled already.
                if let last = state.lastStreamPosition, position <= last { return nil }
                state.lastStreamPosition = position
                if index == 0 { state.lastStreamBody = message.body }
                guard let decoded, decoded.namespace == namespace.name else { return nil }
                let now = Self.now()
                switch decoded.payload {
                case .sessionRecord(let record):
                    state.recoveryLog?.sessionRead(ClaimedSession(record: record, origin: decoded.origin, sequence: decoded.sequence), atNanoseconds: now)
                    return nil
                case .restoreClaim(let id, let privateId):
                    claimWaiter = claimRead(id: id, privateId: privateId, at: position, now: now, in: &state)
                    return nil
                default:
                    break
                }
                guard case .recoverablePacket(let offset, let selection, let packet, let deliveredByOrigin) = decoded.payload,
                      state.streamCopies.accept(origin: decoded.origin, sequence: decoded.sequence) else { return nil }
                let streamed = StreamedPacket(position: position, origin: decoded.origin, sequence: decoded.sequence, offset: offset,
                                              selection: selection, packet: packet, deliveredByOrigin: deliveredByOrigin)
                state.metrics.receivedStreamPackets += 1
                state.recoveryLog?.packetRead(streamed, atNanoseconds: now)
                // Restores see the packet in the same section that orders stream deliveries.
                var held: [String] = []
                for restoreId in Array(state.restoreHolds.keys) {
                    state.restoreHolds[restoreId]!.delivered(streamed)
                    if let socketId = state.restoreHolds[restoreId]!.socketId { held.append(socketId) }
                }
                if decoded.origin == cluster.nodeID {
                    while let first = state.ownUndelivered.first, first.sequence <= decoded.sequence { state.ownUndelivered.removeFirst() }
                    // This node's clients got it at once, while the broker was away.
                    if decoded.sequence <= state.deliveredAtOnceUpTo { return nil }
                }
                return (streamed, held)
            }
            if let (waiter, outcome) = claimWaiter { waiter.resume(returning: outcome) }
            guard let recipients else { continue }
            let selection = recipients.packet.selection
            namespace.deliver(recipients.packet.packet.messages,
                              to: localRecipients(rooms: Set(selection.rooms), except: Set(selection.exceptRooms), held: recipients.held))
        }
    }

    /// A claim was read from the stream: the log notes it, and if it is one of this node's
    /// restores, decides it and starts its hold here, at the claim's place in the delivery order.
    /// Returns the restore to wake.
    private func claimRead(id: String, privateId: String, at position: StreamPosition, now: UInt64, in state: inout State)
        -> (CheckedContinuation<(RecoveryLog.Decision, StreamPosition)?, Never>, (RecoveryLog.Decision, StreamPosition))?
    {
        let pending = state.pendingClaims[id]
        // The log exists whenever the live consumer runs (recovery is on); mutated in place.
        guard let decision = state.recoveryLog?.claimRead(privateId: privateId, offset: pending?.offset, atNanoseconds: now),
              var pending else { return nil }
        switch decision {
        case .restored, .unknown:
            // On `.unknown` the scan names the session later; until then the hold keeps every
            // packet after the claim.
            var hold = RestoreHold(capacity: state.recoveryLog!.capacity, startedAtNanoseconds: now)
            if case .restored(let session, _) = decision { hold.sessionFound(session, claimedAt: position) }
            state.restoreHolds[id] = hold
        case .refused:
            break
        }
        if let continuation = pending.continuation {
            state.pendingClaims[id] = nil
            return (continuation, (decision, position))
        }
        pending.outcome = (decision, position)
        state.pendingClaims[id] = pending
        return nil
    }

    // MARK: Requests

    private func ask(
        _ kind: ClusterRequestTracker.Kind, timeoutNanoseconds: Int64,
        _ makePayload: @escaping @Sendable (ClusterRequestID) -> ClusterPayload
    ) async -> ClusterRequestTracker.Completion {
        let completion = await withCheckedContinuation { (continuation: CheckedContinuation<ClusterRequestTracker.Completion, Never>) in
            let request = state.withLockedValue { state -> ClusterRequestID? in
                let (request, immediate) = state.requests.begin(kind, awaiting: state.membership.liveNodes, deadlineNanoseconds: Self.now() + UInt64(max(timeoutNanoseconds, 0)))
                if let immediate {
                    continuation.resume(returning: immediate)
                    return nil
                }
                state.fetchWaiters[request] = continuation
                return request
            }
            if let request {
                scheduleExpiry(after: timeoutNanoseconds)
                send(makePayload(request))
            }
        }
        return completion
    }

    private func scheduleExpiry(after nanoseconds: Int64) {
        Task { [weak self] in
            try? await Task.sleep(nanoseconds: UInt64(max(nanoseconds, 0)) + 1_000_000)
            self?.expireRequests()
        }
    }

    private func expireRequests() {
        let finished = state.withLockedValue { state in
            state.requests.expire(atNanoseconds: Self.now()).map { completion in
                state.ackCallbacks.removeValue(forKey: completion.request)
                return (completion, state.fetchWaiters.removeValue(forKey: completion.request))
            }
        }
        for (completion, waiter) in finished { waiter?.resume(returning: completion) }
    }

    private func heartbeatTick() {
        let finished = state.withLockedValue { state -> [(ClusterRequestTracker.Completion, CheckedContinuation<ClusterRequestTracker.Completion, Never>?)] in
            var finished: [(ClusterRequestTracker.Completion, CheckedContinuation<ClusterRequestTracker.Completion, Never>?)] = []
            let now = Self.now()
            state.duplicates.forgetSilentOrigins(atNanoseconds: now)
            // A hold whose socket never connected nor was abandoned (it should not happen)
            // stops holding after a while rather than growing.
            if !state.restoreHolds.isEmpty {
                state.restoreHolds = state.restoreHolds.filter { now &- $0.value.startedAtNanoseconds < Self.restoreHoldLifetimeNanoseconds }
            }
            // With our own connection down, silence proves nothing about the others.
            guard state.outbox.isConnected else { return finished }
            for node in state.membership.expire(atNanoseconds: now) {
                for completion in state.requests.nodeLeft(node) {
                    finished.append((completion, state.fetchWaiters.removeValue(forKey: completion.request)))
                }
            }
            return finished
        }
        for (completion, waiter) in finished { waiter?.resume(returning: completion) }
        if state.withLockedValue({ $0.outbox.isConnected }) { send(.heartbeat(isInitial: false)) }
    }

    // MARK: Sending

    /// Encodes and queues one message: published now if connected, otherwise held in order.
    /// False when it was dropped (it could not be encoded, or the full outbox refused it).
    @discardableResult
    private func send(_ payload: ClusterPayload, routingKeys: [String] = [RoomRoutingKeys.everyNode], toQueue replyQueue: String? = nil) -> Bool {
        let (queued, kept) = state.withLockedValue { state -> (Bool, Bool) in
            let (job, kept) = enqueue(payload, routingKeys: routingKeys, toQueue: replyQueue, in: &state)
            guard let job else { return (false, kept) }
            pendingJobs.withLockedValue { $0.append(job) }
            return (true, kept)
        }
        if queued { publishWakeups.yield() }
        return kept
    }

    /// Numbers and encodes a message and puts it in the outbox. `job`: publish it now;
    /// `kept`: false when it could not be encoded or the full outbox refused it (`rejectNew`).
    private func enqueue(_ payload: ClusterPayload, routingKeys: [String] = [RoomRoutingKeys.everyNode], toQueue replyQueue: String? = nil,
                         in state: inout State) -> (job: PublishJob?, kept: Bool) {
        let body: ByteBuffer
        do {
            // Numbered only once encoded: a dropped message leaves no gap in the sequence.
            body = try ClusterMessageCodec.encode(ClusterMessage(origin: cluster.nodeID, sequence: state.lastSequence + 1, namespace: namespace.name, payload: payload))
        } catch {
            unencodable(error, in: &state)
            return (nil, false)
        }
        state.lastSequence += 1
        let outgoing = replyQueue.map { Outgoing(body: body, exchange: "", routingKeys: [$0]) }
            ?? Outgoing(body: body, exchange: exchangeName, routingKeys: routingKeys)
        switch state.outbox.enqueue(outgoing, nowNanoseconds: Self.now()) {
        case .publish(let item, let number):
            return (PublishJob(outgoing: item, publishNumber: number, epoch: state.epoch), true)
        case .held:
            return (nil, true)
        case .heldDroppingOldest:
            logger.warning("cluster outbox full; message dropped", metadata: ["overflow": "\(state.outbox.overflowCount)", "policy": "\(options.outboxOverflowPolicy)"])
            return (nil, true)
        case .rejected:
            logger.warning("cluster outbox full; message dropped", metadata: ["overflow": "\(state.outbox.overflowCount)", "policy": "\(options.outboxOverflowPolicy)"])
            return (nil, false)
        }
    }

    /// A message too large for the cluster format (a client got something past the
    /// application's limits): only that message is dropped; counted, logged once per adapter
    /// (then at debug level, so a flood of them cannot flood the log).
    private func unencodable(_ error: ClusterMessageEncodingError, in state: inout State) {
        state.metrics.unencodable += 1
        if state.reportedUnencodable {
            logger.debug("cluster message dropped: too large to encode", metadata: ["error": "\(error)", "namespace": "\(namespace.name)"])
        } else {
            state.reportedUnencodable = true
            logger.error("cluster message dropped: too large to encode (further ones are only counted, see unencodable in the metrics)",
                         metadata: ["error": "\(error)", "namespace": "\(namespace.name)"])
        }
    }

    /// Hands jobs to the publisher. Called under the state lock, in the critical section that
    /// numbered them: the publisher's order is then the order of sequence numbers and outbox
    /// entries, which a peer's duplicate filter relies on. (The lock
    /// order is state, then pending jobs; `takeBatch` takes only the latter.) Wake the
    /// publisher after the critical section.
    private func enqueueLocked(_ jobs: [PublishJob]) {
        guard !jobs.isEmpty else { return }
        pendingJobs.withLockedValue { $0.append(contentsOf: jobs) }
    }

    /// What queued up for one destination, as `PublishBatching` allows.
    private func takeBatch() -> [PublishJob] {
        let streamName = recoveryStreamName
        return pendingJobs.withLockedValue { jobs in
            PublishBatching.takeBatch(
                from: &jobs, maxMessages: Self.maxBatchMessages, maxBytes: Self.maxBatchBytes,
                destination: { "\($0.epoch)|\($0.outgoing.exchange)|\($0.outgoing.routingKeys.joined(separator: ","))" },
                size: { $0.outgoing.body.readableBytes },
                mayBeReordered: { streamName != nil && $0.outgoing.exchange.isEmpty && $0.outgoing.routingKeys == [streamName!] })
        }
    }

    static let maxBatchMessages = 256
    /// Far above a restore plus its middlewares.
    static let restoreHoldLifetimeNanoseconds: UInt64 = 300_000_000_000
    static let maxBatchBytes = 256 * 1024

    /// One publisher per adapter, publishing in outbox order and waiting for each confirm
    /// (concurrent publishes from separate tasks could overtake each other). Whatever
    /// queued up meanwhile goes out as one batch, so throughput does not stop at one
    /// message per confirm round trip.
    private func runPublisher(on channel: AMQPChannel) async {
        for await _ in publishWakeupStream {
            while true {
                let batch = takeBatch()
                guard let first = batch.first else { break }
                guard state.withLockedValue({ $0.epoch == first.epoch && $0.outbox.isConnected }) else { continue }
                var properties = AMQPBasicProperties(deliveryMode: 2)
                if first.outgoing.routingKeys.count > 1 {
                    // Sender-selected distribution: one copy per queue however many keys match.
                    properties.headers = ["CC": .array(first.outgoing.routingKeys.dropFirst().map { .longString($0) })]
                }
                guard let body = try? ClusterBatchCodec.encode(batch.map(\.outgoing.body)) else {
                    // Not reachable with batches of at most `maxBatchMessages`; dropped rather than trapping.
                    state.withLockedValue { state in
                        state.metrics.unencodable += UInt64(batch.count)
                        guard state.epoch == first.epoch else { return }
                        for job in batch { state.outbox.reject(publishNumber: job.publishNumber, multiple: false) }
                    }
                    continue
                }
                do {
                    try await channel.publish(body, exchange: first.outgoing.exchange, routingKey: first.outgoing.routingKeys[0], properties: properties)
                    let now = Self.now()
                    state.withLockedValue { state in
                        guard state.epoch == first.epoch else { return }
                        state.metrics.publishedBatches += 1
                        for job in batch {
                            for entry in state.outbox.confirm(publishNumber: job.publishNumber, multiple: false) {
                                let latency = now &- entry.enqueuedAtNanoseconds
                                state.metrics.published += 1
                                state.metrics.publishLatencyTotalNanoseconds &+= latency
                                state.metrics.publishLatencyMaxNanoseconds = max(state.metrics.publishLatencyMaxNanoseconds, latency)
                            }
                        }
                    }
                } catch AMQPError.publishNacked {
                    state.withLockedValue { state in
                        state.metrics.publishFailures += 1
                        guard state.epoch == first.epoch else { return }
                        for job in batch { state.outbox.reject(publishNumber: job.publishNumber, multiple: false) }
                    }
                } catch {
                    // Connection lost or not connected: everything unconfirmed waits for recovery.
                    let lost = localDeliveryOrder.withLock {
                        let inFlight = state.withLockedValue { state -> [OwnPacket]? in
                            state.metrics.publishFailures += 1
                            guard state.epoch == first.epoch, state.outbox.isConnected else { return nil }
                            return connectionLostLocked(&state)
                        }
                        deliverOwnPacketsInFlight(inFlight ?? [])
                        return inFlight != nil
                    }
                    if lost { cluster.readinessMayHaveChanged() }
                }
            }
        }
    }

    private func runBindingChanges(on channel: AMQPChannel) async {
        for await operation in bindingChangeStream {
            let change = operation.change
            defer { bindingOperationFinished(operation.number) }
            do {
                switch change {
                case .bind(let key): try await channel.queueBind(queue: queueName, exchange: exchangeName, routingKey: key)
                case .unbind(let key): try await channel.queueUnbind(queue: queueName, exchange: exchangeName, routingKey: key)
                }
            } catch {
                // While the broker is away the change is lost here, but recovery re-declares
                // the bindings the client recorded, and `RoomBindingTracker` is the truth
                // re-applied in `brokerConnectionRecovered`.
                logger.warning("room binding change failed", metadata: ["change": "\(change)", "error": "\(error)"])
            }
        }
    }

    func brokerConnectionLost() {
        localDeliveryOrder.withLock {
            let inFlight = state.withLockedValue { state -> [OwnPacket] in
                guard state.outbox.isConnected else { return [] }
                return connectionLostLocked(&state)
            }
            deliverOwnPacketsInFlight(inFlight)
        }
    }

    func brokerConnectionRecovered() {
        let replay = state.withLockedValue { state -> [PublishJob]? in
            guard state.isConsuming, !state.isClosed else { return nil }
            if state.outbox.isConnected {
                state.outbox.connectionLost()
            }
            state.epoch += 1
            state.membership.refreshAll(atNanoseconds: Self.now())
            let epoch = state.epoch
            let jobs = state.outbox.connectionRestored().map { PublishJob(outgoing: $0.item, publishNumber: $0.publishNumber, epoch: epoch) }
            enqueueLocked(jobs)
            if options.roomAwareRouting {
                for operation in state.roomBindings.rebindAll() { bindingChanges.yield(operation) }
            }
            return jobs
        }
        guard let replay else { return }
        logger.info("replaying held cluster messages", metadata: ["count": "\(replay.count)", "namespace": "\(namespace.name)"])
        publishWakeups.yield()
        send(.heartbeat(isInitial: true))
    }

    // MARK: Receiving

    func received(_ body: ByteBuffer) {
        do {
            for message in try ClusterBatchCodec.split(body) { receivedOne(message) }
        } catch {
            state.withLockedValue { $0.metrics.undecodable += 1 }
            logger.warning("undecodable cluster batch dropped", metadata: ["error": "\(error)"])
        }
    }

    private func receivedOne(_ body: ByteBuffer) {
        let message: ClusterMessage
        do {
            message = try ClusterMessageCodec.decode(body)
        } catch {
            state.withLockedValue { $0.metrics.undecodable += 1 }
            logger.warning("undecodable cluster message dropped", metadata: ["error": "\(error)"])
            return
        }
        // A node never re-handles its own messages (its queue is bound to the same keys).
        guard message.origin != cluster.nodeID, message.namespace == namespace.name else { return }
        let accepted = state.withLockedValue { state -> Bool in
            let now = Self.now()
            guard state.duplicates.accept(origin: message.origin, sequence: message.sequence, atNanoseconds: now) else { return false }
            state.metrics.received += 1
            if case .broadcast = message.payload { state.metrics.receivedBroadcasts += 1 }
            if case .adapterClose = message.payload {
                state.membership.remove(message.origin)
            } else {
                state.membership.heard(from: message.origin, atNanoseconds: now)
            }
            return true
        }
        guard accepted else { return }
        handle(message)
    }

    private func handle(_ message: ClusterMessage) {
        let origin = message.origin
        let replyQueue = "\(options.exchangePrefix)#\(namespace.name)#\(origin)"
        switch message.payload {
        case .heartbeat(let isInitial):
            if isInitial { send(.heartbeat(isInitial: false)) }
        case .adapterClose:
            let finished = state.withLockedValue { state in
                state.duplicates.forget(origin: origin)
                return state.requests.nodeLeft(origin).map { ($0, state.fetchWaiters.removeValue(forKey: $0.request)) }
            }
            for (completion, waiter) in finished { waiter?.resume(returning: completion) }
        case .broadcast(let selection, let flags, let packet, nil):
            namespace.deliver(
                packet.messages, to: localRecipients(rooms: Set(selection.rooms), except: Set(selection.exceptRooms)),
                volatile: flags.isVolatile
            )
        case .broadcast(let selection, let flags, let encoded, let request?):
            guard let packet = Self.decodePacket(encoded) else { return }
            let options = BroadcastOptions(rooms: Set(selection.rooms), except: Set(selection.exceptRooms), flags: BroadcastFlags(volatile: flags.isVolatile, local: true))
            local.broadcastWithAck(packet, options: options, clientCount: { [weak self] count in
                self?.send(.broadcastClientCount(request: request, clientCount: UInt32(clamping: count)), toQueue: replyQueue)
            }, ack: { [weak self] socketId, args in
                let reply = EncodedPacket(messages: SocketIOPacketEncoder.encode(.event(socketId, args)))
                self?.send(.broadcastAck(request: request, packet: reply), toQueue: replyQueue)
            })
        case .socketsJoin(let selection, let rooms):
            local.addSockets(BroadcastOptions(rooms: Set(selection.rooms), except: Set(selection.exceptRooms)), rooms: Set(rooms))
        case .socketsLeave(let selection, let rooms):
            local.delSockets(BroadcastOptions(rooms: Set(selection.rooms), except: Set(selection.exceptRooms)), rooms: Set(rooms))
        case .disconnectSockets(let selection, let close):
            local.disconnectSockets(BroadcastOptions(rooms: Set(selection.rooms), except: Set(selection.exceptRooms)), close: close)
        case .fetchSockets(let request, let selection):
            Task { [weak self] in
                guard let self else { return }
                let sockets = (try? await self.local.fetchSockets(BroadcastOptions(rooms: Set(selection.rooms), except: Set(selection.exceptRooms)))) ?? []
                let records = sockets.map { socket in
                    RemoteSocketRecord(id: socket.id, handshake: Self.handshakeJSON(socket.handshake).jsonBuffer(), rooms: socket.rooms.sorted(), data: ClusterValueEncoding.encode(socket.data))
                }
                self.send(.fetchSocketsResponse(request: request, sockets: records), toQueue: replyQueue)
            }
        case .serverSideEmit(let request, let packet):
            guard let args = Self.decodeArguments(packet) else { return }
            let ack = request.map { request in
                SocketIOAcknowledgement { [weak self] answer in
                    // An ACK packet: its arguments may start with anything (an EVENT must start
                    // with a string, so an answer like `{...}` would not decode on the asking node).
                    let reply = EncodedPacket(messages: SocketIOPacketEncoder.encode(.ack(answer, ackId: 0)))
                    self?.send(.serverSideEmitResponse(request: request, packet: reply), toQueue: replyQueue)
                }
            }
            namespace.handleServerSideEmit(args, ack: ack)
        case .recoverablePacket, .sessionRecord, .restoreClaim:
            // Recovery-stream records never travel through node queues.
            break
        case .fetchSocketsResponse, .serverSideEmitResponse, .broadcastClientCount, .broadcastAck:
            let outcome = state.withLockedValue { state -> (ClusterRequestTracker.ResponseOutcome, CheckedContinuation<ClusterRequestTracker.Completion, Never>?, (clientCount: @Sendable (Int) -> Void, ack: @Sendable (String, [JSONValue]) -> Void)?) in
                let outcome = state.requests.receive(message.payload, from: origin)
                switch outcome {
                case .completed(let completion): return (outcome, state.fetchWaiters.removeValue(forKey: completion.request), nil)
                case .clientCount, .ack:
                    let request: ClusterRequestID
                    switch message.payload {
                    case .broadcastClientCount(let id, _), .broadcastAck(let id, _): request = id
                    default: return (outcome, nil, nil)
                    }
                    return (outcome, nil, state.ackCallbacks[request])
                default: return (outcome, nil, nil)
                }
            }
            switch outcome.0 {
            case .completed(let completion): outcome.1?.resume(returning: completion)
            case .clientCount(let count): outcome.2?.clientCount(Int(count))
            case .ack(let packet):
                if let decoded = Self.decodePacket(packet), let socketId = decoded.eventName { outcome.2?.ack(socketId, decoded.arguments) }
            default: break
            }
        }
    }

    // MARK: Helpers

    static func now() -> UInt64 { UInt64(NIODeadline.now().uptimeNanoseconds) }

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

    static func handshakeJSON(_ handshake: SocketIOHandshake) -> JSONValue {
        .object(JSONObject([
            ("headers", .object(JSONObject(handshake.headers.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))),
            ("query", .object(JSONObject(handshake.query.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))),
            ("auth", handshake.auth),
            ("address", .string(handshake.address)),
            ("secure", .bool(handshake.secure)),
            ("url", .string(handshake.url)),
            ("issued", .number(String(handshake.issued))),
            ("time", .string(handshake.time)),
        ]))
    }

    static func handshake(from json: JSONValue) -> SocketIOHandshake {
        func strings(_ value: JSONValue?) -> [String: String] {
            var result: [String: String] = [:]
            for (key, value) in value?.objectValue?.members ?? [] { result[key] = value.stringValue ?? "" }
            return result
        }
        return SocketIOHandshake(
            headers: strings(json["headers"]), query: strings(json["query"]), auth: json["auth"] ?? .object(JSONObject()),
            address: json["address"]?.stringValue ?? "", secure: json["secure"]?.boolValue ?? false, url: json["url"]?.stringValue ?? "",
            issued: Int64(json["issued"]?.intValue ?? 0), time: json["time"]?.stringValue ?? "")
    }
}
