import EngineIO
import NIOCore

/// Socket.IO v5 packet types, with their wire digit.
public enum SocketIOPacketType: UInt8, Sendable, Hashable {
    case connect = 0
    case disconnect = 1
    case event = 2
    case ack = 3
    case connectError = 4
    case binaryEvent = 5
    case binaryAck = 6

    var isBinary: Bool { self == .binaryEvent || self == .binaryAck }
}

/// One decoded Socket.IO packet. Binary attachments are already put back in place of
/// their placeholders, as `.binary` values inside `data`.
public struct SocketIOPacket: Sendable, Hashable {
    public var type: SocketIOPacketType
    public var namespace: String
    public var data: JSONValue?
    public var ackId: UInt64?

    public init(type: SocketIOPacketType, namespace: String = "/", data: JSONValue? = nil, ackId: UInt64? = nil) {
        self.type = type
        self.namespace = namespace
        self.data = data
        self.ackId = ackId
    }

    /// An EVENT (or BINARY_EVENT when any argument holds bytes).
    public static func event(_ name: String, _ args: [JSONValue], namespace: String = "/", ackId: UInt64? = nil) -> SocketIOPacket {
        let data = JSONValue.array([.string(name)] + args)
        return SocketIOPacket(type: data.containsBinary ? .binaryEvent : .event, namespace: namespace, data: data, ackId: ackId)
    }

    /// An ACK (or BINARY_ACK when any argument holds bytes).
    public static func ack(_ args: [JSONValue], namespace: String = "/", ackId: UInt64) -> SocketIOPacket {
        let data = JSONValue.array(args)
        return SocketIOPacket(type: data.containsBinary ? .binaryAck : .ack, namespace: namespace, data: data, ackId: ackId)
    }

    /// For EVENT packets: the event name (a number name is given as its text, as socket.io does).
    public var eventName: String? {
        guard type == .event || type == .binaryEvent, case .array(let items)? = data, let first = items.first else { return nil }
        switch first {
        case .string(let name): return name
        case .number(let text): return text
        default: return nil
        }
    }

    /// For EVENT packets the arguments after the name; for ACK packets all of them.
    public var arguments: [JSONValue] {
        guard case .array(let items)? = data else { return [] }
        return (type == .event || type == .binaryEvent) ? Array(items.dropFirst()) : items
    }
}

/// Everything a client can do wrong at the Socket.IO layer (SERVER-CONTRACT 5.11). Each
/// of these closes that client's Engine.IO connection; nothing else is affected.
public enum SocketIOProtocolError: Error, Sendable, Hashable {
    case emptyPacket
    /// The first character is not a digit 0-6.
    case unknownPacketType(UInt8)
    /// The `N-` prefix of a binary packet is missing, not a non-negative integer, or not
    /// followed by `-`.
    case invalidAttachmentCount
    /// More attachments announced than `maxAttachments`.
    case tooManyAttachments(limit: Int)
    /// An ack id too large for 64 bits.
    case invalidAckId
    case invalidJSON(JSONParseError)
    /// The payload has the wrong shape for the packet type (e.g. `42{}`, `42[]`,
    /// CONNECT with a non-object, DISCONNECT with data).
    case invalidPayload(SocketIOPacketType)
    /// Events named `connect`, `disconnect`, ... are the library's own.
    case reservedEventName(String)
    /// A placeholder's `num` is not an index of a received attachment.
    case placeholderOutOfRange
    /// A binary message arrived when no binary packet was waiting for attachments.
    case unexpectedBinaryMessage
    /// A text message arrived while a binary packet was still waiting for attachments.
    case unexpectedTextMessage
    /// A packet other than CONNECT for a namespace this client has not joined.
    case namespaceNotJoined(String)
    /// CONNECT for a namespace this client is already in (or still joining).
    case duplicateConnect(String)
    /// A client sent a packet only servers send (CONNECT_ERROR).
    case unexpectedPacketType(SocketIOPacketType)
}

