import EngineIO
import Prometheus
import SocketIORabbitMQ

/// The chat's own Prometheus metrics. Library-level metrics (Engine.IO connections,
/// packets, slow-client disconnects, broker publishes) reach the same registry through
/// swift-metrics, which `ChatCommand` bootstraps with this registry.
struct ChatMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let messagesReceived: Counter
    let messagesRejected: Counter
    let messagesBroadcast: Counter
    let connections: Gauge
    let pollingConnections: Gauge
    let websocketConnections: Gauge
    let eventsReceived: Counter
    let eventsRateLimited: Counter
    let connectsRateLimited: Counter
    let slowClientDisconnects: Counter
    let ready: Gauge
    let brokerPublished: Gauge
    let brokerPublishes: Gauge
    let brokerReceived: Gauge
    let brokerStreamPackets: Gauge
    let brokerOutboxSize: Gauge
    let brokerOutboxOverflow: Gauge
    let brokerPublishFailures: Gauge
    let brokerPublishLatencyMean: Gauge
    let brokerPublishLatencyMax: Gauge
    let brokerUnencodable: Gauge
    /// `engineio_live_objects{kind=…}`: per-connection objects still allocated. With no
    /// client connected every one of them must read 0; anything else is a leak.
    let liveObjects: [(counter: LiveObjectCounter, gauge: Gauge)]

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        messagesReceived = registry.makeCounter(
            name: "chat_messages_received_total", help: "Chat messages received from clients, valid or not."
        )
        messagesRejected = registry.makeCounter(
            name: "chat_messages_rejected_total", help: "Chat messages refused (empty, too long, rate limited)."
        )
        messagesBroadcast = registry.makeCounter(
            name: "chat_messages_broadcast_total", help: "Chat messages accepted and broadcast to their room."
        )
        connections = registry.makeGauge(name: "chat_connections", help: "Open Engine.IO connections on this node.")
        pollingConnections = registry.makeGauge(
            name: "chat_connections_by_transport", labels: [("transport", "polling")],
            help: "Open Engine.IO connections on this node, by transport."
        )
        websocketConnections = registry.makeGauge(
            name: "chat_connections_by_transport", labels: [("transport", "websocket")],
            help: "Open Engine.IO connections on this node, by transport."
        )
        eventsReceived = registry.makeCounter(
            name: "chat_socketio_events_received_total", help: "Socket.IO events received from clients."
        )
        eventsRateLimited = registry.makeCounter(
            name: "chat_events_rate_limited_total", help: "typing, join and set-name events refused or dropped by their per-connection rate limit."
        )
        connectsRateLimited = registry.makeCounter(
            name: "chat_connects_rate_limited_total", help: "Namespace CONNECTs (recovery claims included) refused by the per-address rate limit."
        )
        slowClientDisconnects = registry.makeCounter(
            name: "chat_slow_client_disconnects_total",
            help: "Clients disconnected because their outbound buffer was full."
        )
        ready = registry.makeGauge(name: "chat_ready", help: "1 while the node is ready (broker connected), else 0.")
        brokerPublished = registry.makeGauge(
            name: "chat_cluster_messages_published", help: "Cluster messages confirmed by RabbitMQ since start."
        )
        brokerPublishes = registry.makeGauge(
            name: "chat_cluster_amqp_publishes", help: "AMQP publishes confirmed by RabbitMQ since start (several cluster messages each when batched)."
        )
        brokerReceived = registry.makeGauge(
            name: "chat_cluster_messages_received", help: "Cluster messages received from other nodes since start."
        )
        brokerStreamPackets = registry.makeGauge(
            name: "chat_cluster_stream_packets_received",
            help: "Recoverable packets (chat messages included, this node's own too) delivered from the recovery stream since start."
        )
        brokerOutboxSize = registry.makeGauge(
            name: "chat_cluster_outbox_size", help: "Cluster messages waiting for the broker (held during an outage)."
        )
        brokerOutboxOverflow = registry.makeGauge(
            name: "chat_cluster_outbox_overflow", help: "Cluster messages dropped because the outbox was full, since start."
        )
        brokerPublishFailures = registry.makeGauge(
            name: "chat_cluster_publish_failures", help: "Broker publishes that failed and were retried, since start."
        )
        brokerPublishLatencyMean = registry.makeGauge(
            name: "chat_cluster_publish_latency_mean_seconds", help: "Mean time from enqueue to broker confirm."
        )
        brokerUnencodable = registry.makeGauge(
            name: "chat_cluster_messages_unencodable",
            help: "Cluster messages dropped since start because a field was too large for the cluster format (they reached this node only)."
        )
        liveObjects = LiveObjects.all.map { counter in
            (counter, registry.makeGauge(
                name: "engineio_live_objects", labels: [("kind", counter.name)],
                help: "Per-connection objects still allocated, by kind."
            ))
        }
        brokerPublishLatencyMax = registry.makeGauge(
            name: "chat_cluster_publish_latency_max_seconds", help: "Longest time from enqueue to broker confirm."
        )
    }

    func record(cluster: RabbitMQAdapterMetrics, ready isReady: Bool) {
        ready.set(Int64(isReady ? 1 : 0))
        brokerPublished.set(Int64(clamping: cluster.published))
        brokerPublishes.set(Int64(clamping: cluster.publishedBatches))
        brokerReceived.set(Int64(clamping: cluster.received))
        brokerStreamPackets.set(Int64(clamping: cluster.receivedStreamPackets))
        brokerOutboxSize.set(Int64(clamping: cluster.outboxSize))
        brokerOutboxOverflow.set(Int64(clamping: cluster.outboxOverflow))
        brokerPublishFailures.set(Int64(clamping: cluster.publishFailures))
        brokerPublishLatencyMean.set(cluster.meanPublishLatencyMilliseconds / 1000)
        brokerUnencodable.set(Int64(clamping: cluster.encodingFailures))
        brokerPublishLatencyMax.set(Double(cluster.publishLatencyMaxNanoseconds) / 1e9)
    }

    /// The text exposition format, for `GET /metrics`.
    func render() -> [UInt8] {
        for (counter, gauge) in liveObjects { gauge.set(Int64(counter.count)) }
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return bytes
    }
}
