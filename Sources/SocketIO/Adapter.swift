import EngineIO
import NIOCore

/// Which sockets a broadcast (or a bulk operation) reaches.
public struct BroadcastOptions: Sendable, Hashable {
    /// Sockets in any of these rooms; all sockets of the namespace when empty.
    public var rooms: Set<String>
    /// Minus sockets in any of these rooms (a socket id is a room holding only that socket).
    public var except: Set<String>
    public var flags: BroadcastFlags

    public init(rooms: Set<String> = [], except: Set<String> = [], flags: BroadcastFlags = BroadcastFlags()) {
        self.rooms = rooms
        self.except = except
        self.flags = flags
    }
}

public struct BroadcastFlags: Sendable, Hashable {
    /// The packet may be dropped (it is never stored for connection state recovery).
    public var volatile: Bool = false
    /// Only sockets of this node: a cluster adapter must not forward the operation.
    public var local: Bool = false
    /// For acknowledged broadcasts: how long to wait for the answers.
    public var timeout: TimeAmount?

    public init(volatile: Bool = false, local: Bool = false, timeout: TimeAmount? = nil) {
        self.volatile = volatile
        self.local = local
        self.timeout = timeout
    }
}

/// A socket as `fetchSockets` reports it: a snapshot, possibly of a socket on another node.
/// Act on it through the namespace (`socket.emit` here targets the socket's own room).
public struct SocketDescription: Sendable, Hashable {
    public var id: String
    public var namespace: String
    public var handshake: SocketIOHandshake
    public var rooms: Set<String>
    public var data: JSONValue

    public init(id: String, namespace: String, handshake: SocketIOHandshake, rooms: Set<String>, data: JSONValue) {
        self.id = id
        self.namespace = namespace
        self.handshake = handshake
        self.rooms = rooms
        self.data = data
    }
}

/// What connection state recovery keeps of a socket after it lost its connection.
public struct PersistedSession: Sendable, Hashable {
    /// The socket id, restored on reconnection.
    public var socketId: String
    /// The private session id, known only to the client (sent in the CONNECT reply).
    public var privateId: String
    public var rooms: Set<String>
    public var data: JSONValue

    public init(socketId: String, privateId: String, rooms: Set<String>, data: JSONValue) {
        self.socketId = socketId
        self.privateId = privateId
        self.rooms = rooms
        self.data = data
    }
}

/// A session found by `restoreSession`, with the EVENT payloads (offset already appended)
/// the socket missed, in emission order.
public struct RestoredSession: Sendable, Hashable {
    public var session: PersistedSession
    public var missedPackets: [JSONValue]

    public init(session: PersistedSession, missedPackets: [JSONValue]) {
        self.session = session
        self.missedPackets = missedPackets
    }
}

/// Errors an adapter may report for operations that cross nodes.
public enum SocketIOAdapterError: Error, Sendable, Hashable {
    /// Not every node answered before the timeout.
    case timedOut
    /// The adapter cannot do this (e.g. the transport to other nodes is down).
    case unavailable(String)
}

/// The seam for clustering: everything that must see all nodes goes through the
/// namespace's adapter. Mirrors socket.io-adapter's responsibilities.
///
/// Contract:
/// * One adapter instance per namespace, made by `SocketIOServerConfiguration.adapterFactory`.
/// * Room membership calls (`addAll`, `del`, `delAll`) describe **local** sockets and are
///   made on the socket's event loop; they must be cheap and must not block (take a lock,
///   never await the network).
/// * `waitUntilRoomsRouted` is the awaitable half of a join: it returns once a broadcast
///   to those rooms published afterwards on any node reaches this node's sockets. A cluster
///   adapter that subscribes per room waits here for its broker; the default returns at once.
/// * `broadcast` encodes the packet once and has it written to every matching socket of
///   every node (unless `flags.local`: this node's only), each node writing its own with
///   `SocketIONamespace.deliver`. It never blocks and never fails: delivery is best-effort.
///   When this node's sockets get it is the adapter's choice: the in-memory adapter writes
///   them at once; a cluster adapter that orders recoverable packets across nodes (the
///   RabbitMQ adapter with connection state recovery) writes them when the packet comes
///   back from the shared log, the same moment as every other node, so that one offset
///   means the same thing everywhere.
/// * `broadcastWithAck` does the same; for every node that took part (this one included)
///   `clientCount` is called once with the number of sockets it reached, and `ack` once
///   per answer from any socket.
/// * The async operations (`fetchSockets`, `serverSideEmit`, `serverCount`, ...) may
///   cross the network and complete when all nodes answered or a timeout passed.
/// * `persistSession` / `restoreSession` back connection state recovery; an adapter that
///   keeps no log returns `nil` from `restoreSession`, and the client gets a new session.
///   After a restore, exactly one of `restoredSocketConnecting` (on the socket's loop, right
///   after its CONNECT reply and missed packets) or `restoreAbandoned` is called for the
///   session's socket id.
public protocol SocketIOAdapter: AnyObject, Sendable {
    /// Called once when the namespace is created, before any socket joins.
    func start() async throws
    /// Called once when the server shuts down.
    func close() async

