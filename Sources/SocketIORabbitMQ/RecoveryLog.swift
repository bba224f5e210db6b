import DequeModule

/// What a node's live stream consumer remembers of the recovery stream: the recent
/// recoverable packets and session records, and which sessions were claimed. Every node reads
/// the same stream in the same order, so every node reaches the same decision for a claim.
///
/// With it a restore costs one claim appended to the stream and nothing read twice: the
/// decision is taken when the live consumer reads the claim (`claimRead`). Only a node whose
/// consumer started less than `windowNanoseconds` ago may lack what the claim needs; it says
/// `.unknown`, and the restore reads the stream instead (`RecoveryStreamScan`). Without this, a
/// storm of restores (a node dies, its clients come back on the others) had every restore read
/// the whole window of the stream: with 100 at once none finished within a client's timeout.
///
/// A plain value, tested without a broker.
struct RecoveryLog: Sendable {
    enum Decision: Sendable, Hashable {
        case restored(ClaimedSession, missedPackets: [StreamedPacket])
        /// A connected record of a node membership still counts alive: restorable only if that
        /// node is in fact gone (killed a moment ago; the adapter asks the broker). If it lives,
        /// the client is back before its node saw it go, which socket.io does not restore either.
        case restoredIfOriginGone(ClaimedSession, missedPackets: [StreamedPacket])
        case refused(RecoveryStreamScan.Refusal)
        /// This node has not read enough of the stream to decide.
        case unknown
    }

    let windowNanoseconds: UInt64
    let capacity: Int
    /// Most payload bytes the logged packets may hold together.
    let byteBudget: Int
    /// When the live consumer started reading (monotonic nanoseconds).
    let startedAtNanoseconds: UInt64
    private var packets: Deque<(packet: StreamedPacket, at: UInt64, bytes: Int)> = []
    private var loggedBytes = 0
    private var sessions: [String: LoggedSession] = [:]
    /// When a packet younger than the window was last dropped for `capacity`: until that is a
    /// window ago, an offset not found may be one of those.
    private var lastCapacityDropAt: UInt64?
    private var lastSessionPruneAt: UInt64 = 0

    /// How often a node re-writes the records of its connected sockets: a connected socket's
    /// latest record is at most this old while its node lives, so the log keeps such records
    /// for the window plus this, and needs that much history to say a session is unknown.
    let liveRecordRefreshNanoseconds: UInt64

    private struct LoggedSession: Sendable {
        var session: ClaimedSession
        var claimed: Bool
        /// When the record was read.
        var at: UInt64
        /// Incarnations a claim ended: their later records are stale (see `SessionRecord`).
        var ended: Set<String> = []
    }

    init(windowNanoseconds: UInt64, capacity: Int, byteBudget: Int = .max, startedAtNanoseconds: UInt64,
                liveRecordRefreshNanoseconds: UInt64 = 0) {
        self.windowNanoseconds = windowNanoseconds
        self.liveRecordRefreshNanoseconds = liveRecordRefreshNanoseconds
        self.capacity = max(capacity, 1)
        self.byteBudget = max(byteBudget, 1)
        self.startedAtNanoseconds = startedAtNanoseconds
    }

    var packetCount: Int { packets.count }
    var byteCount: Int { loggedBytes }

    mutating func packetRead(_ packet: StreamedPacket, atNanoseconds now: UInt64) {
        prune(now: now)
        let bytes = packet.packet.messages.reduce(0) { $0 + $1.payload.readableBytes }
        while let first = packets.first, packets.count >= capacity || loggedBytes + bytes > byteBudget {
            loggedBytes -= first.bytes
            packets.removeFirst()
            lastCapacityDropAt = now
        }
        packets.append((packet, now, bytes))
        loggedBytes += bytes
    }

    mutating func sessionRead(_ session: ClaimedSession, atNanoseconds now: UInt64) {
        prune(now: now)
        let record = session.record
        let known = sessions[record.privateId]
        // A record of an incarnation a claim ended is stale: its old node saw the disconnect late.
        if !record.incarnation.isEmpty, known?.ended.contains(record.incarnation) == true { return }
        // A newer record (the socket was restored and lost again, or its node re-wrote it)
        // starts a new round of claims.
        sessions[record.privateId] = LoggedSession(session: session, claimed: false, at: now, ended: known?.ended ?? [])
    }



    /// A claim for `privateId` was read. `offset` is set when the claim is one of this node's
    /// own restores (the client's last offset); the decision is returned then. `liveness` says
    /// whether a node is alive, or when it was last heard: a connected record of a node gone
    /// counts its disconnection from the node's last heartbeat.
    mutating func claimRead(privateId: String, offset: String?, atNanoseconds now: UInt64,
                                   liveness: (String) -> ClusterMembership.Liveness = { _ in .alive }) -> Decision? {
        prune(now: now)
        let entry = sessions[privateId]
        if var claimed = entry {
            claimed.claimed = true
            let incarnation = claimed.session.record.incarnation
            if !incarnation.isEmpty { claimed.ended.insert(incarnation) }
            sessions[privateId] = claimed
        }
        guard let offset else { return nil }
        let covers = now &- startedAtNanoseconds >= windowNanoseconds &+ liveRecordRefreshNanoseconds
        guard let entry else { return covers ? .refused(.unknownSession) : .unknown }
        guard !entry.claimed else { return .refused(.alreadyClaimed) }
        let session = entry.session
        // When the client lost its connection: the record's own time for a disconnected one;
        // for a connected one its node's last heartbeat, or the record's time if this node
        // never heard of that node (it wrote one at most a refresh before it died).
        var originAlive = false
        switch session.record.state {
        case .closed:
            return .refused(.unknownSession)
        case .disconnected:
            if now &- entry.at > windowNanoseconds { return .refused(.expired) }
        case .connected:
            switch liveness(session.origin) {
            case .alive: originAlive = true
            case .departed(let lastHeard): if now > lastHeard, now - lastHeard > windowNanoseconds { return .refused(.expired) }
            case .unknown: if now &- entry.at > windowNanoseconds { return .refused(.expired) }
            }
        }
        guard let start = packets.firstIndex(where: { $0.packet.offset == offset }) else {
            let maybeDropped = lastCapacityDropAt.map { now &- $0 <= windowNanoseconds } ?? false
            return covers && !maybeDropped ? .refused(.unknownOffset) : .unknown
        }
        let missed = packets[packets.index(after: start)...].map(\.packet).filter { session.reaches($0) && !session.receivedEarly($0) }
        return originAlive ? .restoredIfOriginGone(session, missedPackets: missed) : .restored(session, missedPackets: missed)
    }

    private mutating func prune(now: UInt64) {
        while let first = packets.first, now &- first.at > windowNanoseconds {
            loggedBytes -= first.bytes
            packets.removeFirst()
        }
        // Sessions expire in bulk, at most once a second: looking at all of them on every
        // message made a storm of restores quadratic (5% of a node's CPU in a 5,000-client one).
        if now &- lastSessionPruneAt >= 1_000_000_000 {
            lastSessionPruneAt = now
            let window = windowNanoseconds
            let liveWindow = windowNanoseconds &+ liveRecordRefreshNanoseconds
            sessions = sessions.filter { now &- $0.value.at <= ($0.value.session.record.state == .connected ? liveWindow : window) }
        }
    }
}
