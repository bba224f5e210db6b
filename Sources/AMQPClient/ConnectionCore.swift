import AMQPProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The per-channel state the connection core keeps across reconnects.
///
/// Concurrency: like `ConnectionCore`, used only on the connection's event loop, except
/// `generationSnapshot`, which is lock-protected so acks can check staleness without a hop.
final class ChannelCore: @unchecked Sendable {
    let id: UInt16
    var machine: ChannelStateMachine?
    /// Bumped on every (re)open; deliveries remember it so stale acks are caught.
    var generation = 0 {
        didSet { generationSnapshot.withLockedValue { $0 = generation } }
    }
    let generationSnapshot = NIOLockedValueBox(0)
    /// Restored after a reconnect, in this order: qos, confirm mode, consumers.
    var qos: BasicQos?
    var confirmMode = false
    var consumers: [String: ConsumerSink] = [:]
    var returnListeners: [AsyncStream<AMQPReturnedMessage>.Continuation] = []
    /// Set once the channel is gone for good (closed by us or by the broker); it is not recovered.
    var terminalError: AMQPError?

    init(id: UInt16) {
        self.id = id
    }
}

/// One consumer's buffer between the event loop and the application's `for try await`.
/// Concurrency: event-loop confined like `ChannelCore`; `source` itself is thread-safe.
final class ConsumerSink: @unchecked Sendable {
    typealias Source = NIOThrowingAsyncSequenceProducer<
        AMQPMessage, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, ConsumerFlowDelegate
    >.Source

    let tag: String
    let source: Source
    var batch: [AMQPMessage] = []
    /// True while this consumer's buffer is over its high watermark and holds the socket's reads.
    var isHoldingReads = false

    init(tag: String, source: Source) {
        self.tag = tag
        self.source = source
    }
}

/// Bridges the async sequence's back-pressure to socket reads: above the high watermark the core
/// stops reading from the socket; when the application drains below the low watermark, reading resumes.
struct ConsumerFlowDelegate: NIOAsyncSequenceProducerDelegate {
    let core: ConnectionCore
    let channelID: UInt16
    let tag: String

    func produceMore() {
        core.eventLoop.execute { core.consumerWantsMore(channelID: channelID, tag: tag) }
    }

    func didTerminate() {
        core.eventLoop.execute { core.consumerTerminated(channelID: channelID, tag: tag) }
    }
}

/// All mutable state of one logical connection (which outlives its sockets across recovery).
///
/// Concurrency: every stored property is read and written only on `eventLoop` (the same loop is used
/// for every socket of this connection); public types reach it with `eventLoop.execute`/`submit` and
/// NIO promises. That confinement is what makes the `@unchecked Sendable` sound.
final class ConnectionCore: @unchecked Sendable, AMQPConnectionHandlerDelegate {
    enum Phase: Equatable {
        case connecting
        case open
        case recovering
        case closed
    }

    let eventLoop: EventLoop
    let configuration: AMQPConnectionConfiguration
    let logger: Logger

    var phase: Phase = .connecting
    var handler: AMQPConnectionHandler?
    var socket: Channel?
    var negotiated: AMQPNegotiatedParameters?
    var channels: [UInt16: ChannelCore] = [:]
    var topology = TopologyRecorder()
    var closeRequestedByApplication = false
    /// Reconnected, but channels and topology are still being restored.
    var isRestoring = false
    var recoveryAttempt = 0
    var stateObservers: [Int: AsyncStream<AMQPConnectionState>.Continuation] = [:]
    var nextObserverID = 0
    var closedPromise: EventLoopPromise<Void>
    private var didFinish = false
    private var consumersHoldingReads = 0
    private var sinksWithBatches: [ConsumerSink] = []

    /// Called when the socket dies unexpectedly and recovery should run (set by AMQPConnection).
    var onUnexpectedClose: ((AMQPError) -> Void)?

