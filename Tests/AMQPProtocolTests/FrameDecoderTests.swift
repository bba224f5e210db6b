import AMQPProtocol
import NIOCore
import XCTest

final class FrameDecoderTests: XCTestCase {
    private let mixedFrames: [AMQPFrame] = [
        .method(channel: 0, .connectionTune(ConnectionTune(channelMax: 2047, frameMax: 131_072, heartbeat: 60))),
        .heartbeat,
        .method(channel: 1, .basicDeliver(BasicDeliver(consumerTag: "c", deliveryTag: 9, exchange: "x", routingKey: "r"))),
        .header(channel: 1, AMQPContentHeader(bodySize: 3, properties: AMQPBasicProperties(deliveryMode: 1))),
        .body(channel: 1, ByteBuffer(string: "abc")),
        .body(channel: 2, ByteBuffer()),
    ]

    private func encodedStream(_ frames: [AMQPFrame]) -> ByteBuffer {
        var out = ByteBuffer()
        for frame in frames { frame.encode(into: &out) }
        return out
    }

    func testWholeStreamAtOnce() throws {
        XCTAssertEqual(try decodeAll(self.encodedStream(self.mixedFrames)), self.mixedFrames)
    }

    func testPartialInputByteByByte() throws {
        let stream = self.encodedStream(self.mixedFrames)
        var decoder = AMQPFrameDecoder()
        var accumulated = ByteBuffer()
        var frames: [AMQPFrame] = []
        for byte in stream.readableBytesView {
            accumulated.writeInteger(byte)
            while let frame = try decoder.decode(buffer: &accumulated) {
                frames.append(frame)
            }
        }
        XCTAssertEqual(frames, self.mixedFrames)
        XCTAssertEqual(accumulated.readableBytes, 0)
    }

    func testNeedMoreBytesLeavesTheBufferUntouched() throws {
        var input = encoded(.heartbeat)
        input.moveWriterIndex(to: input.writerIndex - 1)
        var decoder = AMQPFrameDecoder()
        XCTAssertNil(try decoder.decode(buffer: &input))
        XCTAssertEqual(input.readableBytes, 7)
        XCTAssertEqual(input.readerIndex, 0)
    }

    func testBadFrameEnd() {
        var input = encoded(.body(channel: 1, ByteBuffer(string: "x")))
        input.setInteger(0xCD as UInt8, at: input.writerIndex - 1)
        var decoder = AMQPFrameDecoder()
        assertThrows(.invalidFrameEnd(found: 0xCD)) { () throws(AMQPProtocolError) in
            _ = try decoder.decode(buffer: &input)
        }
    }

    func testOversizeFrameIsRefusedBeforeItsPayloadArrives() {
        // Only the 7-byte frame header of a 5000-byte body frame: refused without waiting for the body.
        var input = buffer([3, 0, 1, 0, 0, 0x13, 0x88])
        var decoder = AMQPFrameDecoder(maxFrameSize: 4096)
        assertThrows(.frameTooLarge(frameSize: 5008, maxFrameSize: 4096)) { () throws(AMQPProtocolError) in
            _ = try decoder.decode(buffer: &input)
        }
    }

    func testFrameOfExactlyMaxFrameSizeIsAccepted() throws {
        let body = ByteBuffer(repeating: 7, count: 4096 - 8)
        let frame = AMQPFrame.body(channel: 1, body)
        XCTAssertEqual(try decodeAll(encoded(frame), maxFrameSize: 4096), [frame])
        var decoder = AMQPFrameDecoder(maxFrameSize: 4095)
        var input = encoded(frame)
        XCTAssertThrowsError(try decoder.decode(buffer: &input))
    }

    func testMaxFrameSizeZeroMeansNoLimit() throws {
        let frame = AMQPFrame.body(channel: 1, ByteBuffer(repeating: 1, count: 300_000))
        XCTAssertEqual(try decodeAll(encoded(frame), maxFrameSize: 0), [frame])
    }

    func testUnknownFrameType() {
        var input = buffer([5, 0, 0, 0, 0, 0, 0, 0xCE])
        var decoder = AMQPFrameDecoder()
        assertThrows(.unknownFrameType(5)) { () throws(AMQPProtocolError) in
            _ = try decoder.decode(buffer: &input)
        }
    }

    func testUnknownMethodInAFrame() {
        var input = buffer(bytes(fromHex: "01 0001 00000004 0063 0001 CE"))
        var decoder = AMQPFrameDecoder()
        assertThrows(.unknownMethod(classID: 99, methodID: 1)) { () throws(AMQPProtocolError) in
            _ = try decoder.decode(buffer: &input)
        }
    }

    func testHeartbeatMustBeOnChannelZeroAndEmpty() {
        var input = buffer([8, 0, 1, 0, 0, 0, 0, 0xCE])
        var decoder = AMQPFrameDecoder()
        assertThrows(.invalidHeartbeat(channel: 1, payloadSize: 0)) { () throws(AMQPProtocolError) in
            _ = try decoder.decode(buffer: &input)
        }
    }

    func testServerRejectingOurProtocolVersion() throws {
        var partial = buffer(Array("AMQP".utf8))
        var decoder = AMQPFrameDecoder()
        XCTAssertNil(try decoder.decode(buffer: &partial), "wait for all 8 bytes of the server's header")
        var input = buffer(Array("AMQP".utf8) + [0, 0, 9, 1])
        assertThrows(.protocolVersionRejected(major: 0, minor: 9, revision: 1)) { () throws(AMQPProtocolError) in
            _ = try decoder.decode(buffer: &input)
        }
    }

    func testMethodFrameWithTruncatedPayload() {
        // basic.ack needs 9 argument bytes; the frame carries 2.
        var input = buffer(bytes(fromHex: "01 0001 00000006 003C 0050 0000 CE"))
        var decoder = AMQPFrameDecoder()
        assertThrows(.truncated(neededBytes: 8, availableBytes: 2)) { () throws(AMQPProtocolError) in
            _ = try decoder.decode(buffer: &input)
        }
    }
}
