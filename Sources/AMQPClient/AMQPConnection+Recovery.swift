import AMQPProtocol
import Logging
import NIOCore

/// Recovery after a lost socket: reconnect with back-off across the endpoints, then restore
/// channels, topology and consumers in the Java client's order.
extension AMQPConnection {
    /// One recovery task runs the attempts after a loss; which attempt it is, whether to go on
    /// and whether its socket is still the current one are `RecoveryStateMachine`'s answers.
    func recover(after error: AMQPError) async {
        let core = self.core
        let backoff = ReconnectBackoff(initialDelay: configuration.recovery.initialDelay,
                                       maximumDelay: configuration.recovery.maximumDelay)
        while true {
            let next = try? await core.eventLoop.submit { () -> RecoveryStateMachine.AttemptAction in
                let action = core.lifecycle.nextAttempt()
                switch action {
                case .stop:
                    break
                case .giveUp(let attempts):
                    self.logger.error("AMQP recovery gave up", metadata: ["attempts": "\(attempts)"])
                    core.finishForGood(error: error)
                case .reconnect(let attempt):
                    core.emit(.recovering(attempt: attempt))
                }
                return action
            }.get()
            guard case .reconnect(let attempt)? = next else { return }

            let delay = backoff.delay(forAttempt: attempt)
            try? await core.eventLoop.flatSubmit { core.waitForBackoff(delay) }.get()
            guard let index = ReconnectBackoff.endpointIndex(forAttempt: attempt, endpointCount: configuration.endpoints.count) else {
                // No endpoint configured: nothing to reconnect to (connect already failed so).
                _ = try? await core.eventLoop.submit { core.finishForGood(error: error) }.get()
                return
            }
            let endpoint = configuration.endpoints[index]
            logger.info("AMQP recovery attempt", metadata: ["attempt": "\(attempt)", "endpoint": "\(endpoint)"])
            let socket: Channel
            let socketID: RecoveryStateMachine.SocketID
            do {
                let handler: AMQPConnectionHandler
                let negotiated: AMQPNegotiatedParameters
                (socket, handler, negotiated) = try await Self.openSocket(to: endpoint, core: core)
                let attached = try await core.eventLoop.submit { () -> RecoveryStateMachine.SocketID? in
                    guard case .restore(let id) = core.attach(handler: handler, socket: socket, negotiated: negotiated) else {
                        return nil
                    }
                    if !socket.isActive { core.handlerClosed(error: .connectionLost("closed right after open")) }
                    return id
                }.get()
                guard let attached else { return }
                socketID = attached
            } catch {
                logger.warning("AMQP reconnect failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                continue
            }
            do {
                // Open for recovery's own requests; the application keeps getting .notConnected
                // until everything is restored.
                try await restoreEverything()
                try await core.eventLoop.submit {
                    guard case .announceRecovered = core.lifecycle.restoreFinished(on: socketID) else {
                        throw AMQPError.connectionLost("\(socketID) died during recovery")
                    }
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
