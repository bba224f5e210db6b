import DequeModule
import EngineIO
import NIOConcurrencyHelpers
import NIOCore

/// The single-node adapter: rooms in memory behind one lock, and (when connection state
/// recovery is on) a bounded log of emitted packets plus the sessions of recently lost
/// sockets.
public final class InMemoryAdapter: SocketIOAdapter {
    /// Unowned: the namespace owns its adapter and lives as long as the server.
    public unowned let namespace: SocketIONamespace
    private let recovery: ConnectionStateRecovery?
    private let rooms = NIOLockedValueBox(RoomTable())
    private let sessions: NIOLockedValueBox<SessionStore>?

    struct RoomTable {
        var members: [String: Set<String>] = [:]
        var roomsOfSocket: [String: Set<String>] = [:]
    }

    public init(namespace: SocketIONamespace) {
        self.namespace = namespace
        self.recovery = namespace.server.configuration.connectionStateRecovery
        self.sessions = recovery.map { NIOLockedValueBox(SessionStore(configuration: $0)) }
    }

    public func start() async throws {}
    public func close() async {}
    public func serverCount() async -> Int { 1 }

    // MARK: Rooms

    public func addAll(_ socketId: String, rooms newRooms: Set<String>) {
        rooms.withLockedValue { table in
            table.roomsOfSocket[socketId, default: []].formUnion(newRooms)
            for room in newRooms { table.members[room, default: []].insert(socketId) }
        }
    }

    public func del(_ socketId: String, room: String) {
        rooms.withLockedValue { table in
            table.roomsOfSocket[socketId]?.remove(room)
            Self.removeMember(socketId, from: room, in: &table)
        }
    }

    public func delAll(_ socketId: String) {
        rooms.withLockedValue { table in
            guard let joined = table.roomsOfSocket.removeValue(forKey: socketId) else { return }
            for room in joined { Self.removeMember(socketId, from: room, in: &table) }
        }
    }

    private static func removeMember(_ socketId: String, from room: String, in table: inout RoomTable) {
        // In place: a copy of the set (take, remove, put back) made every leave of a big
        // room cost its size, and a crowd leaving quadratic.
        guard table.members[room]?.remove(socketId) != nil else { return }
        if table.members[room]?.isEmpty == true { table.members[room] = nil }
    }

    /// Rooms with at least one local member (for tests that check nothing is left behind).
    var roomCount: Int { rooms.withLockedValue { $0.members.count } }
    /// Sockets with at least one room.
    var socketCount: Int { rooms.withLockedValue { $0.roomsOfSocket.count } }
    /// Lost sessions a client may still restore.
    var recoverableSessionCount: Int { sessions?.withLockedValue { $0.sessionCount } ?? 0 }
    /// Encoded bytes of the packets logged for recovery.
    var loggedPacketBytes: Int { sessions?.withLockedValue { $0.loggedPacketBytes } ?? 0 }

    public func sockets(in rooms: Set<String>) -> Set<String> {
        matchingSocketIds(BroadcastOptions(rooms: rooms))
    }

    public func socketRooms(_ socketId: String) -> Set<String>? {
        rooms.withLockedValue { $0.roomsOfSocket[socketId] }
    }

    /// The local socket ids `options` selects (socket.io-adapter's `apply`).
    func matchingSocketIds(_ options: BroadcastOptions) -> Set<String> {
        rooms.withLockedValue { table in
            // One room, no exceptions (the usual chat room): the member set as is, which
            // is a copy-on-write reference, not a rebuilt set.
            if options.except.isEmpty, options.rooms.count == 1, let room = options.rooms.first {
                return table.members[room] ?? []
            }
            var excluded = Set<String>()
            for room in options.except { if let members = table.members[room] { excluded.formUnion(members) } }
            var selected = Set<String>()
            if options.rooms.isEmpty {
                for socketId in table.roomsOfSocket.keys where !excluded.contains(socketId) { selected.insert(socketId) }
            } else {
                for room in options.rooms {
                    guard let members = table.members[room] else { continue }
                    for socketId in members where !excluded.contains(socketId) { selected.insert(socketId) }
                }
            }
            return selected
        }
    }

    // MARK: Broadcast

