import Foundation
@testable import AMQPClient

/// Test support for the AMQP integration tests: a deadline for async work, and recorders of
/// connection states, received messages and publish outcomes.
struct TimeoutError: Error {}

func withTimeout<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TimeoutError()
        }
        let result = try await group.next()!
        group.cancelAll()
        return result
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

actor StateRecorder {
    private(set) var states: [AMQPConnectionState] = []
    private var waiters: [(AMQPConnectionState, CheckedContinuation<Void, Never>)] = []

    init(_ stream: AsyncStream<AMQPConnectionState>) {
        Task { [weak self] in
            for await state in stream {
                guard let self else { return }
                await self.append(state)
            }
        }
    }

    private func append(_ state: AMQPConnectionState) {
        states.append(state)
        let ready = waiters.filter { $0.0 == state }
        waiters.removeAll { $0.0 == state }
        for (_, continuation) in ready { continuation.resume() }
    }

    func wait(for state: AMQPConnectionState) async {
        if states.contains(state) { return }
        await withCheckedContinuation { waiters.append((state, $0)) }
    }
}

actor ReceivedSet {
    private var values = Set<Int>()
    func insert(_ value: Int) { values.insert(value) }
    func containsAll(_ other: Set<Int>) -> Bool { other.isSubset(of: values) }
    func missing(from other: Set<Int>) -> Set<Int> { other.subtracting(values) }
}

actor PublishOutcomes {
    private(set) var confirmedSet = Set<Int>()
    private(set) var failures: [String: Int] = [:]
    var confirmedCount: Int { confirmedSet.count }
    func confirmed(_ index: Int) { confirmedSet.insert(index) }
    func failed(_ error: AMQPError) {
        let key: String
        switch error {
        case .notConnected: key = "notConnected"
        case .connectionLost: key = "connectionLost"
        case .connectionClosedByBroker: key = "connectionClosedByBroker"
        case .channelClosed: key = "channelClosed"
        default: key = "\(error)"
        }
        failures[key, default: 0] += 1
    }
}

final class ManagedFlag: @unchecked Sendable {
    // Guarded by `lock`; tiny helper for tests only.
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
