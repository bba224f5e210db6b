/// What a node's start-up replay of the recovery stream decides for each record it reads:
/// the recoverable packets of its namespace go to the observer once each (a batch
/// re-published after a lost confirm appears twice), and reading the node's own mark back
/// means the replay has caught up with the live consumer.
struct StreamReplay: Sendable {
    enum Step: Sendable, Equatable {
        case skip
        case observe(StreamedPacket)
        /// The mark: stop here.
        case caughtUp
    }

    let namespace: String
    let markId: String
    private var copies = ClusterDuplicateFilter()
    /// The last position read, packets or not: where the live consumer takes over.
    private(set) var lastPosition: StreamPosition?
    private(set) var observedCount = 0

    init(namespace: String, markId: String) {
        self.namespace = namespace
        self.markId = markId
    }

    mutating func read(_ message: ClusterMessage, at position: StreamPosition) -> Step {
        guard message.namespace == namespace else { return .skip }
        if let last = lastPosition, position <= last { return .skip }
        lastPosition = position
        switch message.payload {
        case .streamMark(let id) where id == markId:
            return .caughtUp
        case .recoverablePacket(let offset, let selection, let packet, let deliveredByOrigin):
            // Republished copies are the same origin and sequence: the first one counts.
            guard copies.accept(origin: message.origin, sequence: message.sequence) else { return .skip }
            observedCount += 1
            return .observe(StreamedPacket(position: position, origin: message.origin, sequence: message.sequence, offset: offset,
                                           selection: selection, packet: packet, deliveredByOrigin: deliveredByOrigin))
        default:
            return .skip
        }
    }
}
