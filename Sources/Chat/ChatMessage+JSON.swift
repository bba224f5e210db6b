import ChatCore
import SocketIO

extension ChatMessage {
    /// The `message` event's object, built directly: a welcome carries up to 100 of these,
    /// and a crowd arriving at once made JSONEncoder the largest cost of a join.
    var json: JSONValue {
        [
            "id": .string(id), "text": .string(text), "date": .string(date), "name": .string(name), "room": .string(room),
        ]
    }
}
