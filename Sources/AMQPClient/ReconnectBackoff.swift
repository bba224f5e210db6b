/// Exponential backoff with "full jitter" for reconnect attempts: attempt n waits a random time in
/// [delay/2, delay] where delay = min(initial * 2^(n-1), maximum). Jitter keeps a cluster of clients
/// from reconnecting in lock-step after a broker restart.
struct ReconnectBackoff {
    var initialDelay: Duration
    var maximumDelay: Duration

    /// `attempt` starts at 1 (lower counts as 1). `randomUnit` is injected so tests are
    /// deterministic. Total for any configuration: a negative or enormous delay is clamped to
    /// 0...Int64.max nanoseconds instead of trapping in the conversion.
    func delay(forAttempt attempt: Int, randomUnit: Double = Double.random(in: 0...1)) -> Duration {
        let exponent = min(max(attempt, 1) - 1, 30)
        let ceiling = min(Self.nanoseconds(initialDelay) * Double(1 << exponent), Self.nanoseconds(maximumDelay))
        let unit = randomUnit.isNaN ? 1 : min(max(randomUnit, 0), 1)
        let jittered = ceiling / 2 + ceiling / 2 * unit
        guard jittered.isFinite, jittered > 0 else { return .zero }
        return .nanoseconds(jittered >= Double(Int64.max) ? Int64.max : Int64(jittered))
    }

    /// Endpoints are tried round-robin: attempt 1 uses the first, attempt 2 the second, ...
    /// Nil when there is no endpoint to try.
    static func endpointIndex(forAttempt attempt: Int, endpointCount: Int) -> Int? {
        guard endpointCount > 0 else { return nil }
        return (max(attempt, 1) - 1) % endpointCount
    }

    private static func nanoseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
    }
}
