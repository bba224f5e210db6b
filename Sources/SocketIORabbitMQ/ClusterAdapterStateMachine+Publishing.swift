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
        metrics.publishedBatches &+= 1
        for number in batch.publishNumbers {
            for entry in outbox.confirm(publishNumber: number, multiple: false) {
                let latency = now &- entry.enqueuedAtNanoseconds
                metrics.published &+= 1
                metrics.publishLatencyTotalNanoseconds &+= latency
                metrics.publishLatencyMaxNanoseconds = max(metrics.publishLatencyMaxNanoseconds, latency)
            }
        }
        guard outboxIsEmpty, !drainWaiters.isEmpty else { return [] }
        defer { drainWaiters.removeAll() }
        return drainWaiters.map { .resumeDrainWaiter($0.waiter) }
    }

    /// The broker refused the batch (basic.nack): its messages go out again at the next recovery.
    mutating func publishNacked(_ batch: PublishBatch) {
        metrics.publishFailures &+= 1
        guard batch.epoch == epoch else { return }
        for number in batch.publishNumbers { outbox.reject(publishNumber: number, multiple: false) }
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
