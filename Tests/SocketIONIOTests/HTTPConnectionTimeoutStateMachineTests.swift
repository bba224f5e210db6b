import NIOCore
import Testing
@testable import SocketIONIO

private typealias Machine = HTTPConnectionTimeoutStateMachine
private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
private let timeouts = HTTPConnectionTimeouts(headers: .seconds(60), keepAlive: .seconds(5), request: .seconds(300))

private func at(_ seconds: Int64) -> NIODeadline { start + .seconds(seconds) }

@Suite struct HTTPConnectionTimeoutStateMachineTests {
    @Test func aSilentConnectionHasUntilTheHeadersTimeout() {
        var machine = Machine(timeouts: timeouts, now: start)
        #expect(machine.initialAction == .arm(at(60)))
        do { let result = machine.timerFired(now: at(60)); #expect(result == .close(.headers, answer408: false)) }
        #expect(machine.isFinished)
    }

    @Test func slowHeadersAreClosedWithoutAnAnswer() {
        var machine = Machine(timeouts: timeouts, now: start)
        // Bytes trickling in do not move the deadline: only a complete head does.
        do { let result = machine.bytesArrived(now: at(10)); #expect(result == .none) }
        do { let result = machine.bytesArrived(now: at(59)); #expect(result == .none) }
        do { let result = machine.timerFired(now: at(60)); #expect(result == .close(.headers, answer408: false)) }
    }

    @Test func aBodyMustArriveWithinTheRequestTimeoutFromTheFirstByte() {
        var machine = Machine(timeouts: timeouts, now: start)
        do { let result = machine.requestHeadArrived(now: at(1)); #expect(result == .arm(at(300))) }
        do { let result = machine.timerFired(now: at(299)); #expect(result == .arm(at(300))) }
        do { let result = machine.timerFired(now: at(300)); #expect(result == .close(.request, answer408: true)) }
    }

    @Test func aCompleteRequestIsNotTimedWhileTheServerAnswers() {
        var machine = Machine(timeouts: timeouts, now: start)
        _ = machine.requestHeadArrived(now: at(1))
        do { let result = machine.requestEndArrived(); #expect(result == .disarm) }
        // A parked long-poll GET: nothing fires however long it waits.
        do { let result = machine.timerFired(now: at(10_000)); #expect(result == .none) }
        #expect(!machine.isFinished)
    }

    @Test func keepAliveIdleThenTheNextRequest() {
        var machine = Machine(timeouts: timeouts, now: start)
        _ = machine.requestHeadArrived(now: at(1))
        _ = machine.requestEndArrived()
        do { let result = machine.responseEnded(now: at(2)); #expect(result == .arm(at(7))) }
        // The first bytes of the next request end the idle period: its headers are due.
        do { let result = machine.bytesArrived(now: at(4)); #expect(result == .arm(at(64))) }
        do { let result = machine.requestHeadArrived(now: at(5)); #expect(result == .arm(at(304))) }
        _ = machine.requestEndArrived()
        do { let result = machine.responseEnded(now: at(6)); #expect(result == .arm(at(11))) }
        do { let result = machine.timerFired(now: at(11)); #expect(result == .close(.keepAlive, answer408: false)) }
    }

    @Test func aHeadArrivingInOneReadAfterIdleStartsTheRequestClock() {
        var machine = Machine(timeouts: timeouts, now: start)
        _ = machine.requestHeadArrived(now: at(1))
        _ = machine.requestEndArrived()
        _ = machine.responseEnded(now: at(2))
        do { let result = machine.requestHeadArrived(now: at(3)); #expect(result == .arm(at(303))) }
    }

    @Test func anEarlyAnswerKeepsTheRequestClock() {
        var machine = Machine(timeouts: timeouts, now: start)
        _ = machine.requestHeadArrived(now: at(1))
        // 413 before the body ended: the body still has to end in time.
        do { let result = machine.responseEnded(now: at(2)); #expect(result == .none) }
        do { let result = machine.timerFired(now: at(300)); #expect(result == .close(.request, answer408: true)) }
    }

    @Test func anUpgradeEndsAllTiming() {
        var machine = Machine(timeouts: timeouts, now: start)
        _ = machine.requestHeadArrived(now: at(1))
        do { let result = machine.upgraded(); #expect(result == .disarm) }
        do { let result = machine.timerFired(now: at(10_000)); #expect(result == .none) }
        do { let result = machine.bytesArrived(now: at(10_001)); #expect(result == .none) }
        do { let result = machine.responseEnded(now: at(10_002)); #expect(result == .none) }
    }

    @Test func zeroTurnsATimeoutOffAsInNode() {
        var machine = Machine(timeouts: HTTPConnectionTimeouts(headers: .zero, keepAlive: .zero, request: .seconds(300)), now: start)
        #expect(machine.initialAction == .arm(at(300)))
        _ = machine.requestHeadArrived(now: at(1))
        _ = machine.requestEndArrived()
        do { let result = machine.responseEnded(now: at(2)); #expect(result == .disarm) }
        var off = Machine(timeouts: HTTPConnectionTimeouts(headers: .zero, keepAlive: .zero, request: .zero), now: start)
        #expect(off.initialAction == .disarm)
        do { let result = off.timerFired(now: at(1_000_000)); #expect(result == .disarm) }
    }

    @Test func hugeTimeoutsSaturateInsteadOfTrapping() {
        var machine = Machine(timeouts: HTTPConnectionTimeouts(headers: .nanoseconds(.max), keepAlive: .nanoseconds(.max), request: .nanoseconds(.max)), now: start)
        #expect(machine.initialAction == .disarm)
        do { let result = machine.timerFired(now: at(1)); #expect(result == .disarm) }
    }
}
