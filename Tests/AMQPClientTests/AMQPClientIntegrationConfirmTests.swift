import AMQPProtocol
import Foundation
import NIOCore
import XCTest
@testable import AMQPClient

/// Publisher confirms and returns against a real RabbitMQ: unroutable mandatory publishes, confirm
/// deadlines, returns without confirms.
final class AMQPClientIntegrationConfirmTests: AMQPIntegrationTestCase {
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
}
