import AMQPProtocol
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import XCTest
@testable import AMQPClient

/// Against a real RabbitMQ. Run with
/// `AMQP_URL=amqp://guest:guest@127.0.0.1:5672 swift test --filter AMQPClientIntegration`
/// (start the broker with `scripts/rabbitmq start`).
final class AMQPClientIntegrationTests: XCTestCase {
    private var url: String!
    private let logger: Logger = {
        var logger = Logger(label: "amqp-it")
        logger.logLevel = ProcessInfo.processInfo.environment["AMQP_LOG"] == "debug" ? .debug : .warning
        return logger
    }()

    override func setUpWithError() throws {
        guard let url = ProcessInfo.processInfo.environment["AMQP_URL"], !url.isEmpty else {
            throw XCTSkip("AMQP_URL is not set: run `scripts/rabbitmq start` and `AMQP_URL=amqp://guest:guest@127.0.0.1:5672 swift test --filter AMQPClientIntegration`")
        }
        self.url = url
    }

    private func connect(name: String, recovery: Bool = true) async throws -> AMQPConnection {
        var config = try AMQPConnectionConfiguration(url: url)
        config.connectionName = name
        config.recovery = .init(isEnabled: recovery, initialDelay: .milliseconds(100), maximumDelay: .seconds(1))
        return try await AMQPConnection.connect(config, logger: logger)
    }

