import AMQPProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// All mutable state of one logical connection (which outlives its sockets across recovery).
///
/// Concurrency: every stored property is read and written only on `eventLoop` (the same loop is used
/// for every socket of this connection); public types reach it with `eventLoop.execute`/`submit` and
/// NIO promises. That confinement is what makes the `@unchecked Sendable` sound.
final class ConnectionCore: @unchecked Sendable, AMQPConnectionHandlerDelegate {
    let eventLoop: EventLoop
    let configuration: AMQPConnectionConfiguration
    let logger: Logger

    /// Which socket is current, whether the application may send, which recovery attempt runs.
    var lifecycle: RecoveryStateMachine
    var handler: AMQPConnectionHandler?
    var socket: Channel?
    var negotiated: AMQPNegotiatedParameters?
    var channels: [UInt16: ChannelCore] = [:]
    var topology = TopologyRecorder()
    /// Recovery's back-off between attempts, on this loop so that close() can cut it short.
    private var backoffTimer: Scheduled<Void>?
    private var backoffWake: EventLoopPromise<Void>?
    var stateObservers: [Int: AsyncStream<AMQPConnectionState>.Continuation] = [:]
    var nextObserverID = 0
    var closedPromise: EventLoopPromise<Void>
    private var didFinish = false
    var consumersHoldingReads = 0
    var sinksWithBatches: [ConsumerSink] = []

    /// Called when the socket dies unexpectedly and recovery should run (set by AMQPConnection).
    var onUnexpectedClose: ((AMQPError) -> Void)?

