import CoreMetrics

/// Engine.IO traffic counters, reported through swift-metrics: they cost nothing until an
/// application bootstraps a metrics backend (the chat uses Prometheus). One Engine.IO
/// message is one Socket.IO packet, or one binary attachment of it.
enum EngineMetrics {
    static let messagesReceived = Counter(label: "engineio_messages_received_total")
    static let messagesSent = Counter(label: "engineio_messages_sent_total")
    static let slowClientCloses = Counter(label: "engineio_slow_client_closes_total")

    /// Creates every counter now (statics are lazy), so a scrape shows zeros from the start
    /// instead of series that appear with the first event.
    static func registerAll() {
        _ = (messagesReceived, messagesSent, slowClientCloses)
    }
}
