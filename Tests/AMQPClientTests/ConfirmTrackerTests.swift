import AMQPProtocol
import NIOCore
import XCTest
@testable import AMQPClient

final class ConfirmTrackerTests: XCTestCase {
    typealias Tracker = ConfirmTracker<String>

    func testSingleAndMultipleAcksResolveExactlyTheirRange() {
        var tracker = Tracker()
        for name in ["a", "b", "c", "d", "e"] { _ = tracker.register(name) }
        XCTAssertEqual(tracker.nextSequenceNumber, 6)

        var resolved = tracker.ack(deliveryTag: 2, multiple: false)
        XCTAssertEqual(resolved.map(\.0), ["b"])
        resolved = tracker.ack(deliveryTag: 4, multiple: true)
        XCTAssertEqual(resolved.map(\.0), ["a", "c", "d"])
        XCTAssertTrue(resolved.allSatisfy { $0.1 == .confirmed })
        XCTAssertEqual(tracker.pendingCount, 1)
        // Acking again (duplicate) resolves nothing.
        XCTAssertTrue(tracker.ack(deliveryTag: 4, multiple: true).isEmpty)
        XCTAssertEqual(tracker.ack(deliveryTag: 5, multiple: false).map(\.0), ["e"])
        XCTAssertEqual(tracker.pendingCount, 0)
    }

    func testNacksFailTheirRange() {
        var tracker = Tracker()
        for name in ["a", "b", "c"] { _ = tracker.register(name) }
        let nacked = tracker.nack(deliveryTag: 2, multiple: true)
        XCTAssertEqual(nacked.map(\.0), ["a", "b"])
        XCTAssertTrue(nacked.allSatisfy { $0.1 == .nacked })
        XCTAssertEqual(tracker.ack(deliveryTag: 3, multiple: true).map(\.1), [.confirmed])
    }

    private func content(_ routingKey: String, _ body: String, messageID: String? = nil) -> Tracker.PublishedContent {
        .init(exchange: "x", routingKey: routingKey, properties: .init(messageID: messageID), body: ByteBuffer(string: body))
    }

    private let noRoute = AMQPCloseReason(replyCode: 312, replyText: "NO_ROUTE")

    func testReturnFailsOnlyThePublishWithTheReturnedContent() {
        var tracker = Tracker()
        _ = tracker.register("plain")
        _ = tracker.register("m1", mandatory: content("k", "one"))
        _ = tracker.register("m2", mandatory: content("k", "two"))
        _ = tracker.register("m3", mandatory: content("k", "three"))
        // Same exchange and key for all three: the body says which one came back.
        XCTAssertTrue(tracker.markReturned(content("k", "two"), reason: noRoute))
        XCTAssertFalse(tracker.markReturned(content("other", "two"), reason: noRoute))
        XCTAssertFalse(tracker.markReturned(content("k", "one", messageID: "id"), reason: noRoute), "properties differ")
        let resolved = tracker.ack(deliveryTag: 4, multiple: true)
        XCTAssertEqual(resolved.map(\.0), ["plain", "m1", "m2", "m3"])
        XCTAssertEqual(resolved.map(\.1), [.confirmed, .confirmed, .returned(noRoute), .confirmed])
    }

    func testReturnBelongsToAPublishNewerThanEverythingAckedBeforeIt() {
        var tracker = Tracker()
        // #1 and #3 are identical; #2 is acked (single, out of order) before the return arrives.
        _ = tracker.register("first", mandatory: content("k", "same"))
        _ = tracker.register("second", mandatory: content("k", "other"))
        _ = tracker.register("third", mandatory: content("k", "same"))
        XCTAssertEqual(tracker.ack(deliveryTag: 2, multiple: false).map(\.1), [.confirmed])
        // RabbitMQ acks a publish only after its return, so a return after ack #2 is for a publish > 2.
        XCTAssertTrue(tracker.markReturned(content("k", "same"), reason: noRoute))
        let resolved = tracker.ack(deliveryTag: 3, multiple: true)
        XCTAssertEqual(resolved.map(\.0), ["first", "third"])
        XCTAssertEqual(resolved.map(\.1), [.confirmed, .returned(noRoute)])
    }

    func testSuccessiveIdenticalReturnsTakeSuccessivePublishes() {
        var tracker = Tracker()
        for name in ["a", "b", "c"] { _ = tracker.register(name, mandatory: content("k", "same")) }
        XCTAssertTrue(tracker.markReturned(content("k", "same"), reason: noRoute))
        XCTAssertTrue(tracker.markReturned(content("k", "same"), reason: noRoute))
        let resolved = tracker.ack(deliveryTag: 3, multiple: true)
        XCTAssertEqual(resolved.map(\.1), [.returned(noRoute), .returned(noRoute), .confirmed])
        // Everything is resolved: a further return matches nothing (it goes to the return listeners).
        XCTAssertFalse(tracker.markReturned(content("k", "same"), reason: noRoute))
    }

    func testNackOfAReturnedPublishIsANack() {
        var tracker = Tracker()
        _ = tracker.register("a", mandatory: content("k", "a"))
        XCTAssertTrue(tracker.markReturned(content("k", "a"), reason: noRoute))
        XCTAssertEqual(tracker.nack(deliveryTag: 1, multiple: false).map(\.1), [.nacked])
    }

    func testFailAllHandsBackEveryPendingWaiterAndKeepsNumbering() {
        var tracker = Tracker()
        for name in ["a", "b", "c"] { _ = tracker.register(name) }
        _ = tracker.ack(deliveryTag: 1, multiple: false)
        XCTAssertEqual(tracker.failAll(), ["b", "c"])
        XCTAssertEqual(tracker.pendingCount, 0)
        XCTAssertEqual(tracker.register("d"), 4)
        XCTAssertEqual(tracker.ack(deliveryTag: 4, multiple: false).map(\.0), ["d"])
    }

    func testLongRunsStayCompactAndCorrect() {
        var tracker = Tracker()
        var confirmed = 0
        for round in 0..<50 {
            for index in 0..<1000 { _ = tracker.register("\(round)-\(index)") }
            // Ack out of order: odd tags one by one, then everything with one multiple ack.
            let base = UInt64(round * 1000)
            for tag in stride(from: base + 1, through: base + 1000, by: 2) {
                confirmed += tracker.ack(deliveryTag: tag, multiple: false).count
            }
            confirmed += tracker.ack(deliveryTag: base + 1000, multiple: true).count
        }
        XCTAssertEqual(confirmed, 50_000)
        XCTAssertEqual(tracker.pendingCount, 0)
    }
}
