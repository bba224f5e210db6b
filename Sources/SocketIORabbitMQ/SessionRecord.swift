/// What a restore needs of one socket's session, kept in the recovery stream for any node.
///
/// A node writes it ahead, while the socket is connected (`.connected`: when it connects, and
/// coalesced when its rooms or data change, refreshed so the stream's window always holds
/// one), so another node can restore the client even if this node is killed and never sees
/// the disconnect. When the socket loses its connection the node writes a last record
/// (`.disconnected`, restorable for `maxDisconnectionDuration` from then) or, for an end that
/// must not be recovered (the client left on purpose), `.closed`.
struct SessionRecord: Sendable, Hashable {
    enum State: UInt8, Sendable, Hashable {
        /// Written while the socket is connected. Restorable only once its node is gone (the
        /// node's last heartbeat counts as the disconnect); while the node lives and holds the
        /// socket, a claim is refused, as socket.io refuses a session it has not seen disconnect.
        case connected = 0
        /// The node saw the connection drop: restorable for `maxDisconnectionDuration`.
        case disconnected = 1
        /// The session ended for good: no restore.
        case closed = 2
    }

    var privateId: String
    var socketId: String
    var rooms: [String]
    /// `socket.data` as a Socket.IO packet, binary values included (`ClusterValueEncoding`).
    var data: EncodedPacket
    var state: State
    /// One socket's life on one node (`<nodeID>-<counter>`). A restore's claim ends it: later
    /// records of the same incarnation (its old node, cut off from the broker rather than dead,
    /// flushing them late) are stale everywhere, while the restored socket's records, a new
    /// incarnation, start a new round of claims. Empty: every record starts a new round.
    var incarnation: String

    init(privateId: String, socketId: String, rooms: [String], data: EncodedPacket,
                state: State = .disconnected, incarnation: String = "") {
        self.privateId = privateId
        self.socketId = socketId
        self.rooms = rooms
        self.data = data
        self.state = state
        self.incarnation = incarnation
    }
}