/// Event names reserved by socket.io; a client may not emit them.
let reservedEventNames: Set<String> = [
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
]

/// Encodes packets into Engine.IO messages: the text header (with placeholders) and
/// one binary message per attachment. Encode once, send the array to any number of peers.
public enum SocketIOPacketEncoder {
    public static func encode(_ packet: SocketIOPacket, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> [EngineMessage] {
        var writer = JSONWriter(buffer: allocator.buffer(capacity: 64), binaryHandling: .placeholders)
        // Write the JSON first into a scratch buffer, because the attachment count
        // is only known afterwards and comes before it on the wire.
        var header = allocator.buffer(capacity: 32)
        if let data = packet.data { writer.write(data) }
        var type = packet.type
        if !writer.attachments.isEmpty {
            if type == .event { type = .binaryEvent }
            if type == .ack { type = .binaryAck }
        } else if type == .binaryEvent {
            type = .event
        } else if type == .binaryAck {
            type = .ack
        }
        header.writeInteger(UInt8(ascii: "0") + type.rawValue)
        if type.isBinary {
            header.writeString(String(writer.attachments.count))
            header.writeInteger(UInt8(ascii: "-"))
        }
        if packet.namespace != "/" {
            header.writeString(packet.namespace)
            header.writeInteger(UInt8(ascii: ","))
        }
        if let ackId = packet.ackId {
            header.writeString(String(ackId))
        }
        header.writeImmutableBuffer(writer.buffer)
        var messages = [EngineMessage(textUTF8: header)]
        if !writer.attachments.isEmpty {
            messages.reserveCapacity(1 + writer.attachments.count)
            for attachment in writer.attachments { messages.append(EngineMessage(binary: attachment)) }
        }
        return messages
    }
}

/// Decodes Engine.IO messages into Socket.IO packets. A binary packet's header is held
/// until all its attachments have arrived, so this is a small state machine: feed every
/// message of one connection, in order.
public struct SocketIOPacketDecoder: Sendable {
    public let maxAttachments: Int
    private var awaiting: AwaitingAttachments?

    private struct AwaitingAttachments: Sendable {
        var packet: SocketIOPacket
        var expected: Int
        var received: [ByteBuffer]
    }

    public init(maxAttachments: Int = 10) {
        self.maxAttachments = maxAttachments
    }

    /// Whether a binary packet is waiting for more attachments.
    public var isAwaitingAttachments: Bool { awaiting != nil }

    /// Returns the packet once complete, `nil` while attachments are still expected.
    public mutating func decode(_ message: EngineMessage) throws(SocketIOProtocolError) -> SocketIOPacket? {
        if message.isBinary {
            guard var pending = awaiting else { throw .unexpectedBinaryMessage }
            pending.received.append(message.wholePayload)
            if pending.received.count < pending.expected {
                awaiting = pending
                return nil
            }
            awaiting = nil
            return try Self.reconstruct(pending.packet, attachments: pending.received)
        }
        guard awaiting == nil else { throw .unexpectedTextMessage }
        let (packet, attachmentCount) = try Self.decodeHeader(message.wholePayload, maxAttachments: maxAttachments)
        if packet.type.isBinary {
            if attachmentCount == 0 { return try Self.reconstruct(packet, attachments: []) }
            awaiting = AwaitingAttachments(packet: packet, expected: attachmentCount, received: [])
            return nil
        }
        return packet
    }

