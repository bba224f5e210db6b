import AMQPProtocol
import NIOConcurrencyHelpers
import NIOCore

/// One AMQP channel. Survives connection recovery (same object, reopened with the same id).
/// A channel error from the broker (e.g. 406 on a conflicting declare) closes only this channel: its
/// calls then throw `AMQPError.channelClosedByBroker`; open a new channel to go on.
public final class AMQPChannel: Sendable {
    public let id: UInt16
    public let connection: AMQPConnection
    let core: ChannelCore
    private var connectionCore: ConnectionCore { connection.core }

    init(connection: AMQPConnection, core: ChannelCore) {
        self.id = core.id
        self.connection = connection
        self.core = core
    }

    // MARK: Exchanges

    public func exchangeDeclare(_ name: String, type: String = "direct", passive: Bool = false, durable: Bool = false,
                                autoDelete: Bool = false, internal: Bool = false, arguments: AMQPFieldTable = [:]) async throws {
        let declare = ExchangeDeclare(exchange: name, type: type, passive: passive, durable: durable, autoDelete: autoDelete,
                                      internal: `internal`, noWait: false, arguments: arguments)
        _ = try await rpc(.exchangeDeclare(declare)) { core in core.topology.exchangeDeclared(declare) }
    }

    public func exchangeDelete(_ name: String, ifUnused: Bool = false) async throws {
        _ = try await rpc(.exchangeDelete(ExchangeDelete(exchange: name, ifUnused: ifUnused, noWait: false))) { core in
            core.topology.exchangeDeleted(name)
        }
    }

    /// exchange.bind (a RabbitMQ extension): messages routed to `source` also go to `destination`.
    public func exchangeBind(destination: String, source: String, routingKey: String = "", arguments: AMQPFieldTable = [:]) async throws {
        let bind = ExchangeBind(destination: destination, source: source, routingKey: routingKey, noWait: false, arguments: arguments)
        _ = try await rpc(.exchangeBind(bind)) { core in core.topology.exchangeBound(bind) }
    }

    public func exchangeUnbind(destination: String, source: String, routingKey: String = "", arguments: AMQPFieldTable = [:]) async throws {
        let unbind = ExchangeUnbind(destination: destination, source: source, routingKey: routingKey, noWait: false, arguments: arguments)
        _ = try await rpc(.exchangeUnbind(unbind)) { core in
            core.topology.exchangeUnbound(destination: destination, source: source, routingKey: routingKey, arguments: arguments)
        }
    }

    // MARK: Queues

    /// Declare with an empty name to let the broker pick one (returned in the result; recovery gives
    /// such queues a new name and moves their bindings and consumers along).
    @discardableResult
    public func queueDeclare(_ name: String = "", passive: Bool = false, durable: Bool = false, exclusive: Bool = false,
                             autoDelete: Bool = false, arguments: AMQPFieldTable = [:]) async throws -> AMQPQueueDeclareResult {
        let declare = QueueDeclare(queue: name, passive: passive, durable: durable, exclusive: exclusive,
                                   autoDelete: autoDelete, noWait: false, arguments: arguments)
        let response = try await rpc(.queueDeclare(declare))
        guard case .queueDeclareOk(let ok) = response else { throw AMQPError.protocolViolation("queue.declare answered with \(response)") }
        let core = connectionCore
        try await core.eventLoop.submit { core.topology.queueDeclared(declare, assignedName: ok.queue) }.get()
        return AMQPQueueDeclareResult(queue: ok.queue, messageCount: ok.messageCount, consumerCount: ok.consumerCount)
    }

    public func queueBind(queue: String, exchange: String, routingKey: String = "", arguments: AMQPFieldTable = [:]) async throws {
        let bind = QueueBind(queue: queue, exchange: exchange, routingKey: routingKey, noWait: false, arguments: arguments)
        _ = try await rpc(.queueBind(bind)) { core in core.topology.queueBound(bind) }
    }

    public func queueUnbind(queue: String, exchange: String, routingKey: String = "", arguments: AMQPFieldTable = [:]) async throws {
        let unbind = QueueUnbind(queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments)
        _ = try await rpc(.queueUnbind(unbind)) { core in
            core.topology.queueUnbound(queue: queue, exchange: exchange, routingKey: routingKey, arguments: arguments)
        }
    }

