import Prometheus

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
    }

    /// The text exposition format, for `GET /metrics`.
    func render() -> [UInt8] {
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return bytes
    }
}
