/// Session records written ahead (docs/CLUSTER.md, "A crashed node's clients"): this node
/// tells the recovery stream what a restore of each connected socket needs, so a client of a
/// node that is killed can be restored by any other.
extension ClusterAdapterStateMachine {
    /// Whether the adapter must arm the flush timer (`sessionRecordsDue` a moment later): true
    /// when the first change since the last flush came in.
    typealias ArmFlush = Bool

    /// A socket of this node connected (new or restored) with connection state recovery on.
    mutating func sessionStarted(socketId: String, privateId: String, rooms: Set<String>, data: EncodedPacket) -> ArmFlush {
        guard configuration.recoveryStreamName != nil else { return false }
        return sessionJournal.started(socketId: socketId, privateId: privateId, rooms: rooms, data: data, nodeID: configuration.nodeID)
    }

    mutating func sessionRoomsChanged(socketId: String, joined: Set<String> = [], left: Set<String> = []) -> ArmFlush {
        sessionJournal.roomsChanged(socketId: socketId, joined: joined, left: left)
    }

    mutating func sessionDataChanged(socketId: String, data: EncodedPacket) -> ArmFlush {
        sessionJournal.dataChanged(socketId: socketId, data: data)
    }

    /// The socket is leaving all its rooms on its way out (its last record follows).
    mutating func sessionStopping(socketId: String) {
        sessionJournal.stopping(socketId: socketId)
    }

    /// The socket lost its connection in a way that may be recovered: its last record, with
    /// what it had at the end, is written now (also when no record was written before; not
    /// for a socket the journal never tracked).
    mutating func sessionDisconnected(_ record: SessionRecord, now: UInt64) -> [Action] {
        guard let streamName = configuration.recoveryStreamName, let entry = sessionJournal.ended(socketId: record.socketId),
              entry.privateId == record.privateId else { return [] }
        var last = record
        last.state = .disconnected
        last.incarnation = entry.incarnation
        return send(.sessionRecord(last), toQueue: streamName, now: now)
    }

    /// The session ended for good (the client left on purpose, or the server refused it):
    /// if the stream knows it, it learns it cannot be restored.
    mutating func sessionClosed(socketId: String, now: UInt64) -> [Action] {
        guard let streamName = configuration.recoveryStreamName, let entry = sessionJournal.ended(socketId: socketId), entry.written else { return [] }
        return send(.sessionRecord(sessionJournal.record(entry, state: .closed)), toQueue: streamName, now: now)
    }

    /// The flush timer fired, or the heartbeat came round (refreshes): the records due go to the stream.
    mutating func sessionRecordsDue(now: UInt64) -> [Action] {
        guard let streamName = configuration.recoveryStreamName else { return [] }
        var actions: [Action] = []
        for record in sessionJournal.due(now: now) {
            let (sent, _) = enqueue(.sessionRecord(record), toQueue: streamName, now: now)
            // One wake-up is enough for the whole flush.
            for action in sent where actions.isEmpty || !action.isWakePublisher { actions.append(action) }
        }
        return actions
    }

    /// After a young node's scan: a connected record of a node membership counts alive is
    /// restored only if that node is in fact gone (as `RecoveryLog.Decision.restoredIfOriginGone`).
    func restoreNeedsOriginCheck(_ session: ClaimedSession) -> Bool {
        session.record.state == .connected && membership.liveness(of: session.origin) == .alive
    }
}

extension ClusterAdapterStateMachine.Action {
    var isWakePublisher: Bool {
        if case .wakePublisher = self { return true }
        return false
    }
}
