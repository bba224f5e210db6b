import Foundation
import XCTest
@testable import AMQPClient

/// Errors from a real RabbitMQ arrive typed: a channel closed with its reply code, a refused login,
/// a consumer the broker cancels.
final class AMQPClientIntegrationErrorTests: AMQPIntegrationTestCase {
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
}
