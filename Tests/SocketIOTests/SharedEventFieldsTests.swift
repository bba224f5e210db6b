import EngineIO
import NIOCore
import XCTest

@testable import SocketIO

/// A packet made of a recipient's own members and shared ones must read, on the wire,
/// exactly like the same object encoded whole, and must hold the shared bytes by reference.
final class SharedEventFieldsTests: XCTestCase {
    private let shared: JSONObject = ["history": [["text": "hi \"there\"", "n": 1]], "rooms": ["a", "b"]]

    private func whole(_ messages: [EngineMessage]) -> String { messages[0].text }

    func testOwnThenSharedMembersEncodeLikeOneObject() throws {
        let fields = try XCTUnwrap(SharedEventFields(shared))
        let own: JSONObject = ["name": "ada", "count": 3]
        let messages = SocketIOPacketEncoder.encodeEvent("welcome", own, sharing: fields)
        XCTAssertEqual(messages.count, 1)
        let merged = JSONObject(own.members + shared.members)
        let expected = SocketIOPacketEncoder.encode(.event("welcome", [.object(merged)]))
        XCTAssertEqual(whole(messages), expected[0].text)
        XCTAssertEqual(messages[0], expected[0])  // equality looks at the whole payload
        XCTAssertEqual(messages[0].payloadByteCount, expected[0].payload.readableBytes)
    }

    func testEveryRecipientHoldsTheSameTailBytes() throws {
        let fields = try XCTUnwrap(SharedEventFields(shared))
        let first = SocketIOPacketEncoder.encodeEvent("welcome", ["name": "ada"], sharing: fields)[0]
        let second = SocketIOPacketEncoder.encodeEvent("welcome", ["name": "bob"], sharing: fields)[0]
        let firstTail = try XCTUnwrap(first.sharedTail), secondTail = try XCTUnwrap(second.sharedTail)
        let firstBase = firstTail.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let secondBase = secondTail.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(firstBase, secondBase, "the shared part must not be copied per recipient")
        XCTAssertFalse(first.payload.readableBytesView.contains(UInt8(ascii: "h")), "history is not in the head")
    }

    func testEmptySidesNeedNoComma() throws {
        let fields = try XCTUnwrap(SharedEventFields(shared))
        XCTAssertEqual(
            whole(SocketIOPacketEncoder.encodeEvent("e", JSONObject(), sharing: fields)),
            SocketIOPacketEncoder.encode(.event("e", [.object(shared)]))[0].text)
        XCTAssertEqual(whole(SocketIOPacketEncoder.encodeEvent("e", ["a": 1], sharing: .none)), #"2["e",{"a":1}]"#)
        XCTAssertEqual(whole(SocketIOPacketEncoder.encodeEvent("e", JSONObject(), sharing: .none)), #"2["e",{}]"#)
        let empty = try XCTUnwrap(SharedEventFields(JSONObject()))
        XCTAssertEqual(whole(SocketIOPacketEncoder.encodeEvent("e", ["a": 1], sharing: empty)), #"2["e",{"a":1}]"#)
    }

    func testNamespaceAndBinaryOwnValues() throws {
        let fields = try XCTUnwrap(SharedEventFields(["s": true]))
        let bytes = ByteBuffer(bytes: [1, 2, 3])
        let messages = SocketIOPacketEncoder.encodeEvent("e", ["b": .binary(bytes)], sharing: fields, namespace: "/chat")
        XCTAssertEqual(messages.count, 2)
        XCTAssertEqual(whole(messages), #"51-/chat,["e",{"b":{"_placeholder":true,"num":0},"s":true}]"#)
        XCTAssertEqual(messages[1], EngineMessage(binary: bytes))
    }

    func testSharedBinaryIsRefused() {
        XCTAssertNil(SharedEventFields(["b": .binary(ByteBuffer(bytes: [1]))]))
    }

    func testTheClientReadsTheMergedObject() async throws {
        let io = SocketIOServer(SocketIOServerConfiguration())
        let fields = try XCTUnwrap(SharedEventFields(shared))
        io.of("/").onConnection { socket in socket.emitWithoutRecovery("welcome", ["name": "ada"], sharing: fields) }
        let (connection, _) = try await io.connectedClient()
        let text = try await connection.nextText()
        XCTAssertTrue(text.hasPrefix(#"2["welcome","#), text)
        let argument = try JSONValue(parsing: String(text.dropFirst()))
        XCTAssertEqual(argument, .array(["welcome", .object(JSONObject([("name", "ada")] + shared.members))]))
    }
}
