import EngineIO
import NIOCore

/// Server-to-client WebSocket frames for Engine.IO packets, header and payload in ONE
/// buffer (RFC 6455 section 5.2: FIN set, no mask). A frame made this way is written
/// below NIO's `WebSocketFrameEncoder` (see `EngineFrameWriter`), so a broadcast costs one
/// shared buffer and one pipeline step per recipient instead of a header allocation, a
/// payload copy and a walk through every handler.
enum EngineWebSocketFraming {
    private static let finBit: UInt8 = 0x80
    private static let textOpcode: UInt8 = 0x1
    private static let binaryOpcode: UInt8 = 0x2

    static func frame(for packet: EnginePacket, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard let framing = packet.framing else { return encode(packet, allocator: allocator) }
        return framing.frame { encode(packet, allocator: allocator) }
    }

    static func encode(_ packet: EnginePacket, allocator: ByteBufferAllocator) -> ByteBuffer {
        // Text frames carry the packet type digit before the payload; binary frames are the
        // bare bytes of a binary message.
        let payloadLength = packet.payload.readableBytes + (packet.isBinary ? 0 : 1)
        var frame = allocator.buffer(capacity: payloadLength + 10)
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
}

/// Sits first in an upgraded channel's pipeline (next to the socket). `EngineWebSocketHandler`
/// writes finished frames (`ByteBuffer`) through this handler's context so they skip the
/// handlers above; everything else written by the pipeline passes through unchanged.
final class EngineFrameWriter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
}
