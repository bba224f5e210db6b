import NIOCore

/// The protocol logic of one Engine.IO session, with no I/O: every event is a `mutating func`
/// that returns the `Action` the I/O layer must run (postgres-nio style). The I/O layer owns
/// sockets, timers and the parked HTTP request; this struct owns every decision.
///
/// Timers: the I/O layer arms the ping timer when the session is created and re-arms it on
/// `.heartbeatAcknowledged`; it arms the pong deadline after every `pingIntervalElapsed()`
/// that did not close the session. Stale timer events are harmless: the machine ignores a
/// deadline once the pong it waited for has arrived. Timers can fire late on a busy
/// machine, so a GET also checks the clock: a session whose pong deadline has passed is
/// dead even if its timer has not run yet.
public struct EngineSessionStateMachine: Sendable {
    /// How the session is closed: what to tell the parked GET, the current request and the
    /// WebSocket. The delegate is told `reason` exactly once, when this action is returned.
    public struct CloseAction: Sendable, Hashable {
        public var reason: EngineCloseReason
        /// Answer the parked GET with these packets (nil: no GET was parked).
        public var answerPendingPoll: [EnginePacket]?
        /// Refuse the request that caused the close with this error.
        public var rejectCurrentRequest: EngineRequestError?
        /// Keep the session id registered until one more GET collects these packets (queued
        /// data plus `1`), so a polling client learns why it was closed. nil: forget the
        /// session now; later requests get `Session ID unknown`.
        public var finalPollPackets: [EnginePacket]?
        /// Close the active WebSocket (after writing what was queued before).
        public var closeWebSocket: Bool
    }

    public enum Action: Sendable, Hashable {
        case none
        /// Hand this message to the delegate.
        case deliver(EngineMessage)
        /// Write these packets, one frame each, on the session's WebSocket.
        case writeWebSocket([EnginePacket])
        /// Answer the parked GET with these packets.
        case answerPendingPoll([EnginePacket])
        /// Park the current GET until data is queued.
        case parkPoll
        /// Answer the current GET with these packets.
        case answerPoll([EnginePacket])
        /// Answer the current GET with these packets; the session is now finished (forget it).
        case answerFinalPoll([EnginePacket])
        /// Refuse the current request; the session is unaffected.
        case rejectRequest(EngineRequestError)
        /// A pong arrived: cancel the pong deadline, arm the next ping.
        case heartbeatAcknowledged
        /// Write `3probe` on the probe WebSocket and call `upgradeCheckElapsed()` every
        /// `EngineSessionStateMachine.upgradeCheckInterval` while `isUpgrading`.
        case answerProbe
        /// `5` arrived: the probe WebSocket becomes the transport. Write `flush` on it; refuse
        /// a still-parked GET with `Bad request` if asked (a client that upgrades has
        /// stopped polling, so such a GET is stale).
        case completeUpgrade(flush: [EnginePacket], rejectPendingPoll: Bool)
        /// Accept-then-close the probe WebSocket (it is not wanted or timed out); the
        /// session goes on over polling.
        case closeProbeWebSocket
        case close(CloseAction)
    }

    private enum ProbeState: Sendable, Hashable {
        case none
        /// A WebSocket for this sid is open, `2probe` not yet seen.
        case attached
        /// `3probe` sent; waiting for `5`. A parked GET is released with `6` by the next
        /// upgrade check, so the client can pause polling and send `5`.
        case answered
    }

    private enum State: Sendable, Hashable {
        case polling(pollIsParked: Bool, probe: ProbeState)
        case websocket
        /// Closed by the server while polling, waiting for one last GET to collect these.
        case awaitingFinalPoll([EnginePacket])
        case closed
    }

    private var state: State
    /// Packets waiting for a GET (polling only; WebSocket writes go straight out).
    private var outboundQueue: [EnginePacket] = []
    private var outboundQueueBytes = 0
    private let maxOutboundBytes: Int
    private let allowUpgrades: Bool
    private var awaitingPong = false
    private let pingInterval: TimeAmount
    private let pingTimeout: TimeAmount
    /// When the next ping is due (the ping timer's deadline).
    private var nextPingDue: NIODeadline
    /// When the pong for the last ping is due; meaningful while `awaitingPong`.
    private var pongDeadline: NIODeadline

