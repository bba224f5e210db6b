import AMQPClient
import AMQPProtocol
import NIOCore

/// The publisher: one task per adapter takes batches from the machine in outbox order and
/// waits for each confirm (concurrent publishes from separate tasks could overtake each
/// other). Whatever queued up meanwhile goes out as one batch, so throughput does not stop
/// at one message per confirm round trip. Every wait for a confirm has a deadline: in a
/// RabbitMQ cluster a channel can keep a publish unconfirmed for good (a stream's leader
/// died), and the machine then republishes the outbox on a new channel. What a confirm,
/// nack, failure or timeout means is the machine's decision.
extension RabbitMQAdapter {
    enum PublishOutcome: Sendable {
        case confirmed, nacked, failed, timedOut
    }

    /// What the publisher does next, decided in one visit to the loop.
    enum PublisherTurn: Sendable {
        case replaceChannel(afterNanoseconds: UInt64)
        case publish(Machine.PublishBatch, deadline: UInt64)
    }

    func runPublisher(on first: AMQPChannel) async {
        var channel = first
        for await _ in publishWakeupStream {
            while let turn = await nextPublisherTurn() {
                switch turn {
                case .replaceChannel(let delay):
                    channel = await replacePublishChannel(channel, after: delay)
                case .publish(let batch, let deadline):
                    // The outcome is fed (one `execute`) before the next turn is asked for (a
                    // later task on the same loop): the machine sees them in this order.
                    switch await publish(batch, on: channel, deadline: deadline) {
                    case .confirmed:
                        feed { machine, now in machine.publishConfirmed(batch, now: now) }
                    case .nacked:
                        feed { machine, now in machine.publishNacked(batch, now: now) }
                    case .failed:
                        // Connection lost or not connected: everything unconfirmed waits for
                        // recovery; this node's packets in flight are delivered here, in order.
                        feed { machine, _ in machine.publishFailed(batch) }
                    case .timedOut:
                        feed { machine, now in machine.publishConfirmTimedOut(batch, now: now) }
                    }
                }
            }
        }
    }

    /// A channel the machine asked for comes first; then the next batch, if any.
    private func nextPublisherTurn() async -> PublisherTurn? {
        await withLoopState { state -> PublisherTurn? in
            if let delay = state.channelReplacement {
                state.channelReplacement = nil
                return .replaceChannel(afterNanoseconds: delay)
            }
            // `nextBatch` returns no actions: nothing to run.
            return state.machine.nextBatch().map { .publish($0, deadline: state.machine.confirmDeadline(now: Self.now())) }
        } ?? nil
    }

    /// The machine asked for a new channel (`.republishOnNewChannel`): the publisher opens it
    /// at its next turn (on the loop).
    func publisherNeedsNewChannel(after delay: UInt64) {
        state.value.channelReplacement = max(state.value.channelReplacement ?? 0, delay)
        publishWakeups.yield()
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

    /// Publishes one batch and waits for its confirm until `deadline` (monotonic nanoseconds).
    /// On a timeout the publish is left behind: its late outcome is ignored (the machine
    /// made that epoch stale).
    private func publish(_ batch: Machine.PublishBatch, on channel: AMQPChannel, deadline: UInt64) async -> PublishOutcome {
        var headers: AMQPFieldTable?
        if !batch.ccRoutingKeys.isEmpty {
            headers = ["CC": .array(batch.ccRoutingKeys.map { .longString($0) })]
        }
        let properties = AMQPBasicProperties(headers: headers, deliveryMode: 2)
        do {
            try await channel.publish(batch.body, exchange: batch.exchange, routingKey: batch.routingKey, properties: properties,
                                      confirmDeadline: .uptimeNanoseconds(deadline))
            return .confirmed
        } catch AMQPError.publishNacked {
            return .nacked
        } catch AMQPError.confirmTimedOut {
            return .timedOut
        } catch {
            return .failed
        }
    }
}
