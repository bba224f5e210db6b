import AMQPProtocol
import NIOCore

/// The publish pipeline's decisions: which jobs go out together, and what a confirm, a nack
/// or a failed publish of an epoch means.
extension ClusterAdapterStateMachine {
    /// One AMQP publish: several cluster messages for one destination, in outbox order.
    struct PublishBatch: Sendable {
        var body: ByteBuffer
        var exchange: String
        var routingKey: String
        /// Sender-selected distribution (`CC`): one copy per queue however many keys match.
        var ccRoutingKeys: [String]
        var publishNumbers: [UInt64]
        var epoch: UInt64
    }

    /// The next batch to publish, or nil when nothing is waiting. Jobs numbered on an older
    /// channel (before a connection loss) are dropped: the outbox replays them itself.
    mutating func nextBatch() -> PublishBatch? {
        while true {
            let streamName = configuration.recoveryStreamName
            let batch = PublishBatching.takeBatch(
                // A batch counts its messages in 16 bits.
                from: &pendingJobs, maxMessages: min(max(configuration.maxBatchMessages, 1), Int(UInt16.max)), maxBytes: configuration.maxBatchBytes,
                destination: { "\($0.epoch)|\($0.outgoing.exchange)|\($0.outgoing.routingKeys.joined(separator: ","))" },
                size: { $0.outgoing.body.readableBytes },
                mayBeReordered: { job in streamName.map { job.outgoing.exchange.isEmpty && job.outgoing.routingKeys == [$0] } ?? false })
            guard let first = batch.first else { return nil }
            // Not on a channel that stopped confirming: the jobs wait for its replacement.
            if publisherHealth.awaitingChannel {
                pendingJobs.insert(contentsOf: batch, at: 0)
                return nil
            }
            guard first.epoch == epoch, outbox.isConnected, let routingKey = first.outgoing.routingKeys.first else { continue }
            let body: ByteBuffer
            do throws(ClusterMessageEncodingError) {
                body = try ClusterBatchCodec.encode(batch.map(\.outgoing.body))
            } catch {
                // Not reached (takeBatch returns 1...maxMessages jobs, at most 65,535): handled as
                // an unencodable message is, dropped and counted, rather than stopping the node.
                metrics.encodingFailures &+= UInt64(batch.count)
                for job in batch { _ = outbox.confirm(publishNumber: job.publishNumber, multiple: false) }
                continue
            }
            return PublishBatch(
                body: body, exchange: first.outgoing.exchange, routingKey: routingKey,
                ccRoutingKeys: Array(first.outgoing.routingKeys.dropFirst()), publishNumbers: batch.map(\.publishNumber), epoch: first.epoch)
        }
    }

    /// The broker confirmed a batch of `epoch`. A confirm of an older channel is stale: those
    /// messages were requeued when it was lost and will be confirmed on the new one.
    mutating func publishConfirmed(_ batch: PublishBatch, now: UInt64) -> [Action] {
        guard batch.epoch == epoch else { return [] }
        var actions = publisherProgressed()
        metrics.publishedBatches &+= 1
        for number in batch.publishNumbers {
            for entry in outbox.confirm(publishNumber: number, multiple: false) {
                let latency = now &- entry.enqueuedAtNanoseconds
                metrics.published &+= 1
                metrics.publishLatencyTotalNanoseconds &+= latency
                metrics.publishLatencyMaxNanoseconds = max(metrics.publishLatencyMaxNanoseconds, latency)
            }
        }
        guard outboxIsEmpty, !drainWaiters.isEmpty else { return actions }
        actions += drainWaiters.map { .resumeDrainWaiter($0.waiter) }
        drainWaiters.removeAll()
        return actions
    }

    /// The publish failed (connection lost, channel closed): the epoch's channel is gone.
    /// The first failure of the current epoch is the connection loss as far as this adapter
    /// is concerned; later ones (and the client's own `.disconnected`) change nothing.
    mutating func publishFailed(_ batch: PublishBatch) -> [Action] {
        metrics.publishFailures &+= 1
        guard batch.epoch == epoch else { return [] }
        return connectionLost()
    }

    /// The outbox has nothing unconfirmed (what `close` waits for before leaving).
    var outboxIsEmpty: Bool { outbox.count == 0 }

    /// `close` waits until the broker confirmed everything queued (its goodbye included),
    /// but never past `deadline`: peers would otherwise wait a heartbeat timeout to drop it.
    mutating func waitForDrain(waiter: Waiter, deadline: UInt64) -> [Action] {
        guard !outboxIsEmpty, outbox.isConnected else { return [.resumeDrainWaiter(waiter)] }
        drainWaiters.append((deadline, waiter))
        return []
    }
}

// MARK: Deadlines and republishing

/// Whether the publisher makes progress. A confirm that never comes (a stream whose leader
/// died can leave a channel with an unconfirmed publish for good) or a nack stalls it; the
/// stall lasts until the broker confirms something again, and makes the node not ready.
struct PublisherHealth: Sendable, Hashable {
    /// When the publisher stopped making progress (nil: it makes progress).
    var stalledSince: UInt64?
    var reason: String?
    /// Republishes in a row without a confirm in between: the back-off before the next one.
    var consecutiveRepublishes: UInt64 = 0
    /// Waiting for the adapter to open a new channel and feed `publishChannelReplaced`.
    var awaitingChannel = false

