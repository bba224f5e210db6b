import EngineIO
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// What a GET or POST for a session is answered with; the HTTP handler encodes it on its
/// own loop.
enum PollAnswer: Sendable {
    case packets([EnginePacket])
    case postAccepted
    case error(EngineRequestError)
}

/// One Engine.IO session: runs the actions of its `EngineSessionStateMachine` on its event
/// loop. It owns the parked long-poll GET, the WebSocket transport (and an upgrade probe),
/// and its heartbeat deadlines (in its loop's `HeartbeatTimers`: no NIO timer per session).
///
/// Sendable because every mutable stored property is touched only on `eventLoop`: public
/// entry points hop there first, and internal ones are called there by the handlers
/// (checked with `assertInEventLoop` in debug builds). `transportName` is the exception and
/// lives in a lock.
final class EngineSession: EngineConnection, HeartbeatClient, @unchecked Sendable {
    let id: String
    let eventLoop: any EventLoop
    let handshake: EngineHandshakeRequest
    let endpoint: EngineIOEndpoint

    private let transportNameBox: NIOLockedValueBox<EngineTransport>
    var transportName: String { transportNameBox.withLockedValue { $0.rawValue } }

    /// Set by the upper layer in `engineDidOpen`, on the loop.
    var delegate: (any EngineConnectionDelegate)?

    private var machine: EngineSessionStateMachine
    private var parkedPoll: EventLoopPromise<PollAnswer>?
    private var webSocket: EngineWebSocketHandler?
    private var probeWebSocket: EngineWebSocketHandler?
    private let heartbeats: HeartbeatTimers<EngineSession>
    /// Tokens of the current ping and pong deadlines (0: none); any other that falls due is stale.
    private var pingToken: UInt64 = 0
    private var pongToken: UInt64 = 0
    /// When the ping now awaited was due: its pong deadline counts from there.
    private var pingDueAt: NIODeadline
    private var upgradeTimer: Scheduled<Void>?
    private var upgradeCheckTimer: RepeatedTask?
    private var finalPollTimer: Scheduled<Void>?
    private var didClose = false
    /// The ping schedule starts here, as in the state machine.
    private let machineCreatedAt: NIODeadline

    init(
        id: String, transport: EngineTransport, eventLoop: any EventLoop,
        handshake: EngineHandshakeRequest, endpoint: EngineIOEndpoint, heartbeats: HeartbeatTimers<EngineSession>
    ) {
        self.heartbeats = heartbeats
        self.id = id
        self.eventLoop = eventLoop
        self.handshake = handshake
        self.endpoint = endpoint
        self.transportNameBox = NIOLockedValueBox(transport)
        let now = NIODeadline.now()
        self.machineCreatedAt = now
        self.pingDueAt = now + endpoint.configuration.pingInterval
        self.machine = EngineSessionStateMachine(
            transport: transport,
            maxOutboundBytes: endpoint.configuration.maxOutboundBufferBytes,
            allowUpgrades: endpoint.configuration.allowUpgrades,
            pingInterval: endpoint.configuration.pingInterval,
            pingTimeout: endpoint.configuration.pingTimeout,
            now: now
        )
        LiveObjects.engineSessions.created()
    }

    deinit {
        LiveObjects.engineSessions.destroyed()
    }

    var openPacket: EnginePacket {
        EngineHandshake(sid: id, transport: machine.transport ?? .polling, configuration: endpoint.configuration).openPacket
    }

    // MARK: EngineConnection

    var isWritable: Bool {
        eventLoop.assertInEventLoop()
        if let webSocket { return !webSocket.isBackedUp }
        return parkedPoll != nil
    }

    func send(_ messages: [EngineMessage]) {
        guard !messages.isEmpty else { return }
        EngineMetrics.messagesSent.increment(by: Int64(messages.count))
        onLoop { $0.run($0.machine.send(messages), request: nil) }
    }

    func close(reason: EngineCloseReason) {
        onLoop { $0.run($0.machine.closeRequested(reason), request: nil) }
    }

    private func onLoop(_ body: @escaping @Sendable (EngineSession) -> Void) {
        if eventLoop.inEventLoop {
            body(self)
        } else {
            eventLoop.execute { body(self) }
        }
    }

    // MARK: Lifecycle (called on the loop by the server)

