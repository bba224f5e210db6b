import AMQPProtocol
import NIOCore

/// One AMQP channel as a pure state machine: open/close, the queue of synchronous requests (one in
/// flight at a time, as the spec asks), content assembly for deliveries, gets and returns, and
/// publisher confirms. It never touches a socket; the connection core runs the returned actions.
///
/// Promises are NIO promises so the core can hand them straight to callers; tests create them on an
/// `EmbeddedEventLoop`.
struct ChannelStateMachine {
    typealias RPCPromise = EventLoopPromise<AMQPMethod>
    typealias PublishPromise = EventLoopPromise<Void>

    enum State: Equatable {
        case opening
        case open
        /// We sent channel.close and wait for close-ok.
        case closing
        case closed
    }

    /// A finished content-carrying method (deliver, get-ok or return) with its properties and body.
    struct IncomingContent {
        var method: AMQPMethod
        var properties: AMQPBasicProperties
        var body: ByteBuffer
    }

    enum Action {
        case none
        case send(AMQPMethod)
        case succeedRPC(RPCPromise, AMQPMethod)
        /// A get-ok and its content complete the pending basic.get.
        case succeedGet(RPCPromise, IncomingContent)
        case deliver(consumerTag: String, IncomingContent)
        /// A basic.return that no confirm waiter claimed: hand it to the channel's return listeners.
        case returned(IncomingContent)
        case resolveConfirms([(PublishPromise, ConfirmTracker<PublishPromise>.Outcome)])
        case consumerCancelledByBroker(consumerTag: String)
        /// The channel is finished: answer close-ok if `replyCloseOk`, fail everything still waiting,
        /// tell the consumers. `error` nil means an orderly close by us.
        case closed(error: AMQPError?, replyCloseOk: Bool, failedRPCs: [RPCPromise], failedPublishes: [PublishPromise],
                    closePromise: RPCPromise?)
        /// The broker broke the protocol on this channel; close the whole connection.
        case protocolViolation(String)
    }

    private struct PendingRPC {
        var request: AMQPMethod
        var promise: RPCPromise
    }

    private(set) var state: State
    private var pendingRPCs: [PendingRPC] = []
    private var closePromise: RPCPromise?
    private var assembler = AMQPContentAssembler()
    private(set) var confirms: ConfirmTracker<PublishPromise>?

    var isInConfirmMode: Bool { confirms != nil }

    /// Starts a channel: the caller sends channel.open and awaits `promise`.
    init(openPromise: RPCPromise) {
        state = .opening
        pendingRPCs = [PendingRPC(request: .channelOpen(ChannelOpen()), promise: openPromise)]
    }

    // MARK: Requests from the application

    /// Queue a synchronous method. It goes out at once when nothing else is in flight.
    mutating func request(_ method: AMQPMethod, promise: RPCPromise) -> Action {
        guard state == .open else {
            promise.fail(state == .opening ? AMQPError.invalidUsage("channel not open yet") : AMQPError.channelClosed)
            return .none
        }
        pendingRPCs.append(PendingRPC(request: method, promise: promise))
        return pendingRPCs.count == 1 ? .send(method) : .none
    }

    /// Registers a publish. Returns the sequence number in confirm mode (nil otherwise), or throws
    /// when the channel cannot publish. The caller writes the frames.
    mutating func publish(exchange: String, routingKey: String, mandatory: Bool,
                          properties: AMQPBasicProperties = .none, body: ByteBuffer = ByteBuffer(),
                          confirmPromise: PublishPromise?) throws(AMQPError) -> UInt64? {
        guard state == .open else { throw AMQPError.channelClosed }
        guard var tracker = confirms else { return nil }
        guard let confirmPromise else { return nil }
        // Take the tracker out so the array inside is uniquely referenced and appends don't copy.
        confirms = nil
        // A mandatory publish keeps what a basic.return would hand back, to recognise its return.
        let content = mandatory
            ? ConfirmTracker<PublishPromise>.PublishedContent(exchange: exchange, routingKey: routingKey,
                                                              properties: properties, body: body)
            : nil
        let sequence = tracker.register(confirmPromise, mandatory: content)
        confirms = tracker
        return sequence
    }

    mutating func closeRequested(promise: RPCPromise) -> Action {
        switch state {
        case .open, .opening:
            state = .closing
            closePromise = promise
            return .send(.channelClose(ChannelClose(replyCode: 200, replyText: "bye", classID: 0, methodID: 0)))
        case .closing, .closed:
            promise.succeed(.channelCloseOk(ChannelCloseOk()))
            return .none
        }
    }

    // MARK: Frames from the broker

