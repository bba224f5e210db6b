/// What the chat accepts from a user, and the typed errors it answers with.
/// Pure values: the server layer turns a `ChatError` into an ack and a `chat-error` event.

/// A refusal the user can read and act on. `code` is stable for programs, `message` is for people.
public struct ChatError: Error, Codable, Sendable, Hashable {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public static let notText = ChatError(code: "not_text", message: "A message must be a string.")
    public static let emptyMessage = ChatError(code: "empty_message", message: "The message is empty.")
    public static func messageTooLong(limit: Int) -> ChatError {
        ChatError(code: "message_too_long", message: "The message is longer than \(limit) characters.")
    }
    public static func rateLimited(perSecond: Double) -> ChatError {
        ChatError(
            code: "rate_limited",
            message: "You are sending too fast (at most \(Self.trimmed(perSecond)) messages per second); wait a moment."
        )
    }
    public static let invalidRoom = ChatError(
        code: "invalid_room",
        message: "A room name has 1 to 32 letters, digits, '-', '_' or '.'."
    )
    public static let invalidName = ChatError(
        code: "invalid_name",
        message: "A name has 1 to 32 characters and no control characters."
    )

    private static func trimmed(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

public struct ChatLimits: Sendable, Hashable {
    /// Longest message, in characters as people count them (grapheme clusters).
    public var maxMessageLength: Int = 2_000
    /// Sustained messages per second per connection.
    public var messagesPerSecond: Double = 5
    /// Messages a connection may send in a burst before the sustained rate applies.
    public var messageBurst: Double = 10
    /// Messages of each room kept for newcomers.
    public var historyLength: Int = 100
    /// Rooms whose history is kept; the least recently active room is forgotten past it.
    public var maxRooms: Int = 1_000

    public init() {}
}

public enum ChatRules {
    public static let defaultRoom = "general"

    /// Trims the text and checks its length.
    public static func validateMessage(_ raw: String, limits: ChatLimits) -> Result<String, ChatError> {
        let text = raw.trimmingWhitespaceAndNewlines()
        if text.isEmpty { return .failure(.emptyMessage) }
        if text.count > limits.maxMessageLength { return .failure(.messageTooLong(limit: limits.maxMessageLength)) }
        return .success(text)
    }

    /// Room names are shown with a `#` and used as Socket.IO room names, so they stay short
    /// and plain. They are compared case-insensitively (stored lower-cased).
    public static func validateRoom(_ raw: String) -> Result<String, ChatError> {
        let room = raw.trimmingWhitespaceAndNewlines().lowercased()
        guard (1...32).contains(room.count),
              room.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0) })
        else { return .failure(.invalidRoom) }
        return .success(room)
    }

    public static func validateName(_ raw: String) -> Result<String, ChatError> {
        let name = raw.trimmingWhitespaceAndNewlines()
        guard (1...32).contains(name.count),
              !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format })
        else { return .failure(.invalidName) }
        return .success(name)
    }

    /// A name for users who did not choose one, like `guest-4821`.
    public static func guestName<G: RandomNumberGenerator>(using generator: inout G) -> String {
        "guest-\(Int.random(in: 1000...9999, using: &generator))"
    }
}

extension String {
    func trimmingWhitespaceAndNewlines() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}
