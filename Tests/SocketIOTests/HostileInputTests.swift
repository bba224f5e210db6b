import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import SocketIO

/// Input shaped to cost the server: it must cost linear time, and a claim that cannot be one of
/// ours must not reach the adapter.
final class HostileInputTests: XCTestCase {
    // MARK: JSON objects

    func testFortyThousandDistinctKeysParseInLinearTime() throws {
        let members = (0..<40_000).map { "\"key\($0)\":\($0)" }.joined(separator: ",")
        let started = ContinuousClock.now
        let value = try JSONValue(parsing: "{" + members + "}")
        let elapsed = ContinuousClock.now - started
        XCTAssertEqual(value.objectValue?.count, 40_000)
        XCTAssertEqual(value["key39999"], .number(39_999))
        // Quadratic took 2.7 s in release; linear is a few ms (debug builds are slower).
        XCTAssertLessThan(elapsed, .milliseconds(1_500), "\(elapsed)")
    }

    func testDuplicateKeysKeepTheLastValueAtTheFirstPositionSmallAndLarge() throws {
        // Like JSON.parse: the last duplicate wins, at the position of the first.
        XCTAssertEqual(try JSONValue(parsing: #"{"a":1,"b":2,"a":3}"#).objectValue?.members.map(\.key), ["a", "b"])
        XCTAssertEqual(try JSONValue(parsing: #"{"a":1,"b":2,"a":3}"#)["a"], .number(3))
        // Past the linear-search limit the index takes over; same behaviour.
        let many = (0..<100).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        let value = try JSONValue(parsing: "{" + many + #","k5":"again","k99":"last","new":true}"#)
        let object = try XCTUnwrap(value.objectValue)
        XCTAssertEqual(object.count, 101)
        XCTAssertEqual(object.members[5].key, "k5")
        XCTAssertEqual(object.members[5].value, "again")
        XCTAssertEqual(object.members[99].value, "last")
        XCTAssertEqual(object.members[100].key, "new")
        // A duplicate seen while the object is still small, then more keys.
        let early = (0..<30).map { "\"k\($0 % 20)\":\($0)" }.joined(separator: ",")
        let earlyValue = try XCTUnwrap(try JSONValue(parsing: "{" + early + "}").objectValue)
        XCTAssertEqual(earlyValue.count, 20)
        XCTAssertEqual(earlyValue["k9"], .number(29))
        XCTAssertEqual(earlyValue["k10"], .number(10))
    }

    // MARK: Handshake headers

    func testRepeatedHeadersAreJoinedInLinearTimeOncePerConnection() async throws {
        let headers = (0..<39_000).map { (name: "X-Repeat", value: "v\($0)") }
        let started = ContinuousClock.now
        let joined = SocketIOHandshake.joinedHeaders(headers)
        XCTAssertLessThan(ContinuousClock.now - started, .milliseconds(1_000))
        XCTAssertEqual(joined["x-repeat"]?.hasPrefix("v0, v1, v2"), true)
        XCTAssertEqual(joined["x-repeat"]?.hasSuffix("v38998, v38999"), true)

        // Every namespace's socket sees the same headers (built once, by the client object).
        let io = SocketIOServer()
        io.of("/a").onConnection { _ in }
        let seen = NIOLockedValueBox<[[String: String]]>([])
        io.onConnection { socket in seen.withLockedValue { $0.append(socket.handshake.headers) } }
        io.of("/a").onConnection { socket in seen.withLockedValue { $0.append(socket.handshake.headers) } }
        let connection = try await io.openFakeConnection(headers: [("X-A", "1"), ("x-a", "2"), ("Host", "h")])
        try await connection.receive("0")
        _ = try await connection.nextText()
        try await connection.receive("0/a,")
        _ = try await connection.nextText()
        let both = seen.withLockedValue { $0 }
        XCTAssertEqual(both.count, 2)
        XCTAssertEqual(both.first, ["x-a": "1, 2", "host": "h"])
        XCTAssertEqual(both.first, both.last)
    }

    // MARK: Recovery claims

    func testOnlyPidsAndOffsetsOfOurMakingAreWellFormed() {
        XCTAssertTrue(RecoveryCredentials.isWellFormed(privateId: SocketIOSocket.makeId()))
        XCTAssertFalse(RecoveryCredentials.isWellFormed(privateId: String(repeating: "A", count: 70_000)))
        XCTAssertFalse(RecoveryCredentials.isWellFormed(privateId: "short"))
        XCTAssertFalse(RecoveryCredentials.isWellFormed(privateId: "AAAAAAAAAAAAAAAAAAA\u{e9}"))
        XCTAssertFalse(RecoveryCredentials.isWellFormed(privateId: "AAAAAAAAAAAAAAAAAA\"}"))
        var store = SessionStore(configuration: ConnectionStateRecovery())
        XCTAssertTrue(RecoveryCredentials.isWellFormed(offset: store.nextOffset()))
        XCTAssertTrue(RecoveryCredentials.isWellFormed(offset: "chat-3000-3k2j5h1l0a-1z"))
        for bogus in ["x", "", "node-", "-12", "node-XYZ", "node 1-2", String(repeating: "a", count: 300) + "-1", "n\u{e9}-1"] {
            XCTAssertFalse(RecoveryCredentials.isWellFormed(offset: bogus), bogus)
        }
    }

    func testABogusPidIsIgnoredAndTheSocketConnectsAsNew() async throws {
        let restores = NIOLockedValueBox(0)
        var configuration = SocketIOServerConfiguration(connectionStateRecovery: ConnectionStateRecovery())
        configuration.adapterFactory = { CountingRestoreAdapter(namespace: $0, restores: restores) }
        let io = SocketIOServer(configuration)
        let recovered = NIOLockedValueBox<[Bool]>([])
        io.onConnection { socket in recovered.withLockedValue { $0.append(socket.recovered) } }
        let connection = try await io.openFakeConnection()
        let hugePid = String(repeating: "A", count: 70_000)
        try await connection.receive(#"0{"pid":"\#(hugePid)","offset":"x"}"#)
        let reply = try JSONValue(parsing: String(try await connection.nextText().dropFirst()))
        XCTAssertNotNil(reply["sid"]?.stringValue)
        XCTAssertNotEqual(reply["pid"]?.stringValue, hugePid)
        XCTAssertEqual(recovered.withLockedValue { $0 }, [false])
        XCTAssertEqual(restores.withLockedValue { $0 }, 0, "the claim must not reach the adapter")

        // A well-formed claim still does.
        let other = try await io.openFakeConnection()
        try await other.receive(#"0{"pid":"AAAAAAAAAAAAAAAAAAAA","offset":"abc-1"}"#)
        _ = try await other.nextText()
        XCTAssertEqual(restores.withLockedValue { $0 }, 1)
    }

    // MARK: Connect admission

    func testConnectAdmissionRefusesOrDropsTheRecoveryClaim() async throws {
        let restores = NIOLockedValueBox(0)
        let attempts = NIOLockedValueBox<[ConnectAttempt]>([])
        var configuration = SocketIOServerConfiguration(connectionStateRecovery: ConnectionStateRecovery())
        configuration.adapterFactory = { CountingRestoreAdapter(namespace: $0, restores: restores) }
        configuration.connectAdmission = { attempt in
            let count = attempts.withLockedValue { $0.append(attempt); return $0.count }
            switch count {
            case 1: return .acceptWithoutRecovery
            case 2: return .refuse(ConnectError(message: "slow down", data: ["code": "rate_limited"]))
            default: return .accept
            }
        }
        let io = SocketIOServer(configuration)
        io.onConnection { _ in }
        let claim = #"0{"pid":"AAAAAAAAAAAAAAAAAAAA","offset":"abc-1"}"#
        let first = try await io.openFakeConnection()
        try await first.receive(EngineMessage(text: claim))
        let firstReply = try await first.nextText()
        XCTAssertTrue(firstReply.hasPrefix(#"0{"sid":"#), firstReply)
        XCTAssertEqual(restores.withLockedValue { $0 }, 0, "acceptWithoutRecovery skips the claim")

        let second = try await io.openFakeConnection()
        try await second.receive(EngineMessage(text: claim))
        try await assertEqual(try await second.nextText(), #"4{"message":"slow down","data":{"code":"rate_limited"}}"#)
        // The connection stays and may try again.
        try await second.receive(EngineMessage(text: claim))
        let retryReply = try await second.nextText()
        XCTAssertTrue(retryReply.hasPrefix(#"0{"sid":"#), retryReply)
        XCTAssertEqual(restores.withLockedValue { $0 }, 1)
        XCTAssertEqual(attempts.withLockedValue { $0.map(\.claimsRecovery) }, [true, true, true])
        XCTAssertEqual(attempts.withLockedValue { $0.first?.address }, "127.0.0.1")
    }
}

/// An in-memory adapter that counts restore attempts and never restores.
private final class CountingRestoreAdapter: SocketIOAdapter {
    let local: InMemoryAdapter
    let restores: NIOLockedValueBox<Int>

    init(namespace: SocketIONamespace, restores: NIOLockedValueBox<Int>) {
        self.local = InMemoryAdapter(namespace: namespace)
        self.restores = restores
    }

    func start() async throws {}
    func close() async {}
    func serverCount() async -> Int { 1 }
    func addAll(_ socketId: String, rooms: Set<String>) { local.addAll(socketId, rooms: rooms) }
    func del(_ socketId: String, room: String) { local.del(socketId, room: room) }
    func delAll(_ socketId: String) { local.delAll(socketId) }
    func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions) { local.broadcast(packet, options: options) }
    func broadcastWithAck(_ packet: SocketIOPacket, options: BroadcastOptions, clientCount: @escaping @Sendable (Int) -> Void,
                          ack: @escaping @Sendable (String, [JSONValue]) -> Void) {
        local.broadcastWithAck(packet, options: options, clientCount: clientCount, ack: ack)
    }
    func sockets(in rooms: Set<String>) -> Set<String> { local.sockets(in: rooms) }
    func socketRooms(_ socketId: String) -> Set<String>? { local.socketRooms(socketId) }
    func fetchSockets(_ options: BroadcastOptions) async throws(SocketIOAdapterError) -> [SocketDescription] {
        try await local.fetchSockets(options)
    }
    func addSockets(_ options: BroadcastOptions, rooms: Set<String>) { local.addSockets(options, rooms: rooms) }
    func delSockets(_ options: BroadcastOptions, rooms: Set<String>) { local.delSockets(options, rooms: rooms) }
    func disconnectSockets(_ options: BroadcastOptions, close: Bool) { local.disconnectSockets(options, close: close) }
    func serverSideEmit(_ args: [JSONValue], expectAcks: Bool, timeout: TimeAmount) async throws(SocketIOAdapterError) -> [JSONValue] { [] }
    func persistSession(_ session: PersistedSession) async {}
    func restoreSession(privateId: String, offset: String) async -> RestoredSession? {
        restores.withLockedValue { $0 += 1 }
        return nil
    }
}
