import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// Node-wide admission caps (all endpoints of one server together). nil turns a cap off;
/// every cap is off by default, as in socket.io and Node's http server.
public struct EngineAdmissionLimits: Sendable, Hashable {
    /// Open TCP connections (HTTP, long-polling, WebSocket). Over it a new connection is
    /// closed as soon as it is accepted, like Node's `server.maxConnections`.
    public var maxConnections: Int? = nil
    /// Open Engine.IO sessions; a handshake over it gets 503.
    public var maxSessions: Int? = nil
    /// Open Engine.IO sessions of one client address (IPv4 address or IPv6 /64); 429 over it.
    public var maxSessionsPerAddress: Int? = nil
    /// Sustained handshakes per second of one client address (token bucket); 429 over it.
    public var handshakesPerSecondPerAddress: Double? = nil
    /// Handshakes one address may make at once before the rate applies.
    public var handshakeBurstPerAddress: Double = 20
    /// Addresses whose handshake rate is remembered. The table never holds more than twice
    /// this many; when it fills, the oldest half is forgotten (those addresses start with a
    /// full bucket again), so memory stays bounded under an address-spraying attack.
    public var maxTrackedAddresses: Int = 50_000

    public init() {}
}

/// The bookkeeping behind the caps, as a plain value (the server wraps it in a lock):
/// sessions per address, and one token bucket per address for handshakes. Every call is
/// O(1) (amortised); every table is bounded.
struct EngineAdmissionLedger {
    let limits: EngineAdmissionLimits
    private(set) var sessionCount = 0
    private var sessionsByAddress: [String: Int] = [:]
    private var rates: HandshakeRateTable?

    init(limits: EngineAdmissionLimits, now: NIODeadline) {
        self.limits = limits
        if let rate = limits.handshakesPerSecondPerAddress, rate > 0 {
            rates = HandshakeRateTable(
                rate: rate, burst: max(limits.handshakeBurstPerAddress, 1), capacity: max(limits.maxTrackedAddresses, 1), now: now
            )
        }
    }

    /// Checks a new session for `address` (an `IPAddress.admissionKey`). A handshake that
    /// gets this far costs a token even when another cap refuses it: the rate counts tries.
    mutating func admitHandshake(address: String?, now: NIODeadline) -> EngineAdmissionRefusal? {
        if let address, rates?.take(address, now: now) == false { return .tooManyHandshakes }
        if let max = limits.maxSessions, sessionCount >= max { return .nodeFull }
        if let address, let max = limits.maxSessionsPerAddress, sessionsByAddress[address, default: 0] >= max {
            return .tooManyConnections
        }
        return nil
    }

    mutating func sessionOpened(address: String?) {
        sessionCount += 1
        if let address { sessionsByAddress[address, default: 0] += 1 }
    }

    mutating func sessionClosed(address: String?) {
        sessionCount = max(sessionCount - 1, 0)
        guard let address, let count = sessionsByAddress[address] else { return }
        // Removed at zero, so the table holds only addresses with open sessions.
        sessionsByAddress[address] = count > 1 ? count - 1 : nil
    }

    func sessions(of address: String) -> Int { sessionsByAddress[address, default: 0] }
    var trackedRateAddresses: Int { rates?.count ?? 0 }
}

/// One token bucket per address in two generations. A bucket untouched for a whole
/// generation (as long as a bucket takes to refill) is full, which is what a missing
/// bucket means: so the older generation is dropped wholesale at each rotation, with no
/// per-entry expiry scan. A generation that reaches `capacity` rotates early.
struct HandshakeRateTable {
    private struct Bucket {
        var tokens: Double
        var updated: NIODeadline
    }

    let rate: Double
    let burst: Double
    let capacity: Int
    private let generationLength: TimeAmount
    private var current: [String: Bucket] = [:]
    private var previous: [String: Bucket] = [:]
    private var generationStart: NIODeadline

    init(rate: Double, burst: Double, capacity: Int, now: NIODeadline) {
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        // Time to refill a whole burst, at least a second; clamped so huge values cannot trap.
        let seconds = min(max(burst / rate, 1), 86_400)
        self.generationLength = .nanoseconds(Int64(seconds * 1e9))
        self.generationStart = now
    }

    var count: Int { current.count + previous.count }

    /// Takes one token from `key`'s bucket; false when it is empty.
    mutating func take(_ key: String, now: NIODeadline) -> Bool {
        if now - generationStart >= generationLength { rotate(now: now) }
        var bucket = current[key] ?? previous.removeValue(forKey: key) ?? Bucket(tokens: burst, updated: now)
        let elapsed = Double(max((now - bucket.updated).nanoseconds, 0)) / 1e9
        bucket.tokens = min(burst, bucket.tokens + elapsed * rate)
        bucket.updated = now
        let allowed = bucket.tokens >= 1
        if allowed { bucket.tokens -= 1 }
        current[key] = bucket
        if current.count >= capacity { rotate(now: now) }
        return allowed
    }

    private mutating func rotate(now: NIODeadline) {
        previous = current
        current = [:]
        generationStart = now
    }
}

/// The ledger shared by every connection of one server, on any loop: one short locked
/// section per handshake and per session end.
final class EngineAdmissionControl: Sendable {
    private let ledger: NIOLockedValueBox<EngineAdmissionLedger>
    let limits: EngineAdmissionLimits
    let trustedProxies: TrustedProxies

    init(limits: EngineAdmissionLimits, trustedProxies: TrustedProxies) {
        self.limits = limits
        self.trustedProxies = trustedProxies
        self.ledger = NIOLockedValueBox(EngineAdmissionLedger(limits: limits, now: .now()))
    }

    /// The client of a request: the TCP peer, or who a trusted proxy says it forwards for.
    func clientAddress(head: HTTPRequestHead, peer: SocketAddress?) -> IPAddress? {
        trustedProxies.clientAddress(peer: peer?.ipAddress, forwardedFor: head.headers["x-forwarded-for"])
    }

    func admitHandshake(address: String?) -> EngineAdmissionRefusal? {
        ledger.withLockedValue { $0.admitHandshake(address: address, now: .now()) }
    }

    func sessionOpened(address: String?) {
        ledger.withLockedValue { $0.sessionOpened(address: address) }
    }

    func sessionClosed(address: String?) {
        ledger.withLockedValue { $0.sessionClosed(address: address) }
    }
}
