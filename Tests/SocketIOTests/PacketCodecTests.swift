import EngineIO
import NIOCore
import XCTest

@testable import SocketIO

final class PacketCodecTests: XCTestCase {
    private func text(_ messages: [EngineMessage]) -> [String] {
        messages.map { $0.isBinary ? "<\(Array($0.payload.readableBytesView))>" : $0.text }
    }

    private func decodeAll(_ messages: [EngineMessage], maxAttachments: Int = 10) throws -> [SocketIOPacket] {
        var decoder = SocketIOPacketDecoder(maxAttachments: maxAttachments)
        return try messages.compactMap { try decoder.decode($0) }
    }

    private func decodeText(_ text: String) throws -> SocketIOPacket? {
        var decoder = SocketIOPacketDecoder()
        return try decoder.decode(EngineMessage(text: text))
    }

    private func assertViolation(_ text: String, _ expected: SocketIOProtocolError? = nil, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let packet = try decodeText(text)
            XCTFail("accepted \(text) as \(String(describing: packet))", file: file, line: line)
        } catch {
            if let expected { XCTAssertEqual(error as? SocketIOProtocolError, expected, file: file, line: line) }
        }
    }

    func testEncodesEveryTextPacketShape() {
        XCTAssertEqual(text(SocketIOPacketEncoder.encode(.init(type: .connect, data: ["sid": "abc"]))), [#"0{"sid":"abc"}"#])
        XCTAssertEqual(text(SocketIOPacketEncoder.encode(.init(type: .connect, namespace: "/custom", data: ["sid": "x"]))), [#"0/custom,{"sid":"x"}"#])
        XCTAssertEqual(text(SocketIOPacketEncoder.encode(.init(type: .disconnect, namespace: "/custom"))), ["1/custom,"])
        XCTAssertEqual(text(SocketIOPacketEncoder.encode(.init(type: .disconnect))), ["1"])
        XCTAssertEqual(text(SocketIOPacketEncoder.encode(.event("auth", [[:]]))), [#"2["auth",{}]"#])
        XCTAssertEqual(text(SocketIOPacketEncoder.encode(.event("e", [1], namespace: "/a", ackId: 0))), [#"2/a,0["e",1]"#])
        XCTAssertEqual(text(SocketIOPacketEncoder.encode(.ack([1, "2"], ackId: 456))), [#"3456[1,"2"]"#])
        XCTAssertEqual(text(SocketIOPacketEncoder.encode(.ack([], ackId: 7))), ["37[]"])
        XCTAssertEqual(
            text(SocketIOPacketEncoder.encode(.init(type: .connectError, namespace: "/random", data: ["message": "Invalid namespace"]))),
            [#"4/random,{"message":"Invalid namespace"}"#])
    }

    func testEncodesBinaryWithPlaceholdersInOrder() {
        let a = ByteBuffer(bytes: [1, 2, 3])
        let b = ByteBuffer(bytes: [4, 5, 6])
        let messages = SocketIOPacketEncoder.encode(.event("message-back", [.binary(a), ["x": .binary(b)]]))
        XCTAssertEqual(text(messages), [
            #"52-["message-back",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]"#,
            "<[1, 2, 3]>", "<[4, 5, 6]>",
        ])
        XCTAssertEqual(text(SocketIOPacketEncoder.encode(.ack([.binary(a)], namespace: "/c", ackId: 789))),
                       [#"61-/c,789[{"_placeholder":true,"num":0}]"#, "<[1, 2, 3]>"])
    }

    func testDecodesHeadersAndNamespaces() throws {
        XCTAssertEqual(try decodeText("0"), SocketIOPacket(type: .connect))
        XCTAssertEqual(try decodeText("0/custom"), SocketIOPacket(type: .connect, namespace: "/custom"))
        XCTAssertEqual(try decodeText("0/custom,"), SocketIOPacket(type: .connect, namespace: "/custom"))
        XCTAssertEqual(try decodeText(#"0/custom,{"token":"abc"}"#), SocketIOPacket(type: .connect, namespace: "/custom", data: ["token": "abc"]))
        XCTAssertEqual(try decodeText("1/custom,"), SocketIOPacket(type: .disconnect, namespace: "/custom"))
        let event = try XCTUnwrap(try decodeText(#"2456["message-with-ack",1,"2",{"3":[false]}]"#))
        XCTAssertEqual(event.ackId, 456)
        XCTAssertEqual(event.eventName, "message-with-ack")
        XCTAssertEqual(event.arguments, [1, "2", ["3": [false]]])
        XCTAssertEqual(try decodeText(#"2/a,0["e"]"#)?.ackId, 0)
        XCTAssertEqual(try decodeText(#"218446744073709551615["e"]"#)?.ackId, UInt64.max)
        XCTAssertEqual(try decodeText(#"2[7,"x"]"#)?.eventName, "7")
        XCTAssertEqual(try decodeText("3123456789[]")?.ackId, 123_456_789)
    }

    func testRoundTripsBinaryEventAndAck() throws {
        let original = SocketIOPacket.event("message", [.binary(ByteBuffer(bytes: [1, 2, 3])), ["k": .binary(ByteBuffer(bytes: [9]))]], namespace: "/x", ackId: 42)
        let decoded = try decodeAll(SocketIOPacketEncoder.encode(original))
        XCTAssertEqual(decoded, [original])
        let ack = SocketIOPacket.ack([.binary(ByteBuffer(bytes: [4]))], ackId: 0)
        XCTAssertEqual(try decodeAll(SocketIOPacketEncoder.encode(ack)), [ack])
    }

    func testDecoderWaitsForAttachments() throws {
        var decoder = SocketIOPacketDecoder()
        XCTAssertNil(try decoder.decode(EngineMessage(text: #"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)))
        XCTAssertTrue(decoder.isAwaitingAttachments)
        XCTAssertThrowsError(try decoder.decode(EngineMessage(text: "2[\"a\"]"))) { XCTAssertEqual($0 as? SocketIOProtocolError, .unexpectedTextMessage) }
        var decoder2 = SocketIOPacketDecoder()
        _ = try decoder2.decode(EngineMessage(text: #"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#))
        XCTAssertNil(try decoder2.decode(EngineMessage(binary: ByteBuffer(bytes: [1]))))
        let packet = try XCTUnwrap(try decoder2.decode(EngineMessage(binary: ByteBuffer(bytes: [2]))))
        XCTAssertFalse(decoder2.isAwaitingAttachments)
        XCTAssertEqual(packet.arguments, [.binary(ByteBuffer(bytes: [1])), .binary(ByteBuffer(bytes: [2]))])
        XCTAssertEqual(try decodeText(#"50-["e",1]"#)?.arguments, [1])
    }

    func testEveryViolationIsATypedError() throws {
        assertViolation("", .emptyPacket)
        assertViolation("abc", .unknownPacketType(UInt8(ascii: "a")))
        assertViolation("9[\"a\"]", .unknownPacketType(UInt8(ascii: "9")))
        assertViolation(#"2["message",1"#)
        assertViolation(#"2abc["message-with-ack",1]"#)
        assertViolation(#"2-1["message-with-ack",1]"#)
        assertViolation("2{}", .invalidPayload(.event))
        assertViolation("2[]", .invalidPayload(.event))
        assertViolation(#"2[{"a":1}]"#, .invalidPayload(.event))
        assertViolation("2\"x\"", .invalidPayload(.event))
        for name in ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"] {
            assertViolation("2[\"\(name)\"]", .reservedEventName(name))
        }
        assertViolation("0[1]", .invalidPayload(.connect))
        assertViolation("0\"tok\"", .invalidPayload(.connect))
        assertViolation("1{}", .invalidPayload(.disconnect))
        assertViolation("3{}", .invalidPayload(.ack))
        assertViolation(#"299999999999999999999999["e"]"#, .invalidAckId)
        assertViolation(#"599999999999999999999-["e",{"_placeholder":true,"num":0}]"#, .tooManyAttachments(limit: 10))
        assertViolation(#"511-["e"]"#, .tooManyAttachments(limit: 10))
        assertViolation(#"5-["e"]"#, .invalidAttachmentCount)
        assertViolation(#"5a-["e"]"#, .invalidAttachmentCount)
        assertViolation(#"52["e"]"#, .invalidAttachmentCount)
        assertViolation(#"50-["e",{"_placeholder":true,"num":0}]"#, .placeholderOutOfRange)
        var decoder = SocketIOPacketDecoder()
        XCTAssertThrowsError(try decoder.decode(EngineMessage(binary: ByteBuffer(bytes: [1])))) {
            XCTAssertEqual($0 as? SocketIOProtocolError, .unexpectedBinaryMessage)
        }
        XCTAssertThrowsError(try decodeAll([
            EngineMessage(text: #"51-["e",{"_placeholder":true,"num":1}]"#), EngineMessage(binary: ByteBuffer(bytes: [1])),
        ])) { XCTAssertEqual($0 as? SocketIOProtocolError, .placeholderOutOfRange) }
        XCTAssertThrowsError(try decodeAll([
            EngineMessage(text: #"51-["e",{"_placeholder":true,"num":-1}]"#), EngineMessage(binary: ByteBuffer(bytes: [1])),
        ])) { XCTAssertEqual($0 as? SocketIOProtocolError, .placeholderOutOfRange) }
    }

    func testAttachmentLimitIsConfigurable() throws {
        XCTAssertNil(try SocketIOPacketDecoder(maxAttachments: 2).decodeHeaderForTest(#"52-["e"]"#))
        XCTAssertThrowsError(try SocketIOPacketDecoder(maxAttachments: 1).decodeHeaderForTest(#"52-["e"]"#))
    }
}

extension SocketIOPacketDecoder {
    fileprivate func decodeHeaderForTest(_ text: String) throws -> SocketIOPacket? {
        var copy = self
        return try copy.decode(EngineMessage(text: text))
    }
}
