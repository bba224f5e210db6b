import ChatCore
import XCTest

/// Which cluster-wide events become history entries (the history is fed from the adapter's
/// recovery stream, which carries every recoverable event of the namespace).
final class HistoryEntryTests: XCTestCase {
    private let limits = ChatLimits()
    private let fields = ["id": "m1", "text": "hello", "date": "2026-12-03T13:00:00.000Z", "name": "Ann", "room": "general"]

    private func entry(_ event: String = "message", rooms: [String] = ["general"], except: [String] = [],
                       fields: [String: String]? = nil) -> ChatMessage? {
        let values = fields ?? self.fields
        return ChatRules.historyEntry(eventName: event, rooms: rooms, exceptRooms: except, limits: limits) { values[$0] }
    }

    func testAMessageToOneRoomIsAnEntry() {
        XCTAssertEqual(entry(), ChatMessage(id: "m1", text: "hello", date: "2026-12-03T13:00:00.000Z", name: "Ann", room: "general"))
    }

    func testOtherEventsAndTargetsAreNot() {
        XCTAssertNil(entry("presence"))
        XCTAssertNil(entry("typing"))
        XCTAssertNil(entry(rooms: []), "a namespace-wide broadcast")
        XCTAssertNil(entry(rooms: ["general", "random"]))
        XCTAssertNil(entry(except: ["muted"]))
    }

    func testTheRoomMustBeTheOneItWasSentTo() {
        XCTAssertNil(entry(rooms: ["random"]), "an entry claiming another room than its broadcast's")
    }

    func testMissingFieldsOrOverTheLimitsAreNot() {
        for key in fields.keys {
            var partial = fields
            partial[key] = nil
            XCTAssertNil(entry(fields: partial), "without \(key)")
        }
        var long = fields
        long["text"] = String(repeating: "x", count: limits.maxMessageBytes + 1)
        XCTAssertNil(entry(fields: long))
        long = fields
        long["id"] = String(repeating: "i", count: 65)
        XCTAssertNil(entry(fields: long))
    }
}
