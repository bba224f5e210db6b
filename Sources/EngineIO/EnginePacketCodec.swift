import NIOCore

/// Encodes and decodes Engine.IO v4 packets for both transports:
/// - WebSocket: one packet per frame; text frames are `<digit><payload>`, binary frames are
///   binary messages as they are.
/// - Polling: a payload of packets joined by the record separator `\u{1e}`; binary messages
///   travel as `b<base64>`.
public enum EnginePacketCodec {
    public static let recordSeparator: UInt8 = 0x1E
    private static let binaryMarker = UInt8(ascii: "b")

    // MARK: WebSocket frames

    public static func decodeTextFrame(_ frame: ByteBuffer) throws(EngineDecodingError) -> EnginePacket {
        var frame = frame
        guard let digit = frame.readInteger(as: UInt8.self) else { throw .emptyPacket }
        guard let type = EnginePacketType(wireDigit: digit) else { throw .unknownPacketType(digit) }
        return EnginePacket(type: type, textUTF8: frame)
    }

    public static func decodeBinaryFrame(_ frame: ByteBuffer) -> EnginePacket {
        .binaryMessage(frame)
    }

    /// The frame payload for `packet`; binary messages are returned as they are (send them
    /// in a binary frame, see `EnginePacket.isBinary`).
    public static func encodeFrame(_ packet: EnginePacket, allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        if packet.isBinary { return packet.payload }
        var buffer = allocator.buffer(capacity: packet.payloadByteCount + 1)
        buffer.writeInteger(packet.type.wireDigit)
        buffer.writeImmutableBuffer(packet.payload)
        if let tail = packet.sharedTail { buffer.writeImmutableBuffer(tail) }
        return buffer
    }

    // MARK: Polling payloads

    /// Splits a POST body into packets. Any malformed packet fails the whole payload (the
    /// reference server closes the session in that case, and so do we).
    public static func decodePayload(_ body: ByteBuffer) throws(EngineDecodingError) -> [EnginePacket] {
        let bytes = body.readableBytesView
        if bytes.isEmpty { throw .emptyPacket }
        var packets: [EnginePacket] = []
        var start = bytes.startIndex
        while true {
            let end = bytes[start...].firstIndex(of: recordSeparator) ?? bytes.endIndex
            packets.append(try decodePayloadPacket(body, bytes[start..<end], base: bytes.startIndex))
            if end == bytes.endIndex { break }
            start = bytes.index(after: end)
        }
        return packets
    }

    private static func decodePayloadPacket(
        _ body: ByteBuffer, _ slice: ByteBufferView.SubSequence, base: Int
    ) throws(EngineDecodingError) -> EnginePacket {
        guard let first = slice.first else { throw .emptyPacket }
        if first == binaryMarker {
            guard let decoded = Base64.decode(ByteBufferView(slice.dropFirst())) else { throw .invalidBase64 }
            return .binaryMessage(decoded)
        }
        guard let type = EnginePacketType(wireDigit: first) else { throw .unknownPacketType(first) }
        let payloadStart = slice.startIndex + 1 - base + body.readerIndex
        let payload = body.getSlice(at: payloadStart, length: slice.count - 1) ?? ByteBuffer()
        return EnginePacket(type: type, textUTF8: payload)
    }

    /// Writes `packets` as one polling payload (the body of a GET response).
    public static func encodePayload(_ packets: [EnginePacket], into buffer: inout ByteBuffer) {
        for (index, packet) in packets.enumerated() {
            if index > 0 { buffer.writeInteger(recordSeparator) }
            if packet.isBinary {
                buffer.writeInteger(binaryMarker)
                Base64.encode(packet.payload.readableBytesView, into: &buffer)
            } else {
                buffer.writeInteger(packet.type.wireDigit)
                buffer.writeImmutableBuffer(packet.payload)
                if let tail = packet.sharedTail { buffer.writeImmutableBuffer(tail) }
            }
        }
    }

    public static func encodePayload(_ packets: [EnginePacket], allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        let estimate = packets.reduce(0) { $0 + $1.payloadByteCount * 4 / 3 + 6 }
        var buffer = allocator.buffer(capacity: estimate)
        encodePayload(packets, into: &buffer)
        return buffer
    }
}
