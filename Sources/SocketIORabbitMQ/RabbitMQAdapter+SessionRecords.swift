import NIOCore
import SocketIO

/// Session records written ahead: the journal of this node's connected sockets
/// (`SessionJournal`, in the machine) learns of connections, room and data changes and ends;
/// a short one-shot timer writes the changes gathered meanwhile, and the heartbeat re-writes
/// old records. See docs/CLUSTER.md, "A crashed node's clients".
extension RabbitMQAdapter {
    public func sessionStarted(_ session: PersistedSession) {
        guard recoveryStreamName != nil else { return }
        let data = ClusterValueEncoding.encode(session.data)
        feed { [self] machine, _ in
            if machine.sessionStarted(socketId: session.socketId, privateId: session.privateId, rooms: session.rooms, data: data) { armSessionFlush() }
            return []
        }
    }

    public func sessionDataChanged(socketId: String, data: JSONValue) {
        guard recoveryStreamName != nil else { return }
        let encoded = ClusterValueEncoding.encode(data)
        feed { [self] machine, _ in
            if machine.sessionDataChanged(socketId: socketId, data: encoded) { armSessionFlush() }
            return []
        }
    }

    public func sessionClosed(socketId: String) {
        guard recoveryStreamName != nil else { return }
        feed { machine, now in machine.sessionClosed(socketId: socketId, now: now) }
    }

    public func persistSession(_ session: PersistedSession) async {
        guard recoveryStreamName != nil else { return }
        let record = SessionRecord(privateId: session.privateId, socketId: session.socketId, rooms: session.rooms.sorted(),
                                   data: ClusterValueEncoding.encode(session.data))
        feed { machine, now in machine.sessionDisconnected(record, now: now) }
    }

    /// Room changes of local sockets (from `addAll`, `del`), in their event on the loop.
    func sessionRoomsChanged(_ machine: inout Machine, socketId: String, joined: Set<String> = [], left: Set<String> = []) {
        if machine.sessionRoomsChanged(socketId: socketId, joined: joined, left: left) { armSessionFlush() }
    }

    /// How long changes gather before their records are written: long enough that a socket's
    /// connect, joins and data cost one record, short against a client's reconnection delay.
    static let sessionFlushDelay: TimeAmount = .milliseconds(50)

    /// A timer on the loop (touches no state: called inside an event).
    func armSessionFlush() {
        loop.scheduleTask(in: Self.sessionFlushDelay) { [weak self] in
            self?.feed { machine, now in machine.sessionRecordsDue(now: now) }
        }
    }
}
