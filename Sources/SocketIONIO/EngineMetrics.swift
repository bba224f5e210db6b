import CoreMetrics
import EngineIO

/// Engine.IO traffic counters, reported through swift-metrics: they cost nothing until an
/// application bootstraps a metrics backend (the chat uses Prometheus). One Engine.IO
/// message is one Socket.IO packet, or one binary attachment of it.
enum EngineMetrics {
    static let messagesReceived = Counter(label: "engineio_messages_received_total")
    static let messagesSent = Counter(label: "engineio_messages_sent_total")
    static let slowClientCloses = Counter(label: "engineio_slow_client_closes_total")

    /// HTTP connections closed by `HTTPConnectionTimeouts`, by which deadline passed.
    static let headersTimeouts = timeoutCounter(.headers)
    static let keepAliveTimeouts = timeoutCounter(.keepAlive)
    static let requestTimeouts = timeoutCounter(.request)

    static func httpTimeouts(_ expiry: HTTPConnectionTimeoutStateMachine.Expiry) -> Counter {
        switch expiry {
        case .headers: headersTimeouts
        case .keepAlive: keepAliveTimeouts
        case .request: requestTimeouts
        }
    }

    /// Requests and connections refused before they reached Engine.IO, by reason.
    static let admissionRefusedCounters: [EngineAdmissionRefusal.Reason: Counter] = Dictionary(
        uniqueKeysWithValues: EngineAdmissionRefusal.Reason.allCases.map {
            ($0, Counter(label: "engineio_admission_refused_total", dimensions: [("reason", $0.rawValue)]))
        }
    )

    static func admissionRefused(_ reason: EngineAdmissionRefusal.Reason) -> Counter {
        // Every reason has its counter (allCases above); the fallback only satisfies the type.
        admissionRefusedCounters[reason] ?? Counter(label: "engineio_admission_refused_total", dimensions: [("reason", reason.rawValue)])
    }

    private static func timeoutCounter(_ expiry: HTTPConnectionTimeoutStateMachine.Expiry) -> Counter {
        Counter(label: "engineio_http_timeouts_total", dimensions: [("kind", expiry.rawValue)])
    }

    /// Creates every counter now (statics are lazy), so a scrape shows zeros from the start
    /// instead of series that appear with the first event.
    static func registerAll() {
        _ = (messagesReceived, messagesSent, slowClientCloses, headersTimeouts, keepAliveTimeouts, requestTimeouts, admissionRefusedCounters)
    }
}
