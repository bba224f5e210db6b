import NIOConcurrencyHelpers
import NIOCore
import XCTest
@testable import AMQPClient

/// The entry points for code that lives on the connection's event loop: `publishFuture` and a
/// consumer's `onDelivery`.
final class AMQPClientIntegrationLoopTests: AMQPIntegrationTestCase {
    /// Published from the loop with `publishFuture`, confirmed there; every delivery is seen by
    /// `onDelivery` on the loop, in order, and still reaches the sequence.
    func testPublishFutureAndOnDeliveryStayOnTheLoop() async throws {
        let connection = try await connect(name: "it-loop")
        let channel = try await connection.openChannel()
        let queue = uniqueName("it-loop-q")
        try await channel.queueDeclare(queue, autoDelete: true)
        try await channel.confirmSelect()
        let loop = connection.eventLoop
        let seen = NIOLockedValueBox<[String]>([])
        let consumer = try await channel.consume(queue: queue, noAck: true, onDelivery: { message in
            XCTAssertTrue(loop.inEventLoop, "onDelivery runs on the connection's loop")
            seen.withLockedValue { $0.append(String(buffer: message.body)) }
        })
        let bodies = (0..<5).map { "m\($0)" }
        let confirmedOnLoop = try await loop.flatSubmit { () -> EventLoopFuture<[Bool]> in
            let futures = bodies.map { body in
                channel.publishFuture(ByteBuffer(string: body), routingKey: queue, confirmDeadline: .now() + .seconds(10))
                    .map { loop.inEventLoop }
            }
            return EventLoopFuture.whenAllSucceed(futures, on: loop)
        }.get()
        XCTAssertEqual(confirmedOnLoop, Array(repeating: true, count: bodies.count), "confirmed, on the loop")
        var received: [String] = []
        try await withTimeout(seconds: 10) {
            var iterator = consumer.makeAsyncIterator()
            var got: [String] = []
            while got.count < bodies.count, let message = try await iterator.next() { got.append(String(buffer: message.body)) }
            return got
        }.forEach { received.append($0) }
        XCTAssertEqual(received, bodies, "the sequence still gets every message")
        XCTAssertEqual(seen.withLockedValue { $0 }, bodies, "onDelivery saw each one, in order")
        try await connection.close()
    }
}