    /// - Parameter now: when the session was created; the first ping is due `pingInterval` later.
    public init(
        transport: EngineTransport, maxOutboundBytes: Int, allowUpgrades: Bool = true,
        pingInterval: TimeAmount = .seconds(25), pingTimeout: TimeAmount = .seconds(20), now: NIODeadline = .now()
    ) {
        self.state = transport == .polling ? .polling(pollIsParked: false, probe: .none) : .websocket
        self.maxOutboundBytes = maxOutboundBytes
        self.allowUpgrades = allowUpgrades
        self.pingInterval = pingInterval
        self.pingTimeout = pingTimeout
        self.nextPingDue = now + pingInterval
        self.pongDeadline = now + pingInterval + pingTimeout
    }

    /// The transport data goes over now; nil once closed.
    public var transport: EngineTransport? {
        switch state {
        case .polling: .polling
        case .websocket: .websocket
        case .awaitingFinalPoll, .closed: nil
        }
    }

    public var isClosed: Bool { transport == nil }
    public var hasParkedPoll: Bool {
        if case .polling(pollIsParked: true, _) = state { return true }
        return false
    }
    /// The upgrade probe got its `3probe` and `5` is awaited.
    public var isUpgrading: Bool {
        if case .polling(_, probe: .answered) = state { return true }
        return false
    }
    public var queuedPacketCount: Int { outboundQueue.count }

    // MARK: Outbound

    /// The upper layer sends messages.
    public mutating func send(_ messages: [EngineMessage]) -> Action {
        enqueue(messages.map(EnginePacket.init(message:)))
    }

    private mutating func enqueue(_ packets: [EnginePacket]) -> Action {
        guard !packets.isEmpty else { return .none }
        switch state {
        case .awaitingFinalPoll, .closed:
            return .none
        case .websocket:
            return .writeWebSocket(packets)
        case .polling(let parked, let probe):
            outboundQueue.append(contentsOf: packets)
            outboundQueueBytes += packets.reduce(0) { $0 + $1.approximateWireSize }
            if outboundQueueBytes > maxOutboundBytes {
                return closeFromServer(.slowClient, lingerForFinalPoll: false)
            }
            guard parked else { return .none }
            state = .polling(pollIsParked: false, probe: probe)
            return .answerPendingPoll(takeQueue())
        }
    }

    private mutating func takeQueue() -> [EnginePacket] {
        defer {
            outboundQueue = []
            outboundQueueBytes = 0
        }
        return outboundQueue
    }

    // MARK: Heartbeat

    /// The ping timer fired: send `2`. Unless this closed the session, arm the pong deadline.
    public mutating func pingIntervalElapsed() -> Action {
        guard !isClosed else { return .none }
        awaitingPong = true
        pongDeadline = nextPingDue + pingTimeout
        return enqueue([.ping])
    }

    /// The pong deadline passed.
    public mutating func pingTimeoutElapsed() -> Action {
        guard !isClosed, awaitingPong else { return .none }
        return closeAbruptly(.pingTimeout, answerPendingPollWith: [.close], rejectCurrent: nil)
    }

    // MARK: Polling requests

    /// A GET for this session arrived.
    public mutating func pollRequestArrived(now: NIODeadline = .now()) -> Action {
        if case .polling = state, heartbeatExpired(now: now) {
            return closeAbruptly(.pingTimeout, answerPendingPollWith: [.close], rejectCurrent: .unknownSessionID)
        }
        switch state {
        case .closed:
            return .rejectRequest(.unknownSessionID)
        case .awaitingFinalPoll(let packets):
            state = .closed
            return .answerFinalPoll(packets)
        case .websocket:
            return .rejectRequest(.badRequest)
        case .polling(pollIsParked: true, _):
            // Two GETs at once means the client is confused about the session: end it.
            return closeAbruptly(.transportError, answerPendingPollWith: [.close], rejectCurrent: .badRequest)
        case .polling(pollIsParked: false, let probe):
            if !outboundQueue.isEmpty { return .answerPoll(takeQueue()) }
            state = .polling(pollIsParked: true, probe: probe)
            return .parkPoll
        }
    }

