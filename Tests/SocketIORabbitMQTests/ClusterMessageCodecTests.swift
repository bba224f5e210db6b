import EngineIO
import NIOCore
import XCTest

@testable import SocketIORabbitMQ

final class ClusterMessageCodecTests: XCTestCase {
    private let packet = EncodedPacket(messages: [
        EngineMessage(text: #"51-["chat",{"text":"héllo"},{"_placeholder":true,"num":0}]"#),
        EngineMessage(binary: ByteBuffer(bytes: [0, 1, 2, 255])),
    ])

    private func roundTrip(_ payload: ClusterPayload, file: StaticString = #filePath, line: UInt = #line) throws {
        let message = ClusterMessage(origin: "node-a.7f3c", sequence: 42, namespace: "/chat", payload: payload)
        let body = try ClusterMessageCodec.encode(message)
        XCTAssertEqual(try ClusterMessageCodec.decode(body), message, file: file, line: line)
    }

    func testEveryMessageTypeRoundTrips() throws {
        let selection = ClusterSocketSelection(rooms: ["room-1", "ünïcode"], exceptRooms: ["muted"])
        let record = RemoteSocketRecord(
            id: "sock1", handshake: ByteBuffer(string: #"{"query":{}}"#), rooms: ["sock1", "room-1"],
            data: packet)
        let payloads: [ClusterPayload] = [
            .heartbeat(isInitial: true),
            .heartbeat(isInitial: false),
            .broadcast(selection: selection, flags: ClusterBroadcastFlags(isVolatile: true, compress: false, isRecoverable: true), packet: packet, ackRequest: nil),
            .broadcast(selection: ClusterSocketSelection(), flags: ClusterBroadcastFlags(), packet: packet, ackRequest: 9),
            .socketsJoin(selection: selection, rooms: ["a", "b"]),
            .socketsLeave(selection: ClusterSocketSelection(rooms: ["sock9"]), rooms: ["a"]),
            .disconnectSockets(selection: selection, closeUnderlyingConnection: true),
            .disconnectSockets(selection: selection, closeUnderlyingConnection: false),
            .fetchSockets(request: 3, selection: selection),
            .fetchSocketsResponse(request: 3, sockets: [record, record]),
            .fetchSocketsResponse(request: 4, sockets: []),
            .serverSideEmit(request: nil, packet: packet),
            .serverSideEmit(request: UInt64.max, packet: packet),
            .serverSideEmitResponse(request: 5, packet: packet),
            .broadcastClientCount(request: 6, clientCount: 1234),
            .broadcastAck(request: 6, packet: packet),
            .adapterClose,
            .recoverablePacket(offset: "node-a.7f3c-1z", selection: selection, packet: packet, deliveredByOrigin: false),
            .recoverablePacket(offset: "node-a.7f3c-20", selection: selection, packet: packet, deliveredByOrigin: true),
            .sessionRecord(SessionRecord(privateId: "pid", socketId: "sock1", rooms: ["sock1", "r"], data: packet)),
            .sessionRecord(SessionRecord(privateId: "pid", socketId: "sock1", rooms: [], data: packet, state: .connected, incarnation: "node-a.7f3c-2")),
            .sessionRecord(SessionRecord(privateId: "pid", socketId: "sock1", rooms: ["r"], data: packet, state: .closed, incarnation: "n-1")),
            .restoreClaim(id: "claim-1", privateId: "pid"),
            .streamMark(id: "node-a.7f3c-1234"),
        ]
        for payload in payloads { try roundTrip(payload) }
        // Distinct types really are distinct on the wire.
        let codes = Set(payloads.map(\.typeCode))
        XCTAssertEqual(codes.count, 17)
    }

    func testBroadcastCarriesTheEngineMessagesByteForByte() throws {
        let message = ClusterMessage(
            origin: "n", sequence: 1, namespace: "/",
            payload: .broadcast(selection: ClusterSocketSelection(), flags: ClusterBroadcastFlags(), packet: packet, ackRequest: nil))
        let decoded = try ClusterMessageCodec.decode(ClusterMessageCodec.encode(message))
        guard case .broadcast(_, _, let received, _) = decoded.payload else { return XCTFail("not a broadcast: \(decoded)") }
        XCTAssertEqual(received.messages.map(\.isBinary), [false, true])
        XCTAssertEqual(received.messages[0].text, packet.messages[0].text)
        XCTAssertEqual(Array(received.messages[1].payload.readableBytesView), [0, 1, 2, 255])
    }

    func testFieldsOverTheFormatsLimitsThrowInsteadOfTrapping() {
        let longRoom = String(repeating: "r", count: 65_536)
        XCTAssertThrowsError(try ClusterMessageCodec.encode(ClusterMessage(
            origin: "a", sequence: 1, namespace: "/", payload: .socketsJoin(selection: .init(rooms: [], exceptRooms: []), rooms: [longRoom])))) {
            XCTAssertEqual($0 as? ClusterMessageEncodingError, .stringTooLong(bytes: 65_536))
        }
        let manyRooms = (0..<65_536).map { "r\($0)" }
        XCTAssertThrowsError(try ClusterMessageCodec.encode(ClusterMessage(
            origin: "a", sequence: 1, namespace: "/", payload: .socketsLeave(selection: .init(rooms: manyRooms, exceptRooms: []), rooms: [])))) {
            XCTAssertEqual($0 as? ClusterMessageEncodingError, .tooManyItems(count: 65_536))
        }
        let manyAttachments = EncodedPacket(messages: Array(repeating: EngineMessage(text: "x"), count: 65_536))
        XCTAssertThrowsError(try ClusterMessageCodec.encode(ClusterMessage(
            origin: "a", sequence: 1, namespace: "/", payload: .serverSideEmit(request: nil, packet: manyAttachments)))) {
            XCTAssertEqual($0 as? ClusterMessageEncodingError, .tooManyItems(count: 65_536))
        }
        let longest = String(repeating: "r", count: 65_535)
        XCTAssertNoThrow(try ClusterMessageCodec.encode(ClusterMessage(
            origin: "a", sequence: 1, namespace: "/", payload: .socketsJoin(selection: .init(rooms: [], exceptRooms: []), rooms: [longest]))))
    }

    func testHeaderLayoutIsStable() throws {
        let body = try ClusterMessageCodec.encode(ClusterMessage(origin: "ab", sequence: 258, namespace: "/", payload: .adapterClose))
        XCTAssertEqual(Array(body.readableBytesView), [4, 13, 0, 2, 0x61, 0x62, 0, 0, 0, 0, 0, 0, 1, 2, 0, 1, 0x2F])
    }

    func testTruncatedBodiesAreRejectedAtEveryLength() throws {
        let message = ClusterMessage(
            origin: "node", sequence: 7, namespace: "/",
            payload: .fetchSocketsResponse(request: 1, sockets: [RemoteSocketRecord(id: "x", handshake: ByteBuffer(string: "{}"), rooms: ["r"], data: packet)]))
        let body = try ClusterMessageCodec.encode(message)
        for length in 0..<body.readableBytes {
            let truncated = body.getSlice(at: body.readerIndex, length: length)!
            XCTAssertThrowsError(try ClusterMessageCodec.decode(truncated), "length \(length)")
        }
    }

    func testForeignBodiesAreTypedErrors() throws {
        XCTAssertThrowsError(try ClusterMessageCodec.decode(ByteBuffer(bytes: [1, 1]))) { error in
            XCTAssertEqual(error as? ClusterMessageDecodingError, .unsupportedVersion(1), "format 1 carried socket data as JSON text")
        }
        XCTAssertThrowsError(try ClusterMessageCodec.decode(ByteBuffer(bytes: [2, 13]))) { error in
            XCTAssertEqual(error as? ClusterMessageDecodingError, .unsupportedVersion(2), "format 2 nodes deliver recoverable packets themselves")
        }
        XCTAssertThrowsError(try ClusterMessageCodec.decode(ByteBuffer(bytes: [3, 13]))) { error in
            XCTAssertEqual(error as? ClusterMessageDecodingError, .unsupportedVersion(3), "format 3 session records have no state nor incarnation")
        }
        XCTAssertThrowsError(try ClusterMessageCodec.decode(ByteBuffer(bytes: [4, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))) { error in
            XCTAssertEqual(error as? ClusterMessageDecodingError, .unknownType(99))
        }
        var extra = try ClusterMessageCodec.encode(ClusterMessage(origin: "a", sequence: 1, namespace: "/", payload: .adapterClose))
        extra.writeInteger(UInt8(0))
        XCTAssertThrowsError(try ClusterMessageCodec.decode(extra)) { error in
            XCTAssertEqual(error as? ClusterMessageDecodingError, .trailingBytes(1))
        }
        // origin "\u{FF}" is not UTF-8
        XCTAssertThrowsError(try ClusterMessageCodec.decode(ByteBuffer(bytes: [4, 13, 0, 1, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0x2F]))) { error in
            XCTAssertEqual(error as? ClusterMessageDecodingError, .invalidUTF8(field: "origin"))
        }
    }

    func testASessionRecordOfAnUnknownStateIsATypedError() throws {
        let record = SessionRecord(privateId: "p", socketId: "s", rooms: [], data: EncodedPacket(messages: []), state: .closed, incarnation: "")
        var body = try ClusterMessageCodec.encode(ClusterMessage(origin: "a", sequence: 1, namespace: "/", payload: .sessionRecord(record)))
        // The state byte sits right before the incarnation's u16 length (empty: 0, 0).
        let stateIndex = body.writerIndex - 3
        body.setInteger(UInt8(9), at: stateIndex)
        XCTAssertThrowsError(try ClusterMessageCodec.decode(body)) { error in
            XCTAssertEqual(error as? ClusterMessageDecodingError, .invalidValue(field: "session.state"))
        }
    }

    func testAHugeClaimedSocketCountDoesNotAllocateBeforeFailing() {
        var body = ByteBuffer()
        body.writeBytes([4, 8, 0, 1, 0x61])
        body.writeInteger(UInt64(1))
        body.writeBytes([0, 1, 0x2F])
        body.writeInteger(UInt64(1))  // request
        body.writeInteger(UInt32.max)  // claims four billion sockets, carries none
        XCTAssertThrowsError(try ClusterMessageCodec.decode(body)) { error in
            XCTAssertEqual(error as? ClusterMessageDecodingError, .truncated(field: "socket.id"))
        }
    }

    func testResponsesAreTheFourAnswerTypes() {
        let packet = EncodedPacket(messages: [])
        XCTAssertTrue(ClusterPayload.fetchSocketsResponse(request: 1, sockets: []).isResponse)
        XCTAssertTrue(ClusterPayload.serverSideEmitResponse(request: 1, packet: packet).isResponse)
        XCTAssertTrue(ClusterPayload.broadcastClientCount(request: 1, clientCount: 0).isResponse)
        XCTAssertTrue(ClusterPayload.broadcastAck(request: 1, packet: packet).isResponse)
        XCTAssertFalse(ClusterPayload.fetchSockets(request: 1, selection: ClusterSocketSelection()).isResponse)
        XCTAssertFalse(ClusterPayload.heartbeat(isInitial: true).isResponse)
    }
}

final class ClusterBatchCodecTests: XCTestCase {
    private func body(_ sequence: UInt64) throws -> ByteBuffer {
        try ClusterMessageCodec.encode(ClusterMessage(origin: "a", sequence: sequence, namespace: "/", payload: .heartbeat(isInitial: false)))
    }

    func testABatchSplitsBackIntoItsMessagesInOrder() throws {
        let batch = try ClusterBatchCodec.encode([try body(1), try body(2), try body(3)])
        let split = try ClusterBatchCodec.split(batch)
        XCTAssertEqual(try split.map { try ClusterMessageCodec.decode($0).sequence }, [1, 2, 3])
    }

    func testASingleMessageTravelsUnwrapped() throws {
        let single = try body(7)
        XCTAssertEqual(try ClusterBatchCodec.encode([single]), single)
        XCTAssertEqual(try ClusterBatchCodec.split(single), [single])
    }

    func testABatchOfNoneOrOverItsCountIsATypedErrorNotATrap() throws {
        XCTAssertThrowsError(try ClusterBatchCodec.encode([])) { error in
            XCTAssertEqual(error as? ClusterMessageEncodingError, .tooManyItems(count: 0))
        }
        let tooMany = Array(repeating: try body(1), count: Int(UInt16.max) + 1)
        XCTAssertThrowsError(try ClusterBatchCodec.encode(tooMany)) { error in
            XCTAssertEqual(error as? ClusterMessageEncodingError, .tooManyItems(count: 65_536))
        }
        XCTAssertEqual(try ClusterBatchCodec.split(try ClusterBatchCodec.encode(Array(tooMany.dropLast()))).count, 65_535)
    }

    func testTruncatedBatchesAreRejected() throws {
        let batch = try ClusterBatchCodec.encode([try body(1), try body(2)])
        for length in 1..<batch.readableBytes {
            let truncated = batch.getSlice(at: batch.readerIndex, length: length)!
            XCTAssertThrowsError(try ClusterBatchCodec.split(truncated), "length \(length)")
        }
    }
}
