import EngineIO
import NIOConcurrencyHelpers
import NIOCore

/// A Socket.IO namespace: its middlewares, connection handlers, local sockets and adapter.
public final class SocketIONamespace: Sendable {
    public typealias Middleware = @Sendable (SocketIOSocket) async throws -> Void
    public typealias ConnectionHandler = @Sendable (SocketIOSocket) -> Void
    public typealias ServerSideEmitHandler = @Sendable (_ args: [JSONValue], _ ack: SocketIOAcknowledgement?) -> Void

    public let name: String
    public unowned let server: SocketIOServer
    /// For children of a dynamic namespace: the parent whose handlers they inherit.
    public let parent: SocketIONamespace?
    /// Set right after init (the factory needs the namespace); never changes afterwards.
    public var adapter: any SocketIOAdapter { adapterBox.withLockedValue { $0! } }

    private let adapterBox = NIOLockedValueBox<(any SocketIOAdapter)?>(nil)
    private let middlewares = NIOLockedValueBox<[Middleware]>([])
    private let connectionHandlers = NIOLockedValueBox<[ConnectionHandler]>([])
    private let serverSideEmitHandlers = NIOLockedValueBox<[String: ServerSideEmitHandler]>([:])
    private let socketTable = NIOLockedValueBox<[String: SocketIOSocket]>([:])
    private let children = NIOLockedValueBox<[SocketIONamespace]>([])
    /// Shared by socket acks and broadcast acks, so ids never collide (as in socket.io).
    private let ackIds = NIOLockedValueBox<UInt64>(0)

    init(name: String, server: SocketIOServer, parent: SocketIONamespace?) {
        self.name = name
        self.server = server
        self.parent = parent
        let adapter = server.configuration.adapterFactory(self)
        adapterBox.withLockedValue { $0 = adapter }
    }

    // MARK: Registration

    /// Runs before a socket is admitted, in registration order. Throw `ConnectError` to
    /// refuse with your message and data; any other error refuses with its description.
    public func use(_ middleware: @escaping Middleware) {
        middlewares.withLockedValue { $0.append(middleware) }
    }

    /// Called on the socket's event loop once it is connected (after the CONNECT reply).
    public func onConnection(_ handler: @escaping ConnectionHandler) {
        connectionHandlers.withLockedValue { $0.append(handler) }
    }

    /// Receives `serverSideEmit` from other nodes of the cluster.
    public func onServerSideEmit(_ event: String, _ handler: @escaping ServerSideEmitHandler) {
        serverSideEmitHandlers.withLockedValue { $0[event] = handler }
    }

    /// For adapters: delivers a server-side emit that came from another node.
    public func handleServerSideEmit(_ args: [JSONValue], ack: SocketIOAcknowledgement?) {
        guard let event = args.first?.stringValue,
            let handler = serverSideEmitHandlers.withLockedValue({ $0[event] }) ?? parent?.serverSideEmitHandlers.withLockedValue({ $0[event] })
        else { return }
        handler(Array(args.dropFirst()), ack)
    }

    func addChild(_ child: SocketIONamespace) {
        children.withLockedValue { $0.append(child) }
    }

    func nextAckId() -> UInt64 {
        ackIds.withLockedValue { id in
            defer { id &+= 1 }
            return id
        }
    }

    // MARK: Sockets

    /// The sockets of this namespace on this node.
    public func localSockets() -> [SocketIOSocket] {
        socketTable.withLockedValue { Array($0.values) }
    }

    public func localSocket(id: String) -> SocketIOSocket? {
        socketTable.withLockedValue { $0[id] }
    }

    func localSockets(_ ids: Set<String>) -> [SocketIOSocket] {
        socketTable.withLockedValue { table in ids.compactMap { table[$0] } }
    }

