import Foundation

/// One chat line as every client receives it in the `message` event. `text` and `date`
/// (ISO 8601, UTC, milliseconds) are what the original demo sent; the rest is additive, so
/// clients that only read `text` and `date` keep working.
public struct ChatMessage: Codable, Sendable, Hashable {
    public var id: String
    public var text: String
    public var date: String
    public var name: String
    public var room: String

    public init(id: String, text: String, date: String, name: String, room: String) {
        self.id = id
        self.text = text
        self.date = date
        self.name = name
        self.room = room
    }
}

public enum ChatClock {
    /// `2026-11-27T01:35:50.123Z`, the form JavaScript's `Date.toISOString()` writes.
    public static func isoString(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
