import NIOCore
import Testing
@testable import EngineIO

/// Heartbeat deadlines of many sessions in FIFO lanes: due in order, cancelled by token.
@Suite struct HeartbeatQueueTests {
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func deadlinesFallDueInOrderAndOnlyOnce() {
        var queue = HeartbeatQueue<Int>()
        let a = queue.schedule(1, at: start, after: .seconds(5))
        let b = queue.schedule(2, at: start + .milliseconds(10), after: .seconds(5))
        let c = queue.schedule(3, at: start, after: .seconds(2))  // another lane (the pong timeout)
        #expect(queue.earliestDeadline == start + .seconds(2))
        #expect(queue.expire(now: start + .seconds(1)).isEmpty)
        #expect(queue.expire(now: start + .seconds(2)) == [.init(member: 3, token: c)])
        #expect(queue.earliestDeadline == start + .seconds(5))
        #expect(queue.expire(now: start + .seconds(5)) == [.init(member: 1, token: a)])
        #expect(queue.expire(now: start + .seconds(6)) == [.init(member: 2, token: b)])
        #expect(queue.expire(now: start + .seconds(60)).isEmpty)
        #expect(queue.count == 0)
        #expect(queue.earliestDeadline == nil)
    }

    @Test func tokensNeverRepeatSoAStaleDeadlineIsRecognised() {
        var queue = HeartbeatQueue<Int>()
        let first = queue.schedule(7, at: start, after: .seconds(1))
        let second = queue.schedule(7, at: start + .milliseconds(500), after: .seconds(1))  // re-armed: the first is stale
        #expect(first != second)
        let due = queue.expire(now: start + .seconds(2))
        #expect(due.map(\.token) == [first, second])
        #expect(due.filter { $0.token == second }.count == 1)
    }

    @Test func anEarlierDeadlineInALaneWaitsForTheOneBeforeIt() {
        var queue = HeartbeatQueue<Int>()
        _ = queue.schedule(1, at: start + .seconds(3), after: .seconds(5))
        _ = queue.schedule(2, at: start, after: .seconds(5))  // out of order: fires late, not early
        #expect(queue.expire(now: start + .seconds(5)).isEmpty)
        #expect(queue.expire(now: start + .seconds(8)).map(\.member) == [1, 2])
    }

    @Test func manySessionsCostOneEntryPerDeadline() {
        var queue = HeartbeatQueue<Int>()
        for member in 0..<10_000 { _ = queue.schedule(member, at: start + .microseconds(Int64(member)), after: .seconds(25)) }
        #expect(queue.count == 10_000)
        let due = queue.expire(now: start + .seconds(25) + .microseconds(4_999))
        #expect(due.map(\.member) == Array(0..<5_000))
        #expect(queue.count == 5_000)
    }
}
