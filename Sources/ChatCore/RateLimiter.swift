/// A token bucket: `burst` messages at once, then `ratePerSecond` sustained. A plain value
/// the caller owns (one per connection, confined to that connection's event loop).
public struct TokenBucket: Sendable, Hashable {
    public let ratePerSecond: Double
    public let burst: Double
    private var tokens: Double
    private var lastRefill: Double

    /// `now` is any monotonic clock reading in seconds.
    public init(ratePerSecond: Double, burst: Double, now: Double) {
        precondition(ratePerSecond > 0 && burst >= 1, "a bucket must let at least one message through")
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        self.tokens = burst
        self.lastRefill = now
    }

    /// Takes one token if there is one.
    public mutating func tryTake(now: Double) -> Bool {
        if now > lastRefill {
            tokens = min(burst, tokens + (now - lastRefill) * ratePerSecond)
            lastRefill = now
        }
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