    /// The number of nodes in the cluster (1 for a single node).
    func serverCount() async -> Int

    func addAll(_ socketId: String, rooms: Set<String>)
    func del(_ socketId: String, room: String)
    func delAll(_ socketId: String)
    /// Returns once every broadcast to `rooms` published from now on, by any node, reaches
    /// this node (the rooms having been joined by a local socket with `addAll` before).
    func waitUntilRoomsRouted(_ rooms: Set<String>) async

    func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions)
    /// `packet.ackId` is already set; every receiver answers with that id.
    func broadcastWithAck(
        _ packet: SocketIOPacket,
        options: BroadcastOptions,
        clientCount: @escaping @Sendable (Int) -> Void,
        ack: @escaping @Sendable (_ socketId: String, _ args: [JSONValue]) -> Void
    )

    /// Ids of the sockets in any of `rooms` (all sockets when empty), on this node.
    func sockets(in rooms: Set<String>) -> Set<String>
    /// The rooms a local socket is in, `nil` if it is unknown.
    func socketRooms(_ socketId: String) -> Set<String>?

    func fetchSockets(_ options: BroadcastOptions) async throws(SocketIOAdapterError) -> [SocketDescription]
    func addSockets(_ options: BroadcastOptions, rooms: Set<String>)
    func delSockets(_ options: BroadcastOptions, rooms: Set<String>)
    func disconnectSockets(_ options: BroadcastOptions, close: Bool)

    /// Sends `args` (event name first) to the other nodes' `onServerSideEmit` handlers.
    /// With `expectAcks`, waits for one answer (first ack argument) per other node.
    func serverSideEmit(_ args: [JSONValue], expectAcks: Bool, timeout: TimeAmount) async throws(SocketIOAdapterError) -> [JSONValue]

    func persistSession(_ session: PersistedSession) async
    func restoreSession(privateId: String, offset: String) async -> RestoredSession?
    /// The socket restored by `restoreSession` is connected (its CONNECT reply and missed
    /// packets are written): broadcasts stop leaving it out. The adapter calls `sendHeld` once,
    /// from any thread, with the encoded packets it held back for the socket since the restore
    /// (emitted after `missedPackets` were collected; maybe none), at the moment the hold ends:
    /// before it issues any later delivery to the socket. The socket writes them at once if
    /// called on its loop, otherwise in a task on its loop, which runs before any later
    /// delivery's (`SocketIONamespace.deliver` issues them in order, one task per loop). So
    /// the client gets the missed packets, then the held ones, then anything newer.
    func restoredSocketConnecting(_ socketId: String, sendHeld: @escaping @Sendable ([[EngineMessage]]) -> Void)
    /// The socket restored by `restoreSession` will not connect (refused, or its client left).
    func restoreAbandoned(_ socketId: String)

    /// With connection state recovery: a socket of this node connected (new or restored), so
    /// an adapter that records sessions ahead of their disconnection (to restore them even if
    /// this node dies) starts tracking it; its room changes come through `addAll` / `del`.
    /// `session.rooms` are the rooms it starts with, without its own id.
    func sessionStarted(_ session: PersistedSession)
    /// With connection state recovery: a connected socket's `data` changed.
    func sessionDataChanged(socketId: String, data: JSONValue)
    /// With connection state recovery: the socket left in a way that must not be recovered
    /// (otherwise `persistSession` is called instead). Called after `delAll`.
    func sessionClosed(socketId: String)
}

extension SocketIOAdapter {
    /// A single node (or an adapter that sends every broadcast to every node) routes a room
    /// as soon as `addAll` returned.
    public func waitUntilRoomsRouted(_ rooms: Set<String>) async {}

    /// An adapter whose restore and connection see one consistent log holds nothing back.
    public func restoredSocketConnecting(_ socketId: String, sendHeld: @escaping @Sendable ([[EngineMessage]]) -> Void) { sendHeld([]) }
    public func restoreAbandoned(_ socketId: String) {}

    /// An adapter that records sessions only when they disconnect needs none of these.
    public func sessionStarted(_ session: PersistedSession) {}
    public func sessionDataChanged(socketId: String, data: JSONValue) {}
    public func sessionClosed(socketId: String) {}
}