    public func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions) {
        var packet = packet
        let messages: [EngineMessage]
        var held: [String] = []
        if let sessions, packet.type == .event || packet.type == .binaryEvent, packet.ackId == nil, !options.flags.volatile,
            case .array(var items)? = packet.data
        {
            // Recovery: the offset is the last argument, as socket.io does, so that the
            // client can send it back as `auth.offset` when it reconnects.
            let offset = sessions.withLockedValue { $0.nextOffset() }
            items.append(.string(offset))
            packet.data = .array(items)
            messages = SocketIOPacketEncoder.encode(packet)
            held = sessions.withLockedValue { $0.record(offset: offset, data: packet.data!, options: options, messages: messages) }
        } else {
            messages = SocketIOPacketEncoder.encode(packet)
        }
        guard held.isEmpty else {
            // Restored sockets about to connect get this packet from their hold, once.
            var recipients = matchingSocketIds(options)
            recipients.subtract(held)
            return namespace.deliver(messages, to: recipients, volatile: options.flags.volatile)
        }
        // Everyone: skip computing the id set (the common chat case).
        let everyone = options.rooms.isEmpty && options.except.isEmpty
        namespace.deliver(messages, to: everyone ? nil : matchingSocketIds(options), volatile: options.flags.volatile)
    }

    public func broadcastWithAck(
        _ packet: SocketIOPacket,
        options: BroadcastOptions,
        clientCount: @escaping @Sendable (Int) -> Void,
        ack: @escaping @Sendable (String, [JSONValue]) -> Void
    ) {
        let messages = SocketIOPacketEncoder.encode(packet)
        let recipients = namespace.localSockets(matchingSocketIds(options))
        guard let ackId = packet.ackId else { return }
        clientCount(recipients.count)
        for socket in recipients {
            socket.onLoop {
                socket.sendExpectingAck(messages, ackId: ackId) { args in ack(socket.id, args) }
            }
        }
    }

    // MARK: Bulk operations

    public func fetchSockets(_ options: BroadcastOptions) async throws(SocketIOAdapterError) -> [SocketDescription] {
        namespace.localSockets(matchingSocketIds(options)).map { $0.describe() }
    }

    public func addSockets(_ options: BroadcastOptions, rooms newRooms: Set<String>) {
        for socket in namespace.localSockets(matchingSocketIds(options)) { socket.join(newRooms) }
    }

    public func delSockets(_ options: BroadcastOptions, rooms oldRooms: Set<String>) {
        for socket in namespace.localSockets(matchingSocketIds(options)) {
            for room in oldRooms { socket.leave(room) }
        }
    }

    public func disconnectSockets(_ options: BroadcastOptions, close: Bool) {
        for socket in namespace.localSockets(matchingSocketIds(options)) { socket.disconnect(close: close) }
    }

    /// A single node has no other nodes: nothing to send, no answers to wait for.
    public func serverSideEmit(_ args: [JSONValue], expectAcks: Bool, timeout: TimeAmount) async throws(SocketIOAdapterError) -> [JSONValue] {
        []
    }

    // MARK: Connection state recovery

    public func persistSession(_ session: PersistedSession) async {
        sessions?.withLockedValue { $0.persist(session) }
    }

    public func restoreSession(privateId: String, offset: String) async -> RestoredSession? {
        sessions?.withLockedValue { $0.restore(privateId: privateId, offset: offset) }
    }

    /// Called on the socket's loop: the held packets go out at once, before any broadcast
    /// that finds the hold released.
    public func restoredSocketConnecting(_ socketId: String, sendHeld: @escaping @Sendable ([[EngineMessage]]) -> Void) {
        sendHeld(sessions?.withLockedValue { $0.releaseHold(of: socketId) } ?? [])
    }

    public func restoreAbandoned(_ socketId: String) {
        _ = sessions?.withLockedValue { $0.releaseHold(of: socketId) }
    }
}

