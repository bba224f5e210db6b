import AMQPClient
import AMQPProtocol
import ArgumentParser
import Histogram
import NIOCore

/// Publishes with confirms while consuming, against a real broker, and reports throughput and
/// publish-to-delivery latency. bench/amqp/aio_pika_bench.py runs the same workload with aio-pika.
@main
struct AMQPBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amqp-bench",
        abstract: "Publish with confirms while consuming from a temporary queue; print rates and latency.",
        discussion: """
            One connection, two channels: a no-ack consumer on a server-named exclusive queue, and a \
            publisher in confirm mode that keeps at most --window publishes unconfirmed. Each body starts \
            with its send time, so the consumer measures publish-to-delivery latency. The last line of \
            output is one JSON object.
            """
    )

    @Option(help: "Broker URL.")
    var url = "amqp://guest:guest@127.0.0.1:5672"

    @Option(help: "Messages to publish (the run is bounded by this count).")
    var messages = 100_000

    @Option(help: "Body size in bytes (at least 8: the send timestamp).")
    var size = 100

    @Option(help: "Maximum publishes awaiting their confirm at once.")
    var window = 1000

    @Option(help: "Seconds to wait for deliveries after the last confirm before giving up.")
    var timeout: Double = 120

    func validate() throws {
        guard self.size >= 8 else { throw ValidationError("--size must be at least 8 (the timestamp)") }
        guard self.messages > 0, self.window > 0 else { throw ValidationError("--messages and --window must be positive") }
    }

    func run() async throws {
        let connection = try await AMQPConnection.connect(try AMQPConnectionConfiguration(url: self.url))
        let publishChannel = try await connection.openChannel()
        try await publishChannel.confirmSelect()
        let consumeChannel = try await connection.openChannel()
        let queue = try await consumeChannel.queueDeclare("", exclusive: true, autoDelete: true).queue
        let consumer = try await consumeChannel.consume(queue: queue, noAck: true)

        let origin = ContinuousClock.now
        async let consumed = Self.consume(consumer, expected: self.messages, origin: origin, giveUpAfter: self.timeout)
        let published = await Self.publish(
            count: self.messages, size: self.size, window: self.window, on: publishChannel, routingKey: queue, origin: origin
        )
        let delivery = await consumed
        try? await connection.close()

        let report = Report(
            messages: self.messages, size: self.size, confirmed: published.confirmed, failed: published.failed,
            received: delivery.received, publishSeconds: published.seconds,
            seconds: delivery.lastDeliverySeconds ?? Self.seconds(since: origin), latencyMicros: delivery.latencyMicros
        )
        print(report.summary)
        print(report.json)
        if report.confirmed != self.messages || report.received != self.messages {
            throw ExitCode(1)
        }
    }

    struct PublishOutcome {
        var confirmed = 0
        var failed = 0
        var seconds = 0.0
    }

    struct DeliveryOutcome: Sendable {
        var received = 0
        var lastDeliverySeconds: Double?
        var latencyMicros = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    }

    static func publish(
        count: Int, size: Int, window: Int, on channel: AMQPChannel, routingKey: String, origin: ContinuousClock.Instant
    ) async -> PublishOutcome {
        await withTaskGroup(of: Bool.self) { group in
            var outcome = PublishOutcome()
            var inFlight = 0
            func settle(_ confirmed: Bool?) {
                guard let confirmed else { return }
                inFlight -= 1
                if confirmed { outcome.confirmed += 1 } else { outcome.failed += 1 }
            }
            for _ in 0..<count {
                if inFlight >= window { settle(await group.next()) }
                var body = ByteBuffer()
                body.reserveCapacity(size)
                body.writeInteger(nanoseconds(since: origin))
                body.writeRepeatingByte(UInt8(ascii: "x"), count: size - 8)
                group.addTask {
                    do {
                        try await channel.publish(body, routingKey: routingKey)
                        return true
                    } catch {
                        return false
                    }
                }
                inFlight += 1
            }
            while inFlight > 0 { settle(await group.next()) }
            outcome.seconds = seconds(since: origin)
            return outcome
        }
    }

    /// Reads deliveries until `expected` arrived or `giveUpAfter` seconds passed without completing.
    static func consume(
        _ consumer: AMQPConsumer, expected: Int, origin: ContinuousClock.Instant, giveUpAfter: Double
    ) async -> DeliveryOutcome {
        await withTaskGroup(of: DeliveryOutcome?.self) { group in
            group.addTask {
                var outcome = DeliveryOutcome()
                do {
                    for try await message in consumer {
                        let now = nanoseconds(since: origin)
                        let sent = message.body.getInteger(at: message.body.readerIndex, as: UInt64.self) ?? now
                        _ = outcome.latencyMicros.record((now &- sent) / 1_000)
                        outcome.received += 1
                        if outcome.received == expected {
                            outcome.lastDeliverySeconds = Double(now) / 1e9
                            break
                        }
                    }
                } catch {
                    // Cancelled by the time limit or the connection ended: report what arrived.
                }
                return outcome
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(giveUpAfter))
                return nil
            }
            var result = DeliveryOutcome()
            while let finished = await group.next() {
                if let finished {
                    result = finished
                }
                group.cancelAll()
            }
            return result
        }
    }

    static func nanoseconds(since origin: ContinuousClock.Instant) -> UInt64 {
        let elapsed = (ContinuousClock.now - origin).components
        return UInt64(elapsed.seconds) * 1_000_000_000 + UInt64(elapsed.attoseconds / 1_000_000_000)
    }

    static func seconds(since origin: ContinuousClock.Instant) -> Double {
        Double(nanoseconds(since: origin)) / 1e9
    }
}