    /// The pong deadline has passed (or the ping is so late that it could not be answered in time).
    private func heartbeatExpired(now: NIODeadline) -> Bool {
        now >= (awaitingPong ? pongDeadline : nextPingDue + pingTimeout)
    }

    /// The parked GET's connection went away before it was answered.
    public mutating func parkedPollAbandoned() -> Action {
        if case .polling(pollIsParked: true, let probe) = state {
            state = .polling(pollIsParked: false, probe: probe)
        }
        return .none
    }

    /// Whether a POST may deliver packets now (checked before decoding its body).
    public func pollDataRequestCheck() -> EngineRequestError? {
        switch state {
        case .polling: nil
        case .websocket: .badRequest
        case .awaitingFinalPoll, .closed: .unknownSessionID
        }
    }

    // MARK: Inbound packets

    /// Bytes from the client could not be decoded (bad POST body or WebSocket frame).
    public mutating func receivedUndecodableData(from source: EngineTransport) -> Action {
        if source == .websocket, case .polling = state {
            // Garbage on the probe WebSocket ends the upgrade attempt, not the session.
            return abortProbe()
        }
        return closeAbruptly(.parseError, answerPendingPollWith: [.close], rejectCurrent: .badRequest)
    }

    /// One decoded packet arrived on `source`. On a polling session, packets from the
    /// WebSocket are the upgrade probe's.
    public mutating func receivedPacket(
        _ packet: EnginePacket, from source: EngineTransport, now: NIODeadline = .now()
    ) -> Action {
        switch state {
        case .awaitingFinalPoll, .closed:
            return .none
        case .polling(let parked, let probe) where source == .websocket:
            return receivedProbePacket(packet, pollIsParked: parked, probe: probe)
        case .polling, .websocket:
            switch packet.type {
            case .message:
                return .deliver(packet.message!)
            case .pong:
                guard awaitingPong else { return .none }
                awaitingPong = false
                nextPingDue = now + pingInterval
                return .heartbeatAcknowledged
            case .close:
                if case .polling(pollIsParked: false, _) = state {
                    // The client's GET and its POST of `1` race; whichever comes second, the
                    // GET must get `6` (not 400), so the sid stays for that one GET.
                    state = .awaitingFinalPoll([.noop])
                    outboundQueue = []
                    outboundQueueBytes = 0
                    return .close(CloseAction(reason: .transportClose, answerPendingPoll: nil, rejectCurrentRequest: nil,
                                              finalPollPackets: [.noop], closeWebSocket: false))
                }
                return closeAbruptly(.transportClose, answerPendingPollWith: [.noop], rejectCurrent: nil)
            case .ping:
                // v4 clients do not ping; answer anyway rather than treat it as an error.
                return enqueue([EnginePacket(type: .pong, textUTF8: packet.payload)])
            case .noop, .upgrade:
                return .none
            case .open:
                return closeAbruptly(.parseError, answerPendingPollWith: [.close], rejectCurrent: .badRequest)
            }
        }
    }

    private mutating func receivedProbePacket(_ packet: EnginePacket, pollIsParked: Bool, probe: ProbeState) -> Action {
        switch (packet.type, probe) {
        case (.ping, .attached) where packet.payload.readableBytesView.elementsEqual("probe".utf8):
            state = .polling(pollIsParked: pollIsParked, probe: .answered)
            return .answerProbe
        case (.upgrade, .answered), (.upgrade, .attached):
            state = .websocket
            return .completeUpgrade(flush: takeQueue(), rejectPendingPoll: pollIsParked)
        default:
            return abortProbe()
        }
    }

    // MARK: Upgrade

    /// A WebSocket arrived carrying this session's sid.
    public mutating func probeWebSocketArrived() -> Action {
        guard allowUpgrades, case .polling(let parked, probe: .none) = state else { return .closeProbeWebSocket }
        state = .polling(pollIsParked: parked, probe: .attached)
        return .none
    }

