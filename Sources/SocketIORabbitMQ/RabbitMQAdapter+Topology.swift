import AMQPClient
import AMQPProtocol

/// Declaring the namespace's exchange, this node's queue and the recovery stream, starting
/// the consumers, and applying room binding changes in order.
extension RabbitMQAdapter {
    /// Deliveries acknowledged together (one `multiple` ack per batch keeps broker round
    /// trips low; the prefetch windows are far above it).
    static let ackBatch = 32

    /// Declares the topology and starts consuming. Any failure is thrown to the caller
    /// (`SocketIOServer.start`): a node that cannot join the cluster must not look started.
    /// The caller may call it again (the chat retries with back-off: on a fresh RabbitMQ
    /// cluster the first consume of a just-declared stream can be refused); once started,
    /// it returns at once.
    public func start() async throws {
        guard !machine.withLockedValue({ $0.isConsuming }) else { return }
        var opened: [AMQPChannel] = []
        do {
            let publish = try await cluster.connection.openChannel()
            opened.append(publish)
            try await publish.confirmSelect()
            let consume = try await cluster.connection.openChannel()
            opened.append(consume)
            try await consume.basicQos(prefetchCount: 512)
            try await publish.exchangeDeclare(exchangeName, type: "direct", durable: true)
            try await declareNodeQueue(on: consume)
            if let recoveryStreamName {
                try await RabbitMQStreams.declare(recoveryStreamName, arguments: [
                    "x-max-age": .longString(options.recoveryStreamMaxAge),
                    "x-max-length-bytes": .int64(Int64(clamping: options.recoveryStreamMaxLengthBytes)),
                ], replicas: options.streamInitialClusterSize, on: cluster.connection, logger: logger)
            }
            // Manual acks: a message the broker handed over but this node had not handled when its
            // connection died is redelivered after recovery (the duplicate filter drops copies).
            let consumer = try await consume.consume(queue: queueName, noAck: false)
            let streamConsumer = try await startStreamConsumer(resuming: false)
            nodeChannel.withLockedValue { $0 = consume }

            let started: [Task<Void, Never>] = [
                Task { [weak self] in await self?.runNodeConsumer(consumer) },
                Task { [weak self] in await self?.runPublisher(on: publish) },
                Task { [weak self] in await self?.runStreamConsumer(streamConsumer) },
                Task { [weak self] in await self?.runBindingChanges() },
            ]
            tasks.withLockedValue { $0.append(contentsOf: started) }
        } catch {
            // A retried start must not leak channels; the one the broker closed is gone already.
            for channel in opened { Task { if await channel.isOpen { try? await channel.close() } } }
            throw error
        }
        let interval = Int64(clamping: Self.nanoseconds(seconds: options.heartbeatIntervalSeconds))
        heartbeat.withLockedValue {
            $0 = cluster.connection.eventLoop.scheduleRepeatedTask(initialDelay: .nanoseconds(interval), delay: .nanoseconds(interval)) { [weak self] _ in
                self?.feed { machine, now in machine.heartbeatTick(now: now) }
            }
        }
        feed { machine, now in machine.started(now: now) }
        // An observer of the namespace's events starts from what the stream holds: the
        // node is not started (nor ready) before that is read.
        await replayRecoverableEvents()
    }

    /// This node's queue (see `RabbitMQAdapterOptions.durableNodeQueues`) and its `all` binding.
    private func declareNodeQueue(on channel: AMQPChannel) async throws {
        var arguments: AMQPFieldTable = ["x-expires": .int32(Int32(clamping: options.queueExpiresMilliseconds))]
        if let ttl = options.queueMessageTTLMilliseconds {
            arguments["x-message-ttl"] = .int32(Int32(clamping: ttl))
        }
        try await channel.queueDeclare(queueName, durable: options.durableNodeQueues, arguments: arguments)
        try await channel.queueBind(queue: queueName, exchange: exchangeName, routingKey: RoomRoutingKeys.everyNode)
    }

    /// Back-off between restarts of a consumer: 0.5 s, doubling, at most 5 s.
    static func restartDelayNanoseconds(attempt: Int) -> UInt64 {
        let exponent = UInt64(min(max(attempt, 1) - 1, 4))
        return min(500_000_000 << exponent, 5_000_000_000)
    }

    /// Messages from other nodes. An end while the adapter is open (the broker cancelled the
    /// consumer, or refused it at a connection recovery: in a cluster, the queue's broker
    /// node went down) is logged, makes the node not ready, and the queue is declared again
    /// (on whichever broker node the connection is on now), bound and consumed, with
    /// back-off, until that works or the adapter closes.
    private func runNodeConsumer(_ first: AMQPConsumer) async {
        var consumer: AMQPConsumer? = first
        var attempt = 0
        while true {
            if let current = consumer {
                do {
                    var handled = 0
                    for try await message in current {
                        feed { machine, now in machine.nodeBodyRead(message.body, now: now) }
                        handled += 1
                        if handled % Self.ackBatch == 0 { try? await message.ack(multiple: true) }
                    }
                    if !Task.isCancelled { logger.error("cluster node queue consumer ended", metadata: ["queue": "\(queueName)"]) }
                } catch where !Task.isCancelled {
                    logger.error("cluster node queue consumer ended", metadata: ["queue": "\(queueName)", "error": "\(error)"])
                } catch {}
            }
            consumer = nil
            guard !Task.isCancelled, !machine.withLockedValue({ $0.isClosed }) else { return }
            feed { machine, _ in machine.nodeConsumerEnded() }
            attempt += 1
            try? await Task.sleep(nanoseconds: Self.restartDelayNanoseconds(attempt: attempt))
            guard !Task.isCancelled else { return }
            do {
                let channel = try await cluster.connection.openChannel()
                try await channel.basicQos(prefetchCount: 512)
                try await declareNodeQueue(on: channel)
                consumer = try await channel.consume(queue: queueName, noAck: false)
                let old = nodeChannel.withLockedValue { current -> AMQPChannel? in defer { current = channel }; return current }
                if let old { Task { try? await old.close() } }
                logger.notice("cluster node queue consumer restarted", metadata: ["queue": "\(queueName)", "attempt": "\(attempt)"])
                attempt = 0
                feed { machine, _ in machine.nodeConsumerRestarted() }
            } catch {
                logger.error("cluster node queue consumer could not restart", metadata: ["queue": "\(queueName)", "attempt": "\(attempt)", "error": "\(error)"])
            }
        }
    }

    /// Binding operations run one at a time, in number order, so the broker sees binds and
    /// unbinds in the order the memberships changed.
    private func runBindingChanges() async {
        for await _ in bindingWakeupStream {
            while let operation = machine.withLockedValue({ $0.nextBindingOperation() }) {
                do {
                    // The node queue's channel: a restarted consumer brings a new one.
                    guard let channel = nodeChannel.withLockedValue({ $0 }) else { throw AMQPError.notConnected }
                    switch operation.change {
                    case .bind(let key): try await channel.queueBind(queue: queueName, exchange: exchangeName, routingKey: key)
                    case .unbind(let key): try await channel.queueUnbind(queue: queueName, exchange: exchangeName, routingKey: key)
                    }
                } catch {
                    // While the broker is away the change is lost here, but recovery
                    // re-declares the bindings the client recorded, and the tracker re-binds
                    // every room with members (`connectionRecovered`).
                    logger.warning("room binding change failed", metadata: ["change": "\(operation.change)", "error": "\(error)"])
                }
                feed { machine, _ in machine.bindingOperationFinished(operation.number) }
            }
        }
    }
}