struct Report {
    var messages: Int
    var size: Int
    var confirmed: Int
    var failed: Int
    var received: Int
    var publishSeconds: Double
    var seconds: Double
    var latencyMicros: Histogram<UInt64>

    var publishedPerSecond: Double { self.publishSeconds > 0 ? Double(self.confirmed) / self.publishSeconds : 0 }
    var consumedPerSecond: Double { self.seconds > 0 ? Double(self.received) / self.seconds : 0 }
    func latencyMilliseconds(atPercentile percentile: Double) -> Double {
        self.latencyMicros.totalCount == 0 ? 0 : Double(self.latencyMicros.valueAtPercentile(percentile)) / 1_000
    }

    var summary: String {
        """
        amqp-bench (Swift AMQPClient): \(self.confirmed)/\(self.messages) confirmed (\(self.failed) failed), \
        \(self.received) received in \(rounded(self.seconds, 3)) s; publish \(rounded(self.publishedPerSecond, 1))/s, \
        consume \(rounded(self.consumedPerSecond, 1))/s, latency p50 \(rounded(self.latencyMilliseconds(atPercentile: 50), 3)) ms \
        p99 \(rounded(self.latencyMilliseconds(atPercentile: 99), 3)) ms, max \(rounded(Double(self.latencyMicros.max) / 1_000, 3)) ms
        """
    }

    var json: String {
        let fields: [(String, String)] = [
            ("client", "\"swift amqp-bench\""),
            ("messages", "\(self.messages)"),
            ("size", "\(self.size)"),
            ("confirmed", "\(self.confirmed)"),
            ("received", "\(self.received)"),
            ("seconds", "\(rounded(self.seconds, 3))"),
            ("published_per_s", "\(rounded(self.publishedPerSecond, 1))"),
            ("consumed_per_s", "\(rounded(self.consumedPerSecond, 1))"),
            ("latency_ms_p50", "\(rounded(self.latencyMilliseconds(atPercentile: 50), 3))"),
            ("latency_ms_p99", "\(rounded(self.latencyMilliseconds(atPercentile: 99), 3))"),
        ]
        return "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }
}

func rounded(_ value: Double, _ digits: Int) -> Double {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return (value * scale).rounded() / scale
}
