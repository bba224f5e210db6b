import EngineIO
import NIOConcurrencyHelpers
import NIOCore

/// One event loop's heartbeat timer for all of its Engine.IO sessions: the sessions'
/// ping and pong deadlines wait in a `HeartbeatQueue`, and one NIO task, set for the
/// earliest of them (rounded up to `granularity`, so a loop wakes at most every 5 ms for
/// heartbeats), hands out whatever fell due. A session keeps the tokens of its current
/// deadlines and ignores the others: cancelling costs nothing.
///
/// Confined to `eventLoop` (asserted): every session using it lives there.
final class HeartbeatTimers<Client: HeartbeatClient>: @unchecked Sendable {
    /// How late a heartbeat may fire so that deadlines close together share one wake-up. A
    /// ping that leaves late shortens the client's time to answer (the pong deadline counts
    /// from when the ping was due), so this stays a small part of any sane `pingTimeout`.
    static var granularity: TimeAmount { .milliseconds(5) }

    let eventLoop: any EventLoop
    private var queue = HeartbeatQueue<ObjectIdentifier>()
    /// Sessions with a deadline: a closed session is removed, so a deadline that outlives
    /// it finds nothing (and does not keep it alive).
    private var sessions: [ObjectIdentifier: Client] = [:]
    private var wakeUp: Scheduled<Void>?
    private var wakeUpAt: NIODeadline?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Asks for `session.heartbeatDue(token:)` at `start + delay` (or up to `granularity`
    /// later); returns the token.
    func schedule(_ session: Client, at start: NIODeadline, after delay: TimeAmount) -> UInt64 {
        eventLoop.assertInEventLoop()
        let key = ObjectIdentifier(session)
        sessions[key] = session
        let token = queue.schedule(key, at: start, after: delay)
        armWakeUp()
        return token
    }

    /// The session closed: nothing of it fires any more.
    func remove(_ session: Client) {
        eventLoop.assertInEventLoop()
        sessions[ObjectIdentifier(session)] = nil
    }

    /// Sessions known here (for tests).
    var sessionCount: Int { sessions.count }

    private func armWakeUp() {
        guard let earliest = queue.earliestDeadline else { return }
        let rounded = Self.roundedUp(earliest)
        if let wakeUpAt, wakeUpAt <= rounded { return }
        wakeUp?.cancel()
        wakeUpAt = rounded
        wakeUp = eventLoop.scheduleTask(deadline: rounded) { [self] in fire() }
    }

    private func fire() {
        wakeUp = nil
        wakeUpAt = nil
        for due in queue.expire(now: eventLoop.now) {
            // The session may schedule again from here (a ping arms its pong deadline).
            sessions[due.member]?.heartbeatDue(token: due.token)
        }
        armWakeUp()
    }

    static func roundedUp(_ deadline: NIODeadline) -> NIODeadline {
        let step = UInt64(granularity.nanoseconds)
        let nanos = deadline.uptimeNanoseconds
        let (quotient, remainder) = nanos.quotientAndRemainder(dividingBy: step)
        guard remainder != 0 else { return deadline }
        let (up, overflow) = (quotient + 1).multipliedReportingOverflow(by: step)
        return overflow ? deadline : .uptimeNanoseconds(up)
    }
}

/// What `HeartbeatTimers` calls when one of its deadlines falls due.
protocol HeartbeatClient: AnyObject, Sendable {
    /// `token` is what `schedule` returned; ignore it unless it is the current one.
    func heartbeatDue(token: UInt64)
}