    /// The open packet has been written: start the heartbeat and tell the upper layer.
    func opened(webSocket: EngineWebSocketHandler?) {
        eventLoop.assertInEventLoop()
        self.webSocket = webSocket
        armPing(from: machineCreatedAt)
        endpoint.delegate.engineDidOpen(self)
    }

    // MARK: Polling (called on the loop)

    func pollRequestArrived(answer promise: EventLoopPromise<PollAnswer>) {
        eventLoop.assertInEventLoop()
        run(machine.pollRequestArrived(), request: promise)
    }

    /// The connection of a parked GET closed; `promise` identifies which GET.
    func pollConnectionClosed(answer promise: EventLoopPromise<PollAnswer>) {
        eventLoop.assertInEventLoop()
        guard let parkedPoll, parkedPoll.futureResult === promise.futureResult else { return }
        self.parkedPoll = nil
        parkedPoll.succeed(.packets([]))
        run(machine.parkedPollAbandoned(), request: nil)
    }

    func pollDataArrived(_ body: ByteBuffer, answer promise: EventLoopPromise<PollAnswer>) {
        eventLoop.assertInEventLoop()
        if let error = machine.pollDataRequestCheck() {
            promise.succeed(.error(error))
            return
        }
        let packets: [EnginePacket]
        do {
            packets = try EnginePacketCodec.decodePayload(body)
        } catch {
            endpoint.logger.info("closing session: undecodable polling payload", metadata: ["sid": "\(id)", "error": "\(error)"])
            run(machine.receivedUndecodableData(from: .polling), request: promise)
            return
        }
        for packet in packets {
            run(machine.receivedPacket(packet, from: .polling), request: nil)
            if machine.isClosed { break }
        }
        promise.succeed(.postAccepted)
    }

    // MARK: WebSocket (called on the loop)

    func probeWebSocketArrived(_ handler: EngineWebSocketHandler) {
        eventLoop.assertInEventLoop()
        let action = machine.probeWebSocketArrived()
        if case .closeProbeWebSocket = action {
            handler.closeFromSession(code: .normalClosure)
            return
        }
        probeWebSocket = handler
        upgradeTimer = eventLoop.scheduleTask(in: endpoint.configuration.upgradeTimeout) { [self] in
            run(machine.upgradeTimeoutElapsed(), request: nil)
        }
        run(action, request: nil)
    }

    func webSocketReceived(_ packet: EnginePacket, from handler: EngineWebSocketHandler) {
        eventLoop.assertInEventLoop()
        guard handler === webSocket || handler === probeWebSocket else { return }
        run(machine.receivedPacket(packet, from: .websocket), request: nil)
    }

    func webSocketReceivedUndecodableData(from handler: EngineWebSocketHandler) {
        eventLoop.assertInEventLoop()
        guard handler === webSocket || handler === probeWebSocket else { return }
        endpoint.logger.info("closing session: undecodable WebSocket frame", metadata: ["sid": "\(id)"])
        run(machine.receivedUndecodableData(from: .websocket), request: nil)
    }

    func webSocketClosed(_ handler: EngineWebSocketHandler) {
        eventLoop.assertInEventLoop()
        if handler === probeWebSocket {
            probeWebSocket = nil
            upgradeTimer?.cancel()
            run(machine.webSocketClosed(wasProbe: true), request: nil)
        } else if handler === webSocket {
            run(machine.webSocketClosed(wasProbe: false), request: nil)
        }
    }

    /// The WebSocket could not keep up with what we wrote to it.
    func webSocketOverflowed(_ handler: EngineWebSocketHandler) {
        eventLoop.assertInEventLoop()
        guard handler === webSocket else { return }
        endpoint.logger.info("closing slow client", metadata: ["sid": "\(id)"])
        EngineMetrics.slowClientCloses.increment()
        run(machine.closeRequested(.slowClient), request: nil)
    }

    /// The WebSocket transport and the upgrade probe, where there are any (for tests that
    /// check they are freed). On the loop.
    var webSocketHandlers: [EngineWebSocketHandler] {
        eventLoop.assertInEventLoop()
        return [webSocket, probeWebSocket].compactMap { $0 }
    }

    // MARK: Running actions

