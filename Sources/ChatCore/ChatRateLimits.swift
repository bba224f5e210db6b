/// The chat's limits that follow a client across connections, keyed by client address (and
/// name): reconnecting does not give a fresh bucket. Per-connection limits (`typing`, `join`,
/// `set-name`) are plain `TokenBucket`s owned by each connection.
/// A plain value; the owner serialises access.
public struct ChatRateLimits: Sendable {
    /// Messages per user: address and name together.
    private var senders: KeyedRateLimiter
    /// Messages per address, whatever the names (`ChatLimits.addressMessageFactor` users' worth).
    private var addresses: KeyedRateLimiter
    /// Namespace CONNECTs, recovery claims included, per address.
    private var connects: KeyedRateLimiter

    public init(limits: ChatLimits) {
        senders = KeyedRateLimiter(limit: limits.messageLimit, capacity: limits.maxTrackedAddresses)
        addresses = KeyedRateLimiter(limit: limits.addressMessageLimit, capacity: limits.maxTrackedAddresses)
        connects = KeyedRateLimiter(limit: limits.connectLimit, capacity: limits.maxTrackedAddresses)
    }

    /// One message from `name` at `address`: needs a token from both the user's and the
    /// address's bucket.
    public mutating func allowMessage(address: String, name: String, now: Double) -> Bool {
        guard addresses.tryTake(address, now: now) else { return false }
        // A NUL cannot occur in an address, so the pair is unambiguous.
        return senders.tryTake(address + "\u{0}" + name, now: now)
    }

    public mutating func allowConnect(address: String, now: Double) -> Bool {
        connects.tryTake(address, now: now)
    }

    /// Keys remembered, for tests and metrics.
    public var trackedKeys: Int { senders.count + addresses.count + connects.count }
}
