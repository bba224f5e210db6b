import AMQPProtocol
import NIOCore
import XCTest

final class ContentTests: XCTestCase {
    private let deliver = AMQPMethod.basicDeliver(BasicDeliver(consumerTag: "c", deliveryTag: 1, exchange: "", routingKey: "q"))
    private let properties = AMQPBasicProperties(contentType: "application/octet-stream", deliveryMode: 2)

    private func body(_ count: Int) -> ByteBuffer {
        var out = ByteBuffer()
        for index in 0..<count { out.writeInteger(UInt8(truncatingIfNeeded: index * 31 + 7)) }
        return out
    }

    func testSplittingAtFrameMaxBoundaries() throws {
        let maxFrameSize: UInt32 = 4096
        let chunk = Int(maxFrameSize) - 8
        for size in [0, 1, chunk - 1, chunk, chunk + 1, chunk * 3, chunk * 3 + 1] {
            let body = self.body(size)
            let frames = AMQPFrame.contentFrames(channel: 5, properties: self.properties, body: body, maxFrameSize: maxFrameSize)
            XCTAssertEqual(frames.first, .header(channel: 5, AMQPContentHeader(bodySize: UInt64(size), properties: self.properties)))
            let bodies = frames.dropFirst().map { frame -> ByteBuffer in
                guard case .body(5, let payload) = frame else {
                    XCTFail("expected a body frame on channel 5, got \(frame)")
                    return ByteBuffer()
                }
                return payload
            }
            XCTAssertEqual(bodies.count, (size + chunk - 1) / chunk, "frames for \(size) bytes")
            XCTAssertTrue(bodies.allSatisfy { $0.readableBytes <= chunk && $0.readableBytes > 0 }, "size \(size)")
            var joined = ByteBuffer()
            for part in bodies { joined.writeImmutableBuffer(part) }
            XCTAssertEqual(joined, body, "size \(size)")

            // Every frame fits the limit when it is decoded with that frame-max.
            var stream = ByteBuffer()
            for frame in frames { frame.encode(into: &stream) }
            XCTAssertEqual(try decodeAll(stream, maxFrameSize: maxFrameSize), frames)
        }
    }

    func testEncodeMessageWritesTheSameBytesAsTheFrames() throws {
        for size in [0, 10, 5000, 20_000] {
            let body = self.body(size)
            var fast = ByteBuffer()
            AMQPFrame.encodeMessage(channel: 2, method: self.deliver, properties: self.properties, body: body, maxFrameSize: 4096, into: &fast)
            var slow = ByteBuffer()
            AMQPFrame.method(channel: 2, self.deliver).encode(into: &slow)
            for frame in AMQPFrame.contentFrames(channel: 2, properties: self.properties, body: body, maxFrameSize: 4096) {
                frame.encode(into: &slow)
            }
            XCTAssertEqual(fast, slow, "size \(size)")
        }
    }

    func testAssemblerRebuildsSplitBodies() throws {
        for size in [0, 1, 4088, 4089, 12_264, 50_000] {
            let body = self.body(size)
            var assembler = AMQPContentAssembler()
            var message: AMQPContentMessage?
            try assembler.start(method: self.deliver)
            XCTAssertTrue(assembler.isAssembling)
            for frame in AMQPFrame.contentFrames(channel: 1, properties: self.properties, body: body, maxFrameSize: 4096) {
                XCTAssertNil(message, "message completed before its last frame (size \(size))")
                switch frame {
                case .header(_, let header): message = try assembler.append(header: header)
                case .body(_, let part): message = try assembler.append(body: part)
                default: XCTFail("unexpected \(frame)")
                }
            }
            XCTAssertEqual(message, AMQPContentMessage(method: self.deliver, properties: self.properties, body: body), "size \(size)")
            XCTAssertFalse(assembler.isAssembling)
        }
    }

