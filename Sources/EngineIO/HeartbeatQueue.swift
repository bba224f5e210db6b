import NIOCore

/// The heartbeat deadlines of every session on one event loop, kept in a few FIFO lanes
/// instead of two NIO timers per session.
///
/// Every session of an endpoint waits the same `pingInterval` (and `pingTimeout`), so
/// deadlines set "now + the same delay" arrive in the order they fall due: a lane per delay
/// is a queue, and scheduling, cancelling and expiring are O(1) each. Cancelling is lazy:
/// the caller keeps the token of its current deadline and ignores any other that expires,
/// so nothing is searched or removed (NIO's `Scheduled.cancel()` scans the loop's whole
/// task heap, which made an idle server with many sessions spend most of its CPU there).
/// A deadline earlier than the last one in its lane (a clock step, or a caller passing an
/// earlier start) is moved to that last one: it fires a little late, never early.
public struct HeartbeatQueue<Member: Hashable & Sendable>: Sendable {
    public struct Due: Sendable, Hashable {
        public var member: Member
        public var token: UInt64
    }

    private struct Entry: Sendable {
        var member: Member
        var token: UInt64
        var deadline: NIODeadline
    }

    private var lanes: [Int64: CircularBuffer<Entry>] = [:]
    private var lastToken: UInt64 = 0

    public init() {}

    /// Entries waiting, stale ones included (they leave when they fall due).
    public var count: Int { lanes.values.reduce(0) { $0 + $1.count } }

    /// Schedules `member` at `start + delay`; returns the token that identifies this
    /// deadline when it falls due. Tokens never repeat.
    public mutating func schedule(_ member: Member, at start: NIODeadline, after delay: TimeAmount) -> UInt64 {
        lastToken &+= 1
        var deadline = start + delay
        if let last = lanes[delay.nanoseconds]?.last, last.deadline > deadline { deadline = last.deadline }
        lanes[delay.nanoseconds, default: CircularBuffer(initialCapacity: 16)].append(
            Entry(member: member, token: lastToken, deadline: deadline))
        return lastToken
    }

    /// The earliest deadline waiting, if any.
    public var earliestDeadline: NIODeadline? {
        lanes.values.compactMap { $0.first?.deadline }.min()
    }

    /// Removes and returns every entry due at `now`, earliest lane first within each lane's order.
    public mutating func expire(now: NIODeadline) -> [Due] {
        var due: [Due] = []
        for key in Array(lanes.keys) {
            // Taken out while it changes, so the buffer is not copied (copy-on-write).
            guard var lane = lanes.removeValue(forKey: key) else { continue }
            while let first = lane.first, first.deadline <= now {
                due.append(Due(member: first.member, token: first.token))
                lane.removeFirst()
            }
            if !lane.isEmpty { lanes[key] = lane }
        }
        return due
    }
}
