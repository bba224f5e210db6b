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
    public func start() async throws {
        let publish = try await cluster.connection.openChannel()
        try await publish.confirmSelect()
        let consume = try await cluster.connection.openChannel()
        try await consume.basicQos(prefetchCount: 512)
        try await publish.exchangeDeclare(exchangeName, type: "direct", durable: true)
        var arguments: AMQPFieldTable = ["x-expires": .int32(Int32(clamping: options.queueExpiresMilliseconds))]
        if let ttl = options.queueMessageTTLMilliseconds {
            arguments = ["x-expires": .int32(Int32(clamping: options.queueExpiresMilliseconds)), "x-message-ttl": .int32(Int32(clamping: ttl))]
        }
        try await consume.queueDeclare(queueName, durable: true, arguments: arguments)
        try await consume.queueBind(queue: queueName, exchange: exchangeName, routingKey: RoomRoutingKeys.everyNode)
        if let recoveryStreamName {
            try await consume.queueDeclare(recoveryStreamName, durable: true, arguments: [
                "x-queue-type": .longString("stream"),
                "x-max-age": .longString(options.recoveryStreamMaxAge),
                "x-max-length-bytes": .int64(Int64(clamping: options.recoveryStreamMaxLengthBytes)),
            ])
        }
        // Manual acks: a message the broker handed over but this node had not handled when its
        // connection died is redelivered after recovery (the duplicate filter drops copies).
        let consumer = try await consume.consume(queue: queueName, noAck: false, exclusive: true)
        let streamConsumer = try await startStreamConsumer(resuming: false)

        let started: [Task<Void, Never>] = [
            Task { [weak self] in await self?.runNodeConsumer(consumer) },
            Task { [weak self] in await self?.runPublisher(on: publish) },
            Task { [weak self] in await self?.runStreamConsumer(streamConsumer) },
            Task { [weak self] in await self?.runBindingChanges(on: consume) },
        ]
        tasks.withLockedValue { $0.append(contentsOf: started) }
        let interval = Int64(clamping: Self.nanoseconds(seconds: options.heartbeatIntervalSeconds))
        heartbeat.withLockedValue {
            $0 = cluster.connection.eventLoop.scheduleRepeatedTask(initialDelay: .nanoseconds(interval), delay: .nanoseconds(interval)) { [weak self] _ in
                self?.feed { machine, now in machine.heartbeatTick(now: now) }
            }
        }
        feed { machine, now in machine.started(now: now) }
    }

    /// Messages from other nodes. Its end while the adapter is open (the broker cancelled the
    /// consumer) is logged and makes the node not ready, never swallowed.
    private func runNodeConsumer(_ consumer: AMQPConsumer) async {
        do {
            var handled = 0
            for try await message in consumer {
                feed { machine, now in machine.nodeBodyRead(message.body, now: now) }
                handled += 1
                if handled % Self.ackBatch == 0 { try? await message.ack(multiple: true) }
            }
            if !Task.isCancelled { logger.error("cluster consumer ended") }
        } catch where !Task.isCancelled {
            logger.error("cluster consumer ended", metadata: ["error": "\(error)"])
        } catch {}
        guard !Task.isCancelled else { return }
        feed { machine, _ in machine.nodeConsumerEnded() }
    }

    /// Binding operations run one at a time, in number order, so the broker sees binds and
    /// unbinds in the order the memberships changed.
    private func runBindingChanges(on channel: AMQPChannel) async {
        for await _ in bindingWakeupStream {
            while let operation = machine.withLockedValue({ $0.nextBindingOperation() }) {
                do {
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
