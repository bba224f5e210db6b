import AMQPProtocol
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import XCTest
@testable import AMQPClient

/// Connection recovery against a real RabbitMQ whose app is stopped and started (scripts/rabbitmq)
/// or whose socket is closed under the client.
final class AMQPClientIntegrationRecoveryTests: AMQPIntegrationTestCase {
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
