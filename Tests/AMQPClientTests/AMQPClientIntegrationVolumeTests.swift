import Foundation
import NIOCore
import XCTest
@testable import AMQPClient

/// Volume against a real RabbitMQ: many confirmed messages, a 10 MiB one, many channels, a slow consumer.
final class AMQPClientIntegrationVolumeTests: AMQPIntegrationTestCase {
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
}
