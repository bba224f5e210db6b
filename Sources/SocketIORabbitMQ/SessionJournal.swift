import DequeModule

/// The sessions of this node's connected sockets, as the recovery stream must know them so
/// that any node can restore a client of this one if it dies (`SessionRecord`, written ahead).
/// A plain value, tested without a broker.
///
/// Changes are coalesced: a socket that connects, joins ten rooms and sets its data within
/// one flush delay costs one record, and a storm of connections or joins costs one record per
/// socket per flush, which the publisher carries many to an AMQP message. Records are also
/// re-written every `refreshNanoseconds`, oldest first, so the stream's window always holds a
/// recent one for every connected socket, however long it has been connected.
struct SessionJournal: Sendable {
    struct Entry: Sendable, Hashable {
        var privateId: String
        var socketId: String
        var incarnation: String
        /// Without the socket's own id (a restore adds it back).
        var rooms: Set<String>
        var data: EncodedPacket
        /// A record of this incarnation is in the stream (or on its way): its end must be written too.
        var written = false
        var lastWrittenAt: UInt64 = 0
        var isDirty = false
        /// The socket left its rooms on the way out: only its last record is still to come.
        var isStopping = false
    }

    let refreshNanoseconds: UInt64
    private var entries: [String: Entry] = [:]
    /// Sockets whose changes are not written yet, in order of their first change.
    private var dirty: [String] = []
    /// (socket, written at) in writing order; entries written again since are skipped when met.
    private var writeOrder = Deque<(socketId: String, at: UInt64)>()
    private var incarnations: UInt64 = 0

    init(refreshNanoseconds: UInt64) {
        self.refreshNanoseconds = max(refreshNanoseconds, 1)
    }

    var count: Int { entries.count }
    var hasUnwrittenChanges: Bool { !dirty.isEmpty }
    func entry(socketId: String) -> Entry? { entries[socketId] }

    /// A socket of this node connected (new or restored). Returns true when nothing was
    /// waiting to be written before: the caller arms the flush.
    mutating func started(socketId: String, privateId: String, rooms: Set<String>, data: EncodedPacket, nodeID: String) -> Bool {
        incarnations &+= 1
        let entry = Entry(privateId: privateId, socketId: socketId, incarnation: "\(nodeID)-\(String(incarnations, radix: 36))",
                          rooms: rooms.subtracting([socketId]), data: data)
        entries[socketId] = entry
        return markDirty(socketId)
    }

    /// Rooms joined or left. Returns true when the caller must arm the flush.
    mutating func roomsChanged(socketId: String, joined: Set<String> = [], left: Set<String> = []) -> Bool {
        guard var entry = entries[socketId], !entry.isStopping else { return false }
        let before = entry.rooms
        entry.rooms.formUnion(joined.subtracting([socketId]))
        entry.rooms.subtract(left)
        guard entry.rooms != before else { return false }
        entries[socketId] = entry
        return markDirty(socketId)
    }

    mutating func dataChanged(socketId: String, data: EncodedPacket) -> Bool {
        guard var entry = entries[socketId], !entry.isStopping, entry.data != data else { return false }
        entry.data = data
        entries[socketId] = entry
        return markDirty(socketId)
    }

    /// The socket left all its rooms on its way out: no more connected records for it; its
    /// last record comes with `ended`.
    mutating func stopping(socketId: String) {
        entries[socketId]?.isStopping = true
    }

    /// The socket is gone: its entry, for the last record (`written` says whether the stream
    /// heard of it at all); nil if it was not tracked.
    mutating func ended(socketId: String) -> Entry? {
        guard let entry = entries.removeValue(forKey: socketId) else { return nil }
        return entry
    }

    /// The records to write now: every socket changed since the last flush, and those whose
    /// last record is `refreshNanoseconds` old. Each is written at most once per call.
    mutating func due(now: UInt64) -> [SessionRecord] {
        var records: [SessionRecord] = []
        let changed = dirty
        dirty.removeAll(keepingCapacity: true)
        for socketId in changed {
            guard var entry = entries[socketId], entry.isDirty else { continue }
            entry.isDirty = false
            guard !entry.isStopping else {
                entries[socketId] = entry
                continue
            }
            records.append(write(&entry, now: now))
            entries[socketId] = entry
        }
        while let first = writeOrder.first, now &- first.at >= refreshNanoseconds {
            writeOrder.removeFirst()
            // Written again since, gone, or on its way out: this mark is stale.
            guard var entry = entries[first.socketId], entry.lastWrittenAt == first.at, !entry.isStopping else { continue }
            records.append(write(&entry, now: now))
            entries[first.socketId] = entry
        }
        return records
    }

    private mutating func write(_ entry: inout Entry, now: UInt64) -> SessionRecord {
        entry.written = true
        entry.lastWrittenAt = now
        writeOrder.append((entry.socketId, now))
        return record(entry, state: .connected)
    }

    func record(_ entry: Entry, state: SessionRecord.State) -> SessionRecord {
        SessionRecord(privateId: entry.privateId, socketId: entry.socketId, rooms: entry.rooms.sorted(), data: entry.data,
                      state: state, incarnation: entry.incarnation)
    }

    private mutating func markDirty(_ socketId: String) -> Bool {
        guard entries[socketId]?.isDirty == false else { return false }
        entries[socketId]?.isDirty = true
        let wasEmpty = dirty.isEmpty
        dirty.append(socketId)
        return wasEmpty
    }
}
