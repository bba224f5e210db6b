import EngineIO
import NIOCore

/// The last members of an event's one object argument, encoded once and shared by every
/// packet that ends with them.
///
/// For what many clients receive alike apart from a few fields of their own (the chat's
/// welcome: each client's name, then the room's history): each recipient's packet is its
/// own small head (`42["welcome",{"name":"ada",`) followed by these bytes by reference
/// (`"history":[...]}]`), so N recipients cost one encoding and one copy of the shared part
/// instead of N. See `SocketIOSocket.emitWithoutRecovery(_:_:sharing:)`.
public struct SharedEventFields: Sendable {
    /// `"key":value,...}]`: the members, then the end of the object and of the event array.
    let tail: ByteBuffer
    let isEmpty: Bool

    /// Nil when a value holds binary data: bytes travel as attachments numbered per packet,
    /// which a shared encoding cannot number.
    public init?(_ fields: JSONObject, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        var writer = JSONWriter(buffer: allocator.buffer(capacity: 256), binaryHandling: .placeholders)
        for (offset, member) in fields.members.enumerated() {
            if offset > 0 { writer.buffer.writeInteger(UInt8(ascii: ",")) }
            writer.writeString(member.key)
            writer.buffer.writeInteger(UInt8(ascii: ":"))
            writer.write(member.value)
        }
        guard writer.attachments.isEmpty else { return nil }
        writer.buffer.writeStaticString("}]")
        self.tail = writer.buffer
        self.isEmpty = fields.isEmpty
    }

    /// No shared members: the packet ends with the recipient's own.
    public static let none = SharedEventFields(tail: ByteBuffer(string: "}]"), isEmpty: true)

    private init(tail: ByteBuffer, isEmpty: Bool) {
        self.tail = tail
        self.isEmpty = isEmpty
    }

    /// Bytes of the shared part (what one copy costs).
    public var byteCount: Int { tail.readableBytes }
}

extension SocketIOPacketEncoder {
    /// An EVENT whose single argument is an object: `own` members first, then `shared`'s.
    /// The first message's payload is this packet's own head, with `shared` as its tail
    /// (`EngineMessage.sharedTail`); binary values in `own` travel as attachments after it.
    public static func encodeEvent(
        _ event: String, _ own: JSONObject, sharing shared: SharedEventFields, namespace: String = "/",
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> [EngineMessage] {
        var writer = JSONWriter(buffer: allocator.buffer(capacity: 64), binaryHandling: .placeholders)
        writer.buffer.writeInteger(UInt8(ascii: "["))
        writer.writeString(event)
        writer.buffer.writeStaticString(",{")
        for (offset, member) in own.members.enumerated() {
            if offset > 0 { writer.buffer.writeInteger(UInt8(ascii: ",")) }
            writer.writeString(member.key)
            writer.buffer.writeInteger(UInt8(ascii: ":"))
            writer.write(member.value)
        }
        if !own.isEmpty && !shared.isEmpty { writer.buffer.writeInteger(UInt8(ascii: ",")) }
        var head = allocator.buffer(capacity: writer.buffer.readableBytes + namespace.utf8.count + 8)
        if writer.attachments.isEmpty {
            head.writeInteger(UInt8(ascii: "0") + SocketIOPacketType.event.rawValue)
        } else {
            head.writeInteger(UInt8(ascii: "0") + SocketIOPacketType.binaryEvent.rawValue)
            head.writeString(String(writer.attachments.count))
            head.writeInteger(UInt8(ascii: "-"))
        }
        if namespace != "/" {
            head.writeString(namespace)
            head.writeInteger(UInt8(ascii: ","))
        }
        head.writeImmutableBuffer(writer.buffer)
        var messages = [EngineMessage(textUTF8: head, sharedTail: shared.tail)]
        for attachment in writer.attachments { messages.append(EngineMessage(binary: attachment)) }
        return messages
    }
}