    var isStalled: Bool { stalledSince != nil }

    /// 0 for the first republish (a lost confirm is usually a one-off), then 0.5 s doubling up
    /// to 5 s: a broker that keeps refusing is not hammered.
    var backoffNanoseconds: UInt64 {
        guard consecutiveRepublishes > 1 else { return 0 }
        let exponent = min(consecutiveRepublishes - 2, 4)
        return min(500_000_000 << exponent, 5_000_000_000)
    }
}

extension ClusterAdapterStateMachine {
    /// The deadline of a batch handed to the publisher now.
    func confirmDeadline(now: UInt64) -> UInt64 {
        let (sum, overflow) = now.addingReportingOverflow(configuration.publishConfirmTimeoutNanoseconds)
        return overflow ? .max : sum
    }

    /// `batch` was not confirmed by its deadline. Every unconfirmed message goes out again,
    /// in order, on a new channel (receivers drop copies by origin and sequence); the old
    /// channel's late confirms are stale from here on.
    mutating func publishConfirmTimedOut(_ batch: PublishBatch, now: UInt64) -> [Action] {
        guard batch.epoch == epoch, outbox.isConnected, !publisherHealth.awaitingChannel else { return [] }
        metrics.confirmTimeouts &+= 1
        let seconds = Self.seconds(configuration.publishConfirmTimeoutNanoseconds)
        let log = Action.log(.confirmTimedOut(unconfirmed: outbox.unconfirmedCount, timeouts: metrics.confirmTimeouts))
        return [log] + republish(now: now, reason: "publisher: no confirm from RabbitMQ within \(seconds) s; republishing on a new channel")
    }

    /// The broker refused a batch (basic.nack): it goes out again, in order, on a new channel.
    @discardableResult
    mutating func publishNacked(_ batch: PublishBatch, now: UInt64 = 0) -> [Action] {
        metrics.publishFailures &+= 1
        guard batch.epoch == epoch else { return [] }
        for number in batch.publishNumbers { outbox.reject(publishNumber: number, multiple: false) }
        guard outbox.isConnected, !publisherHealth.awaitingChannel else { return [] }
        return [.log(.publishNacked(republishing: outbox.count))] + republish(now: now, reason: "publisher: RabbitMQ refused a publish (nack); republishing")
    }

    private mutating func republish(now: UInt64, reason: String) -> [Action] {
        // Everything numbered on the old channel is stale; the outbox numbers it again, in
        // order, for the new one. The outbox stays connected: this is no broker outage, so
        // recoverable packets still go through the stream (not delivered at once here).
        outbox.connectionLost()
        epoch += 1
        let replayEpoch = epoch
        pendingJobs.removeAll()
        pendingJobs.append(contentsOf: outbox.connectionRestored().map {
            PublishJob(outgoing: $0.item, publishNumber: $0.publishNumber, epoch: replayEpoch)
        })
        publisherHealth.awaitingChannel = true
        publisherHealth.consecutiveRepublishes &+= 1
        if publisherHealth.stalledSince == nil { publisherHealth.stalledSince = now }
        publisherHealth.reason = reason
        return [.republishOnNewChannel(afterNanoseconds: publisherHealth.backoffNanoseconds), .readinessMayHaveChanged]
    }

    /// The adapter opened a new confirm channel for the publisher: the outbox, numbered
    /// again at the timeout (or by a connection recovery meanwhile), goes out on it in order.
    mutating func publishChannelReplaced() -> [Action] {
        guard publisherHealth.awaitingChannel else { return [] }
        publisherHealth.awaitingChannel = false
        return [.wakePublisher]
    }

    /// Opening the new channel failed (the broker is away, or refuses): try again after a back-off.
    mutating func publishChannelReplacementFailed(_ error: String) -> [Action] {
        guard publisherHealth.awaitingChannel, !isClosed else { return [] }
        publisherHealth.consecutiveRepublishes &+= 1
        publisherHealth.reason = "publisher: cannot open a new channel (\(error)); retrying"
        return [.republishOnNewChannel(afterNanoseconds: max(publisherHealth.backoffNanoseconds, 500_000_000))]
    }

    /// A confirm of the current channel: the publisher makes progress again.
    mutating func publisherProgressed() -> [Action] {
        publisherHealth.consecutiveRepublishes = 0
        guard publisherHealth.isStalled else { return [] }
        publisherHealth.stalledSince = nil
        publisherHealth.reason = nil
        return [.readinessMayHaveChanged]
    }

    /// Why this adapter is not ready, one line each (empty when ready): what `/readyz` shows.
    func notReadyReasons(now: UInt64) -> [String] { monitoring.notReadyReasons(now: now) }

    /// Nanoseconds as seconds with one decimal, for readiness lines.
    static func seconds(_ nanoseconds: UInt64) -> String {
        let tenths = nanoseconds / 100_000_000
        return "\(tenths / 10).\(tenths % 10)"
    }
}
