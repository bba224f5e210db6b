import AMQPProtocol
import NIOCore
import XCTest

func bytes(fromHex hex: String) -> [UInt8] {
    let digits = Array(hex.filter { !$0.isWhitespace })
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: bytes)
}

func encoded(_ frame: AMQPFrame) -> ByteBuffer {
    var out = ByteBuffer()
    frame.encode(into: &out)
    return out
}

/// Decodes every complete frame in `input`, failing the test if bytes are left over.
func decodeAll(
    _ input: ByteBuffer,
    maxFrameSize: UInt32 = AMQPFrameDecoder.defaultMaxFrameSize,
    file: StaticString = #filePath,
    line: UInt = #line
) throws -> [AMQPFrame] {
    var decoder = AMQPFrameDecoder(maxFrameSize: maxFrameSize)
    var input = input
    var frames: [AMQPFrame] = []
    while let frame = try decoder.decode(buffer: &input) {
        frames.append(frame)
    }
    XCTAssertEqual(input.readableBytes, 0, "undecoded bytes left", file: file, line: line)
    return frames
}

func assertThrows(
    _ expected: AMQPProtocolError,
    file: StaticString = #filePath,
    line: UInt = #line,
    _ body: () throws(AMQPProtocolError) -> Void
) {
    do {
        try body()
        XCTFail("expected \(expected), nothing was thrown", file: file, line: line)
    } catch {
        XCTAssertEqual(error, expected, file: file, line: line)
    }
}
