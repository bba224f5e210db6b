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
    /// Within the character limit but over the byte limit (combining marks stack bytes on
    /// one character).
    public static func messageTooLarge(bytes: Int) -> ChatError {
        ChatError(code: "message_too_long", message: "The message is larger than \(bytes) bytes of UTF-8 text.")
    }
    public static func rateLimited(perSecond: Double) -> ChatError {
        ChatError(
            code: "rate_limited",
            message: "You are sending too fast (at most \(Self.trimmed(perSecond)) messages per second); wait a moment."
        )
    }
    /// Sign-in is on: the name comes from the token.
    public static let nameFromToken = ChatError(code: "name_from_token", message: "Your name comes from your sign-in token; it cannot be changed here.")
    /// With the default limits.
    public static let invalidRoom = roomRefusal(ChatLimits())
    public static let invalidName = nameRefusal(ChatLimits())
    public static func invalidRoom(_ limits: ChatLimits) -> ChatError { roomRefusal(limits) }
    public static func invalidName(_ limits: ChatLimits) -> ChatError { nameRefusal(limits) }

    // Distinct names: a `static let invalidRoom = invalidRoom(…)` initializer would resolve
    // to itself and never finish.
    private static func roomRefusal(_ limits: ChatLimits) -> ChatError {
        ChatError(code: "invalid_room",
                  message: "A room name has 1 to \(limits.maxRoomLength) letters, digits, '-', '_' or '.' (at most \(limits.maxRoomBytes) bytes).")
    }
    private static func nameRefusal(_ limits: ChatLimits) -> ChatError {
        ChatError(code: "invalid_name",
                  message: "A name has 1 to \(limits.maxNameLength) characters (at most \(limits.maxNameBytes) bytes) and no control characters.")
    }
    public static let tooManyChanges = ChatError(
        code: "rate_limited", message: "You are changing room or name too often; wait a moment."
    )

    private static func trimmed(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

public enum ChatRules {
    public static let defaultRoom = "general"

    /// Trims the text and checks its length in characters and in bytes. The byte check
    /// comes first and is O(1) on a native string, so a huge text is refused before it is
    /// walked character by character.
    public static func validateMessage(_ raw: String, limits: ChatLimits) -> Result<String, ChatError> {
        // Whitespace around a text cannot make it fit: refuse far oversized input untrimmed.
        if raw.utf8.count > limits.maxMessageBytes * 2 + 1024 { return .failure(.messageTooLarge(bytes: limits.maxMessageBytes)) }
        let text = raw.trimmingWhitespaceAndNewlines()
        if text.isEmpty { return .failure(.emptyMessage) }
        if text.utf8.count > limits.maxMessageBytes { return .failure(.messageTooLarge(bytes: limits.maxMessageBytes)) }
        if text.count > limits.maxMessageLength { return .failure(.messageTooLong(limit: limits.maxMessageLength)) }
        return .success(text)
    }

    /// Room names are shown with a `#` and used as Socket.IO room names (and in every cluster
    /// message to the room), so they stay short and plain. They are compared
    /// case-insensitively (stored lower-cased).
    public static func validateRoom(_ raw: String, limits: ChatLimits = ChatLimits()) -> Result<String, ChatError> {
        guard raw.utf8.count <= limits.maxRoomBytes * 2 + 64 else { return .failure(.invalidRoom(limits)) }
        let room = raw.trimmingWhitespaceAndNewlines().lowercased()
        guard (1...limits.maxRoomBytes).contains(room.utf8.count), room.count <= limits.maxRoomLength,
              room.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0) })
        else { return .failure(.invalidRoom(limits)) }
        return .success(room)
    }

    public static func validateName(_ raw: String, limits: ChatLimits = ChatLimits()) -> Result<String, ChatError> {
        guard raw.utf8.count <= limits.maxNameBytes * 2 + 64 else { return .failure(.invalidName(limits)) }
        let name = raw.trimmingWhitespaceAndNewlines()
        guard (1...limits.maxNameBytes).contains(name.utf8.count), name.count <= limits.maxNameLength,
              !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format })
        else { return .failure(.invalidName(limits)) }
        return .success(name)
    }

    /// A message read back from the shared history stream is held to the same limits as a
    /// new one (a node with other limits, or an older version, may have written it).
    public static func fitsLimits(_ message: ChatMessage, limits: ChatLimits) -> Bool {
        message.text.utf8.count <= limits.maxMessageBytes && message.name.utf8.count <= limits.maxNameBytes
            && message.room.utf8.count <= limits.maxRoomBytes && message.id.utf8.count <= 64 && message.date.utf8.count <= 64
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
        // A non-whitespace scalar exists (found above), so the backward search finds one too.
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) ?? first
        return String(scalars[first...last])
    }
}

extension ChatRules {
    /// The history entry a cluster-wide event stands for, if it is one: a `message` event to
    /// exactly one room, whose first argument has the fields of a `ChatMessage` (read through
    /// `field`) for that same room, within this node's limits. Anything else in the stream
    /// (other events, other publishers, another version's entries over our limits) is not
    /// history.
    public static func historyEntry(eventName: String, rooms: [String], exceptRooms: [String], limits: ChatLimits,
                                    field: (String) -> String?) -> ChatMessage? {
        guard eventName == "message", rooms.count == 1, exceptRooms.isEmpty,
              let id = field("id"), let text = field("text"), let date = field("date"), let name = field("name"),
              let room = field("room"), room == rooms[0] else { return nil }
        let message = ChatMessage(id: id, text: text, date: date, name: name, room: room)
        return fitsLimits(message, limits: limits) ? message : nil
    }
}
