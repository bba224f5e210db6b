import Histogram

/// Latencies are recorded in microseconds; one minute is the longest we can tell apart.
typealias LatencyHistogram = Histogram<UInt64>

func makeLatencyHistogram() -> LatencyHistogram {
    LatencyHistogram(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
}

/// Counters of one event loop. Every connection on that loop updates them without locks;
/// the scenario reads a copy (`snapshot`) through the loop at the end of a phase.
final class LoopStats {
    var latency = makeLatencyHistogram()
    /// `message` events that carried a bench payload.
    var benchDeliveries = 0
    /// Every `message` event, ours or not.
    var messageEvents = 0
    var sentPerRoom: [Int]
    var firstSendNanos: UInt64?
    var lastDeliveryNanos: UInt64?
    var pingsAnswered = 0
    var connectLatency = makeLatencyHistogram()

    init(rooms: Int) {
        sentPerRoom = Array(repeating: 0, count: max(rooms, 1))
    }

    func recordDelivery(_ payload: BenchPayload, now: UInt64) {
        benchDeliveries += 1
        let micros = now >= payload.sentNanos ? (now - payload.sentNanos) / 1000 : 0
        _ = latency.record(min(max(micros, 1), 60_000_000))
        if lastDeliveryNanos.map({ now > $0 }) ?? true { lastDeliveryNanos = now }
    }

    func recordSend(room: Int, now: UInt64) {
        sentPerRoom[room] += 1
        if firstSendNanos.map({ now < $0 }) ?? true { firstSendNanos = now }
    }

    func recordConnected(afterNanos elapsed: UInt64) {
        _ = connectLatency.record(min(max(elapsed / 1000, 1), 60_000_000))
    }

    var snapshot: LoopStatsSnapshot {
        LoopStatsSnapshot(
            latency: latency, benchDeliveries: benchDeliveries, messageEvents: messageEvents,
            sentPerRoom: sentPerRoom, firstSendNanos: firstSendNanos, lastDeliveryNanos: lastDeliveryNanos,
            pingsAnswered: pingsAnswered, connectLatency: connectLatency
        )
    }
}

struct LoopStatsSnapshot {
    var latency: LatencyHistogram
    var benchDeliveries: Int
    var messageEvents: Int
    var sentPerRoom: [Int]
    var firstSendNanos: UInt64?
    var lastDeliveryNanos: UInt64?
    var pingsAnswered: Int
    var connectLatency: LatencyHistogram

    static func merged(_ parts: [LoopStatsSnapshot], rooms: Int) -> LoopStatsSnapshot {
        var total = LoopStatsSnapshot(
            latency: makeLatencyHistogram(), benchDeliveries: 0, messageEvents: 0,
            sentPerRoom: Array(repeating: 0, count: max(rooms, 1)), firstSendNanos: nil, lastDeliveryNanos: nil,
            pingsAnswered: 0, connectLatency: makeLatencyHistogram()
        )
        for part in parts {
            total.latency.add(part.latency)
            total.connectLatency.add(part.connectLatency)
            total.benchDeliveries += part.benchDeliveries
            total.messageEvents += part.messageEvents
            for (room, count) in part.sentPerRoom.enumerated() where room < total.sentPerRoom.count {
                total.sentPerRoom[room] += count
            }
            total.firstSendNanos = [total.firstSendNanos, part.firstSendNanos].compactMap { $0 }.min()
            total.lastDeliveryNanos = [total.lastDeliveryNanos, part.lastDeliveryNanos].compactMap { $0 }.max()
            total.pingsAnswered += part.pingsAnswered
        }
        return total
    }
}

/// Percentiles in milliseconds of what was actually recorded; all `nil` when nothing was.
struct LatencySummary: Sendable, Hashable {
    var count: UInt64
    var p50Ms: Double?
    var p99Ms: Double?
    var p999Ms: Double?
    var maxMs: Double?

    init(_ histogram: LatencyHistogram) {
        count = histogram.totalCount
        guard count > 0 else { return }
        p50Ms = Double(histogram.valueAtPercentile(50)) / 1000
        p99Ms = Double(histogram.valueAtPercentile(99)) / 1000
        p999Ms = Double(histogram.valueAtPercentile(99.9)) / 1000
        maxMs = Double(histogram.max) / 1000
    }
}

enum DeliveryMath {
    /// Every message sent into a room should reach each member of that room (the sender
    /// included: the chat broadcasts to the whole room).
    static func expectedDeliveries(sentPerRoom: [Int], membersPerRoom: [Int]) -> Int {
        zip(sentPerRoom, membersPerRoom).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// Delivered / expected; `nil` when nothing was expected, never above what arrived.
    static func ratio(delivered: Int, expected: Int) -> Double? {
        expected > 0 ? Double(delivered) / Double(expected) : nil
    }

    /// Events per second over a window; `nil` for an empty window.
    static func rate(_ count: Int, overNanos window: UInt64) -> Double? {
        window > 0 ? Double(count) * 1_000_000_000 / Double(window) : nil
    }

    /// Room of client `index` when `rooms` rooms share the clients round-robin.
    static func room(ofClient index: Int, rooms: Int) -> Int { rooms > 1 ? index % rooms : 0 }

    static func membersPerRoom(connectedClients: [Int], rooms: Int) -> [Int] {
        var members = Array(repeating: 0, count: max(rooms, 1))
        for index in connectedClients { members[room(ofClient: index, rooms: rooms)] += 1 }
        return members
    }
}
