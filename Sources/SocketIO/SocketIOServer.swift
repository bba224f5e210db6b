import EngineIO
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A Socket.IO v5 server. Hand it to an Engine.IO transport as its `EngineServerDelegate`.
///
/// ```swift
/// let io = SocketIOServer()
/// io.of("/chat").onConnection { socket in
///     socket.on("message") { args, ack in socket.broadcast.emit("message", args) }
/// }
/// ```
public final class SocketIOServer: EngineServerDelegate, Sendable {
    public let configuration: SocketIOServerConfiguration
    var logger: Logger { configuration.logger }

    private let namespaces = NIOLockedValueBox<[String: SocketIONamespace]>([:])
    private let dynamicParents = NIOLockedValueBox<[(matches: @Sendable (String, JSONValue) -> Bool, parent: SocketIONamespace)]>([])

    public init(_ configuration: SocketIOServerConfiguration = SocketIOServerConfiguration()) {
        self.configuration = configuration
        _ = of("/")
    }

    /// The namespace named `name`, created on first use.
    public func of(_ name: String) -> SocketIONamespace {
        let name = name.hasPrefix("/") ? name : "/" + name
        return namespaces.withLockedValue { table in
            if let existing = table[name] { return existing }
            let namespace = SocketIONamespace(name: name, server: self, parent: nil)
            table[name] = namespace
            return namespace
        }
    }

    /// Dynamic namespaces: the first CONNECT to a name accepted by `matches` (given the
    /// name and the CONNECT payload) creates a child namespace which inherits the
    /// returned parent's middlewares and connection handlers. Emitting on the parent
    /// reaches the sockets of all its children.
    public func of(matching matches: @escaping @Sendable (_ name: String, _ auth: JSONValue) -> Bool) -> SocketIONamespace {
        let parent = SocketIONamespace(name: "/_dynamic_\(dynamicParents.withLockedValue { $0.count })", server: self, parent: nil)
        dynamicParents.withLockedValue { $0.append((matches, parent)) }
        return parent
    }

    /// Dynamic namespaces whose whole name matches `pattern` (e.g. `/^\/room-\d+$/`).
    public func of(_ pattern: Regex<Substring>) -> SocketIONamespace {
        // Regex is not Sendable (it may hold custom components); this one is only read,
        // and every match call works on its own copy of the matching state.
        nonisolated(unsafe) let pattern = pattern
        return of(matching: { name, _ in (try? pattern.wholeMatch(in: name)) != nil })
    }

    /// The main namespace `/`.
    public var sockets: SocketIONamespace { of("/") }

    /// Middleware of the main namespace (as socket.io's `io.use`).
    public func use(_ middleware: @escaping @Sendable (SocketIOSocket) async throws -> Void) { sockets.use(middleware) }

    public func onConnection(_ handler: @escaping @Sendable (SocketIOSocket) -> Void) { sockets.onConnection(handler) }

    // Broadcast operators of the main namespace.
    public func to(_ rooms: String...) -> BroadcastOperator { sockets.to(Set(rooms)) }
    public func `in`(_ rooms: String...) -> BroadcastOperator { sockets.to(Set(rooms)) }
    public func except(_ rooms: String...) -> BroadcastOperator { sockets.except(Set(rooms)) }
    public var volatile: BroadcastOperator { sockets.volatile }
    public var local: BroadcastOperator { sockets.local }
    public func timeout(_ timeout: TimeAmount) -> BroadcastOperator { sockets.timeout(timeout) }
    public func emit(_ event: String, _ args: JSONValue...) { sockets.emit(event, args) }
    public func emit(_ event: String, _ args: [JSONValue]) { sockets.emit(event, args) }
    public func fetchSockets() async throws -> [SocketDescription] { try await sockets.fetchSockets() }
    public func socketsJoin(_ rooms: String...) { sockets.socketsJoin(Set(rooms)) }
    public func socketsLeave(_ rooms: String...) { sockets.socketsLeave(Set(rooms)) }
    public func disconnectSockets(close: Bool = false) { sockets.disconnectSockets(close: close) }
    public func serverSideEmit(_ event: String, _ args: JSONValue...) async throws { try await sockets.serverSideEmit(event, args) }

    /// Starts every adapter (a cluster adapter connects here).
    public func start() async throws {
        for namespace in namespaces.withLockedValue({ Array($0.values) }) { try await namespace.adapter.start() }
    }

    /// Disconnects every socket ("server shutting down" for their listeners) and closes
    /// the adapters.
    public func close() async {
        let all = namespaces.withLockedValue { Array($0.values) }
        for namespace in all {
            for socket in namespace.localSockets() { socket.closeEngineConnection(reason: .serverShuttingDown) }
        }
        for namespace in all { await namespace.adapter.close() }
    }

    // MARK: Engine.IO

    public func engineDidOpen(_ connection: any EngineConnection) {
        let client = SocketIOClient(server: self, connection: connection)
        connection.delegate = client
        client.startConnectTimer()
    }

    /// The namespace a CONNECT for `name` goes to, or `nil` for "Invalid namespace".
    func namespaceForConnect(_ name: String, auth: JSONValue) -> SocketIONamespace? {
        if let existing = namespaces.withLockedValue({ $0[name] }) { return existing }
        let parents = dynamicParents.withLockedValue { $0 }
        guard let match = parents.first(where: { $0.matches(name, auth) }) else { return nil }
        return namespaces.withLockedValue { table in
            if let existing = table[name] { return existing }
            let child = SocketIONamespace(name: name, server: self, parent: match.parent)
            table[name] = child
            match.parent.addChild(child)
            return child
        }
    }
}

