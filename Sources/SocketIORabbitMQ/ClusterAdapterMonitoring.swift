/// What readers off the AMQP connection's event loop may know of one adapter's machine:
/// readiness, its reasons, metrics, live peers, and where the recovery-stream consumer
/// resumes. A copy the adapter publishes after every event (before running its actions, so a
/// readiness observer woken by `.readinessMayHaveChanged` reads the new value).
///
/// Why a copy and not an async question to the loop: `/readyz`, `/metrics` and the admin
/// page read these synchronously from other event loops, and AMQPClient asks for the resume
/// arguments synchronously during a recovery. Nothing here is protocol state: no decision of
/// the machine reads it back.
struct ClusterAdapterMonitoring: Sendable {
    var isConsuming = false
    var isBrokerConnected = false
    var nodeConsumerLost = false
    var streamConsumerLost = false
    var publisherHealth = PublisherHealth()
    var isReady = false
    /// Counters as of the last event (`outboxOldestAgeSeconds` is computed when read).
    var metrics = RabbitMQAdapterMetrics()
    var membership = ClusterMembership(heartbeatTimeoutNanoseconds: 0)
    /// The last recovery-stream message the live consumer handled: a restarted consumer resumes after it.
    var streamResumePosition: StreamPosition?

    /// Why the adapter is not ready, one line each (empty when ready): what `/readyz` shows.
    func notReadyReasons(now: UInt64) -> [String] {
        var reasons: [String] = []
        if !isConsuming { reasons.append("starting: queues and consumers not up yet") }
        if isConsuming && !isBrokerConnected {
            reasons.append("broker connection lost; holding \(metrics.outboxSize) cluster messages")
        }
        if nodeConsumerLost { reasons.append("node queue consumer ended; restarting it") }
        if streamConsumerLost { reasons.append("recovery stream consumer ended; restarting it") }
        if let since = publisherHealth.stalledSince {
            let oldest = metrics.outboxOldestEnqueuedAtNanoseconds.map { Self.seconds(now &- min($0, now)) } ?? "-"
            reasons.append("\(publisherHealth.reason ?? "publisher stalled") (stalled \(Self.seconds(now &- min(since, now))) s, "
                           + "outbox \(metrics.outboxSize), oldest \(oldest) s)")
        }
        return reasons
    }

    /// Metrics with the outbox's oldest age as of `now`.
    func metrics(now: UInt64) -> RabbitMQAdapterMetrics {
        var snapshot = metrics
        if let oldest = snapshot.outboxOldestEnqueuedAtNanoseconds {
            snapshot.outboxOldestAgeSeconds = Double(now &- min(oldest, now)) / 1e9
        }
        return snapshot
    }

    /// Nanoseconds as seconds with one decimal, for readiness lines.
    static func seconds(_ nanoseconds: UInt64) -> String {
        let tenths = nanoseconds / 100_000_000
        return "\(tenths / 10).\(tenths % 10)"
    }
}

extension ClusterAdapterStateMachine {
    /// The copy published for readers off the loop.
    var monitoring: ClusterAdapterMonitoring {
        ClusterAdapterMonitoring(
            isConsuming: isConsuming, isBrokerConnected: outbox.isConnected, nodeConsumerLost: nodeConsumerLost,
            streamConsumerLost: streamConsumerLost, publisherHealth: publisherHealth, isReady: isReady,
            metrics: metricsSnapshot, membership: membership, streamResumePosition: streamResumePosition)
    }
}