    /// For adapters: writes already-encoded messages to the local sockets `ids`
    /// (every local socket when `ids` is nil).
    /// `volatile`: skip sockets whose connection is not writable right now (see
    /// `EngineConnection.isWritable`) instead of queueing behind what they have not read.
    public func deliver(_ messages: [EngineMessage], to ids: Set<String>?, volatile: Bool = false) {
        let recipients = ids.map { localSockets($0) } ?? localSockets()
        guard !recipients.isEmpty else { return }
        Self.deliver(messages, to: recipients, volatile: volatile)
    }

    /// Sockets are grouped by event loop so that a broadcast costs one task per loop,
    /// not one per recipient; sockets on the calling loop are written to directly.
    static func deliver(_ messages: [EngineMessage], to recipients: [SocketIOSocket], volatile: Bool = false) {
        // A handful of loops at most: a linear scan beats hashing.
        var groups: [(loop: any EventLoop, sockets: [SocketIOSocket])] = []
        for socket in recipients {
            let loop = socket.eventLoop
            if let index = groups.firstIndex(where: { $0.loop === loop }) {
                groups[index].sockets.append(socket)
            } else {
                groups.append((loop, [socket]))
            }
        }
        for group in groups {
            let sockets = group.sockets
            if group.loop.inEventLoop {
                for socket in sockets { socket.deliverOnLoop(messages, volatile: volatile) }
            } else {
                group.loop.execute {
                    for socket in sockets { socket.deliverOnLoop(messages, volatile: volatile) }
                }
            }
        }
    }

    // MARK: Admission

    /// Runs middlewares (spawning a Task only when there are some) and then connects the
    /// socket on the client's loop.
    func admit(client: SocketIOClient, auth: JSONValue) {
        let recovery = server.configuration.connectionStateRecovery
        // A pid or offset that cannot be one of ours is ignored before anything acts on it:
        // the client connects as a new session.
        var claim: (privateId: String, offset: String)?
        if recovery != nil, let privateId = auth["pid"]?.stringValue, let offset = auth["offset"]?.stringValue,
           RecoveryCredentials.isWellFormed(privateId: privateId), RecoveryCredentials.isWellFormed(offset: offset) {
            claim = (privateId, offset)
        }
        if let decide = server.configuration.connectAdmission {
            let attempt = ConnectAttempt(namespace: name, address: client.handshakeAddress, claimsRecovery: claim != nil)
            switch decide(attempt) {
            case .accept: break
            case .acceptWithoutRecovery: claim = nil
            case .refuse(let error):
                client.didRefuse(namespace: name, error: error)
                return
            }
        }
        let chain = middlewares.withLockedValue { $0 } + (parent?.middlewares.withLockedValue { $0 } ?? [])
        if let recovery, let (privateId, offset) = claim {
            Task {
                let restored = await adapter.restoreSession(privateId: privateId, offset: offset)
                if let session = restored?.session {
                    // The client will count on its rooms as soon as it hears it is connected:
                    // join them first, and let a cluster adapter route them to this node.
                    adapter.addAll(session.socketId, rooms: session.rooms)
                    await adapter.waitUntilRoomsRouted(session.rooms)
                }
                let socket = SocketIOSocket(namespace: self, client: client, auth: auth, restored: restored)
                await self.runMiddlewares(recovery.skipMiddlewares && restored != nil ? [] : chain, socket: socket, client: client)
            }
            return
        }
        let socket = SocketIOSocket(namespace: self, client: client, auth: auth, restored: nil)
        if chain.isEmpty {
            connect(socket, client: client)
        } else {
            Task { await self.runMiddlewares(chain, socket: socket, client: client) }
        }
    }

