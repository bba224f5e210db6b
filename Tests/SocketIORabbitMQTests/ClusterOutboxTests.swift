import XCTest

@testable import SocketIORabbitMQ

final class ClusterOutboxTests: XCTestCase {
    func testConnectedMessagesArePublishedAtOnceWithIncreasingNumbers() {
        var outbox = ClusterOutbox<String>(capacity: 10, overflowPolicy: .dropOldest)
        XCTAssertTrue(outbox.connectionRestored().isEmpty)
        guard case .publish("a", 1) = outbox.enqueue("a", nowNanoseconds: 0),
              case .publish("b", 2) = outbox.enqueue("b", nowNanoseconds: 0)
        else { return XCTFail("expected immediate publishes") }
        XCTAssertEqual(outbox.count, 2)
        XCTAssertEqual(outbox.confirm(publishNumber: 2, multiple: true).map(\.item), ["a", "b"])
        XCTAssertEqual(outbox.count, 0)
    }

    func testSingleConfirmRemovesOnlyThatMessage() {
        var outbox = ClusterOutbox<String>(capacity: 10, overflowPolicy: .dropOldest)
        _ = outbox.connectionRestored()
        for item in ["a", "b", "c"] { _ = outbox.enqueue(item, nowNanoseconds: 5) }
        let confirmed = outbox.confirm(publishNumber: 2, multiple: false)
        XCTAssertEqual(confirmed.map(\.item), ["b"])
        XCTAssertEqual(confirmed.first?.enqueuedAtNanoseconds, 5)
        XCTAssertEqual(outbox.count, 2)
        XCTAssertTrue(outbox.confirm(publishNumber: 2, multiple: false).isEmpty, "a second confirm of the same number is a no-op")
    }

    func testUnconfirmedAndHeldMessagesAreRepublishedInOrderAfterAnOutage() {
        var outbox = ClusterOutbox<Int>(capacity: 100, overflowPolicy: .rejectNew)
        _ = outbox.connectionRestored()
        for value in 1...5 { _ = outbox.enqueue(value, nowNanoseconds: 0) }
        _ = outbox.confirm(publishNumber: 2, multiple: true)  // 1 and 2 are safe
        outbox.connectionLost()
        for value in 6...8 {
            guard case .held = outbox.enqueue(value, nowNanoseconds: 0) else { return XCTFail("must hold while disconnected") }
        }
        let replay = outbox.connectionRestored()
        XCTAssertEqual(replay.map(\.item), [3, 4, 5, 6, 7, 8])
        XCTAssertEqual(replay.map(\.publishNumber), [1, 2, 3, 4, 5, 6], "numbering restarts on the new channel")
        guard case .publish(9, 7) = outbox.enqueue(9, nowNanoseconds: 0) else { return XCTFail("new messages follow the replay") }
        XCTAssertEqual(outbox.confirm(publishNumber: 7, multiple: true).map(\.item), [3, 4, 5, 6, 7, 8, 9])
    }

    func testDropOldestKeepsTheNewestAndCounts() {
        var outbox = ClusterOutbox<Int>(capacity: 3, overflowPolicy: .dropOldest)
        for value in 1...3 { _ = outbox.enqueue(value, nowNanoseconds: 0) }
        guard case .heldDroppingOldest(dropped: 1) = outbox.enqueue(4, nowNanoseconds: 0) else { return XCTFail("should drop 1") }
        guard case .heldDroppingOldest(dropped: 2) = outbox.enqueue(5, nowNanoseconds: 0) else { return XCTFail("should drop 2") }
        XCTAssertEqual(outbox.overflowCount, 2)
        XCTAssertEqual(outbox.count, 3)
        XCTAssertEqual(outbox.connectionRestored().map(\.item), [3, 4, 5])
    }

    func testRejectNewKeepsTheOldestAndCounts() {
        var outbox = ClusterOutbox<Int>(capacity: 2, overflowPolicy: .rejectNew)
        _ = outbox.enqueue(1, nowNanoseconds: 0)
        _ = outbox.enqueue(2, nowNanoseconds: 0)
        guard case .rejected = outbox.enqueue(3, nowNanoseconds: 0) else { return XCTFail("should reject") }
        XCTAssertEqual(outbox.overflowCount, 1)
        XCTAssertEqual(outbox.connectionRestored().map(\.item), [1, 2])
    }

    func testUnconfirmedMessagesCountAgainstCapacity() {
        var outbox = ClusterOutbox<Int>(capacity: 2, overflowPolicy: .dropOldest)
        _ = outbox.connectionRestored()
        _ = outbox.enqueue(1, nowNanoseconds: 0)
        _ = outbox.enqueue(2, nowNanoseconds: 0)
        // Broker not confirming: the third forgets the oldest unconfirmed one.
        guard case .publish(3, 3) = outbox.enqueue(3, nowNanoseconds: 0) else { return XCTFail("connected: publish") }
        XCTAssertEqual(outbox.overflowCount, 1)
        outbox.connectionLost()
        XCTAssertEqual(outbox.connectionRestored().map(\.item), [2, 3])
    }

    func testNackedMessagesAreSentAgainAfterReconnect() {
        var outbox = ClusterOutbox<Int>(capacity: 10, overflowPolicy: .dropOldest)
        _ = outbox.connectionRestored()
        for value in 1...3 { _ = outbox.enqueue(value, nowNanoseconds: 0) }
        outbox.reject(publishNumber: 2, multiple: false)
        _ = outbox.confirm(publishNumber: 3, multiple: true)
        XCTAssertEqual(outbox.count, 1)
        outbox.connectionLost()
        XCTAssertEqual(outbox.connectionRestored().map(\.item), [2])
    }
}
