import Testing
@testable import ChatCore

/// The shared welcome part is encoded once per change of the room, not once per newcomer.
@Suite struct SharedWelcomeCacheTests {
    private func message(_ id: String, room: String = "general") -> ChatMessage {
        ChatMessage(id: id, text: "text \(id)", date: "2026-12-03T10:00:00Z", name: "ada", room: room)
    }

    @Test func aCrowdArrivingInAnUnchangedRoomCostsOneEncoding() {
        var cache = SharedWelcomeCache<String>()
        let history = [message("1"), message("2")]
        let results = (0..<1_000).map { _ in
            cache.encoded(room: "general", fingerprint: WelcomeFingerprint(history: history, rooms: ["general"])) { "v1" }
        }
        #expect(cache.encodings == 1)
        #expect(Set(results) == ["v1"])
    }

    @Test func anyChangeOfTheRoomEncodesAgain() {
        var cache = SharedWelcomeCache<Int>()
        var history = [message("1")]
        var version = 0
        func read(_ rooms: [String] = ["general"]) -> Int {
            cache.encoded(room: "general", fingerprint: WelcomeFingerprint(history: history, rooms: rooms)) {
                version += 1
                return version
            }
        }
        #expect(read() == 1)
        history.append(message("2"))  // a new message
        #expect(read() == 2)
        history.removeFirst()  // the oldest fell out of a full history, with the same count as before
        history.append(message("3"))
        #expect(read() == 3)
        history = [message("2"), message("3")]
        #expect(read() == 3)  // unchanged
        #expect(read(["general", "other"]) == 4)  // another room became active
        #expect(cache.encodings == 4)
    }

    @Test func roomsAreKeptApartAndBounded() {
        var cache = SharedWelcomeCache<String>(capacity: 2)
        let empty = WelcomeFingerprint(history: [], rooms: [])
        #expect(cache.encoded(room: "a", fingerprint: empty) { "a" } == "a")
        #expect(cache.encoded(room: "b", fingerprint: empty) { "b" } == "b")
        #expect(cache.encoded(room: "a", fingerprint: empty) { "a2" } == "a")  // a is now the most recent
        #expect(cache.encoded(room: "c", fingerprint: empty) { "c" } == "c")  // pushes out b
        #expect(cache.count == 2)
        #expect(cache.encoded(room: "a", fingerprint: empty) { "a3" } == "a")
        #expect(cache.encoded(room: "b", fingerprint: empty) { "b2" } == "b2")
        #expect(cache.encodings == 4)
    }
}
