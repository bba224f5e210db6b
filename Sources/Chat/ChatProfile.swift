import SocketIO

/// Who a socket is in the chat, stored as its Socket.IO `data`.
struct ChatProfile: Hashable {
    var name: String
    var room: String

    init(name: String, room: String) {
        self.name = name
        self.room = room
    }

    init?(_ data: JSONValue) {
        guard let name = data["name"]?.stringValue, let room = data["room"]?.stringValue else { return nil }
        self.init(name: name, room: room)
    }

    var json: JSONValue { ["name": .string(name), "room": .string(room)] }
}
