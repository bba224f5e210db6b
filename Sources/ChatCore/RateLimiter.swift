/// A token bucket: `burst` messages at once, then `ratePerSecond` sustained. A plain value
/// the caller owns (one per connection, confined to that connection's event loop).
public struct TokenBucket: Sendable, Hashable {
    public let ratePerSecond: Double
    public let burst: Double
    private var tokens: Double
    private var lastRefill: Double

    /// `now` is any monotonic clock reading in seconds. Limits are checked at start-up
    /// (`ChatLimits.validate`); out-of-range values given here anyway are clamped (at least one
    /// token, a positive finite rate) rather than trapping.
    public init(ratePerSecond: Double, burst: Double, now: Double) {
        self.ratePerSecond = ratePerSecond.isFinite && ratePerSecond > 0 ? ratePerSecond : .leastNormalMagnitude
        self.burst = burst.isFinite && burst >= 1 ? burst : 1
        self.tokens = self.burst
        self.lastRefill = now
    }

    /// Takes one token if there is one.
    public mutating func tryTake(now: Double) -> Bool {
        if now > lastRefill {
            tokens = tokens(at: now)
            lastRefill = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// The tokens there would be at `now`.
    public func tokens(at now: Double) -> Double {
        guard now > lastRefill else { return tokens }
        return min(burst, tokens + (now - lastRefill) * ratePerSecond)
    }

    /// Refilled to its burst: the same as a new bucket, so a table may forget it.
    public func isFull(at now: Double) -> Bool { tokens(at: now) >= burst }
}

/// A rate as configured: `perSecond` sustained, `burst` at once.
public struct RateLimit: Sendable, Hashable {
    public var perSecond: Double
    public var burst: Double

    public init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
    }
}

/// One token bucket per key (a client address, an address and a name), so a limit follows the
/// client across connections instead of starting afresh with each reconnect.
///
/// Bounded: at most `capacity` keys. When full, buckets that have refilled are forgotten (a
/// new bucket for them would be the same); if that frees too little, the fullest are forgotten
/// until half the table is free (they lose the least by starting over). The sweep runs once
/// per many inserts, so a churn of new keys costs amortised O(log n) per key.
public struct KeyedRateLimiter: Sendable {
    public let limit: RateLimit
    public let capacity: Int
    private var buckets: [String: TokenBucket] = [:]
    /// Refilled buckets are also swept this often, so a table that never fills up does not
    /// keep every address it ever saw (one O(n) pass a minute).
    public static let sweepIntervalSeconds: Double = 60
    private var lastSweep: Double?

    public init(limit: RateLimit, capacity: Int) {
        self.limit = limit
        self.capacity = max(capacity, 2)
    }

    public var count: Int { buckets.count }

    /// Takes a token from `key`'s bucket (a new one, full, for a key not seen lately).
    public mutating func tryTake(_ key: String, now: Double) -> Bool {
        if let lastSweep, now - lastSweep >= Self.sweepIntervalSeconds {
            buckets = buckets.filter { !$0.value.isFull(at: now) }
            self.lastSweep = now
        } else if lastSweep == nil {
            lastSweep = now
        }
        if buckets[key] == nil, buckets.count >= capacity { prune(now: now) }
        var bucket = buckets.removeValue(forKey: key) ?? TokenBucket(ratePerSecond: limit.perSecond, burst: limit.burst, now: now)
        let taken = bucket.tryTake(now: now)
        buckets[key] = bucket
        return taken
    }

    /// Forgets refilled buckets; when that is not enough, the fullest ones.
    public mutating func prune(now: Double) {
        buckets = buckets.filter { !$0.value.isFull(at: now) }
        let target = capacity / 2
        guard buckets.count > capacity - capacity / 4 else { return }
        let fullestFirst = buckets.map { (key: $0.key, tokens: $0.value.tokens(at: now)) }.sorted { $0.tokens > $1.tokens }
        for entry in fullestFirst.prefix(buckets.count - target) { buckets[entry.key] = nil }
    }
}