    /// Returns how many messages were purged.
    @discardableResult
    public func queuePurge(_ name: String) async throws -> UInt32 {
        let response = try await rpc(.queuePurge(QueuePurge(queue: name, noWait: false)))
        guard case .queuePurgeOk(let ok) = response else { throw AMQPError.protocolViolation("queue.purge answered with \(response)") }
        return ok.messageCount
    }

    /// Returns how many messages were deleted with the queue.
    @discardableResult
    public func queueDelete(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) async throws -> UInt32 {
        let response = try await rpc(.queueDelete(QueueDelete(queue: name, ifUnused: ifUnused, ifEmpty: ifEmpty, noWait: false))) { core in
            core.topology.queueDeleted(name)
        }
        guard case .queueDeleteOk(let ok) = response else { throw AMQPError.protocolViolation("queue.delete answered with \(response)") }
        return ok.messageCount
    }

    // MARK: Basic

    /// Limits unacknowledged deliveries per consumer (or per channel with `global`). This is what bounds
    /// a consumer's buffer at the broker side; it is restored after recovery.
    public func basicQos(prefetchCount: UInt16, prefetchSize: UInt32 = 0, global: Bool = false) async throws {
        let qos = BasicQos(prefetchSize: prefetchSize, prefetchCount: prefetchCount, global: global)
        let channel = core
        _ = try await rpc(.basicQos(qos)) { _ in channel.qos = qos }
    }

    /// Turns on publisher confirms: from now on `publish` returns only once the broker acked the message.
    public func confirmSelect() async throws {
        let channel = core
        _ = try await rpc(.confirmSelect(ConfirmSelect(noWait: false))) { _ in channel.confirmMode = true }
    }

    /// Publishes a message. In confirm mode this suspends until the broker confirms it and throws
    /// `.publishNacked`, `.unroutable` (mandatory and no queue) or `.connectionLost` (outcome unknown);
    /// many publishes may be in flight at once from concurrent tasks. Without confirms it returns once
    /// the frames are handed to the socket. While disconnected it throws `.notConnected` at once.
    ///
    /// `confirmDeadline`: in confirm mode, stop waiting then and throw `.confirmTimedOut` (a
    /// broker node can keep a publish unconfirmed for good when a stream's leader dies). The
    /// timer runs on the connection's loop; a confirm that comes later is ignored.
    public func publish(_ body: ByteBuffer, exchange: String = "", routingKey: String,
                        properties: AMQPBasicProperties = .none, mandatory: Bool = false,
                        confirmDeadline: NIODeadline? = nil) async throws {
        try await publishFuture(body, exchange: exchange, routingKey: routingKey, properties: properties, mandatory: mandatory,
                                confirmDeadline: confirmDeadline).get()
    }

    /// The same publish for code that lives on the connection's event loop: no task, and the
    /// returned future completes on that loop (with the outcomes `publish` throws). Called on
    /// the loop, the frames are written before it returns; from elsewhere, in a loop task.
    public func publishFuture(_ body: ByteBuffer, exchange: String = "", routingKey: String,
                              properties: AMQPBasicProperties = .none, mandatory: Bool = false,
                              confirmDeadline: NIODeadline? = nil) -> EventLoopFuture<Void> {
        let core = connectionCore
        let channel = self.core
        let promise = core.eventLoop.makePromise(of: Void.self)
        let outcome = confirmDeadline == nil ? promise : core.eventLoop.makePromise(of: Void.self)
        let start: @Sendable () -> Void = {
            if let confirmDeadline {
                // Both callbacks run on the loop: whichever comes first settles `outcome`.
                var settled = false
                let timer = core.eventLoop.scheduleTask(deadline: confirmDeadline) {
                    guard !settled else { return }
                    settled = true
                    outcome.fail(AMQPError.confirmTimedOut)
                }
                promise.futureResult.whenComplete { result in
                    timer.cancel()
                    guard !settled else { return }
                    settled = true
                    outcome.completeWith(result)
                }
            }
            core.publish(on: channel, body: body, exchange: exchange, routingKey: routingKey,
                         properties: properties, mandatory: mandatory, promise: promise)
        }
        if core.eventLoop.inEventLoop { start() } else { core.eventLoop.execute(start) }
        return outcome.futureResult
    }

