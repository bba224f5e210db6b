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
        let decoded = try ClusterMessageCodec.decode(try ClusterMessageCodec.encode(message))
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
        let decoded = try ClusterMessageCodec.decode(try ClusterMessageCodec.encode(
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

/// A recovery stream for tests: messages in stream order, each at its own position.
private struct TestStream {
    var messages: [(ClusterMessage, StreamPosition)] = []
    private var sequences: [String: UInt64] = [:]

    /// Appends a message from `origin` with that origin's next sequence (or `sequence`, for a copy).
    @discardableResult
    mutating func append(_ payload: ClusterPayload, from origin: String, sequence: UInt64? = nil) -> StreamPosition {
        let next = sequence ?? { sequences[origin, default: 0] += 1; return sequences[origin]! }()
        let position = StreamPosition(offset: Int64(messages.count), index: 0)
        messages.append((ClusterMessage(origin: origin, sequence: next, namespace: "/", payload: payload), position))
        return position
    }

    static func packet(_ offset: String, rooms: [String] = [], except: [String] = [], early: Bool = false) -> ClusterPayload {
        .recoverablePacket(offset: offset, selection: ClusterSocketSelection(rooms: rooms, exceptRooms: except),
                           packet: EncodedPacket(messages: [EngineMessage(text: "2[\"e\",\"\(offset)\"]")]), deliveredByOrigin: early)
    }

    static func session(_ privateId: String = "pid", rooms: [String] = ["lobby"]) -> ClusterPayload {
        .sessionRecord(SessionRecord(privateId: privateId, socketId: "sock", rooms: rooms, data: ClusterValueEncoding.encode(["n": 1])))
    }

    /// Feeds the stream to a scan and returns the outcome at the claim (nil if it never came).
    func scan(offset: String = "o1", claim: String) -> RecoveryStreamScan.Outcome? {
        var scan = RecoveryStreamScan(privateId: "pid", offset: offset, claimId: claim)
        for (message, position) in messages {
            if let outcome = scan.read(message, at: position) { return outcome }
        }
        return nil
    }
}

private func offsets(_ outcome: RecoveryStreamScan.Outcome?) -> [String]? {
    guard case .restored(_, _, let packets)? = outcome else { return nil }
    return packets.map(\.offset)
}

final class RecoveryStreamScanTests: XCTestCase {
    private func stream(_ payloads: [ClusterPayload], from origin: String = "a") -> TestStream {
        var stream = TestStream()
        for payload in payloads { stream.append(payload, from: origin) }
        return stream
    }

    func testRestoresThePacketsAfterTheOffsetThatReachTheSession() {
        let stream = stream([
            TestStream.packet("o0"), TestStream.packet("o1"), TestStream.packet("o2"), TestStream.session(), TestStream.packet("o3", rooms: ["other"]),
            TestStream.packet("o4", rooms: ["lobby"]), TestStream.packet("o5", except: ["lobby"]), TestStream.packet("o6", rooms: ["sock"]),
            TestStream.session("someone-else"), .restoreClaim(id: "mine", privateId: "pid"), TestStream.packet("o7"),
        ])
        XCTAssertEqual(offsets(stream.scan(claim: "mine")), ["o2", "o4", "o6"], "the socket's own id is one of its rooms")
        guard case .restored(_, let claimedAt, _)? = stream.scan(claim: "mine") else { return XCTFail("not restored") }
        XCTAssertEqual(claimedAt, StreamPosition(offset: 9), "the replay ends at the claim")
    }

    func testTwoClaimsOfOneSessionRestoreItOnce() {
        let stream = stream([
            TestStream.packet("o1"), TestStream.session(), TestStream.packet("o2"),
            .restoreClaim(id: "node-b", privateId: "pid"), .restoreClaim(id: "node-c", privateId: "pid"),
        ])
        XCTAssertEqual(offsets(stream.scan(claim: "node-b")), ["o2"], "the first claim in stream order wins")
        XCTAssertEqual(stream.scan(claim: "node-c"), .refused(.alreadyClaimed), "the second, on any node, is refused")
    }

    func testANewerSessionRecordCanBeClaimedAgain() {
        let stream = stream([
            TestStream.packet("o1"), TestStream.session(), .restoreClaim(id: "first", privateId: "pid"),
            TestStream.packet("o2"), TestStream.session(), .restoreClaim(id: "second", privateId: "pid"),
        ])
        XCTAssertEqual(offsets(stream.scan(claim: "second")), ["o2"], "the socket was restored and lost again")
    }

    func testClaimsOfOtherSessionsAndOlderClaimsDoNotCount() {
        let stream = stream([
            .restoreClaim(id: "old", privateId: "pid"), TestStream.packet("o1"), TestStream.session(),
            .restoreClaim(id: "x", privateId: "other-pid"), .restoreClaim(id: "mine", privateId: "pid"),
        ])
        XCTAssertEqual(offsets(stream.scan(claim: "mine")), [])
    }

    func testRefusalsWithoutSessionOrOffset() {
        XCTAssertEqual(stream([TestStream.packet("o1"), .restoreClaim(id: "mine", privateId: "pid")]).scan(claim: "mine"), .refused(.unknownSession))
        XCTAssertEqual(stream([TestStream.packet("o0"), TestStream.session(), .restoreClaim(id: "mine", privateId: "pid")]).scan(claim: "mine"),
                       .refused(.unknownOffset))
        XCTAssertNil(stream([TestStream.session(), TestStream.packet("o1")]).scan(claim: "mine"), "no outcome before the own claim")
    }

    func testCopiesRepublishedAfterAnOutageAreNotReplayed() {
        var stream = TestStream()
        stream.append(TestStream.packet("a-1"), from: "a")
        stream.append(TestStream.packet("a-2"), from: "a")  // sequence 2: the client's offset
        stream.append(TestStream.packet("a-3"), from: "a")
        stream.append(TestStream.packet("b-1"), from: "b")
        // a's connection dropped before the broker confirmed a-2 and a-3: they come again.
        stream.append(TestStream.packet("a-2"), from: "a", sequence: 2)
        stream.append(TestStream.packet("a-3"), from: "a", sequence: 3)
        stream.append(TestStream.packet("a-4"), from: "a", sequence: 4)
        stream.append(TestStream.session(), from: "a")
        stream.append(.restoreClaim(id: "mine", privateId: "pid"), from: "c")
        XCTAssertEqual(offsets(stream.scan(offset: "a-2", claim: "mine")), ["a-3", "b-1", "a-4"])
    }

    func testPacketsItsNodeDeliveredAtOnceDuringAnOutageAreNotReplayedToThatNodesClients() {
        var stream = TestStream()
        stream.append(TestStream.packet("b-1"), from: "b")  // the client's offset
        // The broker was away: node a delivered a-1 and a-2 to its clients at once. The client
        // lost its connection between the two (a recorded the session then), so it has a-1
        // (without an offset) and lacks a-2. The outbox flush puts them in the stream later.
        stream.append(TestStream.packet("a-1", early: true), from: "a")
        stream.append(TestStream.session(), from: "a")
        stream.append(TestStream.packet("a-2", early: true), from: "a")
        stream.append(TestStream.packet("b-2"), from: "b")
        stream.append(.restoreClaim(id: "mine", privateId: "pid"), from: "c")
        XCTAssertEqual(offsets(stream.scan(offset: "b-1", claim: "mine")), ["a-2", "b-2"])
    }
}

/// A restore on any node, while every node keeps sending: the replay (stream up to the claim)
/// and the hold (live packets after it) must give each packet the client lacks exactly once,
/// in the order every node delivered the stream.
final class RestoreCatchUpTests: XCTestCase {
    private func streamed(_ message: ClusterMessage, at position: StreamPosition) -> StreamedPacket? {
        guard case .recoverablePacket(let offset, let selection, let packet, let early) = message.payload else { return nil }
        return StreamedPacket(position: position, origin: message.origin, sequence: message.sequence, offset: offset,
                              selection: selection, packet: packet, deliveredByOrigin: early)
    }

    /// Three nodes interleave packets; the client saw the stream up to each possible cut; its
    /// node records the session; a restore starts its hold at some point, claims, and the live
    /// consumer goes on delivering. Replay + release must be exactly what follows the cut.
    func testEveryCutAndEveryHoldStartGiveEachMissedPacketOnceInStreamOrder() {
        let origins = ["a", "b", "c"]
        for cut in 0..<12 {
            for holdStartDelay in 0..<3 {
                var stream = TestStream()
                var delivered: [String] = []  // what a node delivers, in stream order
                for index in 0..<12 {
                    let origin = origins[(index * 7 + index / 3) % 3]
                    let offset = "\(origin)-\(index)"
                    let rooms = index % 4 == 3 ? ["elsewhere"] : []
                    stream.append(TestStream.packet(offset, rooms: rooms), from: origin)
                    if rooms.isEmpty { delivered.append(offset) }
                }
                let clientOffset = stream.messages.compactMap { streamed($0.0, at: $0.1) }.filter { $0.selection.rooms.isEmpty }.map(\.offset)[min(cut, 8)]
                stream.append(TestStream.session(rooms: []), from: "a")
                // The hold begins before the claim is appended; packets keep coming.
                let holdStart = stream.messages.count - holdStartDelay
                for index in 12..<14 { stream.append(TestStream.packet("b-\(index)"), from: "b"); delivered.append("b-\(index)") }
                stream.append(.restoreClaim(id: "claim", privateId: "pid"), from: "z")
                for index in 14..<17 { stream.append(TestStream.packet("c-\(index)"), from: "c"); delivered.append("c-\(index)") }

                guard case .restored(let session, let claimedAt, let missed)? = stream.scan(offset: clientOffset, claim: "claim") else {
                    return XCTFail("not restored at cut \(cut)")
                }
                var hold = RestoreHold(capacity: 100)
                for (message, position) in stream.messages[max(0, holdStart)...] {
                    if let packet = streamed(message, at: position) { hold.delivered(packet) }
                    if position == claimedAt { hold.sessionFound(session, claimedAt: claimedAt) }
                }
                let expected = Array(delivered[(delivered.firstIndex(of: clientOffset)! + 1)...])
                XCTAssertEqual(missed.map(\.offset) + hold.release().map(\.offset), expected, "cut \(cut), hold start \(holdStartDelay)")
            }
        }
    }

    func testTheHoldKeepsOnlyWhatFollowsTheClaimAndReachesTheSession() {
        var hold = RestoreHold(capacity: 10)
        func packet(_ offset: String, at position: Int64, rooms: [String] = []) -> StreamedPacket {
            StreamedPacket(position: StreamPosition(offset: position), origin: "c", sequence: UInt64(position), offset: offset,
                           selection: ClusterSocketSelection(rooms: rooms), packet: EncodedPacket(messages: []))
        }
        hold.delivered(packet("c-1", at: 1))  // before the claim: in the replay
        hold.delivered(packet("c-5", at: 5))
        XCTAssertNil(hold.socketId, "the session is not known before the claim")
        let session = ClaimedSession(record: SessionRecord(privateId: "pid", socketId: "sock", rooms: ["lobby"], data: ClusterValueEncoding.encode(.null)),
                                     origin: "a", sequence: 1)
        hold.sessionFound(session, claimedAt: StreamPosition(offset: 3))
        XCTAssertEqual(hold.socketId, "sock")
        hold.delivered(packet("c-6", at: 6, rooms: ["other"]))
        hold.delivered(packet("c-7", at: 7, rooms: ["sock"]))
        hold.delivered(packet("c-8", at: 8, rooms: ["lobby"]))
        XCTAssertEqual(hold.release().map(\.offset), ["c-5", "c-7", "c-8"])
    }

    func testTheHoldIsBounded() {
        var hold = RestoreHold(capacity: 2)
        for index in 0..<5 {
            hold.delivered(StreamedPacket(position: StreamPosition(offset: Int64(index)), origin: "c", sequence: UInt64(index), offset: "c-\(index)",
                                          selection: ClusterSocketSelection(), packet: EncodedPacket(messages: [])))
        }
        XCTAssertEqual(hold.held.count, 2)
        XCTAssertEqual(hold.overflow, 3)
    }
}

/// The live consumer's memory of the stream decides a claim as a scan of the stream would.
final class RecoveryLogTests: XCTestCase {
    private let window: UInt64 = 120_000_000_000

    /// Feeds `stream` to a log (started `age` ago) up to the claim `claim`, as the live consumer does.
    private func decide(_ stream: TestStream, offset: String = "o1", claim: String, startedAgo age: UInt64? = nil) -> RecoveryLog.Decision? {
        let now: UInt64 = 1_000_000_000_000
        var log = RecoveryLog(windowNanoseconds: window, capacity: 100, startedAtNanoseconds: now - (age ?? window))
        var copies = ClusterDuplicateFilter()
        for (message, position) in stream.messages {
            switch message.payload {
            case .sessionRecord(let record):
                log.sessionRead(ClaimedSession(record: record, origin: message.origin, sequence: message.sequence), atNanoseconds: now)
            case .restoreClaim(let id, let privateId):
                let decision = log.claimRead(privateId: privateId, offset: id == claim ? offset : nil, atNanoseconds: now)
                if id == claim { return decision }
            case .recoverablePacket(let packetOffset, let selection, let packet, let early):
                guard copies.accept(origin: message.origin, sequence: message.sequence) else { continue }
                log.packetRead(StreamedPacket(position: position, origin: message.origin, sequence: message.sequence, offset: packetOffset,
                                              selection: selection, packet: packet, deliveredByOrigin: early), atNanoseconds: now)
            default:
                break
            }
        }
        return nil
    }

    private func sameAsScan(_ stream: TestStream, offset: String = "o1", claim: String, file: StaticString = #filePath, line: UInt = #line) {
        let decision = decide(stream, offset: offset, claim: claim)
        switch stream.scan(offset: offset, claim: claim) {
        case .restored(let session, _, let missed)?:
            XCTAssertEqual(decision, .restored(session, missedPackets: missed), file: file, line: line)
        case .refused(let reason)?:
            XCTAssertEqual(decision, .refused(reason), file: file, line: line)
        case nil:
            XCTFail("the scan never reached the claim", file: file, line: line)
        }
    }

    func testDecidesEveryClaimAsTheScanDoes() {
        var stream = TestStream()
        for payload: ClusterPayload in [
            TestStream.packet("o0"), TestStream.packet("o1"), TestStream.packet("o2"), TestStream.session(),
            TestStream.packet("o3", rooms: ["other"]), TestStream.packet("o4", rooms: ["lobby"]), TestStream.packet("o5", except: ["lobby"]),
            .restoreClaim(id: "first", privateId: "pid"), .restoreClaim(id: "second", privateId: "pid"),
            .restoreClaim(id: "stranger", privateId: "nobody"), TestStream.packet("o6"),
        ] { stream.append(payload, from: "a") }
        sameAsScan(stream, claim: "first")
        sameAsScan(stream, claim: "second")
        XCTAssertEqual(decide(stream, claim: "stranger"), .refused(.unknownSession), "a claim for a session nobody recorded")
        sameAsScan(stream, offset: "gone", claim: "first")
        XCTAssertEqual(offsetsOf(decide(stream, claim: "first")), ["o2", "o4"])
    }

    func testCopiesAndPacketsDeliveredAtOnceAreHandledAsByTheScan() {
        var stream = TestStream()
        stream.append(TestStream.packet("a-1"), from: "a")
        stream.append(TestStream.packet("b-1"), from: "b")
        stream.append(TestStream.packet("a-2"), from: "a")
        stream.append(TestStream.packet("a-1"), from: "a", sequence: 1)  // re-published copy
        stream.append(TestStream.packet("a-3", early: true), from: "a")
        stream.append(TestStream.session(), from: "a")
        stream.append(TestStream.packet("a-4", early: true), from: "a")
        stream.append(.restoreClaim(id: "mine", privateId: "pid"), from: "c")
        sameAsScan(stream, offset: "b-1", claim: "mine")
        XCTAssertEqual(offsetsOf(decide(stream, offset: "b-1", claim: "mine")), ["a-2", "a-4"])
    }

    func testANodeThatStartedWithinTheWindowDoesNotGuess() {
        var stream = TestStream()
        stream.append(TestStream.packet("o1"), from: "a")
        stream.append(.restoreClaim(id: "mine", privateId: "pid"), from: "c")
        XCTAssertEqual(decide(stream, claim: "mine", startedAgo: 5_000_000_000), .unknown, "the session record may be older than this node")
        XCTAssertEqual(decide(stream, claim: "mine"), .refused(.unknownSession))
    }

    func testTheLogHoldsNoMoreBytesThanItsBudgetAndSaysWhenAnOffsetMayHaveGone() {
        let now: UInt64 = 1_000_000_000_000
        var log = RecoveryLog(windowNanoseconds: window, capacity: 10_000, byteBudget: 100_000, startedAtNanoseconds: now - window)
        log.sessionRead(ClaimedSession(record: SessionRecord(privateId: "pid", socketId: "sock", rooms: [], data: ClusterValueEncoding.encode(["n": 1])),
                                       origin: "a", sequence: 1), atNanoseconds: now)
        let big = EngineMessage(text: String(repeating: "x", count: 30_000))
        for index in 0..<10 {
            log.packetRead(StreamedPacket(position: StreamPosition(offset: Int64(index)), origin: "a", sequence: UInt64(index + 2),
                                          offset: "o\(index)", selection: ClusterSocketSelection(), packet: EncodedPacket(messages: [big])),
                           atNanoseconds: now)
            XCTAssertLessThanOrEqual(log.byteCount, 100_000)
        }
        XCTAssertEqual(log.packetCount, 3, "three 30 KB packets fit in 100 KB")
        // The offset was dropped for the budget: another node may still have it, so no guess.
        XCTAssertEqual(log.claimRead(privateId: "pid", offset: "o2", atNanoseconds: now), .unknown)
    }

    private func offsetsOf(_ decision: RecoveryLog.Decision?) -> [String]? {
        guard case .restored(_, let missed)? = decision else { return nil }
        return missed.map(\.offset)
    }
}