/// One Engine.IO connection and the sockets it opened (one per namespace). All state is
/// confined to `connection.eventLoop`: every entry point either runs there (Engine.IO
/// delegate calls) or hops there first, so no lock is taken per packet.
final class SocketIOClient: EngineConnectionDelegate, @unchecked Sendable {
    // @unchecked Sendable: the mutable state below is only touched on `eventLoop`
    // (asserted in debug builds); `server` and `connection` are immutable Sendable refs.
    unowned let server: SocketIOServer
    let connection: any EngineConnection
    let eventLoop: any EventLoop
    private var decoder: SocketIOPacketDecoder
    private var sockets: [String: SocketIOSocket] = [:]
    /// Namespaces whose CONNECT is running middleware.
    private var connecting: Set<String> = []
    private var connectTimer: Scheduled<Void>?
    private(set) var isClosed = false
    /// The client address of the handshake request: the peer's, or the one a trusted proxy
    /// reported (`EngineHandshakeRequest.clientAddress`); `""` when unknown.
    let handshakeAddress: String

    init(server: SocketIOServer, connection: any EngineConnection) {
        self.server = server
        self.connection = connection
        self.eventLoop = connection.eventLoop
        let request = connection.handshake
        self.handshakeAddress = request.clientAddress ?? request.remoteAddress ?? ""
        self.decoder = SocketIOPacketDecoder(maxAttachments: server.configuration.maxAttachments)
        LiveObjects.socketIOClients.created()
    }

    deinit {
        LiveObjects.socketIOClients.destroyed()
    }

    func startConnectTimer() {
        eventLoop.preconditionInEventLoop()
        // The timer must not reach the server through `unowned server` when it fires: a server
        // that was shut down (and freed) while a client had joined no namespace would crash it.
        let logger = server.logger
        connectTimer = eventLoop.scheduleTask(in: server.configuration.connectTimeout) { [self] in
            if sockets.isEmpty, !isClosed {
                logger.debug("no namespace joined in time, closing", metadata: ["sid": "\(connection.id)"])
                connection.close(reason: .forcedClose)
            }
        }
    }

    // MARK: EngineConnectionDelegate

    func connection(_ connection: any EngineConnection, didReceive message: EngineMessage) {
        eventLoop.assertInEventLoop()
        guard !isClosed else { return }
        do {
            guard let packet = try decoder.decode(message) else { return }
            try route(packet)
        } catch {
            protocolViolation(error)
        }
    }

    func connectionDidClose(_ connection: any EngineConnection, reason: EngineCloseReason) {
        eventLoop.assertInEventLoop()
        guard !isClosed else { return }
        isClosed = true
        connectTimer?.cancel()
        connectTimer = nil
        let closing = Array(sockets.values)
        sockets.removeAll()
        for socket in closing { socket.didClose(reason: SocketDisconnectReason(reason)) }
    }

    // MARK: Routing

    private func route(_ packet: SocketIOPacket) throws(SocketIOProtocolError) {
        if packet.type == .connect {
            guard sockets[packet.namespace] == nil, !connecting.contains(packet.namespace) else {
                throw .duplicateConnect(packet.namespace)
            }
            connect(namespace: packet.namespace, auth: packet.data ?? .object(JSONObject()))
            return
        }
        guard let socket = sockets[packet.namespace] else { throw .namespaceNotJoined(packet.namespace) }
        switch packet.type {
        case .event, .binaryEvent: socket.didReceiveEvent(packet)
        case .ack, .binaryAck: socket.didReceiveAck(packet)
        case .disconnect: socket.didClose(reason: .clientNamespaceDisconnect)
        case .connectError: throw .unexpectedPacketType(.connectError)
        case .connect: break
        }
    }

    private func protocolViolation(_ error: SocketIOProtocolError) {
        server.logger.debug("protocol violation, closing", metadata: ["sid": "\(connection.id)", "error": "\(error)"])
        connection.close(reason: .parseError)
    }

    private func connect(namespace name: String, auth: JSONValue) {
        guard let namespace = server.namespaceForConnect(name, auth: auth) else {
            send(SocketIOPacket(type: .connectError, namespace: name, data: ["message": "Invalid namespace"]))
            return
        }
        connecting.insert(name)
        namespace.admit(client: self, auth: auth)
    }

    /// Called by the namespace (on this loop) once a socket passed its middlewares.
    func didAdmit(_ socket: SocketIOSocket) -> Bool {
        eventLoop.assertInEventLoop()
        stopConnecting(socket.namespace.name)
        guard !isClosed else { return false }
        sockets[socket.namespace.name] = socket
        connectTimer?.cancel()
        connectTimer = nil
        return true
    }

    func didRefuse(namespace name: String, error: ConnectError) {
        eventLoop.assertInEventLoop()
        stopConnecting(name)
        guard !isClosed else { return }
        send(SocketIOPacket(type: .connectError, namespace: name, data: error.payload))
    }

    private func stopConnecting(_ name: String) {
        connecting.remove(name)
        // An emptied set keeps its storage: most clients join one namespace and stay for hours.
        if connecting.isEmpty { connecting = [] }
    }

    /// The socket left its namespace (either side); the connection stays.
    func didRemove(_ socket: SocketIOSocket) {
        eventLoop.assertInEventLoop()
        if sockets[socket.namespace.name] === socket { sockets[socket.namespace.name] = nil }
    }

    /// Server-side `disconnect(close: true)`: every socket leaves, then the connection closes.
    func disconnectAll() {
        eventLoop.assertInEventLoop()
        for socket in Array(sockets.values) { socket.disconnect(close: false) }
        connection.close(reason: .forcedClose)
    }

    func send(_ packet: SocketIOPacket) {
        connection.send(SocketIOPacketEncoder.encode(packet))
    }
}