    public func publish(_ body: some Sequence<UInt8>, exchange: String = "", routingKey: String,
                        properties: AMQPBasicProperties = .none, mandatory: Bool = false) async throws {
        try await publish(ByteBuffer(bytes: body), exchange: exchange, routingKey: routingKey,
                          properties: properties, mandatory: mandatory)
    }

    public func publish(_ body: String, exchange: String = "", routingKey: String,
                        properties: AMQPBasicProperties = .none, mandatory: Bool = false) async throws {
        try await publish(ByteBuffer(string: body), exchange: exchange, routingKey: routingKey,
                          properties: properties, mandatory: mandatory)
    }

    /// Starts a consumer. Deliveries arrive through the returned async sequence, which survives
    /// connection recovery. Buffering: the broker sends at most `basicQos` prefetch unacked messages;
    /// on our side, once more than `bufferHighWatermark` messages wait unread in any consumer, the
    /// connection stops reading from its socket (TCP back-pressure) until that consumer drains below
    /// `bufferHighWatermark / 4`. A paused socket also delays confirms, so publish and consume on
    /// separate connections when that matters. Ending the iteration cancels the consumer.
    ///
    /// `argumentsOnRecovery`, when given, is called at each recovery for the arguments of the
    /// restarted consumer: a stream consumer passes the `x-stream-offset` after the last message it
    /// handled, so that it neither skips what was appended while it was away nor starts over.
    ///
    /// `onDelivery`, when given, sees every delivery on the connection's event loop as it is read
    /// (also after a recovery), before the sequence gets it: for code that lives on that loop and
    /// would otherwise wait for a task to hand the message back. It must not block, and must not
    /// call into this connection synchronously (hop with `eventLoop.execute`). The sequence still
    /// gets every message (to acknowledge it, and to see the consumer end).
    public func consume(queue: String, consumerTag: String? = nil, noAck: Bool = false, exclusive: Bool = false,
                        arguments: AMQPFieldTable = [:], bufferHighWatermark: Int = 1024,
                        argumentsOnRecovery: (@Sendable () -> AMQPFieldTable)? = nil,
                        onDelivery: (@Sendable (AMQPMessage) -> Void)? = nil) async throws -> AMQPConsumer {
        let tag = consumerTag ?? "swift-amqp-\(UInt64.random(in: 0...UInt64.max))"
        let core = connectionCore
        let channel = self.core
        let high = max(bufferHighWatermark, 4)
        let producer = NIOThrowingAsyncSequenceProducer.makeSequence(
            elementType: AMQPMessage.self, failureType: (any Error).self,
            backPressureStrategy: NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark(
                lowWatermark: high / 4, highWatermark: high),
            finishOnDeinit: true,
            delegate: ConsumerFlowDelegate(core: core, channelID: id, tag: tag))
        let sink = ConsumerSink(tag: tag, source: producer.source, onDelivery: onDelivery)
        let consume = BasicConsume(queue: queue, consumerTag: tag, noLocal: false, noAck: noAck, exclusive: exclusive,
                                   noWait: false, arguments: arguments)
        let promise = core.eventLoop.makePromise(of: AMQPMethod.self)
        core.eventLoop.execute {
            // Registered before the request goes out: deliveries may follow consume-ok immediately.
            channel.consumers[tag] = sink
            core.send(.basicConsume(consume), on: channel, promise: promise)
        }
        do {
            _ = try await promise.futureResult.get()
        } catch {
            core.eventLoop.execute { channel.consumers[tag] = nil }
            producer.source.finish(error)
            throw error
        }
        let recorded = TopologyRecorder.RecordedConsumer(consumerTag: tag, queue: queue, channelID: id, noAck: noAck,
                                                         exclusive: exclusive, arguments: arguments,
                                                         argumentsOnRecovery: argumentsOnRecovery.map { .init(make: $0) })
        try await core.eventLoop.submit { core.topology.consumerStarted(recorded) }.get()
        return AMQPConsumer(tag: tag, channel: self, sequence: producer.sequence)
    }