/// Bounded memory for recovery: sessions and logged packets older than
/// `maxDisconnectionDuration` are dropped, and the packet log also has a hard cap.
struct SessionStore {
    let configuration: ConnectionStateRecovery
    private var sessions: [String: (session: PersistedSession, lostAt: NIODeadline)] = [:]
    /// Sessions in the order they were lost, so expiry looks only at the oldest ones
    /// (a scan of every session on each disconnect made a disconnect storm quadratic).
    private var lossOrder = Deque<(privateId: String, lostAt: NIODeadline)>()
    private var log: [(offset: String, data: JSONValue, options: BroadcastOptions, at: NIODeadline, bytes: Int)] = []
    private var logStart = 0
    /// Encoded bytes of the packets from `logStart` on (see `maxLoggedBytes`).
    private var loggedBytes = 0
    /// Restored sockets not connected yet (they are not in the namespace's table, so a
    /// broadcast would pass them by): the packets emitted since their replay was collected.
    /// `SocketIOSocket.didConnect` takes them on the socket's loop, right after the replay;
    /// a broadcast recorded after that finds the socket in the table and is queued behind it.
    private var holds: [String: (session: PersistedSession, packets: [[EngineMessage]])] = [:]
    private var counter: UInt64 = 0
    private let epoch = String(UInt32.random(in: .min ... .max), radix: 36)

    init(configuration: ConnectionStateRecovery) {
        self.configuration = configuration
    }

    mutating func nextOffset() -> String {
        counter += 1
        return "\(epoch)-\(String(counter, radix: 36))"
    }

    /// Logs a recoverable packet; returns the restoring sockets that hold it (to be left out
    /// of its direct delivery).
    mutating func record(offset: String, data: JSONValue, options: BroadcastOptions, messages: [EngineMessage] = []) -> [String] {
        let now = NIODeadline.now()
        let bytes = messages.reduce(0) { $0 + $1.payloadByteCount }
        log.append((offset: offset, data: data, options: options, at: now, bytes: bytes))
        loggedBytes += bytes
        pruneLog(now: now)
        guard !holds.isEmpty else { return [] }
        var held: [String] = []
        for (socketId, hold) in holds where Self.reaches(options, hold.session) {
            held.append(socketId)
            if hold.packets.count < configuration.maxLoggedPackets { holds[socketId]!.packets.append(messages) }
        }
        return held
    }

    mutating func releaseHold(of socketId: String) -> [[EngineMessage]] {
        holds.removeValue(forKey: socketId)?.packets ?? []
    }

    mutating func persist(_ session: PersistedSession) {
        let now = NIODeadline.now()
        sessions[session.privateId] = (session, now)
        lossOrder.append((session.privateId, now))
        prune(now: now)
    }

    mutating func restore(privateId: String, offset: String) -> RestoredSession? {
        let now = NIODeadline.now()
        prune(now: now)
        guard let stored = sessions.removeValue(forKey: privateId) else { return nil }
        // An unknown offset means the log no longer covers the gap: recovery would lose
        // packets silently, so refuse and let the client start over.
        guard let position = log[logStart...].firstIndex(where: { $0.offset == offset }) else { return nil }
        let session = stored.session
        var missed: [JSONValue] = []
        for entry in log[(position + 1)...] where Self.reaches(entry.options, session) {
            missed.append(entry.data)
        }
        holds[session.socketId] = (session, [])
        return RestoredSession(session: session, missedPackets: missed)
    }

    private static func reaches(_ options: BroadcastOptions, _ session: PersistedSession) -> Bool {
        if !options.except.isDisjoint(with: session.rooms) { return false }
        return options.rooms.isEmpty || !options.rooms.isDisjoint(with: session.rooms)
    }

    private mutating func prune(now: NIODeadline) {
        pruneLog(now: now)
        let oldest = now - configuration.maxDisconnectionDuration
        while let expired = lossOrder.first, expired.lostAt < oldest {
            lossOrder.removeFirst()
            // A session lost again later has a newer entry; only the latest loss counts.
            if sessions[expired.privateId]?.lostAt == expired.lostAt { sessions[expired.privateId] = nil }
        }
    }

    /// Sessions a client may still come back to.
    var sessionCount: Int { sessions.count }
    var loggedPacketBytes: Int { loggedBytes }

    private mutating func pruneLog(now: NIODeadline) {
        let oldest = now - configuration.maxDisconnectionDuration
        while logStart < log.count,
            log[logStart].at < oldest || log.count - logStart > configuration.maxLoggedPackets
                || (loggedBytes > configuration.maxLoggedBytes && log.count - logStart > 1)
        {
            loggedBytes -= log[logStart].bytes
            // Free the payload now, not at the next compaction.
            log[logStart].data = .null
            logStart += 1
        }
        // Compact lazily so that pruning stays O(1) amortised.
        if logStart > 1024, logStart * 2 > log.count {
            log.removeFirst(logStart)
            logStart = 0
        }
    }
}
