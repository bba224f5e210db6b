/// What a restoring node finds when it reads the recovery stream: a plain value fed the
/// stream's messages in order, so the decision is tested without a broker.
///
/// Single use across nodes: every restore appends a claim for the session's private id, and
/// the stream orders all claims. Of the claims that follow the session's latest record, only
/// the first restores; a later one (the same client reconnecting to two nodes at once, or a
/// replayed offset) sees the earlier claim and is refused, on whichever node it runs.
///
/// After a successful claim the scan goes on to the catch-up markers (`awaitMarkers`): each
/// node's marker ends what the replay takes from that node, because everything the node emits
/// after its marker reaches the restored socket live (`RestoreHold`).
public struct RecoveryStreamScan: Sendable {
    public enum Outcome: Sendable, Hashable {
        /// The session and the packets it missed (after the offset, reaching its rooms), in order.
        case restored(SessionRecord, missedPackets: [EncodedPacket])
        case refused(Refusal)
    }

    public enum Refusal: Sendable, Hashable {
        /// No record of the session in the stream's window.
        case unknownSession
        /// Another restore claimed the session first.
        case alreadyClaimed
        /// The client's offset is not in the window: the gap cannot be filled.
        case unknownOffset
    }

    public let privateId: String
    public let offset: String
    public let claimId: String
    private var session: SessionRecord?
    private var claimedByOther = false
    private var offsetSeen = false
    private var claimReached = false
    private var missed: [(offset: String, selection: ClusterSocketSelection, packet: EncodedPacket)] = []
    private var markerId: String?
    /// Nodes whose marker was read: their later records are delivered live instead.
    private var markedNodes: Set<String> = []
    private var awaitedNodes: Set<String> = []

    public init(privateId: String, offset: String, claimId: String) {
        self.privateId = privateId
        self.offset = offset
        self.claimId = claimId
    }

    /// Feeds the next stream message (`origin`: the node that appended it). Returns the
    /// outcome at this restore's own claim, nil otherwise (keep reading).
    public mutating func read(_ payload: ClusterPayload, origin: String = "") -> Outcome? {
        switch payload {
        case .sessionRecord(let record) where record.privateId == privateId && !claimReached:
            // A newer record (the socket was restored and lost again) starts a new round of claims.
            session = record
            claimedByOther = false
        case .recoverablePacket(let packetOffset, let selection, let packet):
            if offsetSeen {
                if !markedNodes.contains(origin) { missed.append((packetOffset, selection, packet)) }
            } else if packetOffset == offset {
                offsetSeen = true
            }
        case .restoreClaim(let id, let claimed) where claimed == privateId && !claimReached:
            if id == claimId {
                claimReached = true
                return outcome()
            }
            // A claim before any record in the window belongs to an older session.
            if session != nil { claimedByOther = true }
        case .restoreMarker(let id) where id == markerId:
            markedNodes.insert(origin)
        default:
            break
        }
        return nil
    }

    /// After the claim: read on until each of `nodes` appended its marker `id`.
    public mutating func awaitMarkers(id: String, from nodes: Set<String>) {
        markerId = id
        awaitedNodes = nodes
    }

    public var markersComplete: Bool { markerId != nil && awaitedNodes.isSubset(of: markedNodes) }

    /// Every packet the session missed up to the markers, in stream order, each once (a node
    /// re-publishes what the broker had not confirmed when its connection dropped).
    public func replay() -> [(offset: String, packet: EncodedPacket)] {
        guard let session else { return [] }
        var seen = Set<String>()
        return missed.compactMap { entry in
            guard Self.reaches(entry.selection, session), seen.insert(entry.offset).inserted else { return nil }
            return (entry.offset, entry.packet)
        }
    }

    /// Whether a packet sent to `selection` reaches the session's socket; its own id is a
    /// room too (`socket.emit` with recovery on targets it).
    static func reaches(_ selection: ClusterSocketSelection, _ session: SessionRecord) -> Bool {
        RestoreHold.reaches(selection, rooms: Set(session.rooms).union([session.socketId]))
    }

    private func outcome() -> Outcome {
        guard let session else { return .refused(.unknownSession) }
        guard !claimedByOther else { return .refused(.alreadyClaimed) }
        guard offsetSeen else { return .refused(.unknownOffset) }
        return .restored(session, missedPackets: replay().map(\.packet))
    }
}