    static func decodeHeader(_ buffer: ByteBuffer, maxAttachments: Int) throws(SocketIOProtocolError) -> (SocketIOPacket, Int) {
        let view = buffer.readableBytesView
        var index = view.startIndex
        let end = view.endIndex
        guard index < end else { throw .emptyPacket }
        let typeByte = view[index]
        guard typeByte >= UInt8(ascii: "0"), let type = SocketIOPacketType(rawValue: typeByte &- UInt8(ascii: "0")) else {
            throw .unknownPacketType(typeByte)
        }
        index += 1

        // Attachment count, accumulated digit by digit and refused as soon as it exceeds
        // the limit, so a hostile `99999999999999999999-` never allocates or overflows.
        var attachmentCount = 0
        if type.isBinary {
            var sawDigit = false
            while index < end, view[index] != UInt8(ascii: "-") {
                let byte = view[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw .invalidAttachmentCount }
                attachmentCount = attachmentCount * 10 + Int(byte - UInt8(ascii: "0"))
                if attachmentCount > maxAttachments { throw .tooManyAttachments(limit: maxAttachments) }
                sawDigit = true
                index += 1
            }
            guard sawDigit, index < end else { throw .invalidAttachmentCount }
            index += 1  // "-"
        }

        var namespace = "/"
        if index < end, view[index] == UInt8(ascii: "/") {
            let start = index
            while index < end, view[index] != UInt8(ascii: ",") { index += 1 }
            namespace = String(decoding: view[start..<index], as: UTF8.self)
            if index < end { index += 1 }  // ","
        }

        var ackId: UInt64?
        if index < end, view[index] >= UInt8(ascii: "0"), view[index] <= UInt8(ascii: "9") {
            var id: UInt64 = 0
            while index < end, view[index] >= UInt8(ascii: "0"), view[index] <= UInt8(ascii: "9") {
                let (times10, overflow1) = id.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(UInt64(view[index] - UInt8(ascii: "0")))
                guard !overflow1, !overflow2 else { throw .invalidAckId }
                id = sum
                index += 1
            }
            ackId = id
        }

        var data: JSONValue?
        if index < end {
            do {
                data = try JSONParser.parse(view[index..<end])
            } catch {
                throw .invalidJSON(error)
            }
            try validatePayload(type: type, data!)
        }
        return (SocketIOPacket(type: type, namespace: namespace, data: data, ackId: ackId), attachmentCount)
    }

    static func validatePayload(type: SocketIOPacketType, _ data: JSONValue) throws(SocketIOProtocolError) {
        switch type {
        case .connect:
            guard case .object = data else { throw .invalidPayload(type) }
        case .disconnect:
            throw .invalidPayload(type)
        case .connectError:
            switch data {
            case .string, .object: break
            default: throw .invalidPayload(type)
            }
        case .event, .binaryEvent:
            guard case .array(let items) = data, let first = items.first else { throw .invalidPayload(type) }
            switch first {
            case .number: break
            case .string(let name):
                if reservedEventNames.contains(name) { throw .reservedEventName(name) }
            default: throw .invalidPayload(type)
            }
        case .ack, .binaryAck:
            guard case .array = data else { throw .invalidPayload(type) }
        }
    }

    static func reconstruct(_ packet: SocketIOPacket, attachments: [ByteBuffer]) throws(SocketIOProtocolError) -> SocketIOPacket {
        var packet = packet
        if let data = packet.data {
            packet.data = try replacePlaceholders(data, attachments: attachments)
        }
        return packet
    }

    static func replacePlaceholders(_ value: JSONValue, attachments: [ByteBuffer]) throws(SocketIOProtocolError) -> JSONValue {
        switch value {
        case .array(let items):
            var result: [JSONValue] = []
            result.reserveCapacity(items.count)
            for item in items { result.append(try replacePlaceholders(item, attachments: attachments)) }
            return .array(result)
        case .object(let object):
            if object["_placeholder"] == .bool(true) {
                guard let num = object["num"]?.intValue, num >= 0, num < attachments.count else {
                    throw .placeholderOutOfRange
                }
                return .binary(attachments[num])
            }
            var result: [(key: String, value: JSONValue)] = []
            result.reserveCapacity(object.count)
            for member in object.members {
                result.append((key: member.key, value: try replacePlaceholders(member.value, attachments: attachments)))
            }
            return .object(JSONObject(result))
        default:
            return value
        }
    }
}
