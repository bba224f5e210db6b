import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing
@testable import SocketIONIO

/// The reader must take what any RFC 6455 client sends (frames encoded here by NIO's own
/// encoder, masked as a client masks them), however the bytes are split by the network,
/// and refuse what a client must not send.
@Suite struct WebSocketMessageReaderTests {
    private static let key = WebSocketMaskingKey([1, 2, 3, 4] as [UInt8])!

    /// The wire bytes of `frames`, as a client writes them.
    private func wire(_ frames: [WebSocketFrame]) throws -> ByteBuffer {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        defer { _ = try? channel.finish() }
        var bytes = ByteBuffer()
        for frame in frames {
            try channel.writeOutbound(frame)
            while var part = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&part) }
        }
        return bytes
    }

    private func frame(_ opcode: WebSocketOpcode, _ text: String, fin: Bool = true, masked: Bool = true) -> WebSocketFrame {
        WebSocketFrame(fin: fin, opcode: opcode, maskKey: masked ? Self.key : nil, data: ByteBuffer(string: text))
    }

    /// Feeds `bytes` in pieces of `chunk` bytes; every message read, or the failure.
    private func read(_ bytes: ByteBuffer, chunk: Int, max: Int = 1 << 20, maxFragments: Int = 1024) -> ([WebSocketMessageReader.Message], WebSocketMessageReader.Failure?) {
        var reader = WebSocketMessageReader(maxMessageBytes: max, maxFragments: maxFragments)
        var messages: [WebSocketMessageReader.Message] = []
        var rest = bytes
        while rest.readableBytes > 0 {
            reader.append(rest.readSlice(length: min(chunk, rest.readableBytes))!)
            do {
                while let message = try reader.next() { messages.append(message) }
            } catch {
                return (messages, error)
            }
        }
        return (messages, nil)
    }

    @Test(arguments: [1, 2, 3, 7, 64, 100_000])
    func messagesSurviveAnySplit(chunk: Int) throws {
        let long = String(repeating: "y", count: 70_000)
        let bytes = try wire([
            frame(.text, "4hello"), frame(.binary, "\u{1}\u{2}"), frame(.ping, "p"), frame(.text, "4" + long),
            frame(.text, "42[", fin: false), frame(.ping, "between"), frame(.continuation, "1]", fin: false),
            frame(.continuation, "", fin: true), frame(.text, "4plain"), frame(.pong, ""), frame(.connectionClose, ""),
        ])
        let (messages, failure) = read(bytes, chunk: chunk)
        #expect(failure == nil)
        #expect(messages == [
            .text(ByteBuffer(string: "4hello")), .binary(ByteBuffer(bytes: [1, 2])), .ping(ByteBuffer(string: "p")),
            .text(ByteBuffer(string: "4" + long)), .ping(ByteBuffer(string: "between")), .text(ByteBuffer(string: "42[1]")),
            .text(ByteBuffer(string: "4plain")), .pong, .close,
        ])
    }

    @Test func keepsNothingBetweenMessages() throws {
        var reader = WebSocketMessageReader(maxMessageBytes: 100)
        reader.append(try wire([frame(.text, "4a")]))
        #expect(try reader.next() == .text(ByteBuffer(string: "4a")))
        #expect(try reader.next() == nil)
        #expect(!reader.isHoldingBytes)
    }

    @Test(arguments: [1, 5, 1000])
    func aFrameOverTheLimitFailsFromItsHeader(chunk: Int) throws {
        var header = try wire([frame(.text, String(repeating: "z", count: 101))])
        // Only the header and a few payload bytes: the failure does not wait for the rest.
        header = header.getSlice(at: 0, length: 10)!
        let (messages, failure) = read(header, chunk: chunk, max: 100)
        #expect(messages.isEmpty)
        #expect(failure == .tooLarge)
        let (exact, none) = read(try wire([frame(.text, String(repeating: "z", count: 100))]), chunk: chunk, max: 100)
        #expect(none == nil)
        #expect(exact.count == 1)
    }

    @Test func aHugeDeclaredLengthFailsWithoutTrapping() {
        var bytes = ByteBuffer(bytes: [0x81, 0xFF])
        bytes.writeInteger(UInt64.max)
        #expect(read(bytes, chunk: 100, max: 1 << 20).1 == .tooLarge)
        var big = ByteBuffer(bytes: [0x81, 0xFF])
        big.writeInteger(UInt64(Int.max) + 1)
        #expect(read(big, chunk: 100, max: Int.max).1 == .tooLarge)
    }

    @Test func fragmentsCountAgainstTheLimit() throws {
        let bytes = try wire([frame(.text, "4" + String(repeating: "a", count: 59), fin: false), frame(.continuation, String(repeating: "b", count: 41))])
        #expect(read(bytes, chunk: 1000, max: 100).1 == .tooLarge)
        let many = try wire([frame(.binary, "a", fin: false)] + Array(repeating: frame(.continuation, "a", fin: false), count: 4))
        #expect(read(many, chunk: 1000, maxFragments: 4).1 == .tooLarge)
        #expect(read(many, chunk: 1000, maxFragments: 5).1 == nil)
    }

    @Test func protocolViolationsFail() throws {
        let cases: [[WebSocketFrame]] = [
            [frame(.text, "4plain", masked: false)],  // a client must mask (section 5.1)
            [frame(.continuation, "x")],  // nothing to continue
            [frame(.text, "a", fin: false), frame(.text, "b")],  // a new message inside another
            [frame(.ping, "x", fin: false)],  // fragmented control frame
            [frame(.ping, String(repeating: "x", count: 126))],  // control frame over 125 bytes
            [WebSocketFrame(fin: true, rsv1: true, opcode: .text, maskKey: Self.key, data: ByteBuffer(string: "x"))],
            [WebSocketFrame(fin: true, opcode: WebSocketOpcode(encodedWebSocketOpcode: 0x3)!, maskKey: Self.key, data: ByteBuffer())],
        ]
        for frames in cases {
            #expect(read(try wire(frames), chunk: 1000).1 == .protocolViolation, "\(frames)")
        }
    }
}