    private func run(_ action: EngineSessionStateMachine.Action, request: EventLoopPromise<PollAnswer>?) {
        switch action {
        case .none:
            break
        case .deliver(let message):
            EngineMetrics.messagesReceived.increment()
            delegate?.connection(self, didReceive: message)
        case .writeWebSocket(let packets):
            webSocket?.sendFromSession(packets)
        case .answerPendingPoll(let packets):
            answerParkedPoll(.packets(packets))
        case .parkPoll:
            parkedPoll = request
        case .answerPoll(let packets):
            request?.succeed(.packets(packets))
        case .answerFinalPoll(let packets):
            request?.succeed(.packets(packets))
            finalPollTimer?.cancel()
            endpoint.unregister(self)
        case .rejectRequest(let error):
            request?.succeed(.error(error))
        case .heartbeatAcknowledged:
            pongToken = 0
            armPing(from: .now())
        case .answerProbe:
            probeWebSocket?.sendFromSession([.probePong])
            upgradeCheckTimer?.cancel()
            upgradeCheckTimer = eventLoop.scheduleRepeatedTask(
                initialDelay: EngineSessionStateMachine.upgradeCheckInterval,
                delay: EngineSessionStateMachine.upgradeCheckInterval
            ) { [self] task in
                guard machine.isUpgrading else { return task.cancel() }
                run(machine.upgradeCheckElapsed(), request: nil)
            }
        case .completeUpgrade(let flush, let rejectParkedPoll):
            upgradeTimer?.cancel()
            upgradeCheckTimer?.cancel()
            webSocket = probeWebSocket
            probeWebSocket = nil
            transportNameBox.withLockedValue { $0 = .websocket }
            endpoint.sessionUpgraded()
            if !flush.isEmpty { webSocket?.sendFromSession(flush) }
            if rejectParkedPoll { answerParkedPoll(.error(.badRequest)) }
        case .closeProbeWebSocket:
            upgradeTimer?.cancel()
            upgradeCheckTimer?.cancel()
            probeWebSocket?.closeFromSession(code: .normalClosure)
            probeWebSocket = nil
        case .close(let close):
            runClose(close, request: request)
        }
    }

    private func runClose(_ close: EngineSessionStateMachine.CloseAction, request: EventLoopPromise<PollAnswer>?) {
        pingToken = 0
        pongToken = 0
        heartbeats.remove(self)
        upgradeTimer?.cancel()
        upgradeCheckTimer?.cancel()
        if let packets = close.answerPendingPoll { answerParkedPoll(.packets(packets)) }
        answerParkedPoll(.packets([]))  // no-op when nothing is parked
        if let error = close.rejectCurrentRequest { request?.succeed(.error(error)) }
        if close.closeWebSocket { webSocket?.closeFromSession(code: .normalClosure) }
        probeWebSocket?.closeFromSession(code: .normalClosure)
        probeWebSocket = nil
        // The handler holds the session too: keeping it here would keep both alive for
        // as long as the process runs (one session, handler and handshake per connection).
        webSocket = nil
        if close.finalPollPackets != nil {
            // Keep the sid for one more GET that collects the close packet, but not forever.
            let grace = endpoint.configuration.pingInterval + endpoint.configuration.pingTimeout
            finalPollTimer = eventLoop.scheduleTask(in: grace) { [self] in
                run(machine.finalPollTimeoutElapsed(), request: nil)
            }
        } else {
            endpoint.unregister(self)
        }
        endpoint.sessionClosed(wasWebSocket: transportNameBox.withLockedValue { $0 } == .websocket, handshake: handshake)
        guard !didClose else { return }
        didClose = true
        let delegate = self.delegate
        self.delegate = nil  // breaks the session <-> upper-layer reference cycle
        delegate?.connectionDidClose(self, reason: close.reason)
    }

    private func answerParkedPoll(_ answer: PollAnswer) {
        guard let parkedPoll else { return }
        self.parkedPoll = nil
        parkedPoll.succeed(answer)
    }

    private func armPing(from start: NIODeadline) {
        pingDueAt = start + endpoint.configuration.pingInterval
        pingToken = heartbeats.schedule(self, at: start, after: endpoint.configuration.pingInterval)
    }

    /// One of this session's heartbeat deadlines fell due (on the loop).
    func heartbeatDue(token: UInt64) {
        eventLoop.assertInEventLoop()
        if token == pingToken {
            pingToken = 0
            run(machine.pingIntervalElapsed(), request: nil)
            guard !machine.isClosed else { return }
            // Measured from when the ping was due, not from when the (maybe late) timer ran.
            pongToken = heartbeats.schedule(self, at: pingDueAt, after: endpoint.configuration.pingTimeout)
        } else if token == pongToken {
            pongToken = 0
            run(machine.pingTimeoutElapsed(), request: nil)
        }
    }
}
