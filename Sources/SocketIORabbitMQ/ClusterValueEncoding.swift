import SocketIO

/// A `JSONValue` (such as `socket.data`) between nodes. JSON text alone would lose binary
/// values, so the value travels as the Socket.IO packet encoder writes it: the JSON text with
/// placeholders, then one binary message per attachment, and is put back together by the
/// Socket.IO packet decoder on the other side. The packet is an event named "value" (an
/// event's first argument must be its name).
enum ClusterValueEncoding {
    static let eventName = "value"

    static func encode(_ value: JSONValue) -> EncodedPacket {
        EncodedPacket(messages: SocketIOPacketEncoder.encode(SocketIOPacket(type: .event, data: .array([.string(eventName), value]))))
    }

    /// `nil` when the packet is not one `encode` wrote.
    static func decode(_ packet: EncodedPacket) -> JSONValue? {
        guard let items = RabbitMQAdapter.decodePacket(packet)?.data?.arrayValue, items.count == 2,
              items[0] == .string(eventName) else { return nil }
        return items[1]
    }
}
