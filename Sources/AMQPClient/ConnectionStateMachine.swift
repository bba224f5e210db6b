import AMQPProtocol

/// The values both peers agreed on in connection.tune / tune-ok.
public struct AMQPNegotiatedParameters: Sendable, Hashable {
    public var channelMax: UInt16
    public var frameMax: UInt32
    /// Seconds; 0 = no heartbeats.
    public var heartbeat: UInt16

    /// For each limit 0 means "no limit": take the other side's value, else the lower of the two.
    /// Heartbeat follows the same rule (lower non-zero of both), as the RabbitMQ clients do.
    static func negotiate(client: ConnectionTuneOk, server: ConnectionTune) -> AMQPNegotiatedParameters {
        func lowerNonZero<T: FixedWidthInteger>(_ a: T, _ b: T) -> T {
            if a == 0 { return b }
            if b == 0 { return a }
            return min(a, b)
        }
        var channelMax = lowerNonZero(client.channelMax, server.channelMax)
        // 0 from both: the protocol allows 65535 channels.
        if channelMax == 0 { channelMax = .max }
        var frameMax = lowerNonZero(client.frameMax, server.frameMax)
        if frameMax == 0 { frameMax = 131_072 }
        return AMQPNegotiatedParameters(
            channelMax: channelMax,
            frameMax: frameMax,
            heartbeat: lowerNonZero(client.heartbeat, server.heartbeat)
        )
    }
}

/// The AMQP connection (channel 0) as a pure state machine: handshake, tune, open, blocked/unblocked,
/// heartbeats and close. Each event returns what the I/O layer must do; nothing here touches a socket.
struct ConnectionStateMachine {
    enum State: Equatable {
        case idle
        /// Protocol header sent, waiting for connection.start.
        case awaitingStart
        /// start-ok (credentials) sent, waiting for tune. A close here means the credentials were refused.
        case awaitingTune
        case awaitingOpenOk(AMQPNegotiatedParameters)
        case open(AMQPNegotiatedParameters)
        /// We sent connection.close and wait for close-ok.
        case closing
        case closed
    }

    enum Action: Equatable {
        case none
        case sendProtocolHeader
        case send(AMQPMethod)
        /// Send tune-ok then open in one write; the frame decoder may now accept `frameMax`.
        case sendTuneOkAndOpen(ConnectionTuneOk, ConnectionOpen, AMQPNegotiatedParameters)
        case connectionEstablished(AMQPNegotiatedParameters)
        case sendHeartbeat
        case blocked(reason: String)
        case unblocked
        /// Reply close-ok to the broker's close, then close the socket and report `error`.
        case sendCloseOkAndClose(AMQPError)
        /// Close the socket and report `error` (nil: an orderly close we asked for).
        case closeSocket(AMQPError?)
        /// Send connection.close with this reason, then close after close-ok (or a timeout).
        case sendCloseAndFail(ConnectionClose, AMQPError)
    }

    struct Credentials: Equatable, CustomStringConvertible, CustomReflectable {
        var username: String
        var password: String
        var virtualHost: String
        var clientProperties: AMQPFieldTable
        var desired: ConnectionTuneOk

        // A state printed into a log line must not carry the password.
        var description: String { "Credentials(username: \(username), password: ***, virtualHost: \(virtualHost))" }
        var customMirror: Mirror { Mirror(self, children: ["username": username, "password": "***", "virtualHost": virtualHost]) }
    }

    private(set) var state: State = .idle
    private let credentials: Credentials
    private var heartbeatTicksWithoutRead = 0
    private var sawReadSinceLastTick = false

    init(credentials: Credentials) {
        self.credentials = credentials
    }

    mutating func channelActive() -> Action {
        guard case .idle = state else { return .none }
        state = .awaitingStart
        return .sendProtocolHeader
    }

    /// Any frame from the broker counts as proof of life for heartbeats.
    mutating func frameReceived() {
        sawReadSinceLastTick = true
    }