    private func runMiddlewares(_ chain: [Middleware], socket: SocketIOSocket, client: SocketIOClient) async {
        var refusal: ConnectError?
        for middleware in chain {
            do {
                try await middleware(socket)
            } catch let error as ConnectError {
                refusal = error
                break
            } catch {
                refusal = ConnectError(message: String(describing: error))
                break
            }
        }
        let refused = refusal
        client.eventLoop.execute {
            if let refused {
                if socket.recovered {
                    self.adapter.delAll(socket.id)  // rooms joined before admission
                    self.adapter.restoreAbandoned(socket.id)
                }
                client.didRefuse(namespace: self.name, error: refused)
            } else {
                self.connect(socket, client: client)
            }
        }
    }

    private func connect(_ socket: SocketIOSocket, client: SocketIOClient) {
        client.eventLoop.assertInEventLoop()
        guard client.didAdmit(socket) else {
            if socket.recovered {
                adapter.delAll(socket.id)  // rooms joined before admission
                adapter.restoreAbandoned(socket.id)
            }
            return
        }
        socketTable.withLockedValue { $0[socket.id] = socket }
        socket.didConnect()
        let handlers = connectionHandlers.withLockedValue { $0 } + (parent?.connectionHandlers.withLockedValue { $0 } ?? [])
        for handler in handlers { handler(socket) }
    }

    func remove(_ socket: SocketIOSocket) {
        socketTable.withLockedValue { table in
            if table[socket.id] === socket { table[socket.id] = nil }
        }
    }

    // MARK: Broadcasting (see BroadcastOperator)

    var allSocketsOperator: BroadcastOperator { BroadcastOperator(namespace: self) }

    public func to(_ rooms: Set<String>) -> BroadcastOperator { allSocketsOperator.to(rooms) }
    public func to(_ rooms: String...) -> BroadcastOperator { allSocketsOperator.to(Set(rooms)) }
    public func `in`(_ rooms: String...) -> BroadcastOperator { allSocketsOperator.to(Set(rooms)) }
    public func except(_ rooms: Set<String>) -> BroadcastOperator { allSocketsOperator.except(rooms) }
    public func except(_ rooms: String...) -> BroadcastOperator { allSocketsOperator.except(Set(rooms)) }
    public var volatile: BroadcastOperator { allSocketsOperator.volatile }
    public var local: BroadcastOperator { allSocketsOperator.local }
    public func timeout(_ timeout: TimeAmount) -> BroadcastOperator { allSocketsOperator.timeout(timeout) }

    public func emit(_ event: String, _ args: JSONValue...) { allSocketsOperator.emit(event, args) }
    public func emit(_ event: String, _ args: [JSONValue]) { allSocketsOperator.emit(event, args) }
    public func emitWithAck(_ event: String, _ args: [JSONValue]) async -> BroadcastAckResult {
        await allSocketsOperator.emitWithAck(event, args)
    }
    public func fetchSockets() async throws -> [SocketDescription] { try await allSocketsOperator.fetchSockets() }
    public func socketsJoin(_ rooms: Set<String>) { allSocketsOperator.socketsJoin(rooms) }
    public func socketsLeave(_ rooms: Set<String>) { allSocketsOperator.socketsLeave(rooms) }
    public func disconnectSockets(close: Bool = false) { allSocketsOperator.disconnectSockets(close: close) }

    /// Emits to the other nodes' `onServerSideEmit(event)` handlers (not to clients).
    public func serverSideEmit(_ event: String, _ args: [JSONValue]) async throws {
        _ = try await adapter.serverSideEmit([.string(event)] + args, expectAcks: false, timeout: server.configuration.defaultAckTimeout)
    }

    /// Like `serverSideEmit`, waiting for one answer per other node.
    public func serverSideEmitWithAck(_ event: String, _ args: [JSONValue], timeout: TimeAmount? = nil) async throws -> [JSONValue] {
        try await adapter.serverSideEmit([.string(event)] + args, expectAcks: true, timeout: timeout ?? server.configuration.defaultAckTimeout)
    }

    /// Children of a dynamic parent, for broadcasts on the parent.
    var dynamicChildren: [SocketIONamespace] { children.withLockedValue { $0 } }
}