    /// How often a GET parked during an upgrade is released with `6` (as the reference
    /// server does: not at once, so a `5` that is already on its way wins the race).
    public static let upgradeCheckInterval: TimeAmount = .milliseconds(100)

    /// The periodic upgrade check (see `answerProbe`).
    public mutating func upgradeCheckElapsed() -> Action {
        guard case .polling(pollIsParked: true, probe: .answered) = state else { return .none }
        state = .polling(pollIsParked: false, probe: .answered)
        return .answerPendingPoll([.noop])
    }

    /// The upgrade timeout passed since the probe WebSocket arrived.
    public mutating func upgradeTimeoutElapsed() -> Action {
        guard case .polling(_, let probe) = state, probe != .none else { return .none }
        return abortProbe()
    }

    private mutating func abortProbe() -> Action {
        guard case .polling(let parked, let probe) = state, probe != .none else { return .none }
        state = .polling(pollIsParked: parked, probe: .none)
        return .closeProbeWebSocket
    }

    // MARK: Transport loss and close

    /// The probe WebSocket or the session's WebSocket closed underneath us.
    public mutating func webSocketClosed(wasProbe: Bool) -> Action {
        if wasProbe {
            if case .polling(let parked, _) = state { state = .polling(pollIsParked: parked, probe: .none) }
            return .none
        }
        guard case .websocket = state else { return .none }
        return closeAbruptly(.transportClose, answerPendingPollWith: nil, rejectCurrent: nil)
    }

    /// The upper layer (or server shutdown) closes the session.
    public mutating func closeRequested(_ reason: EngineCloseReason) -> Action {
        closeFromServer(reason, lingerForFinalPoll: true)
    }

    /// The final-poll grace period passed without the client collecting its close packet.
    public mutating func finalPollTimeoutElapsed() -> Action {
        guard case .awaitingFinalPoll = state else { return .none }
        state = .closed
        return .answerFinalPoll([])
    }

    /// The server ends the session on purpose: queued data and `1` still reach a polling
    /// client (in the parked GET, or the next one if `lingerForFinalPoll`).
    private mutating func closeFromServer(_ reason: EngineCloseReason, lingerForFinalPoll: Bool) -> Action {
        switch state {
        case .awaitingFinalPoll, .closed:
            return .none
        case .websocket:
            state = .closed
            return .close(CloseAction(reason: reason, answerPendingPoll: nil, rejectCurrentRequest: nil,
                                      finalPollPackets: nil, closeWebSocket: true))
        case .polling(let parked, _):
            var finalPackets = reason == .slowClient ? [] : takeQueue()
            outboundQueue = []
            outboundQueueBytes = 0
            finalPackets.append(.close)
            if parked {
                state = .closed
                return .close(CloseAction(reason: reason, answerPendingPoll: finalPackets, rejectCurrentRequest: nil,
                                          finalPollPackets: nil, closeWebSocket: false))
            }
            state = lingerForFinalPoll ? .awaitingFinalPoll(finalPackets) : .closed
            return .close(CloseAction(reason: reason, answerPendingPoll: nil, rejectCurrentRequest: nil,
                                      finalPollPackets: lingerForFinalPoll ? finalPackets : nil, closeWebSocket: false))
        }
    }

    /// The session ends because of the client (error, close packet, timeout): it is
    /// forgotten at once, so later requests for it get `Session ID unknown`.
    private mutating func closeAbruptly(
        _ reason: EngineCloseReason, answerPendingPollWith packets: [EnginePacket]?, rejectCurrent: EngineRequestError?
    ) -> Action {
        let wasParked = hasParkedPoll
        let wasWebSocket = transport == .websocket
        guard !isClosed else { return .none }
        state = .closed
        outboundQueue = []
        outboundQueueBytes = 0
        return .close(CloseAction(
            reason: reason,
            answerPendingPoll: wasParked ? packets : nil,
            rejectCurrentRequest: rejectCurrent,
            finalPollPackets: nil,
            closeWebSocket: wasWebSocket
        ))
    }
}
