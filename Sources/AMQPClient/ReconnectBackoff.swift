/// Exponential backoff with "full jitter" for reconnect attempts: attempt n waits a random time in
/// [delay/2, delay] where delay = min(initial * 2^(n-1), maximum). Jitter keeps a cluster of clients
/// from reconnecting in lock-step after a broker restart.
struct ReconnectBackoff {
    var initialDelay: Duration
    var maximumDelay: Duration

    /// `attempt` starts at 1. `randomUnit` is injected so tests are deterministic.
    func delay(forAttempt attempt: Int, randomUnit: Double = Double.random(in: 0...1)) -> Duration {
        precondition(attempt >= 1)
        let exponent = min(attempt - 1, 30)
        let initialNanos = Double(initialDelay.components.seconds) * 1e9 + Double(initialDelay.components.attoseconds) / 1e9
        let maximumNanos = Double(maximumDelay.components.seconds) * 1e9 + Double(maximumDelay.components.attoseconds) / 1e9
        let ceiling = min(initialNanos * Double(1 << exponent), maximumNanos)
        let jittered = ceiling / 2 + ceiling / 2 * min(max(randomUnit, 0), 1)
        return .nanoseconds(Int64(jittered))
    }

    /// Endpoints are tried round-robin: attempt 1 uses the first, attempt 2 the second, ...
    static func endpointIndex(forAttempt attempt: Int, endpointCount: Int) -> Int {
        (attempt - 1) % endpointCount
    }
}