    func testAssemblerCanBeReusedForTheNextMessage() throws {
        var assembler = AMQPContentAssembler()
        for text in ["first", "second"] {
            try assembler.start(method: self.deliver)
            XCTAssertNil(try assembler.append(header: AMQPContentHeader(bodySize: UInt64(text.utf8.count))))
            let message = try assembler.append(body: ByteBuffer(string: text))
            XCTAssertEqual(message.map { String(buffer: $0.body) }, text)
        }
    }

    func testAssemblerRejectsFramesOutOfOrder() throws {
        var assembler = AMQPContentAssembler()
        assertThrows(.unexpectedContentFrame(expected: "a content-carrying method", received: "content header")) { () throws(AMQPProtocolError) in
            _ = try assembler.append(header: AMQPContentHeader(bodySize: 1))
        }
        assertThrows(.unexpectedContentFrame(expected: "a content-carrying method", received: "content body")) { () throws(AMQPProtocolError) in
            _ = try assembler.append(body: ByteBuffer(string: "x"))
        }
        assertThrows(.unexpectedContentFrame(expected: "a content-carrying method", received: "method basic.ack")) { () throws(AMQPProtocolError) in
            try assembler.start(method: .basicAck(BasicAck(deliveryTag: 1)))
        }
        try assembler.start(method: self.deliver)
        assertThrows(.unexpectedContentFrame(expected: "content header", received: "content body")) { () throws(AMQPProtocolError) in
            _ = try assembler.append(body: ByteBuffer(string: "x"))
        }
        assertThrows(.unexpectedContentFrame(expected: "content header", received: "method basic.deliver")) { () throws(AMQPProtocolError) in
            try assembler.start(method: self.deliver)
        }
    }

    func testAssemblerRejectsBodiesLongerThanDeclared() throws {
        var assembler = AMQPContentAssembler()
        try assembler.start(method: self.deliver)
        XCTAssertNil(try assembler.append(header: AMQPContentHeader(bodySize: 4)))
        XCTAssertNil(try assembler.append(body: ByteBuffer(string: "ab")))
        assertThrows(.bodyExceedsDeclaredSize(declared: 4, received: 5)) { () throws(AMQPProtocolError) in
            _ = try assembler.append(body: ByteBuffer(string: "cde"))
        }
        XCTAssertFalse(assembler.isAssembling)
    }

    func testAssemblerRefusesBodiesOverItsLimitBeforeBuffering() throws {
        var assembler = AMQPContentAssembler(maxBodySize: 1024)
        try assembler.start(method: self.deliver)
        assertThrows(.bodyTooLarge(bodySize: 1025, limit: 1024)) { () throws(AMQPProtocolError) in
            _ = try assembler.append(header: AMQPContentHeader(bodySize: 1025))
        }
        XCTAssertFalse(assembler.isAssembling)
    }

    func testResetDropsAPartialMessage() throws {
        var assembler = AMQPContentAssembler()
        try assembler.start(method: self.deliver)
        _ = try assembler.append(header: AMQPContentHeader(bodySize: 10))
        _ = try assembler.append(body: ByteBuffer(string: "abc"))
        assembler.reset()
        XCTAssertFalse(assembler.isAssembling)
        try assembler.start(method: self.deliver)
        _ = try assembler.append(header: AMQPContentHeader(bodySize: 2))
        XCTAssertEqual(try assembler.append(body: ByteBuffer(string: "hi")).map { String(buffer: $0.body) }, "hi")
    }

    func testReplyCodes() {
        XCTAssertEqual(AMQPReplyCode(rawValue: 404), .notFound)
        XCTAssertEqual(AMQPReplyCode.notFound.name, "NOT_FOUND")
        XCTAssertEqual(AMQPReplyCode.allCases.count, 19)
        XCTAssertTrue(AMQPReplyCode.frameError.isHardError)
        XCTAssertFalse(AMQPReplyCode.preconditionFailed.isHardError)
        XCTAssertNil(AMQPReplyCode(rawValue: 999))
    }
}
