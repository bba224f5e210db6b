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

    func testReturnIsAttachedToOldestMatchingMandatoryPublish() {
        var tracker = Tracker()
        _ = tracker.register("plain")
        _ = tracker.register("m1", mandatoryKey: .init(exchange: "x", routingKey: "nowhere"))
        _ = tracker.register("m2", mandatoryKey: .init(exchange: "x", routingKey: "nowhere"))
        let reason = AMQPCloseReason(replyCode: 312, replyText: "NO_ROUTE")
        XCTAssertTrue(tracker.markReturned(exchange: "x", routingKey: "nowhere", reason: reason))
        XCTAssertFalse(tracker.markReturned(exchange: "x", routingKey: "other", reason: reason))
        let resolved = tracker.ack(deliveryTag: 3, multiple: true)
        XCTAssertEqual(resolved.map(\.0), ["plain", "m1", "m2"])
        XCTAssertEqual(resolved.map(\.1), [.confirmed, .returned(reason), .confirmed])
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
