import DequeModule

/// Hands the recoverable packets of the recovery stream to an observer of the namespace (the
/// chat's history) once each and in stream order.
///
/// At start the adapter replays the stream's older records for the observer on a consumer
/// of its own, up to a mark it appended (`StreamReplay`), while the live consumer already
/// reads what comes after it started. Live packets wait here until the replay ends; those at
/// or before the replay's last position were seen by it and are dropped, the rest follow.
struct RecoverablePacketFeed: Sendable {
    /// Live packets kept while the replay runs; beyond this the oldest waiting are dropped
    /// (and counted). A node replays before it accepts clients, so only other nodes' traffic
    /// of those seconds waits here.
    let capacity: Int
    private(set) var isReplaying = true
    private var waiting = Deque<StreamedPacket>()
    private(set) var droppedWhileReplaying: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
    }

    /// A packet the live consumer read: what the observer gets now.
    mutating func liveRead(_ packet: StreamedPacket) -> [StreamedPacket] {
        guard isReplaying else { return [packet] }
        if waiting.count >= capacity {
            waiting.removeFirst()
            droppedWhileReplaying &+= 1
        }
        waiting.append(packet)
        return []
    }

    /// The replay read up to `lastPosition` (nil: it read nothing): the waiting packets after it.
    mutating func replayFinished(lastPosition: StreamPosition?) -> [StreamedPacket] {
        guard isReplaying else { return [] }
        isReplaying = false
        let after = waiting.filter { packet in lastPosition.map { packet.position > $0 } ?? true }
        waiting.removeAll()
        return Array(after)
    }
}
