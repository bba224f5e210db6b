import NIOCore

/// Node's three HTTP server timeouts, for one connection. Defaults are Node's
/// (`server.headersTimeout`, `server.keepAliveTimeout`, `server.requestTimeout`).
/// Zero turns one off, as in Node.
public struct HTTPConnectionTimeouts: Sendable, Hashable {
    /// A request's headers must be complete this long after its first byte (for the first
    /// request: after the connection opened, so a connection that never speaks is covered).
    public var headers: TimeAmount = .seconds(60)
    /// Between two requests of a keep-alive connection: how long it may stay silent.
    public var keepAlive: TimeAmount = .seconds(5)
    /// A request's body must be complete this long after its first byte; answered with 408.
    public var request: TimeAmount = .seconds(300)

    public init() {}

    public init(headers: TimeAmount, keepAlive: TimeAmount, request: TimeAmount) {
        self.headers = headers
        self.keepAlive = keepAlive
        self.request = request
    }
}

/// When an HTTP connection is closed for being too slow, as a plain state machine: events
/// in, the deadline to arm (or the expiry to act on) out. `HTTPConnectionTimeoutHandler`
/// runs it.
///
/// Only the client's side is timed. Once a request has fully arrived the server owns the
/// connection until it answers (a parked long-poll GET waits up to `pingInterval`, a
/// fallback request as long as the application takes), so no timer runs then; after an
/// upgrade the connection is a WebSocket, whose liveness Engine.IO's ping timeout checks.
struct HTTPConnectionTimeoutStateMachine {
    enum Expiry: String, Sendable, Hashable {
        case headers, keepAlive = "keep_alive", request
    }

    enum Action: Equatable {
        case none
        /// Replace the armed timer with one at this deadline.
        case arm(NIODeadline)
        /// No timer should run.
        case disarm
        /// Give up on the connection. `answer408` when a request head arrived (Node answers
        /// 408 then); a connection without one is simply closed.
        case close(Expiry, answer408: Bool)
    }

    private enum State: Equatable {
        /// Waiting for a request's head. `requestDeadline` also runs: the body clock starts
        /// with the first byte, as Node's.
        case receivingHead(headersDeadline: NIODeadline, requestDeadline: NIODeadline)
        case receivingBody(requestDeadline: NIODeadline)
        /// The request is complete; the server is answering it.
        case responding
        /// Between two keep-alive requests, no byte of the next one yet.
        case idle(deadline: NIODeadline)
        /// Upgraded, timed out or closed: nothing to time any more.
        case finished
    }

    private let timeouts: HTTPConnectionTimeouts
    private var state: State

    /// The connection just opened: its first request's headers are due.
    init(timeouts: HTTPConnectionTimeouts, now: NIODeadline) {
        self.timeouts = timeouts
        self.state = .receivingHead(headersDeadline: Self.deadline(now, timeouts.headers), requestDeadline: Self.deadline(now, timeouts.request))
    }

    /// The deadline to arm right after `init`.
    var initialAction: Action { armNext }

    var isFinished: Bool { state == .finished }

    /// Some bytes came in (a read completed), whether or not they made a whole head.
    mutating func bytesArrived(now: NIODeadline) -> Action {
        guard case .idle = state else { return .none }
        state = .receivingHead(headersDeadline: Self.deadline(now, timeouts.headers), requestDeadline: Self.deadline(now, timeouts.request))
        return armNext
    }

    mutating func requestHeadArrived(now: NIODeadline) -> Action {
        switch state {
        case .receivingHead(_, let requestDeadline):
            state = .receivingBody(requestDeadline: requestDeadline)
        case .idle:
            // The whole head came in the read that ended the idle period.
            state = .receivingBody(requestDeadline: Self.deadline(now, timeouts.request))
        case .receivingBody, .responding, .finished:
            return .none
        }
        return armNext
    }

    mutating func requestEndArrived() -> Action {
        switch state {
        case .receivingBody, .receivingHead:
            state = .responding
            return .disarm
        case .idle, .responding, .finished:
            return .none
        }
    }

    /// The response's end was written. A connection that stays open waits for its next
    /// request at most `keepAlive`.
    mutating func responseEnded(now: NIODeadline) -> Action {
        switch state {
        case .responding:
            state = .idle(deadline: Self.deadline(now, timeouts.keepAlive))
            return armNext
        case .receivingHead, .receivingBody, .idle, .finished:
            // An early answer (e.g. 413 before the body ended): the request clock keeps
            // running until its end arrives.
            return .none
        }
    }

    /// Switching protocols (WebSocket): HTTP timeouts no longer apply.
    mutating func upgraded() -> Action {
        state = .finished
        return .disarm
    }

    /// The armed timer fired at `now`: either a deadline has passed, or (a timer armed
    /// before a later event) the next one is re-armed.
    mutating func timerFired(now: NIODeadline) -> Action {
        switch state {
        case .receivingHead(let headersDeadline, let requestDeadline):
            if now >= headersDeadline { return finish(.headers, answer408: false) }
            if now >= requestDeadline { return finish(.request, answer408: false) }
        case .receivingBody(let requestDeadline):
            if now >= requestDeadline { return finish(.request, answer408: true) }
        case .idle(let deadline):
            if now >= deadline { return finish(.keepAlive, answer408: false) }
        case .responding, .finished:
            return .none
        }
        return armNext
    }

    private mutating func finish(_ expiry: Expiry, answer408: Bool) -> Action {
        state = .finished
        return .close(expiry, answer408: answer408)
    }

    /// Zero or less turns a timeout off, as in Node.
    private static func deadline(_ now: NIODeadline, _ timeout: TimeAmount) -> NIODeadline {
        timeout > .zero ? now + timeout : .distantFuture
    }

    private var armNext: Action {
        guard let deadline = nextDeadline, deadline != .distantFuture else { return .disarm }
        return .arm(deadline)
    }

    private var nextDeadline: NIODeadline? {
        switch state {
        case .receivingHead(let headersDeadline, let requestDeadline): min(headersDeadline, requestDeadline)
        case .receivingBody(let requestDeadline): requestDeadline
        case .idle(let deadline): deadline
        case .responding, .finished: nil
        }
    }
}
