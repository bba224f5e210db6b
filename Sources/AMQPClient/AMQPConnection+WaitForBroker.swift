import Logging
import NIOCore
import NIOPosix

extension AMQPConnection {
    /// Connects like `connect`, but while no endpoint answers (the broker is not up yet, or
    /// not reachable) tries again with the configuration's recovery back-off (`recovery`'s
    /// delays, with jitter, endpoints in turn), for as long as it takes: a service that
    /// cannot work without its broker waits for it here rather than in a loop of its own.
    /// `onFailure` is told about every failed attempt (attempt number from 1, the error), for
    /// readiness and logs. Ends with `CancellationError` when the task is cancelled.
    public static func connectWaitingForBroker(
        _ configuration: AMQPConnectionConfiguration,
        eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "amqp"),
        onFailure: @Sendable (_ attempt: Int, _ error: any Error) -> Void = { _, _ in }
    ) async throws -> AMQPConnection {
        let backoff = ReconnectBackoff(initialDelay: configuration.recovery.initialDelay, maximumDelay: configuration.recovery.maximumDelay)
        var attempt = 0
        while true {
            try Task.checkCancellation()
            do {
                return try await connect(configuration, eventLoopGroup: eventLoopGroup, logger: logger)
            } catch {
                attempt += 1
                onFailure(attempt, error)
                try await Task.sleep(for: backoff.delay(forAttempt: attempt))
            }
        }
    }
}
