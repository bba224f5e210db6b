import AMQPClient
import AMQPProtocol
import NIOCore

/// The publisher, on the AMQP connection's loop with no task of its own: it takes batches from
/// the machine in outbox order and publishes one at a time, each waiting for its confirm
/// (publishes in flight together could overtake each other after a failure). Whatever queued
/// up meanwhile goes out as one batch, so throughput does not stop at one message per
/// confirm round trip. Every wait for a confirm has a deadline: in a RabbitMQ cluster a
/// channel can keep a publish unconfirmed for good (a stream's leader died), and the machine
/// then republishes the outbox on a new channel. What a confirm, nack, failure or timeout
/// means is the machine's decision.
extension RabbitMQAdapter {
    /// The publisher's part of the loop state.
    struct PublisherState {
        /// Set by `start` (nil before: nothing is published).
        var channel: AMQPChannel?
        /// A batch is waiting for its confirm, or a new channel is being opened.
        var isBusy = false
    }

    enum PublishOutcome: Sendable {
        case confirmed, nacked, failed, timedOut
    }

    /// `.wakePublisher`, a finished publish or a new channel: the next step, unless one is in
    /// progress. A channel the machine asked for comes first; then the next batch, if any.
    func publishNext() {
        guard !state.value.publisher.isBusy, let channel = state.value.publisher.channel else { return }
        if let delay = state.value.channelReplacement {
            state.value.channelReplacement = nil
            state.value.publisher.isBusy = true
            Task {
                let fresh = await self.replacePublishChannel(channel, after: delay)
                self.loop.execute {
                    self.state.value.publisher = PublisherState(channel: fresh, isBusy: false)
                    self.publishNext()
                }
            }
            return
        }
        // `nextBatch` returns no actions: there is nothing to run.
        guard let batch = state.value.machine.nextBatch() else { return }
        state.value.publisher.isBusy = true
        let deadline = state.value.machine.confirmDeadline(now: Self.now())
        publish(batch, on: channel, deadline: deadline).whenSuccess { outcome in
            // On the loop. The outcome is fed first; the next batch is taken after it.
            self.state.value.publisher.isBusy = false
            self.feed { machine, now in
                var actions: [Machine.Action]
                switch outcome {
                case .confirmed: actions = machine.publishConfirmed(batch, now: now)
                case .nacked: actions = machine.publishNacked(batch, now: now)
                // Connection lost or not connected: everything unconfirmed waits for
                // recovery; this node's packets in flight are delivered here, in order.
                case .failed: actions = machine.publishFailed(batch)
                case .timedOut: actions = machine.publishConfirmTimedOut(batch, now: now)
                }
                actions.append(.wakePublisher)
                return actions
            }
        }
    }

    /// The machine asked for a new channel (`.republishOnNewChannel`, on the loop): the
    /// publisher opens it at its next step.
    func publisherNeedsNewChannel(after delay: UInt64) {
        state.value.channelReplacement = max(state.value.channelReplacement ?? 0, delay)
        publishNext()
    }

    /// Closes the stuck channel (its pending publish fails and is forgotten) and opens a new
    /// confirm channel; the machine then replays the outbox on it.
    private func replacePublishChannel(_ old: AMQPChannel, after delay: UInt64) async -> AMQPChannel {
        if delay > 0 { try? await Task.sleep(nanoseconds: delay) }
        Task { try? await old.close() }
        do {
            let fresh = try await cluster.connection.openChannel()
            try await fresh.confirmSelect()
            logger.info("publisher: new channel open; republishing the outbox", metadata: ["namespace": "\(namespace.name)"])
            feed { machine, _ in machine.publishChannelReplaced() }
            return fresh
        } catch {
            logger.warning("publisher: could not open a new channel", metadata: ["error": "\(error)"])
            feed { machine, _ in machine.publishChannelReplacementFailed("\(error)") }
            return old
        }
    }

    /// Publishes one batch; its outcome comes on the loop when the broker confirmed it or at
    /// `deadline` (monotonic nanoseconds). On a timeout the publish is left behind: its late
    /// outcome is ignored (the machine made that epoch stale).
    private func publish(_ batch: Machine.PublishBatch, on channel: AMQPChannel, deadline: UInt64) -> EventLoopFuture<PublishOutcome> {
        var headers: AMQPFieldTable?
        if !batch.ccRoutingKeys.isEmpty {
            headers = ["CC": .array(batch.ccRoutingKeys.map { .longString($0) })]
        }
        let properties = AMQPBasicProperties(headers: headers, deliveryMode: 2)
        return channel.publishFuture(batch.body, exchange: batch.exchange, routingKey: batch.routingKey, properties: properties,
                                     confirmDeadline: .uptimeNanoseconds(deadline))
            .map { PublishOutcome.confirmed }
            .recover { error in
                switch error {
                case AMQPError.publishNacked: return .nacked
                case AMQPError.confirmTimedOut: return .timedOut
                default: return .failed
                }
            }
    }
}