    mutating func received(_ method: AMQPMethod) -> Action {
        if state == .closed { return .none }
        if state == .closing {
            switch method {
            case .channelCloseOk:
                return finish(error: nil, replyCloseOk: false)
            case .channelClose(let close):
                // Crossed closes: the broker's reason wins, and it still wants a close-ok.
                return finish(error: .channelClosedByBroker(Self.reason(close)), replyCloseOk: true)
            default:
                // Everything else after our close is discarded, as the spec says.
                return .none
            }
        }
        if assembler.isAssembling {
            return .protocolViolation("method \(method) while content was expected")
        }
        switch method {
        case .channelClose(let close):
            return finish(error: .channelClosedByBroker(Self.reason(close)), replyCloseOk: true)

        case .basicDeliver, .basicReturn, .basicGetOk:
            do {
                try assembler.start(method: method)
            } catch {
                return .protocolViolation("\(error)")
            }
            return .none

        case .basicAck(let ack):
            guard var tracker = confirms else { return .protocolViolation("basic.ack outside confirm mode") }
            confirms = nil
            let resolved = tracker.ack(deliveryTag: ack.deliveryTag, multiple: ack.multiple)
            confirms = tracker
            return .resolveConfirms(resolved)

        case .basicNack(let nack):
            guard var tracker = confirms else { return .protocolViolation("basic.nack outside confirm mode") }
            confirms = nil
            let resolved = tracker.nack(deliveryTag: nack.deliveryTag, multiple: nack.multiple)
            confirms = tracker
            return .resolveConfirms(resolved)

        case .basicCancel(let cancel):
            // Server-side cancel (consumer_cancel_notify): the queue went away.
            return .consumerCancelledByBroker(consumerTag: cancel.consumerTag)

        case .channelFlow(let flow):
            return .send(.channelFlowOk(ChannelFlowOk(active: flow.active)))

        default:
            return completeRPC(with: method)
        }
    }

    mutating func received(header: AMQPContentHeader) -> Action {
        do {
            guard let message = try assembler.append(header: header) else { return .none }
            return contentComplete(message)
        } catch {
            return .protocolViolation("\(error)")
        }
    }

    mutating func received(body: ByteBuffer) -> Action {
        do {
            guard let message = try assembler.append(body: body) else { return .none }
            return contentComplete(message)
        } catch {
            return .protocolViolation("\(error)")
        }
    }

    /// The connection is gone: everything waiting fails with `error`.
    mutating func connectionLost(_ error: AMQPError) -> Action {
        guard state != .closed else { return .none }
        return finish(error: error, replyCloseOk: false)
    }

    // MARK: Internals

    private mutating func completeRPC(with response: AMQPMethod) -> Action {
        guard let pending = pendingRPCs.first else {
            return .protocolViolation("unexpected \(response) with no request pending")
        }
        guard Self.isResponse(response, to: pending.request) else {
            return .protocolViolation("\(response) does not answer \(pending.request)")
        }
        pendingRPCs.removeFirst()
        switch response {
        case .channelOpenOk:
            state = .open
        case .confirmSelectOk:
            if confirms == nil { confirms = ConfirmTracker() }
        default:
            break
        }
        return .succeedRPC(pending.promise, response)
    }

    /// After a response the next queued request may go out; the core asks for it.
    mutating func nextRequestToSend() -> AMQPMethod? {
        pendingRPCs.first?.request
    }

    private mutating func contentComplete(_ message: AMQPContentMessage) -> Action {
        let content = IncomingContent(method: message.method, properties: message.properties, body: message.body)
        switch message.method {
        case .basicDeliver(let deliver):
            return .deliver(consumerTag: deliver.consumerTag, content)
        case .basicGetOk:
            guard let pending = pendingRPCs.first, case .basicGet = pending.request else {
                return .protocolViolation("basic.get-ok without basic.get")
            }
            pendingRPCs.removeFirst()
            return .succeedGet(pending.promise, content)
        case .basicReturn(let returned):
            let reason = AMQPCloseReason(replyCode: returned.replyCode, replyText: returned.replyText,
                                         classID: BasicPublish.classID, methodID: BasicPublish.methodID)
            if var tracker = confirms {
                confirms = nil
                let claimed = tracker.markReturned(
                    .init(exchange: returned.exchange, routingKey: returned.routingKey,
                          properties: content.properties, body: content.body),
                    reason: reason)
                confirms = tracker
                if claimed { return .none }
            }
            return .returned(content)
        default:
            return .protocolViolation("content for \(message.method)")
        }
    }

    private mutating func finish(error: AMQPError?, replyCloseOk: Bool) -> Action {
        state = .closed
        let failedRPCs = pendingRPCs.map(\.promise)
        pendingRPCs.removeAll()
        let failedPublishes = confirms?.failAll() ?? []
        assembler.reset()
        let promise = closePromise
        closePromise = nil
        return .closed(error: error, replyCloseOk: replyCloseOk, failedRPCs: failedRPCs,
                       failedPublishes: failedPublishes, closePromise: promise)
    }

    private static func reason(_ close: ChannelClose) -> AMQPCloseReason {
        AMQPCloseReason(replyCode: close.replyCode, replyText: close.replyText, classID: close.classID, methodID: close.methodID)
    }

    /// Which response answers which request.
    static func isResponse(_ response: AMQPMethod, to request: AMQPMethod) -> Bool {
        switch (request, response) {
        case (.channelOpen, .channelOpenOk),
             (.exchangeDeclare, .exchangeDeclareOk),
             (.exchangeDelete, .exchangeDeleteOk),
             (.exchangeBind, .exchangeBindOk),
             (.exchangeUnbind, .exchangeUnbindOk),
             (.queueDeclare, .queueDeclareOk),
             (.queueBind, .queueBindOk),
             (.queueUnbind, .queueUnbindOk),
             (.queuePurge, .queuePurgeOk),
             (.queueDelete, .queueDeleteOk),
             (.basicQos, .basicQosOk),
             (.basicConsume, .basicConsumeOk),
             (.basicCancel, .basicCancelOk),
             (.basicGet, .basicGetEmpty),
             (.basicRecover, .basicRecoverOk),
             (.confirmSelect, .confirmSelectOk),
             (.channelFlow, .channelFlowOk):
            return true
        default:
            return false
        }
    }
}
