/// The life of one `AMQPConnection` across lost sockets: which socket is current, whether the
/// application may send, whether recovery runs and on which attempt.
///
/// Pure: `ConnectionCore` feeds it on the connection's event loop and runs what it returns.
/// A socket is known by the `SocketID` the machine handed out when it was attached, so an
/// answer that belongs to an older socket (a restore that finished after its socket died and a
/// newer attempt took over) is recognised and dropped instead of announcing a recovery that
/// did not happen.
struct RecoveryStateMachine {
    struct SocketID: Hashable, Sendable, CustomStringConvertible {
        let raw: UInt64
        var description: String { "socket#\(raw)" }
    }

    enum State: Equatable {
        /// Before the first socket.
        case connecting
        /// The application's requests go to this socket.
        case open(SocketID)
        /// Reconnected; recovery re-declares on this socket while the application still gets
        /// `.notConnected`.
        case restoring(SocketID, attempt: Int)
        /// No socket; `attempt` attempts have been started since the loss.
        case recovering(attempt: Int)
        case closed
    }

    enum SocketClosedAction: Equatable {
        /// Closed by the application (or after giving up): end everything, no error to report.
        case finish
        /// Lost and not to be retried (recovery off, or credentials refused).
        case reportLostAndFinish(AMQPError)
        /// Lost: say so and start (or keep) recovering.
        case reportLostAndRecover(AMQPError)
    }

    enum AttemptAction: Equatable {
        /// Closed or closing meanwhile: the recovery task ends.
        case stop
        /// `maximumAttempts` used up.
        case giveUp(attempts: Int)
        /// Wait the back-off for this attempt, then connect to the endpoint for it.
        case reconnect(attempt: Int)
    }

    enum AttachAction: Equatable {
        /// The first socket: the application may use it.
        case opened(SocketID)
        /// A recovery socket: restore the topology on it.
        case restore(SocketID)
        /// Closed or closing meanwhile: close the new socket.
        case closeSocket
    }

    enum RestoreFinishedAction: Equatable {
        case announceRecovered(attempt: Int)
        /// The socket this restore ran on is no longer current: close it, a newer attempt goes on.
        case closeSocket
    }

    enum CloseRequestAction: Equatable {
        /// Send connection.close on the current socket; its close ends the connection.
        case closeSocket
        /// No socket (connecting or between attempts): end now.
        case finish
        case none
    }

    private(set) var state: State = .connecting
    private(set) var closeRequestedByApplication = false
    private var nextSocketID: UInt64 = 0
    let recoveryEnabled: Bool
    let maximumAttempts: Int?

    init(recoveryEnabled: Bool, maximumAttempts: Int?) {
        self.recoveryEnabled = recoveryEnabled
        self.maximumAttempts = maximumAttempts
    }

    // MARK: Queries

    /// Application requests (publish, declare, open channel) are taken only on an open socket
    /// that recovery is not still restoring.
    var acceptsApplicationWork: Bool {
        if case .open = state { return true }
        return false
    }

    /// Recovery's own requests are taken while it restores too.
    var acceptsRecoveryWork: Bool {
        switch state {
        case .open, .restoring: true
        case .connecting, .recovering, .closed: false
        }
    }

    var isRestoring: Bool {
        if case .restoring = state { return true }
        return false
    }

    var isClosed: Bool { state == .closed }

    /// A channel closed by the loss of its socket (or refused during a restore) is kept for
    /// recovery to reopen, unless nothing will be recovered.
    var keepsChannelsForRecovery: Bool { recoveryEnabled && !closeRequestedByApplication && state != .closed }

    // MARK: Events

    mutating func socketAttached() -> AttachAction {
        guard !closeRequestedByApplication else { return .closeSocket }
        switch state {
        case .connecting:
            let id = makeSocketID()
            state = .open(id)
            return .opened(id)
        case .recovering(let attempt):
            let id = makeSocketID()
            state = .restoring(id, attempt: attempt)
            return .restore(id)
        case .open, .restoring, .closed:
            // A second socket while one is current (or after the end) is never kept.
            return .closeSocket
        }
    }

    /// The current socket closed, for `error` (nil: a clean close).
    mutating func socketClosed(error: AMQPError?) -> SocketClosedAction {
        if closeRequestedByApplication || state == .closed {
            state = .closed
            return .finish
        }
        let lost = error ?? .connectionLost("socket closed")
        guard recoveryEnabled else {
            state = .closed
            return .reportLostAndFinish(lost)
        }
        if case .authenticationFailed = lost {
            // Credentials that failed once will fail again: do not hammer the broker.
            state = .closed
            return .reportLostAndFinish(lost)
        }
        switch state {
        case .restoring(_, let attempt), .recovering(let attempt):
            // Lost half-way through a recovery: keep backing off from where it was.
            state = .recovering(attempt: attempt)
        case .connecting, .open, .closed:
            state = .recovering(attempt: 0)
        }
        return .reportLostAndRecover(lost)
    }

    /// The recovery task is about to wait and try again.
    mutating func nextAttempt() -> AttemptAction {
        guard !closeRequestedByApplication, case .recovering(let done) = state else { return .stop }
        let attempt = done &+ 1
        if let maximumAttempts, attempt > maximumAttempts {
            state = .closed
            return .giveUp(attempts: maximumAttempts)
        }
        state = .recovering(attempt: attempt)
        return .reconnect(attempt: attempt)
    }

    mutating func restoreFinished(on socket: SocketID) -> RestoreFinishedAction {
        guard !closeRequestedByApplication, case .restoring(let current, let attempt) = state, current == socket else {
            return .closeSocket
        }
        state = .open(socket)
        return .announceRecovered(attempt: attempt)
    }

    mutating func closeRequested() -> CloseRequestAction {
        closeRequestedByApplication = true
        switch state {
        case .open, .restoring:
            return .closeSocket
        case .connecting, .recovering:
            state = .closed
            return .finish
        case .closed:
            return .none
        }
    }

    /// The first connect failed on every endpoint, or the connection was torn down.
    mutating func finished() {
        state = .closed
    }

    private mutating func makeSocketID() -> SocketID {
        nextSocketID &+= 1
        return SocketID(raw: nextSocketID)
    }
}
