/// The live side of a restore, for one restoring socket: the recoverable packets this node
/// delivers from the recovery stream while the restore reads the stream and connects the
/// socket. A plain value, tested without a broker.
///
/// The hold exists before the restore appends its claim, so every packet after the claim in
/// the stream is delivered on this node while the hold exists, and the hold has it. The
/// replay (`RecoveryStreamScan`) has the packets up to the claim; `release` hands over those
/// after it. Both come from the one stream order, so nothing is missed or repeated, whichever
/// nodes sent the packets.
///
/// Until the session is known the hold keeps every packet; once it is (`sessionFound`) the
/// socket gets no live packet directly (the adapter leaves it out of the recipients), and
/// `release` hands the held packets over on the socket's loop, in the task that connects it.
struct RestoreHold: Sendable {
    let capacity: Int
    /// When the hold began (an abandoned hold is dropped after a while).
    let startedAtNanoseconds: UInt64
    private(set) var session: ClaimedSession?
    private(set) var claimPosition: StreamPosition?
    private(set) var held: [StreamedPacket] = []
    /// Packets dropped because `capacity` was reached (reported when released).
    private(set) var overflow = 0

    init(capacity: Int, startedAtNanoseconds: UInt64 = 0) {
        self.capacity = capacity
        self.startedAtNanoseconds = startedAtNanoseconds
    }

    /// The restoring socket, once the scan found its session.
    var socketId: String? { session?.record.socketId }

    /// The scan reached the claim: the replay ends at `position`.
    mutating func sessionFound(_ session: ClaimedSession, claimedAt position: StreamPosition) {
        self.session = session
        self.claimPosition = position
        held.removeAll { $0.position <= position || !session.reaches($0) }
    }

    /// A recoverable packet from the stream is being delivered on this node now.
    mutating func delivered(_ packet: StreamedPacket) {
        if let session, let claimPosition, packet.position <= claimPosition || !session.reaches(packet) { return }
        guard held.count < capacity else {
            overflow += 1
            return
        }
        held.append(packet)
    }

    /// The packets after the claim that reach the session, in stream order.
    func release() -> [StreamedPacket] {
        guard let session, let claimPosition else { return [] }
        return held.filter { $0.position > claimPosition && session.reaches($0) && !session.receivedEarly($0) }
    }
}
