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

/// The catch-up of a cross-node restore: the stream read on to every node's marker, and the
/// live broadcasts held back meanwhile. Together they must give each packet exactly once.
final class RestoreCatchUpTests: XCTestCase {
    private func encoded(_ offset: String) -> EncodedPacket {
        EncodedPacket(messages: [EngineMessage(text: "2[\"e\",\"\(offset)\"]")])
    }

    private func record(_ offset: String, rooms: [String] = []) -> ClusterPayload {
        .recoverablePacket(offset: offset, selection: ClusterSocketSelection(rooms: rooms), packet: encoded(offset))
    }

    private func offsetOf(_ packet: EncodedPacket) -> String? {
        String(packet.messages[0].text.dropFirst(7).dropLast(2))
    }

    private let session = ClusterPayload.sessionRecord(SessionRecord(privateId: "pid", socketId: "sock", rooms: ["lobby"], data: ClusterValueEncoding.encode(.null)))

    func testTheScanReadsOnToEveryMarkerAndStopsTakingANodesPacketsAtItsMarker() {
        var scan = RecoveryStreamScan(privateId: "pid", offset: "a-1", claimId: "claim")
        let beforeClaim: [(ClusterPayload, String)] = [(record("a-1"), "a"), (session, "a"), (record("c-1"), "c")]
        for (payload, origin) in beforeClaim { XCTAssertNil(scan.read(payload, origin: origin)) }
        guard case .restored(_, let missed)? = scan.read(.restoreClaim(id: "claim", privateId: "pid"), origin: "b") else {
            return XCTFail("not restored")
        }
        XCTAssertEqual(missed.compactMap(offsetOf), ["c-1"])
        scan.awaitMarkers(id: "m", from: ["b", "c"])
        XCTAssertFalse(scan.markersComplete)
        let afterClaim: [(ClusterPayload, String)] = [
            (record("c-2"), "c"), (.restoreMarker(id: "other"), "c"), (record("c-3"), "c"),
            (.restoreMarker(id: "m"), "c"),
            (record("c-4"), "c"),  // after c's marker: it reaches the socket live
            (record("b-1", rooms: ["elsewhere"]), "b"), (record("b-2"), "b"),
            (record("c-3"), "c"),  // a copy re-published after a broker outage
        ]
        for (payload, origin) in afterClaim { XCTAssertNil(scan.read(payload, origin: origin)) }
        XCTAssertFalse(scan.markersComplete, "b's marker is still missing")
        XCTAssertNil(scan.read(.restoreMarker(id: "m"), origin: "b"))
        XCTAssertTrue(scan.markersComplete)
        XCTAssertEqual(scan.replay().map(\.offset), ["c-1", "c-2", "c-3", "b-2"])
    }

    func testAClaimedSessionIsNotReplacedByRecordsReadAfterTheClaim() {
        var scan = RecoveryStreamScan(privateId: "pid", offset: "a-1", claimId: "claim")
        _ = scan.read(record("a-1"), origin: "a")
        _ = scan.read(session, origin: "a")
        XCTAssertNotNil(scan.read(.restoreClaim(id: "claim", privateId: "pid"), origin: "b"))
        scan.awaitMarkers(id: "m", from: ["b"])
        XCTAssertNil(scan.read(.restoreClaim(id: "claim", privateId: "pid"), origin: "b"), "an outcome is given once")
        XCTAssertNil(scan.read(record("a-2"), origin: "a"))
        XCTAssertEqual(scan.replay().map(\.offset), ["a-2"])
    }

    func testNothingIsHeldBeforeTheMarkersAreRequested() {
        var hold = RestoreHold(socketId: "sock", rooms: ["lobby"], capacity: 10)
        hold.broadcastDelivered(from: "c", isOwn: false, selection: ClusterSocketSelection(), packet: encoded("c-1"))
        hold.broadcastDelivered(from: "b", isOwn: true, selection: ClusterSocketSelection(), packet: encoded("b-1"))
        XCTAssertTrue(hold.held.isEmpty, "before the markers, every packet is in the replay")
        XCTAssertFalse(hold.markersComplete)
    }

    func testEachNodesBroadcastsAreHeldFromItsMarkerOn() {
        var hold = RestoreHold(socketId: "sock", rooms: ["lobby"], capacity: 10)
        hold.markersRequested(from: ["a", "c"])
        let all = ClusterSocketSelection()
        hold.broadcastDelivered(from: "c", isOwn: false, selection: all, packet: encoded("c-1"))  // in the replay
        hold.broadcastDelivered(from: "b", isOwn: true, selection: all, packet: encoded("b-1"))   // own, after own marker
        XCTAssertFalse(hold.markerArrived(from: "c"))
        hold.broadcastDelivered(from: "c", isOwn: false, selection: all, packet: encoded("c-2"))
        hold.broadcastDelivered(from: "a", isOwn: false, selection: all, packet: encoded("a-1"))  // a's marker not yet here
        hold.broadcastDelivered(from: "c", isOwn: false, selection: ClusterSocketSelection(rooms: ["other"]), packet: encoded("c-3"))
        hold.broadcastDelivered(from: "c", isOwn: false, selection: ClusterSocketSelection(rooms: ["sock"]), packet: encoded("c-4"))
        hold.broadcastDelivered(from: "c", isOwn: false, selection: ClusterSocketSelection(exceptRooms: ["lobby"]), packet: encoded("c-5"))
        XCTAssertTrue(hold.markerArrived(from: "a"))
        hold.broadcastDelivered(from: "a", isOwn: false, selection: all, packet: encoded("a-2"))
        hold.broadcastDelivered(from: "d", isOwn: false, selection: all, packet: encoded("d-1"))  // a node not asked
        XCTAssertEqual(hold.release(offsetOf: offsetOf).compactMap(offsetOf), ["b-1", "c-2", "c-4", "a-2", "d-1"])
    }

    func testReleaseDropsCopiesOfReplayedPacketsFromNodesThatNeverMarked() {
        var hold = RestoreHold(socketId: "sock", rooms: [], capacity: 10)
        hold.markersRequested(from: ["dead"])
        hold.stopAwaitingMarkers()
        XCTAssertTrue(hold.markersComplete)
        hold.broadcastDelivered(from: "dead", isOwn: false, selection: ClusterSocketSelection(), packet: encoded("dead-7"))
        hold.broadcastDelivered(from: "dead", isOwn: false, selection: ClusterSocketSelection(), packet: encoded("dead-8"))
        hold.replayedOffsets = ["dead-7"]
        XCTAssertEqual(hold.release(offsetOf: offsetOf).compactMap(offsetOf), ["dead-8"])
    }

    func testTheHoldIsBounded() {
        var hold = RestoreHold(socketId: "sock", rooms: [], capacity: 2)
        hold.markersRequested(from: [])
        for index in 0..<5 { hold.broadcastDelivered(from: "c", isOwn: false, selection: ClusterSocketSelection(), packet: encoded("c-\(index)")) }
        XCTAssertEqual(hold.held.count, 2)
        XCTAssertEqual(hold.overflow, 3)
    }
}
