/// What a restoring node finds when it reads the recovery stream up to its own claim: a plain
/// value fed the stream's messages in order, so the decision is tested without a broker.
///
/// Single use across nodes: every restore appends a claim for the session's private id, and
/// the stream orders all claims. Of the claims that follow the session's latest record, only
/// the first restores; a later one (the same client reconnecting to two nodes at once, or a
/// replayed offset) sees the earlier claim and is refused, on whichever node it runs.
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
    private var missed: [(selection: ClusterSocketSelection, packet: EncodedPacket)] = []

    public init(privateId: String, offset: String, claimId: String) {
        self.privateId = privateId
        self.offset = offset
        self.claimId = claimId
    }

    /// Feeds the next stream message. Returns the outcome at this restore's own claim, nil
    /// before it (keep reading).
    public mutating func read(_ payload: ClusterPayload) -> Outcome? {
        switch payload {
        case .sessionRecord(let record) where record.privateId == privateId:
            // A newer record (the socket was restored and lost again) starts a new round of claims.
            session = record
            claimedByOther = false
        case .recoverablePacket(let packetOffset, let selection, let packet):
            if offsetSeen {
                missed.append((selection, packet))
            } else if packetOffset == offset {
                offsetSeen = true
            }
        case .restoreClaim(let id, let claimed) where claimed == privateId:
            if id == claimId { return outcome() }
            // A claim before any record in the window belongs to an older session.
            if session != nil { claimedByOther = true }
        default:
            break
        }
        return nil
    }

    private func outcome() -> Outcome {
        guard let session else { return .refused(.unknownSession) }
        guard !claimedByOther else { return .refused(.alreadyClaimed) }
        guard offsetSeen else { return .refused(.unknownOffset) }
        // The socket's own id is a room too (`socket.emit` with recovery on targets it).
        let rooms = Set(session.rooms).union([session.socketId])
        let packets = missed.compactMap { entry -> EncodedPacket? in
            if !rooms.isDisjoint(with: entry.selection.exceptRooms) { return nil }
            if !entry.selection.rooms.isEmpty && rooms.isDisjoint(with: entry.selection.rooms) { return nil }
            return entry.packet
        }
        return .restored(session, missedPackets: packets)
    }
}