    mutating func received(_ method: AMQPMethod) -> Action {
        switch (state, method) {
        case (.awaitingStart, .connectionStart(let start)):
            let mechanisms = start.mechanisms.split(separator: " ").map(String.init)
            guard mechanisms.contains("PLAIN") else {
                state = .closed
                return .closeSocket(.authenticationFailed("broker offers no PLAIN mechanism (offers: \(start.mechanisms))"))
            }
            state = .awaitingTune
            // SASL PLAIN: authzid NUL authcid NUL password.
            let response = "\u{0}\(credentials.username)\u{0}\(credentials.password)"
            return .send(.connectionStartOk(ConnectionStartOk(
                clientProperties: credentials.clientProperties, mechanism: "PLAIN", response: response, locale: "en_US")))

        case (.awaitingTune, .connectionTune(let tune)):
            let negotiated = AMQPNegotiatedParameters.negotiate(client: credentials.desired, server: tune)
            state = .awaitingOpenOk(negotiated)
            let tuneOk = ConnectionTuneOk(channelMax: negotiated.channelMax, frameMax: negotiated.frameMax,
                                          heartbeat: negotiated.heartbeat)
            return .sendTuneOkAndOpen(tuneOk, ConnectionOpen(virtualHost: credentials.virtualHost), negotiated)

        case (.awaitingOpenOk(let negotiated), .connectionOpenOk):
            state = .open(negotiated)
            return .connectionEstablished(negotiated)

        case (.closing, .connectionCloseOk):
            state = .closed
            return .closeSocket(nil)

        case (.closing, .connectionClose):
            // Both sides closed at once: answer and finish.
            state = .closed
            return .sendCloseOkAndClose(.connectionClosed)

        case (.closed, _), (.closing, _):
            return .none

        case (_, .connectionClose(let close)):
            let reason = AMQPCloseReason(replyCode: close.replyCode, replyText: close.replyText,
                                         classID: close.classID, methodID: close.methodID)
            let error: AMQPError
            switch state {
            case .awaitingTune, .awaitingStart:
                error = .authenticationFailed(reason.description)
            case .awaitingOpenOk where reason.kind == .accessRefused || reason.kind == .notAllowed || reason.kind == .invalidPath:
                // Refused vhost access: also a credentials problem, not worth retrying.
                error = .authenticationFailed(reason.description)
            default:
                error = .connectionClosedByBroker(reason)
            }
            state = .closed
            return .sendCloseOkAndClose(error)

        case (.open, .connectionBlocked(let blocked)):
            return .blocked(reason: blocked.reason)

        case (.open, .connectionUnblocked):
            return .unblocked

        default:
            return protocolViolation("unexpected \(method) on channel 0 in state \(state)")
        }
    }

    /// Application asks for an orderly close.
    mutating func closeRequested() -> Action {
        switch state {
        case .open:
            state = .closing
            return .send(.connectionClose(ConnectionClose(replyCode: 200, replyText: "bye", classID: 0, methodID: 0)))
        case .closing, .closed:
            return .none
        case .idle, .awaitingStart, .awaitingTune, .awaitingOpenOk:
            state = .closed
            return .closeSocket(.connectionClosed)
        }
    }

    /// The TCP connection ended. Returns the error to report (nil for an orderly close).
    mutating func socketClosed() -> AMQPError? {
        let previous = state
        state = .closed
        switch previous {
        case .closed:
            return nil
        case .closing:
            return nil
        case .awaitingTune:
            // Brokers without authentication_failure_close just drop the socket after a bad start-ok.
            return .authenticationFailed("connection closed by broker during authentication (wrong user or password?)")
        case .idle, .awaitingStart, .awaitingOpenOk, .open:
            return .connectionLost("connection closed by peer")
        }
    }

    /// Called every heartbeat interval while open. Two intervals without any frame from the broker
    /// mean the peer is dead.
    mutating func heartbeatTick() -> Action {
        guard case .open = state else { return .none }
        if sawReadSinceLastTick {
            heartbeatTicksWithoutRead = 0
        } else {
            heartbeatTicksWithoutRead += 1
        }
        sawReadSinceLastTick = false
        if heartbeatTicksWithoutRead >= 2 {
            state = .closed
            return .closeSocket(.heartbeatTimeout)
        }
        return .sendHeartbeat
    }

    private mutating func protocolViolation(_ text: String) -> Action {
        state = .closing
        let close = ConnectionClose(replyCode: 505, replyText: "UNEXPECTED_FRAME - \(text)", classID: 0, methodID: 0)
        return .sendCloseAndFail(close, .protocolViolation(text))
    }
}