    private func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
    }

    // MARK: Throughput and volume

    func testPublishAndConsume100000ConfirmedMessagesNoneMissing() async throws {
        let total = 100_000
        let publisherConnection = try await connect(name: "it-publisher")
        let consumerConnection = try await connect(name: "it-consumer")
        let queue = uniqueName("it-100k")
        let setup = try await publisherConnection.openChannel()
        try await setup.queueDeclare(queue, autoDelete: false)

        let consumerChannel = try await consumerConnection.openChannel()
        try await consumerChannel.basicQos(prefetchCount: 2000)
        let consumer = try await consumerChannel.consume(queue: queue)
        let received = Task { () throws -> Int in
            var seen = [Bool](repeating: false, count: total)
            var distinct = 0
            for try await message in consumer {
                let index = message.body.getInteger(at: message.body.readerIndex, as: UInt32.self).map(Int.init) ?? -1
                if index >= 0, index < total, !seen[index] {
                    seen[index] = true
                    distinct += 1
                }
                // Ack every 100th with `multiple` to keep ack traffic low.
                if distinct % 100 == 0 || distinct == total { try await message.ack(multiple: true) }
                if distinct == total { break }
            }
            return distinct
        }

        let channel = try await publisherConnection.openChannel()
        try await channel.confirmSelect()
        let started = ContinuousClock.now
        let workers = Int(ProcessInfo.processInfo.environment["AMQP_IT_WORKERS"] ?? "") ?? 256
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var body = ByteBuffer()
                    for index in stride(from: worker, to: total, by: workers) {
                        body.clear()
                        body.writeInteger(UInt32(index))
                        body.writeString("payload-of-a-chat-message")
                        try await channel.publish(body, routingKey: queue)
                    }
                }
            }
            try await group.waitForAll()
        }
        let publishSeconds = (ContinuousClock.now - started).seconds
        let distinct = try await withTimeout(seconds: 60) { try await received.value }
        let totalSeconds = (ContinuousClock.now - started).seconds
        XCTAssertEqual(distinct, total)
        print("[amqp-it] 100k confirmed publishes in \(String(format: "%.2f", publishSeconds)) s = \(Int(Double(total) / publishSeconds)) msg/s; all consumed after \(String(format: "%.2f", totalSeconds)) s")

        try await setup.queueDelete(queue)
        try await publisherConnection.close()
        try await consumerConnection.close()
    }

    func testTenMebibyteMessageIsSplitAndReassembled() async throws {
        let connection = try await connect(name: "it-10mib")
        let channel = try await connection.openChannel()
        let queue = try await channel.queueDeclare("", exclusive: true).queue
        try await channel.confirmSelect()
        // Filler plus a distinct marker every 4 KiB, so a lost, repeated or reordered frame shows.
        var body = ByteBuffer(repeating: UInt8(ascii: "a"), count: 10 * 1024 * 1024)
        for block in 0..<(body.readableBytes / 4096) { body.setInteger(UInt32(block), at: block * 4096) }
        XCTAssertEqual(body.readableBytes, 10 * 1024 * 1024)
        let started = ContinuousClock.now
        try await channel.publish(body, routingKey: queue)
        let message = try await withTimeout(seconds: 20) {
            while true {
                if let message = try await channel.get(queue: queue, noAck: true) { return message }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        print("[amqp-it] 10 MiB message confirmed and fetched back in \(String(format: "%.2f", (ContinuousClock.now - started).seconds)) s")
        XCTAssertEqual(message.body.readableBytes, body.readableBytes)
        XCTAssertTrue(message.body == body, "body differs after reassembly")
        try await connection.close()
    }

    func testHundredChannelsAtOnce() async throws {
        let connection = try await connect(name: "it-100ch")
        let channels = try await withThrowingTaskGroup(of: AMQPChannel.self) { group in
            for _ in 0..<100 { group.addTask { try await connection.openChannel() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(Set(channels.map(\.id)).count, 100)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for channel in channels {
                group.addTask {
                    let queue = try await channel.queueDeclare("", exclusive: true).queue
                    try await channel.confirmSelect()
                    try await channel.publish("hello from \(channel.id)", routingKey: queue)
                    let message = try await channel.get(queue: queue, noAck: true)
                    XCTAssertEqual(message?.bodyString, "hello from \(channel.id)")
                    try await channel.close()
                }
            }
            try await group.waitForAll()
        }
        try await connection.close()
    }

    // MARK: Errors

    func testConflictingDeclareIsTyped406AndConnectionLivesOn() async throws {
        let connection = try await connect(name: "it-406")
        let first = try await connection.openChannel()
        let queue = uniqueName("it-406")
        try await first.queueDeclare(queue, durable: false, autoDelete: true)
        let second = try await connection.openChannel()
        do {
            try await second.queueDeclare(queue, durable: true, autoDelete: true)
            XCTFail("conflicting declare succeeded")
        } catch let error as AMQPError {
            XCTAssertEqual(error.closeReason?.kind, .preconditionFailed, "\(error)")
            XCTAssertEqual(error.closeReason?.replyCode, 406)
            XCTAssertTrue(error.closeReason?.replyText.contains("durable") ?? false, "\(error)")
            guard case .channelClosedByBroker = error else { return XCTFail("\(error)") }
        }
        // Only that channel is gone.
        do {
            try await second.queuePurge(queue)
            XCTFail("closed channel still answered")
        } catch {}
        let stillConnected = await connection.isConnected
        XCTAssertTrue(stillConnected)
        try await first.queuePurge(queue)
        let third = try await connection.openChannel()
        do {
            try await third.queueDeclare(uniqueName("missing"), passive: true)
            XCTFail("passive declare of a missing queue succeeded")
        } catch let error as AMQPError {
            XCTAssertEqual(error.closeReason?.kind, .notFound)
        }
        try await first.queueDelete(queue)
        try await connection.close()
    }

    func testWrongPasswordFailsClearlyWithinOneSecond() async throws {
        var config = try AMQPConnectionConfiguration(url: url)
        config.password = "definitely-wrong"
        let started = ContinuousClock.now
        do {
            _ = try await AMQPConnection.connect(config, logger: logger)
            XCTFail("connected with a wrong password")
        } catch let error as AMQPError {
            guard case .authenticationFailed(let text) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("ACCESS_REFUSED") || text.contains("authentication"), text)
        }
        XCTAssertLessThan((ContinuousClock.now - started).seconds, 1.0)
    }

    func testMandatoryUnroutablePublishThrowsInConfirmMode() async throws {
        let connection = try await connect(name: "it-return")
        let channel = try await connection.openChannel()
        let exchange = uniqueName("it-nowhere")
        try await channel.exchangeDeclare(exchange, type: "direct", autoDelete: true)
        try await channel.confirmSelect()
        do {
            try await channel.publish("lost", exchange: exchange, routingKey: "no-binding", mandatory: true)
            XCTFail("unroutable mandatory publish was confirmed")
        } catch AMQPError.unroutable(let reason) {
            XCTAssertEqual(reason.kind, .noRoute)
        }
        // Not mandatory: confirmed (dropped by the broker, as asked).
        try await channel.publish("dropped", exchange: exchange, routingKey: "no-binding")
        try await channel.exchangeDelete(exchange)
        try await connection.close()
    }

    /// A deadline that passes before the broker's confirm ends the wait with `.confirmTimedOut`
    /// (the late confirm is ignored and the channel goes on); one far enough away is confirmed.
    func testConfirmDeadlineEndsTheWaitAndALateConfirmIsIgnored() async throws {
        let connection = try await connect(name: "it-confirm-deadline")
        let channel = try await connection.openChannel()
        let queue = uniqueName("it-deadline-q")
        try await channel.queueDeclare(queue, autoDelete: true)
        try await channel.confirmSelect()
        do {
            // Already passed: the loop's timer fires before any broker round trip can finish.
            try await channel.publish(ByteBuffer(string: "late"), routingKey: queue, confirmDeadline: .now())
            XCTFail("a publish whose deadline had passed was reported confirmed")
        } catch AMQPError.confirmTimedOut {}
        try await channel.publish(ByteBuffer(string: "in time"), routingKey: queue, confirmDeadline: .now() + .seconds(10))
        // Both reached the queue: the deadline only ends the wait, it does not take the publish back.
        let deadline = ContinuousClock.now + .seconds(5)
        var count: UInt32 = 0
        while ContinuousClock.now < deadline {
            count = try await channel.queueDeclare(queue, passive: true).messageCount
            if count == 2 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTAssertEqual(count, 2)
        try await connection.close()
    }

    /// Thousands of mandatory publishes in flight on one confirm channel, all to one headers exchange
    /// with the same (empty) routing key; a header decides whether a message routes. Exactly the
    /// unroutable ones must throw `.unroutable`, and exactly the others must be delivered.
    func testConcurrentMandatoryPublishesFailExactlyTheUnroutableOnes() async throws {
        let connection = try await connect(name: "it-returns-many")
        let channel = try await connection.openChannel()
        let exchange = uniqueName("it-headers")
        try await channel.exchangeDeclare(exchange, type: "headers", autoDelete: true)
        let queue = try await channel.queueDeclare("", exclusive: true).queue
        try await channel.queueBind(queue: queue, exchange: exchange,
                                    arguments: ["x-match": .longString("all"), "route": .longString("yes")])
        try await channel.confirmSelect()

        let total = 5_000
        // Irregular, clustered pattern so that runs of returns and single ones both occur.
        let unroutable = Set((0..<total).filter { $0 % 7 == 3 || ($0 / 100) % 9 == 4 })
        let outcomes = PublishOutcomes()
        let returnedIndices = ReceivedSet()
        try await withTimeout(seconds: 120) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                let workers = 200
                for worker in 0..<workers {
                    group.addTask {
                        for index in stride(from: worker, to: total, by: workers) {
                            let properties = AMQPBasicProperties(headers: [
                                "route": .longString(unroutable.contains(index) ? "no" : "yes"),
                            ])
                            // Bodies repeat every 10 messages: matching must not rely on unique bodies.
                            do {
                                try await channel.publish("body-\(index % 10)", exchange: exchange, routingKey: "",
                                                          properties: properties, mandatory: true)
                                await outcomes.confirmed(index)
                            } catch AMQPError.unroutable(let reason) {
                                XCTAssertEqual(reason.kind, .noRoute)
                                await returnedIndices.insert(index)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let confirmed = await outcomes.confirmedSet
        XCTAssertEqual(confirmed, Set(0..<total).subtracting(unroutable))
        let missingReturns = await returnedIndices.missing(from: unroutable)
        XCTAssertTrue(missingReturns.isEmpty, "unroutable but confirmed: \(missingReturns.sorted().prefix(20))")
        // Confirmed means enqueued: the queue holds exactly the routable ones.
        let messageCount = try await channel.queueDeclare(queue, passive: true).messageCount
        XCTAssertEqual(Int(messageCount), total - unroutable.count)
        try await channel.exchangeDelete(exchange)
        try await connection.close()
    }

    func testReturnsWithoutConfirmsAndExchangeToExchangeBinding() async throws {
        let connection = try await connect(name: "it-returns")
        let channel = try await connection.openChannel()
        let returns = channel.returnedMessages()
        let source = uniqueName("it-src")
        let destination = uniqueName("it-dst")
        try await channel.exchangeDeclare(source, type: "direct", autoDelete: true)
        try await channel.exchangeDeclare(destination, type: "fanout", autoDelete: true)
        try await channel.exchangeBind(destination: destination, source: source, routingKey: "routed")
        let queue = try await channel.queueDeclare("", exclusive: true).queue
        try await channel.queueBind(queue: queue, exchange: destination)

        try await channel.publish("via e2e", exchange: source, routingKey: "routed", mandatory: true)
        try await channel.publish("bounced", exchange: source, routingKey: "unrouted", mandatory: true)
        let returned = try await withTimeout(seconds: 5) { () -> AMQPReturnedMessage? in
            for await message in returns { return message }
            return nil
        }
        XCTAssertEqual(returned.map { String(buffer: $0.body) }, "bounced")
        XCTAssertEqual(returned?.reason.kind, .noRoute)
        XCTAssertEqual(returned?.routingKey, "unrouted")
        let delivered = try await withTimeout(seconds: 5) { () -> AMQPMessage? in
            while true {
                if let message = try await channel.get(queue: queue, noAck: true) { return message }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        XCTAssertEqual(delivered?.bodyString, "via e2e")
        XCTAssertEqual(delivered?.exchange, source)
        try await channel.exchangeUnbind(destination: destination, source: source, routingKey: "routed")
        try await channel.exchangeDelete(destination)
        try await channel.exchangeDelete(source)
        try await connection.close()
    }

    func testSlowConsumerPausesSocketReadsAndResumesWithoutLoss() async throws {
        let publisherConnection = try await connect(name: "it-slow-pub")
        let consumerConnection = try await connect(name: "it-slow-sub")
        let publisher = try await publisherConnection.openChannel()
        let queue = uniqueName("it-slow")
        try await publisher.queueDeclare(queue, autoDelete: true)
        let channel = try await consumerConnection.openChannel()
        // No prefetch limit and a tiny client buffer: only the socket pause keeps memory bounded.
        let consumer = try await channel.consume(queue: queue, noAck: true, bufferHighWatermark: 8)
        try await publisher.confirmSelect()
        let total = 2000
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<total {
                group.addTask { try await publisher.publish("\(index)", routingKey: queue) }
            }
            try await group.waitForAll()
        }
        try await Task.sleep(for: .milliseconds(300))
        var seen = Set<String>()
        try await withTimeout(seconds: 30) {
            var seenInside = Set<String>()
            for try await message in consumer {
                seenInside.insert(message.bodyString)
                if seenInside.count % 200 == 0 { try await Task.sleep(for: .milliseconds(10)) }
                if seenInside.count == total { break }
            }
            return seenInside
        }.forEach { seen.insert($0) }
        XCTAssertEqual(seen.count, total)
        try await publisherConnection.close()
        try await consumerConnection.close()
    }

    func testBrokerSideConsumerCancelEndsTheSequenceWithTypedError() async throws {
        let connection = try await connect(name: "it-cancel")
        let channel = try await connection.openChannel()
        let queue = uniqueName("it-cancel")
        try await channel.queueDeclare(queue)
        let consumer = try await channel.consume(queue: queue)
        let other = try await connection.openChannel()
        try await other.queueDelete(queue)
        do {
            for try await _ in consumer {}
            XCTFail("sequence ended without error")
        } catch AMQPError.consumerCancelledByBroker(let tag) {
            XCTAssertEqual(tag, consumer.consumerTag)
        }
        try await connection.close()
    }

    // MARK: Recovery

    func testBrokerRestartRecoversAndEveryConfirmedMessageArrives() async throws {
        let publisherConnection = try await connect(name: "it-recovery-pub")
        let consumerConnection = try await connect(name: "it-recovery-sub")
        let publisherStates = StateRecorder(publisherConnection.stateChanges)
        let consumerStates = StateRecorder(consumerConnection.stateChanges)

        let exchange = "it-recovery-x"
        let queue = "it-recovery-q"
        let admin = try await publisherConnection.openChannel()
        try? await admin.queueDelete(queue)
        let consumerChannel = try await consumerConnection.openChannel()
        try await consumerChannel.basicQos(prefetchCount: 500)
        // Durable queue + persistent messages: what the broker confirmed survives its restart.
        try await consumerChannel.exchangeDeclare(exchange, type: "direct", durable: true)
        try await consumerChannel.queueDeclare(queue, durable: true)
        try await consumerChannel.queueBind(queue: queue, exchange: exchange, routingKey: "k")
        // And a server-named exclusive queue on a fanout: recovery must give it a new name and rebind it.
        let fanout = "it-recovery-fanout"
        try await consumerChannel.exchangeDeclare(fanout, type: "fanout")
        let serverNamed = try await consumerChannel.queueDeclare("", exclusive: true).queue
        try await consumerChannel.queueBind(queue: serverNamed, exchange: fanout)
        let markerConsumer = try await consumerChannel.consume(queue: serverNamed, noAck: true)
        let consumer = try await consumerChannel.consume(queue: queue)

        let received = ReceivedSet()
        let consumeTask = Task {
            for try await message in consumer {
                await received.insert(Int(message.body.getInteger(at: message.body.readerIndex, as: UInt32.self) ?? 0))
                do { try await message.ack() } catch AMQPError.staleDelivery {
                    // Redelivered after recovery; counted once by the set.
                }
            }
        }

        let channel = try await publisherConnection.openChannel()
        try await channel.confirmSelect()
        let outcomes = PublishOutcomes()
        let stopPublishing = ManagedFlag()
        let persistent = AMQPBasicProperties(deliveryMode: 2)
        let publishers = (0..<16).map { worker in
            Task {
                var index = worker
                // Bounded: at most 40 s or 400k messages per run.
                let deadline = ContinuousClock.now + .seconds(40)
                while !stopPublishing.isSet, ContinuousClock.now < deadline, index < 400_000 {
                    var body = ByteBuffer()
                    body.writeInteger(UInt32(index))
                    do {
                        try await channel.publish(body, exchange: exchange, routingKey: "k", properties: persistent)
                        await outcomes.confirmed(index)
                    } catch {
                        let error = error as? AMQPError ?? .protocolViolation("untyped error: \(error)")
                        await outcomes.failed(error)
                        if case .notConnected = error { try? await Task.sleep(for: .milliseconds(20)) }
                    }
                    index += 16
                }
            }
        }

        try await Task.sleep(for: .seconds(1))
        let confirmedBefore = await outcomes.confirmedCount
        XCTAssertGreaterThan(confirmedBefore, 0)
        try rabbitmq("stop-app")
        try await Task.sleep(for: .seconds(1))
        try rabbitmq("start-app")

        try await withTimeout(seconds: 30) {
            await publisherStates.wait(for: .recovered)
            await consumerStates.wait(for: .recovered)
        }
        // Traffic after recovery reaches the redeclared topology.
        try await Task.sleep(for: .seconds(1))
        stopPublishing.set()
        for publisher in publishers { await publisher.value }

        let marker = try await publisherConnection.openChannel()
        try await marker.publish("after-recovery", exchange: fanout, routingKey: "")
        let markerMessage = try await withTimeout(seconds: 10) { () -> AMQPMessage? in
            for try await message in markerConsumer { return message }
            return nil
        }
        XCTAssertEqual(markerMessage?.bodyString, "after-recovery")

        let confirmed = await outcomes.confirmedSet
        try await withTimeout(seconds: 30) {
            while await !received.containsAll(confirmed) { try await Task.sleep(for: .milliseconds(100)) }
        }
        let missing = await received.missing(from: confirmed)
        XCTAssertTrue(missing.isEmpty, "\(missing.count) confirmed messages never arrived")
        let failures = await outcomes.failures
        XCTAssertGreaterThan(failures.values.reduce(0, +), 0, "the outage must surface as publish errors")
        print("[amqp-it] recovery: \(confirmed.count) confirmed (\(confirmedBefore) before the outage), all received; failed publishes by error: \(failures)")
        let states = await publisherStates.states
        XCTAssertTrue(states.contains { if case .disconnected = $0 { return true } else { return false } }, "\(states)")
        XCTAssertTrue(states.contains { if case .recovering = $0 { return true } else { return false } }, "\(states)")

        consumeTask.cancel()
        try await admin.queueDelete(queue)
        try await admin.exchangeDelete(exchange)
        try await admin.exchangeDelete(fanout)
        try await publisherConnection.close()
        try await consumerConnection.close()
    }

    /// A stream consumer restarted by recovery resumes after the last offset it handled: what was
    /// appended while it was away (here, while its own connection was still backing off) arrives,
    /// and nothing arrives twice. With the original `x-stream-offset: next` that middle part is lost.
    func testStreamConsumerResumesAfterItsLastOffsetAcrossRecovery() async throws {
        let publisherConnection = try await connect(name: "it-stream-resume-pub")
        var consumerConfig = try AMQPConnectionConfiguration(url: url)
        consumerConfig.connectionName = "it-stream-resume-sub"
        // Slower than the publisher, so that messages are appended before the consumer is back.
        consumerConfig.recovery = .init(isEnabled: true, initialDelay: .seconds(10), maximumDelay: .seconds(10))
        let consumerConnection = try await AMQPConnection.connect(consumerConfig, logger: logger)
        let publisherStates = StateRecorder(publisherConnection.stateChanges)
        let consumerStates = StateRecorder(consumerConnection.stateChanges)

        let stream = uniqueName("it-stream-resume")
        let publisher = try await publisherConnection.openChannel()
        try await publisher.confirmSelect()
        try await publisher.queueDeclare(stream, durable: true, arguments: ["x-queue-type": .longString("stream")])
        let consumerChannel = try await consumerConnection.openChannel()
        try await consumerChannel.basicQos(prefetchCount: 100)
        let lastOffset = NIOLockedValueBox<Int64?>(nil)
        let consumer = try await consumerChannel.consume(
            queue: stream, arguments: ["x-stream-offset": .longString("next")],
            argumentsOnRecovery: { ["x-stream-offset": lastOffset.withLockedValue { $0 }.map { .int64($0 + 1) } ?? .longString("first")] })
        let received = ReceivedSet()
        let duplicates = NIOLockedValueBox(0)
        let consumeTask = Task {
            for try await message in consumer {
                guard case .int64(let offset)? = message.properties.headers?["x-stream-offset"] else { continue }
                let isNew = lastOffset.withLockedValue { last -> Bool in
                    guard last.map({ offset > $0 }) ?? true else { return false }
                    last = offset
                    return true
                }
                if isNew {
                    await received.insert(Int(message.body.getInteger(at: message.body.readerIndex, as: UInt32.self) ?? 0))
                } else {
                    duplicates.withLockedValue { $0 += 1 }
                }
                try? await message.ack()
            }
        }
        func publish(_ range: Range<Int>) async throws {
            for index in range {
                var body = ByteBuffer()
                body.writeInteger(UInt32(index))
                try await publisher.publish(body, routingKey: stream, properties: AMQPBasicProperties(deliveryMode: 2))
            }
        }
        try await Task.sleep(for: .milliseconds(200))
        try await publish(0..<100)
        try await withTimeout(seconds: 10) {
            while await !received.containsAll(Set(0..<100)) { try await Task.sleep(for: .milliseconds(20)) }
        }

        try rabbitmq("stop-app")
        try rabbitmq("start-app")
        // The publisher (100 ms back-off) is back well before the consumer (10 s).
        try await withTimeout(seconds: 30) { await publisherStates.wait(for: .recovered) }
        var appended = Set(0..<100)
        for index in 100..<200 {
            do {
                try await publish(index..<(index + 1))
                appended.insert(index)
            } catch AMQPError.notConnected {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        let consumerWasAway = await !consumerStates.states.contains(.recovered)
        try await withTimeout(seconds: 30) { await consumerStates.wait(for: .recovered) }
        let appendedWhileAway = appended.count - 100
        try await publish(200..<300)
        appended.formUnion(200..<300)

        let expected = appended
        try await withTimeout(seconds: 20) {
            while await !received.containsAll(expected) { try await Task.sleep(for: .milliseconds(50)) }
        }
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertTrue(consumerWasAway, "the consumer recovered before anything was appended: the test proves nothing")
        XCTAssertGreaterThan(appendedWhileAway, 50)
        let missing = await received.missing(from: expected)
        XCTAssertTrue(missing.isEmpty, "missing: \(missing.sorted())")
        XCTAssertEqual(duplicates.withLockedValue { $0 }, 0, "the resumed consumer re-delivered handled offsets")
        print("[amqp-it] stream resume: \(appendedWhileAway) appended while the consumer was away, all received")

        consumeTask.cancel()
        try await publisher.queueDelete(stream)
        try await publisherConnection.close()
        try await consumerConnection.close()
    }

    /// While the client is away, another connection makes two of its queues impossible to recover:
    /// one is redeclared with other arguments (406 on redeclare), one becomes exclusive to that other
    /// connection (405 on redeclare, and the consume on it closes the application's channel). Recovery
    /// must report each refusal, reopen the channel and bring back the consumer that still can work.
    func testBrokerRefusalsDuringRecoveryAreReportedAndTheRestRecovers() async throws {
        var config = try AMQPConnectionConfiguration(url: url)
        config.connectionName = "it-refused-recovery"
        // The first reconnect waits 3-6 s (jitter): ample time for the other connection's few changes.
        config.recovery = .init(isEnabled: true, initialDelay: .seconds(6), maximumDelay: .seconds(6))
        let connection = try await AMQPConnection.connect(config, logger: logger)
        let states = StateRecorder(connection.stateChanges)
        let other = try await connect(name: "it-refused-recovery-other", recovery: false)
        let otherChannel = try await other.openChannel()

        let conflicting = uniqueName("it-conflict")
        let locked = uniqueName("it-locked")
        let healthy = uniqueName("it-healthy")
        let channel = try await connection.openChannel()
        try await channel.basicQos(prefetchCount: 10)
        for queue in [conflicting, locked, healthy] { try await channel.queueDeclare(queue) }
        // Consumers on one channel, the doomed one first, so that its failure closes the channel
        // under the healthy one that recovery already restored.
        let lockedConsumer = try await channel.consume(queue: locked, consumerTag: "locked-consumer", noAck: true)
        let healthyConsumer = try await channel.consume(queue: healthy, consumerTag: "healthy-consumer", noAck: true)

        try await connection.core.eventLoop.submit { connection.core.socket?.close(promise: nil) }.get()
        try await withTimeout(seconds: 5) { await states.wait(for: .recovering(attempt: 1)) }
        _ = try await otherChannel.queueDelete(conflicting)
        try await otherChannel.queueDeclare(conflicting, arguments: ["x-max-length": .int32(10)])
        _ = try await otherChannel.queueDelete(locked)
        try await otherChannel.queueDeclare(locked, exclusive: true)

        try await withTimeout(seconds: 30) { await states.wait(for: .recovered) }
        let failures = await states.states.compactMap { state -> AMQPRecoveryFailure? in
            if case .topologyRecoveryFailed(let failure) = state { return failure } else { return nil }
        }
        XCTAssertEqual(Set(failures.map(\.entity)), [.queue(conflicting), .queue(locked),
                                                     .consumer(tag: "locked-consumer", queue: locked)], "\(failures)")
        for failure in failures {
            switch failure.entity {
            case .queue(conflicting): XCTAssertEqual(failure.reason.kind, .preconditionFailed)
            case .queue(locked): XCTAssertEqual(failure.reason.kind, .resourceLocked)
            default: XCTAssertTrue([403, 405].contains(failure.reason.replyCode), "\(failure)")
            }
        }
        // The refused consumer's sequence ends with the broker's reason...
        do {
            for try await _ in lockedConsumer { XCTFail("delivery from a consumer that was not recovered") }
            XCTFail("sequence of the refused consumer ended without an error")
        } catch AMQPError.channelClosedByBroker(let reason) {
            XCTAssertTrue([403, 405].contains(reason.replyCode), "\(reason)")
        }
        // ...while the reopened channel publishes and its other consumer receives.
        try await channel.publish("after refusal", routingKey: healthy)
        let delivered = try await withTimeout(seconds: 5) { () -> String? in
            for try await message in healthyConsumer { return message.bodyString }
            return nil
        }
        XCTAssertEqual(delivered, "after refusal")
        let stillConnected = await connection.isConnected
        XCTAssertTrue(stillConnected)

        for queue in [conflicting, healthy] { _ = try await otherChannel.queueDelete(queue) }
        try await connection.close()
        try await other.close()
    }

    func testPublishWhileDisconnectedThrowsPromptly() async throws {
        var config = try AMQPConnectionConfiguration(url: url)
        config.recovery = .init(isEnabled: true, initialDelay: .seconds(30), maximumDelay: .seconds(30))
        let connection = try await AMQPConnection.connect(config, logger: logger)
        let states = StateRecorder(connection.stateChanges)
        let channel = try await connection.openChannel()
        // Kill the socket from the broker side by closing this connection's underlying channel.
        try await connection.core.eventLoop.submit { connection.core.socket?.close(promise: nil) }.get()
        try await withTimeout(seconds: 5) { await states.wait(for: .recovering(attempt: 1)) }
        let started = ContinuousClock.now
        do {
            try await channel.publish("x", routingKey: "nowhere")
            XCTFail("publish succeeded while disconnected")
        } catch AMQPError.notConnected {}
        XCTAssertLessThan((ContinuousClock.now - started).seconds, 0.5)
        try await connection.close()
    }

    // MARK: Helpers

    /// Uses scripts/rabbitmq from this checkout, or rabbitmqctl directly when the script is not beside us.
    private func rabbitmq(_ command: String) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/rabbitmq").path
        let commands: [[String]]
        if FileManager.default.fileExists(atPath: script) {
            commands = [["/bin/bash", script, command]]
        } else {
            let ctl = command == "stop-app" ? "stop_app" : "start_app"
            commands = [["/usr/sbin/rabbitmqctl", "-q", ctl]]
                + (command == "start-app" ? [["/usr/sbin/rabbitmqctl", "-q", "await_startup"]] : [])
        }
        for arguments in commands {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: arguments[0])
            process.arguments = Array(arguments.dropFirst())
            try process.run()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "\(arguments.joined(separator: " ")) failed")
        }
    }
}

// MARK: Test support

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
