import AMQPProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// A connection to RabbitMQ that recovers by itself.
///
/// ```swift
/// let connection = try await AMQPConnection.connect(.init(url: "amqp://guest:guest@127.0.0.1"), logger: logger)
/// let channel = try await connection.openChannel()
/// ```
/// When the socket dies, in-flight operations fail with `AMQPError.connectionLost`, calls made while
/// disconnected fail at once with `.notConnected`, and recovery reconnects (exponential backoff with
/// jitter across the endpoints), reopens channels, restores qos and confirm mode, redeclares exchanges,
/// queues and bindings, and restarts consumers, whose async sequences keep delivering.
public final class AMQPConnection: Sendable {
    let core: ConnectionCore
    public let configuration: AMQPConnectionConfiguration
    private let logger: Logger

    /// Connects to the first endpoint that accepts (no recovery on this first attempt: a wrong URL
    /// or password should surface at once). Throws `AMQPError`.
    public static func connect(
        _ configuration: AMQPConnectionConfiguration,
        eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "amqp")
    ) async throws -> AMQPConnection {
        let eventLoop = eventLoopGroup.next()
        let core = ConnectionCore(eventLoop: eventLoop, configuration: configuration, logger: logger)
        let connection = AMQPConnection(core: core, configuration: configuration, logger: logger)
        var lastError: AMQPError = .connectFailed(endpoint: "-", reason: "no endpoints configured")
        for endpoint in configuration.endpoints {
            do {
                let (socket, handler, negotiated) = try await Self.openSocket(to: endpoint, core: core)
                try await eventLoop.submit {
                    core.attach(handler: handler, socket: socket, negotiated: negotiated)
                    core.onUnexpectedClose = { [weak connection] error in
                        guard let connection else { return }
                        Task { await connection.recover(after: error) }
                    }
                    core.emit(.connected)
                    if !socket.isActive { core.handlerClosed(error: .connectionLost("closed right after open")) }
                }.get()
                logger.info("AMQP connected", metadata: ["endpoint": "\(endpoint)", "frameMax": "\(negotiated.frameMax)",
                                                         "heartbeat": "\(negotiated.heartbeat)", "channelMax": "\(negotiated.channelMax)"])
                return connection
            } catch let error as AMQPError {
                lastError = error
                if case .authenticationFailed = error { break }
            } catch {
                lastError = .connectFailed(endpoint: "\(endpoint)", reason: "\(error)")
            }
        }
        let failure = lastError
        try? await eventLoop.submit { core.finishForGood(error: failure) }.get()
        throw failure
    }

    private init(core: ConnectionCore, configuration: AMQPConnectionConfiguration, logger: Logger) {
        self.core = core
        self.configuration = configuration
        self.logger = logger
    }

    /// The event loop the connection runs on: users arm their protocol timers here, so the
    /// timers live where the connection's state does.
    public var eventLoop: EventLoop { core.eventLoop }

    /// State changes from now on (each access gives a new stream). Buffers the newest 64 events.
    public var stateChanges: AsyncStream<AMQPConnectionState> {
        let (stream, continuation) = AsyncStream<AMQPConnectionState>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let core = self.core
        core.eventLoop.execute {
            if core.phase == .closed {
                continuation.yield(.closed)
                continuation.finish()
                return
            }
            let id = core.nextObserverID
            core.nextObserverID += 1
            core.stateObservers[id] = continuation
            continuation.onTermination = { _ in core.eventLoop.execute { core.stateObservers[id] = nil } }
        }
        return stream
    }

    /// The limits agreed with the broker on the current socket.
    public var negotiatedParameters: AMQPNegotiatedParameters? {
        get async { try? await core.eventLoop.submit { self.core.negotiated }.get() }
    }

    public var isConnected: Bool {
        get async { (try? await core.eventLoop.submit { self.core.phase == .open }.get()) ?? false }
    }

    /// Opens a channel with the lowest free id.
    public func openChannel() async throws -> AMQPChannel {
        let core = self.core
        let promise = core.eventLoop.makePromise(of: AMQPMethod.self)
        let channel: AMQPChannel
        do {
            channel = try await core.eventLoop.submit { () throws -> AMQPChannel in
                guard core.acceptsApplicationWork else { throw core.phase == .closed ? AMQPError.connectionClosed : AMQPError.notConnected }
                let id = try core.allocateChannelID()
                let channelCore = ChannelCore(id: id)
                core.channels[id] = channelCore
                let channel = AMQPChannel(connection: self, core: channelCore)
                core.publicChannels[id] = .init(value: channel)
                core.openChannel(channelCore, promise: promise)
                return channel
            }.get()
        } catch {
            // Refused before the open was sent (not connected, no free id): the promise was
            // never handed on, and a promise dropped unfulfilled traps in debug builds.
            promise.fail(error)
            throw error
        }
        do {
            _ = try await promise.futureResult.get()
        } catch {
            // Never opened: free the id.
            try? await core.eventLoop.submit {
                core.channels[channel.id] = nil
                core.publicChannels[channel.id] = nil
            }.get()
            throw error
        }
        return channel
    }

    /// Closes the connection cleanly (connection.close / close-ok). Recovery stops.
    public func close() async throws {
        let core = self.core
        try await core.eventLoop.submit {
            core.closeRequestedByApplication = true
            if let handler = core.handler {
                handler.requestClose()
                // Don't let a silent broker hold us: close the socket after 2 s regardless.
                let socket = core.socket
                core.eventLoop.scheduleTask(in: .seconds(2)) { socket?.close(promise: nil) }
            } else if core.phase != .closed {
                core.finishForGood()
            }
        }.get()
        try await core.closedPromise.futureResult.get()
    }

    // MARK: Sockets

    static func openSocket(
        to endpoint: AMQPEndpoint, core: ConnectionCore
    ) async throws -> (Channel, AMQPConnectionHandler, AMQPNegotiatedParameters) {
        let configuration = core.configuration
        let established = core.eventLoop.makePromise(of: AMQPNegotiatedParameters.self)
        let credentials = ConnectionStateMachine.Credentials(
            username: configuration.username, password: configuration.password,
            virtualHost: configuration.virtualHost,
            clientProperties: clientProperties(connectionName: configuration.connectionName),
            desired: ConnectionTuneOk(channelMax: configuration.channelMax, frameMax: configuration.frameMax,
                                      heartbeat: configuration.heartbeat))
        let handler = AMQPConnectionHandler(credentials: credentials, established: established, logger: core.logger)
        let tlsContext: NIOSSLContext? = endpoint.useTLS
            ? try NIOSSLContext(configuration: configuration.tlsConfiguration ?? .makeClientConfiguration())
            : nil
        let timeout = configuration.connectTimeout
        let bootstrap = ClientBootstrap(group: core.eventLoop)
            .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
                                         + Int64(timeout.components.attoseconds / 1_000_000_000)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        let tls = try NIOSSLClientHandler(context: tlsContext,
                                                          serverHostname: Self.tlsServerName(for: endpoint, configuration))
                        try channel.pipeline.syncOperations.addHandler(tls)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let socket: Channel
        do {
            socket = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            let failure = AMQPError.connectFailed(endpoint: "\(endpoint)", reason: "\(error)")
            established.fail(failure)
            throw failure
        }
        // A broker that accepts TCP but never finishes the handshake must not hang us.
        let handshakeTimeout = core.eventLoop.scheduleTask(in: .seconds(Int64(max(1, timeout.components.seconds)))) {
            established.fail(AMQPError.connectFailed(endpoint: "\(endpoint)", reason: "AMQP handshake timed out"))
            socket.close(promise: nil)
        }
        do {
            let negotiated = try await established.futureResult.get()
            handshakeTimeout.cancel()
            return (socket, handler, negotiated)
        } catch {
            handshakeTimeout.cancel()
            socket.close(promise: nil)
            throw error
        }
    }

    /// SNI may not carry an IP address; without a name NIOSSL checks the peer's IP against the
    /// certificate instead, which is what connecting to `amqps://127.0.0.1` should mean.
    static func tlsServerName(for endpoint: AMQPEndpoint, _ configuration: AMQPConnectionConfiguration) -> String? {
        if let name = configuration.tlsServerName { return name }
        let isIPAddress = (try? SocketAddress(ipAddress: endpoint.host, port: 0)) != nil
        return isIPAddress ? nil : endpoint.host
    }

    static func clientProperties(connectionName: String?) -> AMQPFieldTable {
        var entries: [AMQPFieldTable.Entry] = [
            .init(key: "product", value: .longString("swift-amqp-client")),
            .init(key: "version", value: .longString("0.1.0")),
            .init(key: "platform", value: .longString("Swift")),
            .init(key: "capabilities", value: .table([
                "publisher_confirms": .bool(true),
                "consumer_cancel_notify": .bool(true),
                "connection.blocked": .bool(true),
                "basic.nack": .bool(true),
                "authentication_failure_close": .bool(true),
                "exchange_exchange_bindings": .bool(true),
                "per_consumer_qos": .bool(true),
            ])),
        ]
        if let connectionName {
            entries.append(.init(key: "connection_name", value: .longString(connectionName)))
        }
        return AMQPFieldTable(entries)
    }

    // MARK: Recovery

    private func recover(after error: AMQPError) async {
        let core = self.core
        let backoff = ReconnectBackoff(initialDelay: configuration.recovery.initialDelay,
                                       maximumDelay: configuration.recovery.maximumDelay)
        while true {
            // The attempt count lives in the core so that a socket dying half-way through a recovery
            // (which starts a fresh recover task) keeps backing off instead of starting over.
            let attempt = (try? await core.eventLoop.submit { () -> Int in
                guard core.phase == .recovering, !core.closeRequestedByApplication else { return 0 }
                core.recoveryAttempt += 1
                if let limit = self.configuration.recovery.maximumAttempts, core.recoveryAttempt > limit {
                    self.logger.error("AMQP recovery gave up", metadata: ["attempts": "\(limit)"])
                    core.finishForGood(error: error)
                    return 0
                }
                core.emit(.recovering(attempt: core.recoveryAttempt))
                return core.recoveryAttempt
            }.get()) ?? 0
            guard attempt > 0 else { return }

            try? await Task.sleep(for: backoff.delay(forAttempt: attempt))
            guard let index = ReconnectBackoff.endpointIndex(forAttempt: attempt, endpointCount: configuration.endpoints.count) else {
                // No endpoint configured: nothing to reconnect to (connect already failed so).
                _ = try? await core.eventLoop.submit { core.finishForGood(error: error) }.get()
                return
            }
            let endpoint = configuration.endpoints[index]
            logger.info("AMQP recovery attempt", metadata: ["attempt": "\(attempt)", "endpoint": "\(endpoint)"])
            let socket: Channel
            let handler: AMQPConnectionHandler
            do {
                let negotiated: AMQPNegotiatedParameters
                (socket, handler, negotiated) = try await Self.openSocket(to: endpoint, core: core)
                let attached = try await core.eventLoop.submit { () -> Bool in
                    guard core.phase == .recovering, !core.closeRequestedByApplication else {
                        socket.close(promise: nil)
                        return false
                    }
                    core.attach(handler: handler, socket: socket, negotiated: negotiated)
                    // Open for recovery's own requests; the application keeps getting .notConnected
                    // until everything is restored.
                    core.isRestoring = true
                    if !socket.isActive { core.handlerClosed(error: .connectionLost("closed right after open")) }
                    return true
                }.get()
                guard attached else { return }
            } catch {
                logger.warning("AMQP reconnect failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                continue
            }
            do {
                try await restoreEverything()
                try await core.eventLoop.submit {
                    guard core.handler === handler else { throw AMQPError.connectionLost("died during recovery") }
                    core.isRestoring = false
                    core.recoveryAttempt = 0
                    core.emit(.recovered)
                }.get()
                logger.info("AMQP connection recovered", metadata: ["attempt": "\(attempt)", "endpoint": "\(endpoint)"])
            } catch {
                logger.warning("AMQP recovery failed after reconnect", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                // Drop this socket; its close starts the next recover task (or already did).
                socket.close(promise: nil)
            }
            return
        }
    }

    /// Java client order: channels (with qos and confirm mode), exchanges, queues, bindings, consumers.
    private func restoreEverything() async throws {
        let core = self.core
        let channelCores = try await core.eventLoop.submit { core.channels.values.sorted { $0.id < $1.id } }.get()
        for channel in channelCores {
            try await reopen(channel)
        }

        // Topology goes through one short-lived channel of its own, like a fresh declare would.
        let topology = try await core.eventLoop.submit { core.topology }.get()
        var recoveryChannel = try await openRecoveryChannel()
        func redeclare(_ method: AMQPMethod, what: AMQPRecoveryFailure.Entity) async throws -> AMQPMethod? {
            do {
                return try await rpc(method, on: recoveryChannel)
            } catch AMQPError.channelClosedByBroker(let reason) {
                // Right after a broker restart its queues may not be up yet: try the whole
                // recovery again later rather than lose the queue and its consumers for good.
                if reason.isTransientUnavailability { throw AMQPError.connectionLost("\(what) not available yet: \(reason)") }
                // One bad entity (e.g. now conflicting) must not stop the rest; report and go on.
                report(AMQPRecoveryFailure(entity: what, reason: reason))
                recoveryChannel = try await openRecoveryChannel()
                return nil
            }
        }
        for exchange in topology.exchanges {
            _ = try await redeclare(.exchangeDeclare(exchange), what: .exchange(exchange.exchange))
        }
        for queue in topology.queues {
            let declaration = TopologyRecorder.redeclaration(of: queue)
            guard case .queueDeclareOk(let ok)? = try await redeclare(.queueDeclare(declaration), what: .queue(queue.name)) else {
                continue
            }
            if ok.queue != queue.name {
                logger.info("server-named queue renamed by recovery", metadata: ["old": "\(queue.name)", "new": "\(ok.queue)"])
                try await core.eventLoop.submit { core.topology.queueRenamed(from: queue.name, to: ok.queue) }.get()
            }
        }
        let renamed = try await core.eventLoop.submit { core.topology }.get()
        for binding in renamed.queueBindings {
            _ = try await redeclare(.queueBind(binding), what: .queueBinding(queue: binding.queue, exchange: binding.exchange,
                                                                             routingKey: binding.routingKey))
        }
        for binding in renamed.exchangeBindings {
            _ = try await redeclare(.exchangeBind(binding), what: .exchangeBinding(destination: binding.destination, source: binding.source,
                                                                                   routingKey: binding.routingKey))
        }
        let closePromise = core.eventLoop.makePromise(of: AMQPMethod.self)
        let finishedRecoveryChannel = recoveryChannel
        core.eventLoop.execute { core.closeChannel(finishedRecoveryChannel, promise: closePromise) }
        _ = try? await closePromise.futureResult.get()

        // A consume the broker refuses closes its channel, and with it the consumers restored on it
        // before: report the refused one, reopen the channel and restart the others.
        var pending = renamed.consumers[...]
        var restored: [UInt16: [TopologyRecorder.RecordedConsumer]] = [:]
        while let consumer = pending.popFirst() {
            guard let channel = channelCores.first(where: { $0.id == consumer.channelID }) else { continue }
            let consume = BasicConsume(queue: consumer.queue, consumerTag: consumer.consumerTag, noLocal: false,
                                       noAck: consumer.noAck, exclusive: consumer.exclusive, noWait: false,
                                       arguments: consumer.currentArguments)
            do {
                _ = try await rpc(.basicConsume(consume), on: channel)
                restored[channel.id, default: []].append(consumer)
            } catch AMQPError.channelClosedByBroker(let reason) {
                if reason.isTransientUnavailability {
                    throw AMQPError.connectionLost("consumer \(consumer.consumerTag) not available yet: \(reason)")
                }
                report(AMQPRecoveryFailure(entity: .consumer(tag: consumer.consumerTag, queue: consumer.queue), reason: reason))
                try await core.eventLoop.submit {
                    core.consumerLostInRecovery(channelID: channel.id, tag: consumer.consumerTag,
                                                error: .channelClosedByBroker(reason))
                }.get()
                try await reopen(channel)
                pending = ArraySlice((restored.removeValue(forKey: channel.id) ?? []) + pending)
            }
        }
    }

    /// Opens the channel's next incarnation with its qos and confirm mode.
    private func reopen(_ channel: ChannelCore) async throws {
        let core = self.core
        let promise = core.eventLoop.makePromise(of: AMQPMethod.self)
        core.eventLoop.execute { core.openChannel(channel, promise: promise) }
        _ = try await promise.futureResult.get()
        if let qos = try await core.eventLoop.submit({ channel.qos }).get() {
            _ = try await rpc(.basicQos(qos), on: channel)
        }
        if try await core.eventLoop.submit({ channel.confirmMode }).get() {
            _ = try await rpc(.confirmSelect(ConfirmSelect(noWait: false)), on: channel)
        }
    }

    /// Log and state stream: something the application had declared is not back.
    private func report(_ failure: AMQPRecoveryFailure) {
        logger.error("AMQP recovery could not restore \(failure)")
        let core = self.core
        core.eventLoop.execute { core.emit(.topologyRecoveryFailed(failure)) }
    }

    private func openRecoveryChannel() async throws -> ChannelCore {
        let core = self.core
        let promise = core.eventLoop.makePromise(of: AMQPMethod.self)
        let channel = try await core.eventLoop.submit { () throws -> ChannelCore in
            let id = try core.allocateChannelID()
            let channel = ChannelCore(id: id)
            core.channels[id] = channel
            core.openChannel(channel, promise: promise)
            return channel
        }.get()
        _ = try await promise.futureResult.get()
        return channel
    }

    /// A request made by recovery itself (allowed while the application still sees `.notConnected`).
    func rpc(_ method: AMQPMethod, on channel: ChannelCore) async throws -> AMQPMethod {
        let core = self.core
        let promise = core.eventLoop.makePromise(of: AMQPMethod.self)
        core.eventLoop.execute { core.send(method, on: channel, promise: promise, byRecovery: true) }
        return try await promise.futureResult.get()
    }
}

extension ConnectionCore {
    func closeChannel(_ channel: ChannelCore, promise: EventLoopPromise<AMQPMethod>) {
        guard var machine = channel.machine, handler != nil else {
            channels[channel.id] = nil
            publicChannels[channel.id] = nil
            topology.channelClosed(channel.id)
            channel.terminalError = .channelClosed
            promise.succeed(.channelCloseOk(ChannelCloseOk()))
            return
        }
        channel.machine = nil
        let action = machine.closeRequested(promise: promise)
        channel.machine = machine
        run(action, on: channel)
    }
}
