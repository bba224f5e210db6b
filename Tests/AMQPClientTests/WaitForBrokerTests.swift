import AMQPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// `AMQPConnection.connectWaitingForBroker` against a port nobody listens on: it keeps
/// trying with back-off, reports every failed attempt, and ends when its task is cancelled.
@Suite struct WaitForBrokerTests {
    /// A loopback port that refuses connections (bound and closed again).
    private func closedPort() throws -> Int {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress?.port ?? 1
        try channel.close().wait()
        return port
    }

    @Test func retriesUntilCancelledAndReportsEveryAttempt() async throws {
        var configuration = try AMQPConnectionConfiguration(urls: ["amqp://guest:guest@127.0.0.1:\(try closedPort())"])
        configuration.recovery.initialDelay = .milliseconds(5)
        configuration.recovery.maximumDelay = .milliseconds(20)
        let attempts = NIOLockedValueBox<[Int]>([])
        let waiting = Task {
            try await AMQPConnection.connectWaitingForBroker(configuration) { attempt, _ in attempts.withLockedValue { $0.append(attempt) } }
        }
        // Bounded wait for a few attempts (each fails at once: the port refuses).
        for _ in 0..<500 where attempts.withLockedValue({ $0.count }) < 3 { try await Task.sleep(for: .milliseconds(10)) }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { _ = try await waiting.value }
        let seen = attempts.withLockedValue { $0 }
        #expect(seen.count >= 3)
        #expect(seen == Array(1...seen.count), "numbered from 1, one call per failed attempt")
    }
}
