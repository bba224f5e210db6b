/// Drops cluster messages that were already handled. After a broker outage the publisher
/// re-sends everything the broker had not confirmed, and some of it may have been delivered
/// before the connection dropped. Messages from one origin reach one queue in publish order
/// (one channel, one queue), so remembering the highest sequence per origin is enough: an
/// older or equal sequence is a copy. Gaps are fine (room-aware routing skips messages).
public struct ClusterDuplicateFilter: Sendable {
    private var highestSequence: [String: UInt64] = [:]
    public private(set) var duplicateCount: UInt64 = 0

    public init() {}

    /// True when the message is new and should be handled.
    public mutating func accept(origin: String, sequence: UInt64) -> Bool {
        if let highest = highestSequence[origin], sequence <= highest {
            duplicateCount += 1
            return false
        }
        highestSequence[origin] = sequence
        return true
    }

    /// Forget a node that left, so a long-lived node's memory stays bounded by live peers.
    public mutating func forget(origin: String) {
        highestSequence.removeValue(forKey: origin)
    }

    public var trackedOriginCount: Int { highestSequence.count }
}
