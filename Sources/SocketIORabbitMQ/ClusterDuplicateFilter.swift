/// Drops cluster messages that were already handled. After a broker outage the publisher
/// re-sends everything the broker had not confirmed, and some of it may have been delivered
/// before the connection dropped. Messages from one origin reach one queue in publish order
/// (one channel, one queue), so remembering the highest sequence per origin is enough: an
/// older or equal sequence is a copy. Gaps are fine (room-aware routing skips messages).
/// The same holds for the recovery stream, where every node reading the same stretch drops
/// the same records.
///
/// An origin is remembered well past its heartbeat timeout (a node unheard during our own
/// broker outage is not gone, and forgetting it would let its replay through twice); it is
/// forgotten when it says goodbye or after `retentionNanoseconds` of silence, which keeps
/// memory bounded by the peers of that period.
struct ClusterDuplicateFilter: Sendable {
    private var highest: [String: (sequence: UInt64, lastAcceptedAt: UInt64)] = [:]
    let retentionNanoseconds: UInt64
    private(set) var duplicateCount: UInt64 = 0

    init(retentionNanoseconds: UInt64 = 600_000_000_000) {
        self.retentionNanoseconds = retentionNanoseconds
    }

    /// True when the message is new and should be handled.
    mutating func accept(origin: String, sequence: UInt64, atNanoseconds now: UInt64 = 0) -> Bool {
        if let known = highest[origin], sequence <= known.sequence {
            duplicateCount += 1
            return false
        }
        highest[origin] = (sequence, now)
        return true
    }

    /// Forget a node that left on purpose.
    mutating func forget(origin: String) {
        highest.removeValue(forKey: origin)
    }

    /// Forget origins silent for longer than the retention. Returns how many.
    @discardableResult
    mutating func forgetSilentOrigins(atNanoseconds now: UInt64) -> Int {
        let silent = highest.filter { now > $0.value.lastAcceptedAt && now - $0.value.lastAcceptedAt > retentionNanoseconds }.keys
        for origin in silent { highest.removeValue(forKey: origin) }
        return silent.count
    }

    var trackedOriginCount: Int { highest.count }
}
