import EngineIO
import NIOCore
import SocketIO

/// The `SocketIOAdapter` surface: what Socket.IO asks of the adapter, turned into machine
/// events and local-adapter calls.
extension RabbitMQAdapter {
    // MARK: Rooms (local sockets)

    // The local room table changes at once, on the caller's thread (the socket's loop), so
    // the socket sees its rooms right away; the machine learns the change on its loop: its
    // binding tracker keeps its own membership, so binding operations follow the order in
    // which it learns them. With connection state recovery the session journal learns every
    // change too (records written ahead, see +SessionRecords).

    public func addAll(_ socketId: String, rooms: Set<String>) {
        local.addAll(socketId, rooms: rooms)
        guard options.roomAwareRouting || recoveryStreamName != nil else { return }
        feed { [self] machine, _ in
            sessionRoomsChanged(&machine, socketId: socketId, joined: rooms)
            return machine.roomsJoined(socketId, rooms: rooms)
        }
    }

    public func del(_ socketId: String, room: String) {
        local.del(socketId, room: room)
        guard options.roomAwareRouting || recoveryStreamName != nil else { return }
        feed { [self] machine, _ in
            sessionRoomsChanged(&machine, socketId: socketId, left: [room])
            return machine.roomsLeft(socketId, rooms: [room])
        }
    }

    /// A socket leaves all its rooms only on its way out: the journal stops writing its
    /// connected records (its last record follows from `persistSession` or `sessionClosed`).
    public func delAll(_ socketId: String) {
        let rooms = options.roomAwareRouting ? (local.socketRooms(socketId) ?? []) : []
        local.delAll(socketId)
        guard options.roomAwareRouting || recoveryStreamName != nil else { return }
        feed { machine, _ in
            machine.sessionStopping(socketId: socketId)
            return machine.roomsLeft(socketId, rooms: rooms.sorted())
        }
    }

    /// Returns once the broker confirmed (bind-ok) the bindings of `rooms`, so a broadcast
    /// another node publishes after that is routed to this node's queue; or after the request
    /// timeout, whichever comes first. Without room-aware routing there is nothing to wait for.
    public func waitUntilRoomsRouted(_ rooms: Set<String>) async {
        guard options.roomAwareRouting else { return }
        let deadline = Self.now() &+ Self.nanoseconds(seconds: max(options.requestTimeoutSeconds, 0.1))
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            feed { machine, _ in machine.waitForRoutes(rooms, waiter: .route(continuation), deadline: deadline) }
            armDeadline(deadline)
        }
    }

    public func sockets(in rooms: Set<String>) -> Set<String> { local.sockets(in: rooms) }
    public func socketRooms(_ socketId: String) -> Set<String>? { local.socketRooms(socketId) }

    // MARK: Broadcast

    public func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions) {
        let selection = ClusterSocketSelection(rooms: options.rooms.sorted(), exceptRooms: options.except.sorted())
        guard recoveryStreamName != nil, !options.flags.local, !options.flags.volatile, packet.ackId == nil,
              packet.type == .event || packet.type == .binaryEvent, case .array(let items)? = packet.data else {
            // Encode once: the same bytes go to local sockets and, inside the AMQP body, to
            // every other node's sockets.
            let messages = SocketIOPacketEncoder.encode(packet)
            namespace.deliver(messages, to: localRecipients(rooms: options.rooms, except: options.except), volatile: options.flags.volatile)
            guard !options.flags.local else { return }
            send(.broadcast(selection: selection, flags: ClusterBroadcastFlags(isVolatile: options.flags.volatile), packet: EncodedPacket(messages: messages), ackRequest: nil),
                 routingKeys: RoomRoutingKeys.keys(forBroadcastTo: selection.rooms, roomAware: self.options.roomAwareRouting))
            return
        }
        // A recoverable packet goes to the recovery stream only; every node, this one
        // included, delivers it when it reads it there. As socket.io does, the offset is the
        // last argument; the client sends the last one it saw back as `auth.offset`. The offset
        // is the machine's, so the packet is encoded on the loop.
        feed { machine, now in
            let offset = machine.nextRecoveryOffset()
            var withOffset = packet
            withOffset.data = .array(items + [.string(offset)])
            let encoded = EncodedPacket(messages: SocketIOPacketEncoder.encode(withOffset))
            var plain: [EngineMessage]?
            while true {
                switch machine.recoverableBroadcast(offset: offset, selection: selection, packet: encoded, plain: plain, now: now) {
                case .done(let actions):
                    return actions
                case .refused(let actions):
                    // At least this node's clients get it.
                    return actions + [.deliver(messages: plain ?? SocketIOPacketEncoder.encode(packet), rooms: options.rooms,
                                               except: options.except, heldSockets: [], volatile: false)]
                case .needsPlainPacket:
                    // Asked for at most once: with `plain` set the machine never asks again.
                    guard plain == nil else { return [] }
                    plain = SocketIOPacketEncoder.encode(packet)
                }
            }
        }
    }

    public func broadcastWithAck(
        _ packet: SocketIOPacket, options: BroadcastOptions,
        clientCount: @escaping @Sendable (Int) -> Void,
        ack: @escaping @Sendable (String, [JSONValue]) -> Void
    ) {
        local.broadcastWithAck(packet, options: options, clientCount: clientCount, ack: ack)
        guard !options.flags.local else { return }
        let timeout = options.flags.timeout ?? namespace.server.configuration.defaultAckTimeout
        let deadline = Self.now() &+ UInt64(max(timeout.nanoseconds, 0))
        let selection = ClusterSocketSelection(rooms: options.rooms.sorted(), exceptRooms: options.except.sorted())
        let encoded = EncodedPacket(messages: SocketIOPacketEncoder.encode(packet))
        feed { machine, now in
            machine.ackBroadcastStarted(callbacks: .acks(clientCount: clientCount, ack: ack), selection: selection,
                                        flags: ClusterBroadcastFlags(isVolatile: options.flags.volatile), packet: encoded, deadline: deadline, now: now)
        }
        armDeadline(deadline)
    }

    // MARK: Bulk operations

    public func fetchSockets(_ options: BroadcastOptions) async throws(SocketIOAdapterError) -> [SocketDescription] {
        let localSockets = try await local.fetchSockets(options)
        guard !options.flags.local else { return localSockets }
        let selection = ClusterSocketSelection(rooms: options.rooms.sorted(), exceptRooms: options.except.sorted())
        let completion = await ask(.fetchSockets, timeoutNanoseconds: Self.nanoseconds(seconds: self.options.requestTimeoutSeconds)) { request in
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
        let completion = await ask(.serverSideEmit, timeoutNanoseconds: UInt64(max(timeout.nanoseconds, 0))) { request in
            .serverSideEmit(request: request, packet: packet)
        }
        guard completion.isComplete else { throw .timedOut }
        return completion.replies.compactMap { Self.decodeArguments($0)?.first }
    }

    /// A request to every live node, answered by `completion` when all answered, when the
    /// nodes it waits for left, or at the deadline.
    private func ask(
        _ kind: ClusterRequestTracker.Kind, timeoutNanoseconds: UInt64,
        _ payload: @escaping @Sendable (ClusterRequestID) -> ClusterPayload
    ) async -> ClusterRequestTracker.Completion {
        let deadline = Self.now() &+ timeoutNanoseconds
        return await withCheckedContinuation { (continuation: CheckedContinuation<ClusterRequestTracker.Completion, Never>) in
            feed { machine, now in machine.requestStarted(kind, waiter: .request(continuation), deadline: deadline, now: now, payload: payload) }
            armDeadline(deadline)
        }
    }
}
