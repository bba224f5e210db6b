import EngineIO
import NIOConcurrencyHelpers
import NIOCore

/// Lets a handler answer an event the client sent with an ack id. Only the first call
/// sends anything (as in socket.io); it may be called from any thread.
public final class SocketIOAcknowledgement: Sendable {
    private let sent = NIOLockedValueBox(false)
    private let send: @Sendable ([JSONValue]) -> Void

    /// `send` delivers the answer; adapters use this to carry acks across nodes.
    public init(send: @escaping @Sendable ([JSONValue]) -> Void) {
        self.send = send
    }

    public func callAsFunction(_ args: JSONValue...) { callAsFunction(args) }

    public func callAsFunction(_ args: [JSONValue]) {
        let first = sent.withLockedValue { sent in
            defer { sent = true }
            return !sent
        }
        if first { send(args) }
    }

    /// Answers with one encoded value.
    public func callAsFunction<T: Encodable>(encoding value: T) throws {
        callAsFunction([try JSONValue(encoding: value)])
    }
}

/// One client in one namespace.
///
/// Threading: the socket belongs to its connection's event loop. Handlers are called
/// there; `emit`, `join`, `disconnect` and friends may be called from anywhere (they
/// hop to the loop when needed). `data` is guarded by a lock so it can be read by
/// `fetchSockets` from any thread.
public final class SocketIOSocket: @unchecked Sendable {
    // @unchecked Sendable: `listeners`, `pendingAcks` and `isConnected` are only read and
    // written on `eventLoop` (asserted);
    // everything else is immutable or behind a lock.

    public typealias EventHandler = @Sendable (_ args: [JSONValue], _ ack: SocketIOAcknowledgement?) -> Void
    public typealias AnyEventHandler = @Sendable (_ event: String, _ args: [JSONValue]) -> Void

    /// The socket id (not the Engine.IO session id).
    public let id: String
    public let namespace: SocketIONamespace
    public let handshake: SocketIOHandshake
    /// Whether connection state recovery restored this socket's session.
    public let recovered: Bool
    public var eventLoop: any EventLoop { client.eventLoop }
    /// Who the client is for per-address limits: the TCP peer, or behind a trusted proxy the
    /// address it reported (`handshake.address` stays the peer's, as in socket.io).
    public var clientAddress: String { client.handshakeAddress }
    /// The Engine.IO connection carrying this socket.
    public var connection: any EngineConnection { client.connection }

    let client: SocketIOClient
    let privateId: String
    private let dataBox: NIOLockedValueBox<JSONValue>
    private let missedPackets: [JSONValue]
    private let initialRooms: Set<String>

    /// Every handler in the order registered, in one array: a dictionary of arrays cost
    /// five allocations per socket for the handful of events an application listens to.
    private var listeners: [Listener] = []
    private var pendingAcks: [UInt64: (Result<[JSONValue], SocketIOAckError>) -> Void] = [:]
    private var isConnectedOnLoop = false

    init(namespace: SocketIONamespace, client: SocketIOClient, auth: JSONValue, restored: RestoredSession?) {
        self.namespace = namespace
        self.client = client
        self.handshake = SocketIOHandshake(engine: client.connection.handshake, auth: auth)
        if let restored {
            self.id = restored.session.socketId
            self.privateId = restored.session.privateId
            self.dataBox = NIOLockedValueBox(restored.session.data)
            self.missedPackets = restored.missedPackets
            self.initialRooms = restored.session.rooms
            self.recovered = true
        } else {
            self.id = Self.makeId()
            self.privateId = Self.makeId()
            self.dataBox = NIOLockedValueBox(.null)
            self.missedPackets = []
            self.initialRooms = []
            self.recovered = false
        }
        LiveObjects.socketIOSockets.created()
    }

    deinit {
        LiveObjects.socketIOSockets.destroyed()
    }

    /// 20 random URL-safe characters (120 bits), like socket.io's ids.
    static func makeId() -> String { EngineSessionID.generate() }

    /// Arbitrary per-socket data, visible to `fetchSockets` (also on other nodes).
    public var data: JSONValue {
        get { dataBox.withLockedValue { $0 } }
        set {
            dataBox.withLockedValue { $0 = newValue }
            // A cluster adapter records it ahead, so another node can restore it if this one dies.
            if namespace.server.configuration.connectionStateRecovery != nil {
                namespace.adapter.sessionDataChanged(socketId: id, data: newValue)
            }
        }
    }