    init(eventLoop: EventLoop, configuration: AMQPConnectionConfiguration, logger: Logger) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.logger = logger
        self.lifecycle = RecoveryStateMachine(recoveryEnabled: configuration.recovery.isEnabled,
                                              maximumAttempts: configuration.recovery.maximumAttempts)
        self.closedPromise = eventLoop.makePromise()
    }

    deinit {
        // Dropped without close() (e.g. the application lost its last reference): settle the
        // promise so nothing waits on it forever, and NIO's leak check stays quiet.
        if !didFinish { closedPromise.fail(AMQPError.connectionClosed) }
    }

    // MARK: State reporting

    func emit(_ state: AMQPConnectionState) {
        eventLoop.preconditionInEventLoop()
        for continuation in stateObservers.values {
            continuation.yield(state)
        }
    }

    // MARK: Socket lifecycle

    /// Makes a freshly handshaken socket current, unless the lifecycle says it is not wanted
    /// (then it is closed here).
    func attach(handler: AMQPConnectionHandler, socket: Channel,
                negotiated: AMQPNegotiatedParameters) -> RecoveryStateMachine.AttachAction {
        eventLoop.preconditionInEventLoop()
        let action = lifecycle.socketAttached()
        if case .closeSocket = action {
            socket.close(promise: nil)
            return action
        }
        self.handler = handler
        self.socket = socket
        self.negotiated = negotiated
        handler.delegate = self
        consumersHoldingReads = 0
        return action
    }

    func handlerClosed(error: AMQPError?) {
        eventLoop.preconditionInEventLoop()
        handler = nil
        socket = nil
        let closeRequestedByApplication = lifecycle.closeRequestedByApplication
        let lostError = error ?? (closeRequestedByApplication ? .connectionClosed : .connectionLost("socket closed"))
        // Everything in flight on the old socket has an unknown outcome: fail it now, never drop it.
        for channel in channels.values {
            if publicChannels[channel.id] == nil {
                // Recovery's own short-lived channel: nothing to restore.
                channels[channel.id] = nil
            }
            guard var machine = channel.machine else { continue }
            channel.machine = nil
            let action = machine.connectionLost(closeRequestedByApplication ? .connectionClosed : lostError)
            run(action, on: channel)
            channel.machine = nil
            for sink in channel.consumers.values { sink.isHoldingReads = false }
        }
        switch lifecycle.socketClosed(error: error) {
        case .finish:
            finishForGood()
        case .reportLostAndFinish(let lost):
            logger.warning("AMQP connection lost", metadata: ["error": "\(lost)"])
            emit(.disconnected(lost))
            finishForGood(error: lost)
        case .reportLostAndRecover(let lost):
            logger.warning("AMQP connection lost", metadata: ["error": "\(lost)"])
            emit(.disconnected(lost))
            onUnexpectedClose?(lost)
        }
    }

    /// Waits out recovery's back-off on this loop; `finishForGood` ends the wait early.
    func waitForBackoff(_ delay: Duration) -> EventLoopFuture<Void> {
        eventLoop.preconditionInEventLoop()
        backoffWake?.succeed(())
        let wake = eventLoop.makePromise(of: Void.self)
        backoffWake = wake
        backoffTimer = eventLoop.scheduleTask(in: TimeAmount(delay)) { [weak self] in
            self?.endBackoff()
        }
        if lifecycle.isClosed { endBackoff() }
        return wake.futureResult
    }

    private func endBackoff() {
        backoffTimer?.cancel()
        backoffTimer = nil
        backoffWake?.succeed(())
        backoffWake = nil
    }

    func finishForGood(error: AMQPError? = nil) {
        guard !didFinish else { return }
        didFinish = true
        lifecycle.finished()
        endBackoff()
        for channel in channels.values {
            channel.terminalError = channel.terminalError ?? .connectionClosed
            for sink in channel.consumers.values {
                sink.source.finish(error ?? AMQPError.connectionClosed)
            }
            channel.consumers.removeAll()
            for listener in channel.returnListeners { listener.finish() }
            channel.returnListeners.removeAll()
        }
        emit(.closed)
        for continuation in stateObservers.values { continuation.finish() }
        stateObservers.removeAll()
        closedPromise.succeed(())
    }

    func handlerBlocked(reason: String) { emit(.blocked(reason: reason)) }
    func handlerUnblocked() { emit(.unblocked) }

    // MARK: Frames from the socket

    func handlerReceived(channel channelID: UInt16, frame: AMQPFrame) {
        guard let channel = channels[channelID], var machine = channel.machine else {
            // A frame for a channel we closed locally (e.g. a delivery racing our close): drop it.
            return
        }
        channel.machine = nil  // unique while mutating
        let action: ChannelStateMachine.Action
        switch frame {
        case .method(_, let method): action = machine.received(method)
        case .header(_, let header): action = machine.received(header: header)
        case .body(_, let body): action = machine.received(body: body)
        case .heartbeat: action = .none
        }
        channel.machine = machine
        run(action, on: channel)
    }

    func handlerReadComplete() {
        guard !sinksWithBatches.isEmpty else { return }
        let sinks = sinksWithBatches
        sinksWithBatches.removeAll(keepingCapacity: true)
        for sink in sinks where !sink.batch.isEmpty {
            let batch = sink.batch
            sink.batch.removeAll(keepingCapacity: true)
            switch sink.source.yield(contentsOf: batch) {
            case .produceMore, .dropped:
                break
            case .stopProducing:
                if !sink.isHoldingReads {
                    sink.isHoldingReads = true
                    consumersHoldingReads += 1
                    if consumersHoldingReads == 1 { handler?.setAutoRead(false) }
                }
            }
        }
    }

    func consumerWantsMore(channelID: UInt16, tag: String) {
        guard let sink = channels[channelID]?.consumers[tag], sink.isHoldingReads else { return }
        releaseReads(sink)
    }

    func releaseReads(_ sink: ConsumerSink) {
        guard sink.isHoldingReads else { return }
        sink.isHoldingReads = false
        consumersHoldingReads -= 1
        if consumersHoldingReads == 0 { handler?.setAutoRead(true) }
    }

    /// The application stopped iterating (or dropped the sequence): cancel at the broker.
    func consumerTerminated(channelID: UInt16, tag: String) {
        guard let channel = channels[channelID], let sink = channel.consumers.removeValue(forKey: tag) else { return }
        releaseReads(sink)
        topology.consumerCancelled(tag: tag)
        let promise = eventLoop.makePromise(of: AMQPMethod.self)
        promise.futureResult.whenFailure { _ in }
        send(.basicCancel(BasicCancel(consumerTag: tag, noWait: false)), on: channel, promise: promise)
    }

    var getResults: [ObjectIdentifier: ChannelStateMachine.IncomingContent] = [:]
    /// The public channel objects, weakly: messages need one to ack through.
    var publicChannels: [UInt16: WeakChannel] = [:]

    struct WeakChannel {
        weak var value: AMQPChannel?
    }

    func sendNextRequest(on channel: ChannelCore) {
        if let next = channel.machine?.nextRequestToSend() {
            handler?.write(.method(channel: channel.id, next))
        }
    }

    /// Queue a synchronous request on a channel.
    /// Whether application calls may use the connection now.
    var acceptsApplicationWork: Bool { lifecycle.acceptsApplicationWork && handler != nil }

    /// What a refused request fails with: closed for good, or only not connected right now.
    var unavailableError: AMQPError { lifecycle.isClosed ? .connectionClosed : .notConnected }

    func send(_ method: AMQPMethod, on channel: ChannelCore, promise: EventLoopPromise<AMQPMethod>, byRecovery: Bool = false) {
        guard byRecovery ? (lifecycle.acceptsRecoveryWork && handler != nil) : acceptsApplicationWork else {
            promise.fail(unavailableError)
            return
        }
        guard var machine = channel.machine else {
            promise.fail(channel.terminalError ?? AMQPError.notConnected)
            return
        }
        channel.machine = nil
        let action = machine.request(method, promise: promise)
        channel.machine = machine
        run(action, on: channel)
    }

    /// Opens (or reopens, during recovery) the channel's AMQP incarnation.
    func openChannel(_ channel: ChannelCore, promise: EventLoopPromise<AMQPMethod>) {
        guard lifecycle.acceptsRecoveryWork, let handler else {
            promise.fail(AMQPError.notConnected)
            return
        }
        channel.generation += 1
        channel.machine = ChannelStateMachine(openPromise: promise)
        handler.write(.method(channel: channel.id, .channelOpen(ChannelOpen())))
    }

    func allocateChannelID() throws(AMQPError) -> UInt16 {
        let limit = negotiated?.channelMax ?? 2047
        // Lowest free id: ids are reused after close, which keeps them small and the lookup cheap.
        var candidate: UInt16 = 1
        while candidate <= limit {
            if channels[candidate] == nil { return candidate }
            if candidate == .max { break }
            candidate += 1
        }
        throw AMQPError.tooManyChannels(limit: limit)
    }
}