    /// Stops a consumer at the broker; its sequence ends after the messages already received.
    public func cancel(consumerTag: String) async throws {
        let core = connectionCore
        let channel = self.core
        _ = try await rpc(.basicCancel(BasicCancel(consumerTag: consumerTag, noWait: false))) { core in
            core.topology.consumerCancelled(tag: consumerTag)
        }
        try await core.eventLoop.submit {
            if let sink = channel.consumers.removeValue(forKey: consumerTag) {
                if !sink.batch.isEmpty { _ = sink.source.yield(contentsOf: sink.batch) }
                sink.source.finish()
            }
        }.get()
    }

    /// basic.get: one message or nil when the queue is empty.
    public func get(queue: String, noAck: Bool = false) async throws -> AMQPMessage? {
        let core = connectionCore
        let channel = self.core
        let promise = core.eventLoop.makePromise(of: AMQPMethod.self)
        let key = ObjectIdentifier(promise.futureResult)
        core.eventLoop.execute { core.send(.basicGet(BasicGet(queue: queue, noAck: noAck)), on: channel, promise: promise) }
        let response = try await promise.futureResult.get()
        guard case .basicGetOk(let ok) = response else { return nil }
        let (content, generation) = try await core.eventLoop.submit { (core.getResults.removeValue(forKey: key), channel.generation) }.get()
        guard let content else { throw AMQPError.protocolViolation("basic.get-ok without content") }
        return AMQPMessage(body: content.body, properties: content.properties, deliveryTag: ok.deliveryTag,
                           redelivered: ok.redelivered, exchange: ok.exchange, routingKey: ok.routingKey,
                           consumerTag: "", messageCount: ok.messageCount, channel: self, channelGeneration: generation)
    }

    /// Unroutable mandatory messages on a channel without confirm mode (newest 256 kept if unread).
    public func returnedMessages() -> AsyncStream<AMQPReturnedMessage> {
        let (stream, continuation) = AsyncStream<AMQPReturnedMessage>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let channel = core
        connectionCore.eventLoop.execute { channel.returnListeners.append(continuation) }
        return stream
    }

    /// Closes the channel (channel.close / close-ok). Its consumers end; it is not recovered.
    public func close() async throws {
        let core = connectionCore
        let channel = self.core
        let promise = core.eventLoop.makePromise(of: AMQPMethod.self)
        core.eventLoop.execute { core.closeChannel(channel, promise: promise) }
        _ = try await promise.futureResult.get()
    }

    /// Whether the channel can currently be used.
    public var isOpen: Bool {
        get async {
            let core = connectionCore
            let channel = self.core
            return (try? await core.eventLoop.submit { core.acceptsApplicationWork && channel.machine?.state == .open }.get()) ?? false
        }
    }

    // MARK: Internals

    /// ack/nack/reject: fire-and-forget writes (the broker sends no reply). A delivery from before a
    /// recovery throws `.staleDelivery` instead of acking an unrelated message on the new channel.
    func acknowledge(_ method: AMQPMethod, generation: Int) throws {
        guard core.generationSnapshot.withLockedValue({ $0 }) == generation else { throw AMQPError.staleDelivery }
        let core = connectionCore
        let channel = self.core
        core.eventLoop.execute {
            // Re-checked on the loop: a recovery may have happened since.
            guard core.acceptsApplicationWork, channel.generation == generation, channel.machine?.state == .open else {
                return
            }
            core.handler?.write(.method(channel: channel.id, method))
        }
    }

    private func rpc(_ method: AMQPMethod, onSuccess: @escaping @Sendable (ConnectionCore) -> Void = { _ in }) async throws -> AMQPMethod {
        let core = connectionCore
        let channel = self.core
        let promise = core.eventLoop.makePromise(of: AMQPMethod.self)
        core.eventLoop.execute { core.send(method, on: channel, promise: promise) }
        let response = try await promise.futureResult.get()
        try await core.eventLoop.submit { onSuccess(core) }.get()
        return response
    }
}
