import AMQPClient
import AMQPProtocol
import NIOConcurrencyHelpers
import NIOCore

/// The start-up replay for the namespace's event observer: the recovery stream read from its
/// first record up to a mark this node appends, so that whoever keeps state built from the
/// events (the chat's history) starts where the cluster is. Live events wait in the
/// machine's feed meanwhile and follow once the replay is done.
extension RabbitMQAdapter {
    /// A replay that reads nothing for this long (the broker stopped sending, the mark was
    /// lost) gives up rather than hold the start; what it read is kept.
    static let replayIdleNanoseconds: UInt64 = 10_000_000_000
    static let replayAttempts = 4

    func replayRecoverableEvents() async {
        guard let recoveryStreamName, let eventObserver else { return }
        var replay = StreamReplay(namespace: namespace.name, markId: "\(cluster.nodeID)-\(UInt64.random(in: 0...UInt64.max))")
        send(.streamMark(id: replay.markId), toQueue: recoveryStreamName)
        var caughtUp = false
        for attempt in 1...Self.replayAttempts where !caughtUp {
            do {
                caughtUp = try await replayOnce(recoveryStreamName, replay: &replay, observer: eventObserver)
                if !caughtUp { logger.error("event replay read nothing for a while; going on without its end", metadata: ["read": "\(replay.observedCount)"]) }
                break
            } catch {
                logger.error("event replay failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                guard attempt < Self.replayAttempts else { break }
                try? await Task.sleep(nanoseconds: Self.restartDelayNanoseconds(attempt: attempt))
            }
        }
        logger.info("event replay done", metadata: ["events": "\(replay.observedCount)", "caughtUp": "\(caughtUp)", "namespace": "\(namespace.name)"])
        let last = replay.lastPosition
        feed { machine, _ in machine.packetReplayFinished(lastPosition: last) }
    }

    /// Reads from the stream's start (or after what an earlier attempt read) until the mark;
    /// false when it stopped on the idle deadline instead.
    private func replayOnce(_ streamName: String, replay: inout StreamReplay, observer: RecoverableEventObserver) async throws -> Bool {
        let channel = try await cluster.connection.openChannel()
        defer { Task { try? await channel.close() } }
        try await channel.basicQos(prefetchCount: 1000)
        let start: AMQPFieldValue = replay.lastPosition.map { .int64($0.offset) } ?? .longString("first")
        let consumer = try await channel.consume(queue: streamName, noAck: false, arguments: ["x-stream-offset": start])
        let lastRead = NIOLockedValueBox(Self.now())
        let watchdog = cluster.connection.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            if Self.now() &- lastRead.withLockedValue({ $0 }) > Self.replayIdleNanoseconds { Task { try? await consumer.cancel() } }
        }
        defer { watchdog.cancel() }
        return try await readStreamMessages(consumer, onDelivery: { lastRead.withLockedValue { $0 = Self.now() } }) { message, position in
            switch replay.read(message, at: position) {
            case .skip: return false
            case .observe(let packet):
                if let event = RecoverableEvent(packet) { observer(event) }
                return false
            case .caughtUp: return true
            }
        }
    }
}
