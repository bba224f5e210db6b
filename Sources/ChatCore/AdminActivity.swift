/// What one node remembers for the admin page: packets in/out per second over the last
/// `rateWindow` seconds and its last `eventCapacity` events. A pure value: the sampler
/// feeds it counter totals once a second, the admin namespace reads it.
public struct AdminActivity: Sendable, Hashable {
    /// One second of traffic: packets received from and sent to this node's clients.
    public struct Rate: Sendable, Hashable {
        public var time: Double
        public var packetsIn: Double
        public var packetsOut: Double

        public init(time: Double, packetsIn: Double, packetsOut: Double) {
            self.time = time
            self.packetsIn = packetsIn
            self.packetsOut = packetsOut
        }
    }

    public struct Event: Sendable, Hashable {
        public var time: Double
        public var kind: String
        public var detail: String
    }

    public let rateWindow: Int
    public let eventCapacity: Int
    /// Oldest first; never more than `rateWindow` entries.
    public private(set) var rates: [Rate] = []
    /// Oldest first; never more than `eventCapacity` entries.
    public private(set) var events: [Event] = []
    private var lastTotals: Rate?  // here the counter totals, not per-second rates
    /// Longest event detail kept, in characters: events quote user input (names, rooms).
    public static let maxDetailLength = 120

    public init(rateWindow: Int = 120, eventCapacity: Int = 100) {
        self.rateWindow = max(1, rateWindow)
        self.eventCapacity = max(1, eventCapacity)
    }

    /// Takes counter totals read at `time` (seconds, monotonic). The first reading only sets
    /// the baseline; a counter that went backwards (a restart) counts as zero, not negative.
    public mutating func sample(time: Double, packetsIn: Double, packetsOut: Double) {
        defer { lastTotals = Rate(time: time, packetsIn: packetsIn, packetsOut: packetsOut) }
        guard let last = lastTotals else { return }
        let elapsed = time - last.time
        guard elapsed > 0, elapsed.isFinite else { return }
        let rate = Rate(
            time: time,
            packetsIn: max(0, packetsIn - last.packetsIn) / elapsed,
            packetsOut: max(0, packetsOut - last.packetsOut) / elapsed
        )
        rates.append(rate)
        if rates.count > rateWindow { rates.removeFirst(rates.count - rateWindow) }
    }

    public mutating func record(time: Double, kind: String, detail: String) {
        let trimmed = detail.count > Self.maxDetailLength ? String(detail.prefix(Self.maxDetailLength)) + "…" : detail
        events.append(Event(time: time, kind: String(kind.prefix(32)), detail: trimmed))
        if events.count > eventCapacity { events.removeFirst(events.count - eventCapacity) }
    }
}