    init(eventLoop: EventLoop, configuration: AMQPConnectionConfiguration, logger: Logger) {
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.logger = logger
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

    func attach(handler: AMQPConnectionHandler, socket: Channel, negotiated: AMQPNegotiatedParameters) {
        eventLoop.preconditionInEventLoop()
        self.handler = handler
        self.socket = socket
        self.negotiated = negotiated
        handler.delegate = self
        consumersHoldingReads = 0
        phase = .open
    }

    func handlerClosed(error: AMQPError?) {
        eventLoop.preconditionInEventLoop()
        handler = nil
        socket = nil
        isRestoring = false
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
        if closeRequestedByApplication || phase == .closed {
            finishForGood()
            return
        }
        logger.warning("AMQP connection lost", metadata: ["error": "\(lostError)"])
        emit(.disconnected(lostError))
        if configuration.recovery.isEnabled, case .authenticationFailed = lostError {
            // Credentials that failed once will fail again; don't hammer the broker.
            finishForGood(error: lostError)
        } else if configuration.recovery.isEnabled {
            phase = .recovering
            onUnexpectedClose?(lostError)
        } else {
            finishForGood(error: lostError)
        }
    }

    func finishForGood(error: AMQPError? = nil) {
        guard !didFinish else { return }
        didFinish = true
        phase = .closed
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

    private func releaseReads(_ sink: ConsumerSink) {
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

    // MARK: Running channel actions

    func run(_ action: ChannelStateMachine.Action, on channel: ChannelCore) {
        switch action {
        case .none:
            break
        case .send(let method):
            handler?.write(.method(channel: channel.id, method))
        case .succeedRPC(let promise, let method):
            promise.succeed(method)
            sendNextRequest(on: channel)
        case .succeedGet(let promise, let content):
            guard case .basicGetOk(let getOk) = content.method else { return }
            getResults[ObjectIdentifier(promise.futureResult)] = content
            promise.succeed(.basicGetOk(getOk))
            sendNextRequest(on: channel)
        case .deliver(let tag, let content):
            guard let sink = channel.consumers[tag], case .basicDeliver(let deliver) = content.method,
                  let publicChannel = publicChannels[channel.id]?.value else { return }
            let message = AMQPMessage(
                body: content.body, properties: content.properties, deliveryTag: deliver.deliveryTag,
                redelivered: deliver.redelivered, exchange: deliver.exchange, routingKey: deliver.routingKey,
                consumerTag: tag, messageCount: nil, channel: publicChannel, channelGeneration: channel.generation)
            if sink.batch.isEmpty { sinksWithBatches.append(sink) }
            sink.batch.append(message)
        case .returned(let content):
            guard case .basicReturn(let returned) = content.method else { return }
            let message = AMQPReturnedMessage(
                reason: AMQPCloseReason(replyCode: returned.replyCode, replyText: returned.replyText),
                exchange: returned.exchange, routingKey: returned.routingKey,
                properties: content.properties, body: content.body)
            if channel.returnListeners.isEmpty {
                logger.warning("unroutable mandatory message returned and nobody listens for returns",
                               metadata: ["exchange": "\(returned.exchange)", "routingKey": "\(returned.routingKey)"])
            }
            for listener in channel.returnListeners { listener.yield(message) }
        case .resolveConfirms(let resolved):
            for (promise, outcome) in resolved {
                switch outcome {
                case .confirmed: promise.succeed(())
                case .nacked: promise.fail(AMQPError.publishNacked)
                case .returned(let reason): promise.fail(AMQPError.unroutable(reason))
                }
            }
        case .consumerCancelledByBroker(let tag):
            logger.warning("broker cancelled consumer", metadata: ["consumerTag": "\(tag)"])
            topology.consumerCancelled(tag: tag)
            if let sink = channel.consumers.removeValue(forKey: tag) {
                releaseReads(sink)
                flushBatch(of: sink)
                sink.source.finish(AMQPError.consumerCancelledByBroker(consumerTag: tag))
            }
        case .closed(let error, let replyCloseOk, let failedRPCs, let failedPublishes, let closePromise):
            if replyCloseOk {
                handler?.write(.method(channel: channel.id, .channelCloseOk(ChannelCloseOk())))
            }
            let failure = error ?? .channelClosed
            for promise in failedRPCs { promise.fail(failure) }
            for promise in failedPublishes { promise.fail(failure) }
            closePromise?.succeed(.channelCloseOk(ChannelCloseOk()))
            channel.machine = nil
            let isConnectionLevel: Bool
            switch failure {
            case .connectionLost, .heartbeatTimeout, .connectionClosedByBroker, .protocolViolation:
                isConnectionLevel = true
            default:
                isConnectionLevel = false
            }
            // The broker refused something recovery asked on an application channel (e.g. a consume on
            // a queue that is now exclusive elsewhere): keep the channel and its other consumers for
            // recovery to reopen, instead of ending them all.
            let closedDuringRestore = isRestoring && publicChannels[channel.id] != nil
                && { if case .channelClosedByBroker = failure { true } else { false } }()
            if (isConnectionLevel || closedDuringRestore) && !closeRequestedByApplication && configuration.recovery.isEnabled {
                // The channel will be reopened by recovery; its consumers keep their sequences.
                for sink in channel.consumers.values { flushBatch(of: sink) }
                return
            }
            if let error {
                logger.info("channel closed", metadata: ["channel": "\(channel.id)", "error": "\(error)"])
            }
            channel.terminalError = failure
            for sink in channel.consumers.values {
                releaseReads(sink)
                flushBatch(of: sink)
                sink.source.finish(failure)
            }
            channel.consumers.removeAll()
            for listener in channel.returnListeners { listener.finish() }
            channel.returnListeners.removeAll()
            topology.channelClosed(channel.id)
            channels[channel.id] = nil
            publicChannels[channel.id] = nil
        case .protocolViolation(let text):
            logger.error("protocol violation on channel", metadata: ["channel": "\(channel.id)", "detail": "\(text)"])
            socket?.pipeline.fireErrorCaught(AMQPError.protocolViolation(text))
        }
    }

    /// Recovery could not restart this consumer: end its sequence with the broker's reason.
    func consumerLostInRecovery(channelID: UInt16, tag: String, error: AMQPError) {
        topology.consumerCancelled(tag: tag)
        guard let sink = channels[channelID]?.consumers.removeValue(forKey: tag) else { return }
        releaseReads(sink)
        flushBatch(of: sink)
        sink.source.finish(error)
    }

    private func flushBatch(of sink: ConsumerSink) {
        guard !sink.batch.isEmpty else { return }
        _ = sink.source.yield(contentsOf: sink.batch)
        sink.batch.removeAll()
    }

    /// basic.get-ok content, parked until the awaiting caller picks it up (keyed by its future).
    var getResults: [ObjectIdentifier: ChannelStateMachine.IncomingContent] = [:]
    /// The public channel objects, weakly: messages need one to ack through.
    var publicChannels: [UInt16: WeakChannel] = [:]

    struct WeakChannel {
        weak var value: AMQPChannel?
    }

    private func sendNextRequest(on channel: ChannelCore) {
        if let next = channel.machine?.nextRequestToSend() {
            handler?.write(.method(channel: channel.id, next))
        }
    }

    /// Queue a synchronous request on a channel.
    /// Whether application calls may use the connection now.
    var acceptsApplicationWork: Bool { phase == .open && !isRestoring && handler != nil }

    func send(_ method: AMQPMethod, on channel: ChannelCore, promise: EventLoopPromise<AMQPMethod>, byRecovery: Bool = false) {
        guard byRecovery ? (phase == .open && handler != nil) : acceptsApplicationWork else {
            promise.fail(phase == .closed ? AMQPError.connectionClosed : AMQPError.notConnected)
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
        guard phase == .open || phase == .recovering, let handler else {
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
            promise.fail(phase == .closed ? AMQPError.connectionClosed : AMQPError.notConnected)
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
