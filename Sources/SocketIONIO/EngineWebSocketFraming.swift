import EngineIO
import NIOCore

/// Server-to-client WebSocket frames for Engine.IO packets, header and payload in ONE
/// buffer (RFC 6455 section 5.2: FIN set, no mask), written by `EngineWebSocketHandler`
/// straight to the socket: a broadcast costs one shared buffer per recipient, not a header
/// allocation and a payload copy.
enum EngineWebSocketFraming {
    private static let finBit: UInt8 = 0x80
    private static let textOpcode: UInt8 = 0x1
    private static let binaryOpcode: UInt8 = 0x2

    /// The frame's bytes: one buffer, or for a packet with a shared tail, the header and the
    /// packet's own bytes followed by the tail itself (written by reference, not copied).
    static func frame(for packet: EnginePacket, allocator: ByteBufferAllocator) -> (head: ByteBuffer, tail: ByteBuffer?) {
        let tail = packet.isBinary ? nil : packet.sharedTail
        guard let framing = packet.framing else { return (encode(packet, allocator: allocator), tail) }
        return (framing.frame { encode(packet, allocator: allocator) }, tail)
    }

    /// The frame up to the shared tail, if the packet has one (its length field counts the
    /// tail); the whole frame otherwise.
    static func encode(_ packet: EnginePacket, allocator: ByteBufferAllocator) -> ByteBuffer {
        // Text frames carry the packet type digit before the payload; binary frames are the
        // bare bytes of a binary message.
        let tailLength = packet.isBinary ? 0 : (packet.sharedTail?.readableBytes ?? 0)
        let payloadLength = packet.payload.readableBytes + tailLength + (packet.isBinary ? 0 : 1)
        var frame = allocator.buffer(capacity: payloadLength - tailLength + 10)
        frame.writeInteger(finBit | (packet.isBinary ? binaryOpcode : textOpcode))
        switch payloadLength {
        case ...125:
            frame.writeInteger(UInt8(payloadLength))
        case ...Int(UInt16.max):
            frame.writeInteger(UInt8(126))
            frame.writeInteger(UInt16(payloadLength))
        default:
            frame.writeInteger(UInt8(127))
            frame.writeInteger(UInt64(payloadLength))
        }
        if !packet.isBinary { frame.writeInteger(packet.type.wireDigit) }
        frame.writeImmutableBuffer(packet.payload)
        return frame
    }

    enum ControlOpcode: UInt8 {
        case connectionClose = 0x8
        case pong = 0xA
    }

    /// A control frame (section 5.5): its payload is at most 125 bytes (longer input is cut,
    /// which never happens for the close codes and ping payloads answered here).
    static func controlFrame(_ opcode: ControlOpcode, payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        let length = min(payload.readableBytes, 125)
        var frame = allocator.buffer(capacity: 2 + length)
        frame.writeInteger(finBit | opcode.rawValue)
        frame.writeInteger(UInt8(length))
        frame.writeImmutableBuffer(payload.getSlice(at: payload.readerIndex, length: length) ?? ByteBuffer())
        return frame
    }
}