extension ConnectionCore {
    /// Writes one message (method + header + body frames, split at frame_max) in a single buffer.
    func publish(on channel: ChannelCore, body: ByteBuffer, exchange: String, routingKey: String,
                 properties: AMQPBasicProperties, mandatory: Bool, promise: EventLoopPromise<Void>) {
        guard acceptsApplicationWork, let handler, let negotiated else {
            promise.fail(unavailableError)
            return
        }
        guard exchange.utf8.count <= 255, routingKey.utf8.count <= 255 else {
            promise.fail(AMQPError.invalidUsage("exchange and routing key are limited to 255 bytes"))
            return
        }
        guard var machine = channel.machine else {
            promise.fail(channel.terminalError ?? AMQPError.notConnected)
            return
        }
        channel.machine = nil
        let sequence: UInt64?
        do {
            sequence = try machine.publish(exchange: exchange, routingKey: routingKey, mandatory: mandatory,
                                           properties: properties, body: body,
                                           confirmPromise: channel.confirmMode ? promise : nil)
        } catch {
            channel.machine = machine
            promise.fail(error)
            return
        }
        channel.machine = machine
        let frameCount = body.readableBytes / Int(negotiated.frameMax) + 3
        var buffer = handler.allocator.buffer(capacity: body.readableBytes + 128 + exchange.utf8.count
                                                  + routingKey.utf8.count + frameCount * 8)
        let method = AMQPMethod.basicPublish(BasicPublish(exchange: exchange, routingKey: routingKey,
                                                          mandatory: mandatory, immediate: false))
        AMQPFrame.encodeMessage(channel: channel.id, method: method, properties: properties, body: body,
                                maxFrameSize: negotiated.frameMax, into: &buffer)
        handler.write(buffer)
        if sequence == nil { promise.succeed(()) }
    }
}
