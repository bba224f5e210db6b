import EngineIO
import NIOCore
import SocketIO
import XCTest

@testable import SocketIORabbitMQ

final class ClusterValueEncodingTests: XCTestCase {
    private let dataWithBytes: JSONValue = [
        "node": "b",
        "avatar": .binary(ByteBuffer(bytes: [0, 1, 2, 0xFF, 0x7B])),
        "nested": ["list": .array([.binary(ByteBuffer(bytes: [9])), .number(1), .null])],
    ]

    func testBinaryValuesInsideSocketDataSurviveAFetchSocketsResponse() throws {
        let record = RemoteSocketRecord(
            id: "s1", handshake: ByteBuffer(string: "{}"), rooms: ["s1"], data: ClusterValueEncoding.encode(dataWithBytes))
        let message = ClusterMessage(origin: "b-1", sequence: 3, namespace: "/", payload: .fetchSocketsResponse(request: 7, sockets: [record]))
        let decoded = try ClusterMessageCodec.decode(ClusterMessageCodec.encode(message))
        guard case .fetchSocketsResponse(_, let sockets) = decoded.payload, let received = sockets.first else {
            return XCTFail("not a fetch-sockets response: \(decoded)")
        }
        XCTAssertEqual(received.data.messages.count, 3, "text plus one binary message per attachment")
        let value = try XCTUnwrap(ClusterValueEncoding.decode(received.data))
        XCTAssertEqual(value, dataWithBytes)
        XCTAssertEqual(value["avatar"]?.binaryValue.map { Array($0.readableBytesView) }, [0, 1, 2, 0xFF, 0x7B])
    }

    func testBinaryValuesInsideSessionDataSurviveTheRecoveryStream() throws {
        let record = SessionRecord(privateId: "p", socketId: "s", rooms: ["r"], data: ClusterValueEncoding.encode(dataWithBytes))
        let decoded = try ClusterMessageCodec.decode(ClusterMessageCodec.encode(
            ClusterMessage(origin: "a-1", sequence: 1, namespace: "/", payload: .sessionRecord(record))))
        guard case .sessionRecord(let received) = decoded.payload else { return XCTFail("not a session record") }
        XCTAssertEqual(ClusterValueEncoding.decode(received.data), dataWithBytes)
    }

    func testPlainValuesStayOneTextMessage() {
        for value: JSONValue in [.null, "text", .number(12), ["a": .array([.bool(true)])]] {
            let encoded = ClusterValueEncoding.encode(value)
            XCTAssertEqual(encoded.messages.map(\.isBinary), [false])
            XCTAssertEqual(ClusterValueEncoding.decode(encoded), value)
        }
    }

    func testSomethingElseIsNotAValue() {
        XCTAssertNil(ClusterValueEncoding.decode(EncodedPacket(messages: [EngineMessage(text: #"2["other",1]"#)])), "another event")
        XCTAssertNil(ClusterValueEncoding.decode(EncodedPacket(messages: [EngineMessage(text: #"2["value",1,2]"#)])), "two values")
        XCTAssertNil(ClusterValueEncoding.decode(EncodedPacket(messages: [EngineMessage(text: "not a packet")])))
        XCTAssertNil(ClusterValueEncoding.decode(EncodedPacket(messages: [])))
    }
}

final class RecoveryStreamScanTests: XCTestCase {
    private func session(_ privateId: String = "pid", rooms: [String] = ["lobby"]) -> ClusterPayload {
        .sessionRecord(SessionRecord(privateId: privateId, socketId: "sock", rooms: rooms, data: ClusterValueEncoding.encode(["n": 1])))
    }

    private func packet(_ offset: String, rooms: [String] = [], except: [String] = []) -> ClusterPayload {
        .recoverablePacket(offset: offset, selection: ClusterSocketSelection(rooms: rooms, exceptRooms: except),
                           packet: EncodedPacket(messages: [EngineMessage(text: "2[\"e\",\"\(offset)\"]")]))
    }

    private func offsets(_ outcome: RecoveryStreamScan.Outcome?) -> [String]? {
        guard case .restored(_, let packets)? = outcome else { return nil }
        return packets.map { text in String(text.messages[0].text.dropFirst(7).dropLast(2)) }
    }

    /// Feeds `stream` and returns the outcome at the claim (nil if the claim never came).
    private func scan(_ stream: [ClusterPayload], claim: String) -> RecoveryStreamScan.Outcome? {
        var scan = RecoveryStreamScan(privateId: "pid", offset: "o1", claimId: claim)
        for payload in stream {
            if let outcome = scan.read(payload) { return outcome }
        }
        return nil
    }

    func testRestoresThePacketsAfterTheOffsetThatReachTheSession() {
        let stream: [ClusterPayload] = [
            packet("o0"), packet("o1"), packet("o2"), session(), packet("o3", rooms: ["other"]),
            packet("o4", rooms: ["lobby"]), packet("o5", except: ["lobby"]), packet("o6", rooms: ["sock"]),
            session("someone-else"), .restoreClaim(id: "mine", privateId: "pid"), packet("o7"),
        ]
        XCTAssertEqual(offsets(scan(stream, claim: "mine")), ["o2", "o4", "o6"], "the socket's own id is one of its rooms")
    }

    func testTwoClaimsOfOneSessionRestoreItOnce() {
        let stream: [ClusterPayload] = [
            packet("o1"), session(), packet("o2"),
            .restoreClaim(id: "node-b", privateId: "pid"), .restoreClaim(id: "node-c", privateId: "pid"),
        ]
        XCTAssertEqual(offsets(scan(stream, claim: "node-b")), ["o2"], "the first claim in stream order wins")
        XCTAssertEqual(scan(stream, claim: "node-c"), .refused(.alreadyClaimed), "the second, on any node, is refused")
    }

    func testANewerSessionRecordCanBeClaimedAgain() {
        let stream: [ClusterPayload] = [
            packet("o1"), session(), .restoreClaim(id: "first", privateId: "pid"),
            packet("o2"), session(), .restoreClaim(id: "second", privateId: "pid"),
        ]
        XCTAssertEqual(offsets(scan(stream, claim: "second")), ["o2"], "the socket was restored and lost again")
    }

    func testClaimsOfOtherSessionsAndOlderClaimsDoNotCount() {
        let stream: [ClusterPayload] = [
            .restoreClaim(id: "old", privateId: "pid"), packet("o1"), session(),
            .restoreClaim(id: "x", privateId: "other-pid"), .restoreClaim(id: "mine", privateId: "pid"),
        ]
        XCTAssertEqual(offsets(scan(stream, claim: "mine")), [])
    }

    func testRefusalsWithoutSessionOrOffset() {
        XCTAssertEqual(scan([packet("o1"), .restoreClaim(id: "mine", privateId: "pid")], claim: "mine"), .refused(.unknownSession))
        XCTAssertEqual(scan([packet("o0"), session(), .restoreClaim(id: "mine", privateId: "pid")], claim: "mine"), .refused(.unknownOffset))
        XCTAssertNil(scan([session(), packet("o1")], claim: "mine"), "no outcome before the own claim")
    }
}
