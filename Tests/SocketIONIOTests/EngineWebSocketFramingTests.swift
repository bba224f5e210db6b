import EngineIO
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing
@testable import SocketIONIO

/// Frames built by hand must be exactly what NIO's own decoder (and so any RFC 6455
/// client) reads back, at each of the three length encodings.
@Suite struct EngineWebSocketFramingTests {
    private func decodeWithNIO(_ bytes: ByteBuffer) throws -> WebSocketFrame? {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
        try channel.writeInbound(bytes)
        defer { _ = try? channel.finish() }
        return try channel.readInbound(as: WebSocketFrame.self)
    }

    @Test(arguments: [0, 1, 124, 125, 126, 65_534, 65_535, 65_536, 200_000])
    func textFramesDecodeToTheEngineIOText(payloadLength: Int) throws {
        let payload = String(repeating: "x", count: payloadLength)
        let packet = EnginePacket(message: EngineMessage(text: payload))
        let frame = EngineWebSocketFraming.encode(packet, allocator: ByteBufferAllocator())
        let decoded = try #require(try decodeWithNIO(frame))
        #expect(decoded.fin)
        #expect(decoded.opcode == .text)
        #expect(decoded.maskKey == nil)
        #expect(String(buffer: decoded.unmaskedData) == "4" + payload)
        // Nothing after the frame: the length field covered the whole payload.
        #expect(frame.readableBytes == decoded.length + (payloadLength + 1 <= 125 ? 2 : payloadLength + 1 <= 65_535 ? 4 : 10))
    }

    @Test func binaryFramesCarryTheBareBytes() throws {
        let bytes = ByteBuffer(bytes: (0..<300).map { UInt8($0 % 256) })
        let frame = EngineWebSocketFraming.encode(EnginePacket(message: EngineMessage(binary: bytes)), allocator: ByteBufferAllocator())
        let decoded = try #require(try decodeWithNIO(frame))
        #expect(decoded.opcode == .binary)
        #expect(decoded.unmaskedData == bytes)
    }

    @Test func controlPacketsKeepTheirTypeDigit() throws {
        let decoded = try #require(try decodeWithNIO(EngineWebSocketFraming.encode(.probePong, allocator: ByteBufferAllocator())))
        #expect(String(buffer: decoded.unmaskedData) == "3probe")
    }

    @Test func copiesOfOneMessageShareOneFrame() {
        let message = EngineMessage(text: "shared")
        var encodings = 0
        let frames = (0..<3).map { _ in
            let packet = EnginePacket(message: message)
            return packet.framing!.frame {
                encodings += 1
                return EngineWebSocketFraming.encode(packet, allocator: ByteBufferAllocator())
            }
        }
        #expect(encodings == 1)
        #expect(Set(frames).count == 1)
        // A packet whose content changes no longer uses the message's frame.
        var changed = EnginePacket(message: message)
        changed.payload = ByteBuffer(string: "other")
        #expect(changed.framing == nil)
        #expect(EngineMessage(text: "shared") == message)  // the cache is not part of equality
    }

    /// A message with a shared tail leaves as the frame's header and head, then the tail
    /// buffer itself; together they are one frame whose length counts both.
    @Test(arguments: [10, 100, 200, 70_000])
    func sharedTailsAreWrittenAfterTheHead(tailLength: Int) throws {
        let tail = ByteBuffer(string: String(repeating: "t", count: tailLength))
        let packet = EnginePacket(message: EngineMessage(textUTF8: ByteBuffer(string: "head:"), sharedTail: tail))
        let frame = EngineWebSocketFraming.frame(for: packet, allocator: ByteBufferAllocator())
        #expect(frame.tail == tail)
        var wire = frame.head
        wire.writeImmutableBuffer(try #require(frame.tail))
        let decoded = try #require(try decodeWithNIO(wire))
        #expect(decoded.opcode == .text)
        #expect(String(buffer: decoded.unmaskedData) == "4head:" + String(repeating: "t", count: tailLength))
    }
}