    /// Typed access to `data`.
    public func data<T: Decodable>(as type: T.Type) throws -> T { try data.decode(as: type) }
    public func setData<T: Encodable>(_ value: T) throws { data = try JSONValue(encoding: value) }

    /// The rooms this socket is in (its own id included).
    public var rooms: Set<String> { namespace.adapter.socketRooms(id) ?? [] }

    /// Whether the socket is still in its namespace. Exact on the socket's loop.
    public var connected: Bool { namespace.localSocket(id: id) === self }

    /// Runs `body` on this socket's loop: now if already there, else as a task.
    func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }

    // MARK: Listening

    /// Calls `handler` for each `event` the client emits. `ack` is non-nil when the
    /// client asked for an acknowledgement.
    public func on(_ event: String, _ handler: @escaping EventHandler) {
        onLoop { self.listeners.append(.event(event, handler)) }
    }

    /// Like `on`, with arguments decoded as `T` (the first argument). Events whose
    /// argument does not decode are ignored (and logged at debug level).
    public func on<T: Decodable & Sendable>(_ event: String, as type: T.Type, _ handler: @escaping @Sendable (T, SocketIOAcknowledgement?) -> Void) {
        let logger = namespace.server.logger
        on(event) { args, ack in
            do {
                handler(try (args.first ?? .null).decode(as: T.self), ack)
            } catch {
                logger.debug("ignoring event with undecodable argument", metadata: ["event": "\(event)", "error": "\(error)"])
            }
        }
    }

    /// An async handler: runs in a new Task (chosen explicitly, so plain handlers never
    /// pay for one).
    public func onAsync(_ event: String, _ handler: @escaping @Sendable ([JSONValue], SocketIOAcknowledgement?) async -> Void) {
        on(event) { args, ack in Task { await handler(args, ack) } }
    }

    /// Called for every incoming event, before the specific handlers.
    public func onAny(_ handler: @escaping AnyEventHandler) {
        onLoop { self.listeners.append(.any(handler)) }
    }

    /// Called when the socket is about to leave (still in its rooms).
    public func onDisconnecting(_ handler: @escaping @Sendable (SocketDisconnectReason) -> Void) {
        onLoop { self.listeners.append(.disconnecting(handler)) }
    }

    /// Called once the socket has left its namespace.
    public func onDisconnect(_ handler: @escaping @Sendable (SocketDisconnectReason) -> Void) {
        onLoop { self.listeners.append(.disconnect(handler)) }
    }

    // MARK: Emitting

    public func emit(_ event: String, _ args: JSONValue...) { emit(event, args) }

    public func emit(_ event: String, _ args: [JSONValue]) {
        let packet = SocketIOPacket.event(event, args, namespace: namespace.name)
        if namespace.server.configuration.connectionStateRecovery != nil {
            // Through the adapter, so the packet gets an offset and is logged.
            namespace.adapter.broadcast(packet, options: BroadcastOptions(rooms: [id]))
        } else {
            emitWithoutRecovery(event, args)
        }
    }
    /// Emits to this socket's client only, and never logs the packet for connection state
    /// recovery (with recovery on, `emit` logs everything, as socket.io does). For large
    /// answers that a recovered client does not need replayed, such as a snapshot sent on
    /// arrival: logged, every arrival would cost the snapshot's size in the recovery log and,
    /// in a cluster, a trip through the broker to every node. A client that loses its
    /// connection before the packet arrives does not get it back on recovery.
    public func emitWithoutRecovery(_ event: String, _ args: [JSONValue]) {
        let messages = SocketIOPacketEncoder.encode(SocketIOPacket.event(event, args, namespace: namespace.name))
        onLoop { self.deliverOnLoop(messages) }
    }

    /// Like `emitWithoutRecovery(_:_:)` for one object argument made of this client's `own`
    /// members followed by `shared` ones encoded once for many clients (see
    /// `SharedEventFields`): the client reads `{...own, ...shared}`, and the shared bytes
    /// are not copied per recipient.
    public func emitWithoutRecovery(_ event: String, _ own: JSONObject, sharing shared: SharedEventFields) {
        let messages = SocketIOPacketEncoder.encodeEvent(event, own, sharing: shared, namespace: namespace.name)
        onLoop { self.deliverOnLoop(messages) }
    }

    /// Emits one encoded value as the single argument.
    public func emit<T: Encodable>(_ event: String, encoding value: T) throws {
        emit(event, [try JSONValue(encoding: value)])
    }

    /// Emits and calls `completion` on this socket's loop with the client's answer, or
    /// with `.timedOut` / `.disconnected`.
    public func emit(
        _ event: String, _ args: [JSONValue], timeout: TimeAmount? = nil,
        completion: @escaping @Sendable (Result<[JSONValue], SocketIOAckError>) -> Void
    ) {
        let ackId = namespace.nextAckId()
        let messages = SocketIOPacketEncoder.encode(.event(event, args, namespace: namespace.name, ackId: ackId))
        let timeout = timeout ?? namespace.server.configuration.defaultAckTimeout
        onLoop {
            guard self.isConnectedOnLoop else {
                completion(.failure(.disconnected))
                return
            }
            let timer = self.eventLoop.scheduleTask(in: timeout) {
                self.pendingAcks.removeValue(forKey: ackId)?(.failure(.timedOut))
            }
            self.pendingAcks[ackId] = { result in
                timer.cancel()
                completion(result)
            }
            self.client.connection.send(messages)
        }
    }

    /// Emits and waits for the client's acknowledgement arguments.
    public func emitWithAck(_ event: String, _ args: JSONValue..., timeout: TimeAmount? = nil) async throws(SocketIOAckError) -> [JSONValue] {
        try await emitWithAck(event, args, timeout: timeout)
    }

    public func emitWithAck(_ event: String, _ args: [JSONValue], timeout: TimeAmount? = nil) async throws(SocketIOAckError) -> [JSONValue] {
        let result: Result<[JSONValue], SocketIOAckError> = await withCheckedContinuation { continuation in
            emit(event, args, timeout: timeout) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Everyone in the namespace except this socket (socket.io's `socket.broadcast`).
    /// `to`, `in`, `except` and `local` below start from it too, as in socket.io; for a
    /// timeout on this socket's own emit, pass `timeout:` to `emitWithAck`.
    public var broadcast: BroadcastOperator { namespace.allSocketsOperator.except([id]) }
    public func to(_ rooms: String...) -> BroadcastOperator { broadcast.to(Set(rooms)) }
    public func `in`(_ rooms: String...) -> BroadcastOperator { broadcast.to(Set(rooms)) }
    public func except(_ rooms: String...) -> BroadcastOperator { broadcast.except(Set(rooms)) }
    public var local: BroadcastOperator { broadcast.local }

    // MARK: Rooms

    public func join(_ rooms: String...) { join(Set(rooms)) }

    public func join(_ rooms: Set<String>) {
        namespace.adapter.addAll(id, rooms: rooms)
    }

    /// Joins and returns once the join is effective cluster-wide: every broadcast to these
    /// rooms published afterwards, from any node, reaches this socket. Use it before telling
    /// anyone that the socket is in the room (e.g. before acknowledging a "join" request):
    /// a cluster adapter with room-aware routing subscribes with its broker asynchronously.
    /// With the in-memory adapter it returns at once.
    public func joinAndWait(_ rooms: String...) async { await joinAndWait(Set(rooms)) }

    public func joinAndWait(_ rooms: Set<String>) async {
        let adapter = namespace.adapter
        adapter.addAll(id, rooms: rooms)
        await adapter.waitUntilRoomsRouted(rooms)
    }

    public func leave(_ room: String) {
        namespace.adapter.del(id, room: room)
    }

    // MARK: Disconnecting

    /// Leaves the namespace (the client gets `41<nsp>,`). With `close`, the whole Engine.IO
    /// connection closes, taking the client's other namespaces with it.
    public func disconnect(close: Bool = false) {
        onLoop {
            if close {
                self.client.disconnectAll()
                return
            }
            guard self.isConnectedOnLoop else { return }
            self.client.send(SocketIOPacket(type: .disconnect, namespace: self.namespace.name))
            self.didClose(reason: .serverNamespaceDisconnect)
        }
    }

    func closeEngineConnection(reason: EngineCloseReason) {
        client.connection.close(reason: reason)
    }

    // MARK: Called by the client and the namespace (on the loop)

    func didConnect() {
        eventLoop.assertInEventLoop()
        isConnectedOnLoop = true
        if namespace.server.configuration.connectionStateRecovery != nil {
            // Before its rooms are joined, so the adapter sees them as the session's.
            namespace.adapter.sessionStarted(PersistedSession(socketId: id, privateId: privateId, rooms: initialRooms, data: data))
        }
        namespace.adapter.addAll(id, rooms: initialRooms.union([id]))
        var reply = JSONObject()
        reply["sid"] = .string(id)
        if namespace.server.configuration.connectionStateRecovery != nil { reply["pid"] = .string(privateId) }
        client.send(SocketIOPacket(type: .connect, namespace: namespace.name, data: .object(reply)))
        for data in missedPackets {
            client.send(SocketIOPacket(type: data.containsBinary ? .binaryEvent : .event, namespace: namespace.name, data: data))
        }
        // Packets emitted while the restore caught up, which no later broadcast repeats: the
        // adapter hands them over before it issues any newer delivery to this socket.
        if recovered {
            namespace.adapter.restoredSocketConnecting(id) { [weak self] held in
                guard !held.isEmpty, let self else { return }
                self.onLoop { self.sendHeldOnLoop(held) }
            }
        }
    }

    private func sendHeldOnLoop(_ held: [[EngineMessage]]) {
        guard isConnectedOnLoop else { return }
        for messages in held { client.connection.send(messages) }
    }

    func deliverOnLoop(_ messages: [EngineMessage], volatile: Bool = false) {
        eventLoop.assertInEventLoop()
        guard isConnectedOnLoop else { return }
        if volatile && !client.connection.isWritable { return }
        client.connection.send(messages)
    }

    /// For broadcasts with acks: registers the ack and writes the shared encoded packet.
    func sendExpectingAck(_ messages: [EngineMessage], ackId: UInt64, onAck: @escaping @Sendable ([JSONValue]) -> Void) {
        eventLoop.assertInEventLoop()
        guard isConnectedOnLoop else { return }
        pendingAcks[ackId] = { result in
            if case .success(let args) = result { onAck(args) }
        }
        client.connection.send(messages)
    }

    func didReceiveEvent(_ packet: SocketIOPacket) {
        eventLoop.assertInEventLoop()
        guard let name = packet.eventName else { return }
        let args = packet.arguments
        var ack: SocketIOAcknowledgement?
        if let ackId = packet.ackId {
            let namespaceName = namespace.name
            ack = SocketIOAcknowledgement { [self] ackArgs in
                let messages = SocketIOPacketEncoder.encode(.ack(ackArgs, namespace: namespaceName, ackId: ackId))
                onLoop { self.deliverOnLoop(messages) }
            }
        }
        // The snapshot keeps the order stable if a handler registers another.
        let listeners = self.listeners
        for case .any(let handler) in listeners { handler(name, args) }
        for case .event(let event, let handler) in listeners where event == name { handler(args, ack) }
    }

    func didReceiveAck(_ packet: SocketIOPacket) {
        eventLoop.assertInEventLoop()
        guard let ackId = packet.ackId, let callback = pendingAcks.removeValue(forKey: ackId) else { return }
        callback(.success(packet.arguments))
    }

    /// Leaves the namespace for `reason`; safe to call more than once.
    func didClose(reason: SocketDisconnectReason) {
        eventLoop.assertInEventLoop()
        guard isConnectedOnLoop else { return }
        for case .disconnecting(let handler) in listeners { handler(reason) }
        let roomsAtClose = rooms
        isConnectedOnLoop = false
        namespace.adapter.delAll(id)
        namespace.remove(self)
        client.didRemove(self)
        let acks = pendingAcks
        pendingAcks.removeAll()
        for (_, callback) in acks { callback(.failure(.disconnected)) }
        if namespace.server.configuration.connectionStateRecovery != nil, reason.isRecoverable {
            let session = PersistedSession(socketId: id, privateId: privateId, rooms: roomsAtClose.subtracting([id]), data: data)
            let adapter = namespace.adapter
            Task { await adapter.persistSession(session) }
        } else if namespace.server.configuration.connectionStateRecovery != nil {
            namespace.adapter.sessionClosed(socketId: id)
        }
        for case .disconnect(let handler) in listeners { handler(reason) }
        listeners.removeAll()
    }

    private enum Listener {
        case event(String, EventHandler)
        case any(AnyEventHandler)
        case disconnecting(@Sendable (SocketDisconnectReason) -> Void)
        case disconnect(@Sendable (SocketDisconnectReason) -> Void)
    }

    func describe() -> SocketDescription {
        SocketDescription(id: id, namespace: namespace.name, handshake: handshake, rooms: rooms, data: data)
    }
}
