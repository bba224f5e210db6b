import Foundation
import ChatCore
import XCTest

final class ChatRulesTests: XCTestCase {
    let limits = ChatLimits()

    func testMessagesAreTrimmed() {
        XCTAssertEqual(try ChatRules.validateMessage("  hello world \n\t", limits: limits).get(), "hello world")
    }

    func testEmptyAndBlankMessagesAreRefused() {
        for text in ["", "   ", "\n\t \u{00A0}"] {
            XCTAssertEqual(ChatRules.validateMessage(text, limits: limits), .failure(.emptyMessage), "\(text.debugDescription)")
        }
    }

    func testLengthLimitCountsCharactersAfterTrimming() {
        let atLimit = String(repeating: "é", count: 2_000)
        XCTAssertEqual(try ChatRules.validateMessage("  " + atLimit + "  ", limits: limits).get(), atLimit)
        XCTAssertEqual(
            ChatRules.validateMessage(atLimit + "x", limits: limits),
            .failure(.messageTooLong(limit: 2_000))
        )
        // One flag emoji is one character for people, though several scalars (and 8 bytes:
        // 2,000 of them need a byte limit above the default 8 KB).
        var roomy = limits
        roomy.maxMessageBytes = 16_000
        XCTAssertEqual(try ChatRules.validateMessage(String(repeating: "🇫🇷", count: 2_000), limits: roomy).get().count, 2_000)
    }

    func testMarkupIsKeptAsText() {
        // The server does not rewrite text; the page renders it with textContent.
        let payload = "<img src=x onerror=alert(1)>"
        XCTAssertEqual(try ChatRules.validateMessage(payload, limits: limits).get(), payload)
    }

    func testRoomNames() {
        XCTAssertEqual(try ChatRules.validateRoom(" Random ").get(), "random")
        XCTAssertEqual(try ChatRules.validateRoom("team-2.dev_ops").get(), "team-2.dev_ops")
        for bad in ["", "a b", "<script>", String(repeating: "a", count: 33), "x/y"] {
            XCTAssertEqual(ChatRules.validateRoom(bad), .failure(.invalidRoom), bad)
        }
    }

    func testNames() {
        XCTAssertEqual(try ChatRules.validateName("  Ada Lovelace ").get(), "Ada Lovelace")
        for bad in ["", "   ", "a\u{0007}b", String(repeating: "n", count: 33), "zero\u{200B}width"] {
            XCTAssertEqual(ChatRules.validateName(bad), .failure(.invalidName), bad.debugDescription)
        }
    }

    func testGuestNamesAreDistinctEnough() {
        var generator = SystemRandomNumberGenerator()
        let names = Set((0..<50).map { _ in ChatRules.guestName(using: &generator) })
        XCTAssertGreaterThan(names.count, 40)
        XCTAssertTrue(names.allSatisfy { $0.hasPrefix("guest-") && $0.count == 10 })
    }

    func testIsoDatesLookLikeJavaScripts() {
        let date = Date(timeIntervalSince1970: 1_795_743_350.25)
        XCTAssertEqual(ChatClock.isoString(date), "2026-11-27T01:35:50.250Z")
    }
}

final class TokenBucketTests: XCTestCase {
    func testBurstThenSustainedRate() {
        var bucket = TokenBucket(ratePerSecond: 5, burst: 10, now: 100)
        let burst = (0..<20).filter { _ in bucket.tryTake(now: 100) }.count
        XCTAssertEqual(burst, 10)
        XCTAssertFalse(bucket.tryTake(now: 100.1))
        XCTAssertTrue(bucket.tryTake(now: 100.2))  // 0.2 s refills one token at 5/s
        XCTAssertFalse(bucket.tryTake(now: 100.2))
        // A long pause refills to the burst size, never beyond.
        let afterPause = (0..<20).filter { _ in bucket.tryTake(now: 1_000) }.count
        XCTAssertEqual(afterPause, 10)
    }

    func testClockGoingBackwardsDoesNotMintTokens() {
        var bucket = TokenBucket(ratePerSecond: 1, burst: 1, now: 50)
        XCTAssertTrue(bucket.tryTake(now: 50))
        XCTAssertFalse(bucket.tryTake(now: 10))
        XCTAssertFalse(bucket.tryTake(now: 50.5))
        XCTAssertTrue(bucket.tryTake(now: 51))
    }
}

final class RoomHistoriesTests: XCTestCase {
    func message(_ n: Int, room: String = "general") -> ChatMessage {
        ChatMessage(id: "m\(n)", text: "text \(n)", date: "2026-11-27T01:35:50.000Z", name: "ada", room: room)
    }

    func testKeepsTheLastMessagesInOrder() {
        var histories = RoomHistories(historyLength: 100, maxRooms: 10)
        for n in 0..<250 { histories.append(message(n)) }
        let kept = histories.messages(in: "general")
        XCTAssertEqual(kept.count, 100)
        XCTAssertEqual(kept.first?.id, "m150")
        XCTAssertEqual(kept.last?.id, "m249")
        XCTAssertEqual(kept.map(\.id), (150..<250).map { "m\($0)" })
    }

    func testDuplicatesAreIgnored() {
        var histories = RoomHistories(historyLength: 5, maxRooms: 10)
        XCTAssertTrue(histories.append(message(1)))
        XCTAssertFalse(histories.append(message(1)))
        XCTAssertEqual(histories.messages(in: "general").count, 1)
    }

    func testLeastRecentlyActiveRoomIsForgotten() {
        var histories = RoomHistories(historyLength: 5, maxRooms: 2)
        histories.append(message(1, room: "a"))
        histories.append(message(2, room: "b"))
        histories.append(message(3, room: "a"))
        histories.append(message(4, room: "c"))
        XCTAssertEqual(histories.messages(in: "b"), [])
        XCTAssertEqual(histories.messages(in: "a").map(\.id), ["m1", "m3"])
        XCTAssertEqual(histories.activeRooms, ["c", "a"])
    }
}
