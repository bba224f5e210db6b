/// Where a message sits in the recovery stream: the stream offset of the AMQP message, and
/// the message's index inside it (several cluster messages may ride in one AMQP message).
/// Every node reads the stream in this order.
struct StreamPosition: Sendable, Hashable, Comparable {
    var offset: Int64
    var index: Int

    init(offset: Int64, index: Int = 0) {
        self.offset = offset
        self.index = index
    }

    static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.offset, lhs.index) < (rhs.offset, rhs.index)
    }
}

/// A recoverable packet as read from the recovery stream.
struct StreamedPacket: Sendable, Hashable {
    var position: StreamPosition
    var origin: String
    var sequence: UInt64
    /// The Socket.IO offset appended to the packet (what a client sends back).
    var offset: String
    var selection: ClusterSocketSelection
    var packet: EncodedPacket
    /// The origin delivered it to its own clients at once, because the broker was away.
    var deliveredByOrigin: Bool

    init(position: StreamPosition, origin: String, sequence: UInt64, offset: String, selection: ClusterSocketSelection,
                packet: EncodedPacket, deliveredByOrigin: Bool = false) {
        self.position = position
        self.origin = origin
        self.sequence = sequence
        self.offset = offset
        self.selection = selection
        self.packet = packet
        self.deliveredByOrigin = deliveredByOrigin
    }
}

/// The session a restore found, and what its client had for sure.
struct ClaimedSession: Sendable, Hashable {
    var record: SessionRecord
    /// The node that wrote the record (the one the client was connected to), and the record's
    /// sequence there.
    var origin: String
    var sequence: UInt64

    init(record: SessionRecord, origin: String, sequence: UInt64) {
        self.record = record
        self.origin = origin
        self.sequence = sequence
    }

    /// The session's rooms and its own id (`socket.emit` with recovery on targets it).
    var rooms: Set<String> { Set(record.rooms).union([record.socketId]) }

    func reaches(_ packet: StreamedPacket) -> Bool {
        let rooms = self.rooms
        if !rooms.isDisjoint(with: packet.selection.exceptRooms) { return false }
        return packet.selection.rooms.isEmpty || !rooms.isDisjoint(with: packet.selection.rooms)
    }

    /// A packet its node delivered at once during a broker outage, before it recorded the
    /// session: the client got it then, without an offset, so it is not missed.
    /// A connected record's client was there for all of them until its node stopped.
    func receivedEarly(_ packet: StreamedPacket) -> Bool {
        packet.deliveredByOrigin && packet.origin == origin && (record.state == .connected || packet.sequence < sequence)
    }
}

/// What a restoring node finds when it reads the recovery stream: a plain value fed the
/// stream's messages in order, so the decision is tested without a broker.
///
/// Every node delivers recoverable packets to its clients in stream order, so a client that
/// last saw the packet with offset `offset` has every earlier packet of the stream that
/// reaches it and none of the later ones: the replay is what follows that packet, up to the
/// restore's claim (live delivery takes over from there, `RestoreHold`).
///
/// Single use across nodes: every restore appends a claim for the session's private id, and
/// the stream orders all claims. Of the claims that follow the session's latest record, only
/// the first restores; a later one (the same client reconnecting to two nodes at once, or a
/// replayed offset) sees the earlier claim and is refused, on whichever node it runs.
struct RecoveryStreamScan: Sendable {
    enum Outcome: Sendable, Hashable {
        /// The session and the packets it missed up to the claim, in stream order.
        case restored(ClaimedSession, claimedAt: StreamPosition, missedPackets: [StreamedPacket])
        case refused(Refusal)
    }

    enum Refusal: Sendable, Hashable {
        /// No record of the session in the stream's window.
        case unknownSession
        /// Another restore claimed the session first.
        case alreadyClaimed
        /// The client's offset is not in the window: the gap cannot be filled.
        case unknownOffset
        /// Disconnected (or its node gone) longer than `maxDisconnectionDuration` ago.
        case expired
    }

    let privateId: String
    let offset: String
    let claimId: String
    private var session: ClaimedSession?
    private var claimedByOther = false
    private var endedIncarnations: Set<String> = []
    private var offsetSeen = false
    /// Copies re-published after an outage come after their originals, in the same order, so
    /// the highest sequence per origin tells them (as on the node queues).
    private var copies = ClusterDuplicateFilter()
    private var afterOffset: [StreamedPacket] = []

    init(privateId: String, offset: String, claimId: String) {
        self.privateId = privateId
        self.offset = offset
        self.claimId = claimId
    }

    /// Feeds the next stream message. Returns the outcome at this restore's own claim, nil
    /// before it (keep reading).
    mutating func read(_ message: ClusterMessage, at position: StreamPosition) -> Outcome? {
        switch message.payload {
        case .sessionRecord(let record) where record.privateId == privateId:
            // A record of an incarnation a claim ended is stale (its old node saw the disconnect
            // late); any other newer record starts a new round of claims, except a re-write of
            // the incarnation already claimed.
            if !record.incarnation.isEmpty, endedIncarnations.contains(record.incarnation) { break }
            let sameIncarnation = !record.incarnation.isEmpty && session?.record.incarnation == record.incarnation
            session = ClaimedSession(record: record, origin: message.origin, sequence: message.sequence)
            if !sameIncarnation { claimedByOther = false }
        case .recoverablePacket(let packetOffset, let selection, let packet, let deliveredByOrigin):
            guard copies.accept(origin: message.origin, sequence: message.sequence) else { break }
            if offsetSeen {
                afterOffset.append(StreamedPacket(position: position, origin: message.origin, sequence: message.sequence, offset: packetOffset,
                                                  selection: selection, packet: packet, deliveredByOrigin: deliveredByOrigin))
            } else if packetOffset == offset {
                offsetSeen = true
            }
        case .restoreClaim(let id, let claimed) where claimed == privateId:
            if id == claimId { return outcome(at: position) }
            // A claim before any record in the window belongs to an older session.
            if let session {
                claimedByOther = true
                if !session.record.incarnation.isEmpty { endedIncarnations.insert(session.record.incarnation) }
            }
        default:
            break
        }
        return nil
    }

    private func outcome(at position: StreamPosition) -> Outcome {
        guard let session, session.record.state != .closed else { return .refused(.unknownSession) }
        guard !claimedByOther else { return .refused(.alreadyClaimed) }
        guard offsetSeen else { return .refused(.unknownOffset) }
        let missed = afterOffset.filter { session.reaches($0) && !session.receivedEarly($0) }
        return .restored(session, claimedAt: position, missedPackets: missed)
    }
}
