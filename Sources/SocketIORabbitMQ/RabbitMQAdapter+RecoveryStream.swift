import AMQPClient
import AMQPProtocol
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The live recovery-stream consumer and its restart. Every node, the emitting one included,
/// delivers recoverable packets to its clients when it reads them here, so all nodes deliver
/// them in one order and a client's last offset says exactly what it has (docs/CLUSTER.md).
extension RabbitMQAdapter {
    /// Starts the live consumer: at the stream's end on start; after a broker cancel, after
    /// the last message handled (or from the start of a stream that was declared again).
    /// Connection recovery resumes it after the last message handled.
    func startStreamConsumer(resuming: Bool) async throws -> AMQPConsumer? {
        guard let recoveryStreamName else { return nil }
        let channel = try await cluster.connection.openChannel()
        try await channel.basicQos(prefetchCount: 1000)
        let startedAt = UInt64(max(0, time(nil)))
        let resumeArguments: @Sendable () -> AMQPFieldTable = { [weak self] in
            // Nothing handled yet: from when this node started (older packets reach none of its sockets).
            // AMQPClient asks during a recovery, off the loop: the published copy.
            let last = self?.published.withLockedValue { $0.streamResumePosition }
            return ["x-stream-offset": last.map { .int64($0.offset &+ 1) } ?? .timestamp(startedAt &- 1)]
        }
        var arguments: AMQPFieldTable = ["x-stream-offset": .longString("next")]
        if resuming {
            arguments = try await isStreamStillTheOneRead(recoveryStreamName) ? resumeArguments() : ["x-stream-offset": .longString("first")]
        }
        // Read on the loop, handled on the loop: the machine gets each message without a task
        // in between (a loop task of its own, so the AMQP client is not re-entered).
        let loop = self.loop
        let onDelivery: @Sendable (AMQPMessage) -> Void = { [weak self] message in
            loop.execute { self?.streamMessageRead(message) }
        }
        return try await channel.consume(queue: recoveryStreamName, noAck: false, arguments: arguments, argumentsOnRecovery: resumeArguments,
                                         onDelivery: onDelivery)
    }

    /// After the broker cancelled the live consumer: reads the message at the last offset
    /// handled. The same body means the same stream (resume after it); another body, or none
    /// within a second (the stream is shorter now), means it was deleted and declared again,
    /// and this node starts over at its first message. A first message past that offset
    /// means retention dropped what followed; resuming is right then too.
    private func isStreamStillTheOneRead(_ streamName: String) async throws -> Bool {
        guard let (last, lastBody) = await onLoop({ machine, _ in (machine.lastStreamRead, []) }) ?? nil else { return true }
        let channel = try await cluster.connection.openChannel()
        defer { Task { try? await channel.close() } }
        try await channel.basicQos(prefetchCount: 1)
        let probe = try await channel.consume(queue: streamName, noAck: false, arguments: ["x-stream-offset": .int64(last.offset)])
        let timeout = cluster.connection.eventLoop.scheduleTask(in: .seconds(1)) { Task { try? await probe.cancel() } }
        defer { timeout.cancel() }
        var firstMessage: AMQPMessage?
        for try await message in probe {
            firstMessage = message
            break
        }
        let same: Bool
        if let firstMessage, let offset = Self.streamOffset(of: firstMessage) {
            same = offset > last.offset || (offset == last.offset && firstMessage.body == lastBody)
        } else {
            same = false
        }
        if !same { feed { machine, _ in machine.streamRecreated() } }
        return same
    }

    /// Feeds the live consumer's messages to the machine. Connection recovery restarts the
    /// consumer by itself; if the broker cancels it (the stream's member went away, or the
    /// stream was deleted) or refuses it at a recovery (in a RabbitMQ cluster, while the
    /// stream's replicas move: 406 "does not have a replica on the local node", 541
    /// `stream_not_found`), the node reports itself not ready and starts a new consumer after
    /// its last message, with back-off (0.5 s doubling to 5 s) until one starts. Every end
    /// and every failed restart is logged.
    func runStreamConsumer(_ first: AMQPConsumer?) async {
        var consumer = first
        while let current = consumer {
            do {
                var handled = 0
                // The machine got each message on the loop (`onDelivery`); here they are only acknowledged.
                for try await message in current {
                    handled += 1
                    if handled % Self.ackBatch == 0 { try? await message.ack(multiple: true) }
                }
                if !Task.isCancelled { logger.error("recovery stream consumer ended") }
            } catch where !Task.isCancelled {
                logger.error("recovery stream consumer ended", metadata: ["error": "\(error)"])
            } catch {}
            consumer = nil
            var attempt = 0
            while consumer == nil {
                guard !Task.isCancelled, await onLoop({ machine, _ in (machine.isClosed, []) }) == false else { return }
                feed { machine, _ in machine.streamConsumerEnded() }
                attempt += 1
                try? await Task.sleep(nanoseconds: Self.restartDelayNanoseconds(attempt: attempt))
                guard !Task.isCancelled else { return }
                do {
                    consumer = try await startStreamConsumer(resuming: true)
                    logger.notice("recovery stream consumer restarted", metadata: ["attempt": "\(attempt)"])
                } catch {
                    logger.error("recovery stream consumer could not restart", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                }
            }
            feed { machine, _ in machine.streamConsumerRestarted() }
        }
    }

    /// One live recovery-stream message, on the loop.
    private func streamMessageRead(_ message: AMQPMessage) {
        let offset = Self.streamOffset(of: message)
        feed { machine, now in machine.streamBodyRead(message.body, streamOffset: offset, now: now) }
    }

    /// The stream offset RabbitMQ puts in the headers of every message a stream consumer gets.
    static func streamOffset(of message: AMQPMessage) -> Int64? {
        switch message.properties.headers?["x-stream-offset"] {
        case .int64(let offset)?: return offset
        case .int32(let offset)?: return Int64(offset)
        default: return nil
        }
    }
}
