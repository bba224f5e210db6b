import NIOCore

/// The seven Engine.IO v4 packet types; the raw value is the digit that starts a text packet.
public enum EnginePacketType: UInt8, Sendable, Hashable, CaseIterable {
    case open = 0
    case close = 1
    case ping = 2
    case pong = 3
    case message = 4
    case upgrade = 5
    case noop = 6

    /// The ASCII digit written on the wire (`"0"` ... `"6"`).
    public var wireDigit: UInt8 { UInt8(ascii: "0") + rawValue }

    init?(wireDigit: UInt8) {
        guard wireDigit >= UInt8(ascii: "0") else { return nil }
        self.init(rawValue: wireDigit - UInt8(ascii: "0"))
    }
}

/// One Engine.IO packet. Only `message` packets can be binary; every other type carries
/// an (often empty) text payload such as the `probe` of `2probe`.
public struct EnginePacket: Sendable, Hashable {
    // Changing what the packet says drops the shared framing, which described the old bytes.
    public var type: EnginePacketType { didSet { framing = nil } }
    /// Text payload as UTF-8 (without the type digit), or the raw bytes of a binary message.
    public var payload: ByteBuffer { didSet { framing = nil } }
    /// More payload after `payload`, shared with other packets (see `EngineMessage.sharedTail`).
    public var sharedTail: ByteBuffer? { didSet { framing = nil } }
    public var isBinary: Bool { didSet { framing = nil } }
    /// The framing shared by every copy of the message this packet carries; nil for
    /// packets made by Engine.IO itself (pings, open, noop), which are framed per use.
    public var framing: EngineFramingCache?

    public init(type: EnginePacketType, text: String = "") {
        self.type = type
        self.payload = ByteBuffer(string: text)
        self.isBinary = false
    }

    public init(type: EnginePacketType, textUTF8: ByteBuffer) {
        self.type = type
        self.payload = textUTF8
        self.isBinary = false
    }

    public init(message: EngineMessage) {
        self.type = .message
        self.payload = message.payload
        self.sharedTail = message.sharedTail
        self.isBinary = message.isBinary
        self.framing = message.framing
    }

    public static func == (lhs: EnginePacket, rhs: EnginePacket) -> Bool {
        lhs.type == rhs.type && lhs.isBinary == rhs.isBinary && lhs.wholePayload == rhs.wholePayload
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        hasher.combine(isBinary)
        hasher.combine(wholePayload)
    }

    /// The whole payload in one buffer: `payload` itself, or a copy of it and its tail.
    public var wholePayload: ByteBuffer { EngineMessage.joined(payload, sharedTail) }

    /// Bytes of the whole payload, without copying.
    public var payloadByteCount: Int { payload.readableBytes + (sharedTail?.readableBytes ?? 0) }

    public static func binaryMessage(_ bytes: ByteBuffer) -> EnginePacket {
        var packet = EnginePacket(type: .message, textUTF8: bytes)
        packet.isBinary = true
        return packet
    }

    public static let ping = EnginePacket(type: .ping)
    public static let pong = EnginePacket(type: .pong)
    public static let close = EnginePacket(type: .close)
    public static let noop = EnginePacket(type: .noop)
    public static let probePong = EnginePacket(type: .pong, text: "probe")

    public var text: String { String(buffer: wholePayload) }

    /// The message this packet carries, when it is a `message` packet.
    public var message: EngineMessage? {
        guard type == .message else { return nil }
        if isBinary { return EngineMessage(binary: payload) }
        if let sharedTail { return EngineMessage(textUTF8: payload, sharedTail: sharedTail) }
        return EngineMessage(textUTF8: payload)
    }

    /// Bytes this packet occupies in an outbound buffer; used for the slow-client budget.
    public var approximateWireSize: Int { payloadByteCount + 1 }
}

/// Why bytes from a client could not be read as Engine.IO packets. Every case closes the
/// session with `EngineCloseReason.parseError`: the peer is not speaking Engine.IO v4.
public enum EngineDecodingError: Error, Sendable, Hashable {
    case emptyPacket
    case unknownPacketType(UInt8)
    case invalidBase64
}
