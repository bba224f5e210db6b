import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import SocketIO

final class RecoveryTests: XCTestCase {
    private func makeServer(duration: TimeAmount = .seconds(5)) -> (SocketIOServer, NIOLockedValueBox<[Bool]>) {
        let io = SocketIOServer(SocketIOServerConfiguration(connectionStateRecovery: ConnectionStateRecovery(maxDisconnectionDuration: duration)))
        let recoveredFlags = NIOLockedValueBox<[Bool]>([])
        io.onConnection { socket in
            recoveredFlags.withLockedValue { $0.append(socket.recovered) }
            if !socket.recovered {
                socket.join("news")
                socket.data = ["score": 7]
            }
        }
        return (io, recoveredFlags)
    }

    func testEmitsCarryOffsetsAndReconnectRestoresSession() async throws {
        let (io, recoveredFlags) = makeServer()
        let connection = try await io.openFakeConnection()
        try await connection.receive("0")
        let reply = try JSONValue(parsing: String(try await connection.nextText().dropFirst()))
        XCTAssertEqual(reply.objectValue?.keys, ["sid", "pid"])
        let sid = try XCTUnwrap(reply["sid"]?.stringValue), pid = try XCTUnwrap(reply["pid"]?.stringValue)

        io.to("news").emit("headline", "first")
        let first = try JSONValue(parsing: String(try await connection.nextText().dropFirst()))
        XCTAssertEqual(first.arrayValue?.prefix(2), ["headline", "first"])
        let offset = try XCTUnwrap(first.arrayValue?.last?.stringValue)

        // Volatile packets and acked emits get no offset.
        io.volatile.emit("v")
        try await assertEqual(try await connection.nextText(), #"2["v"]"#)

        connection.close(reason: .transportClose)
        _ = try await connection.waitForClose()
        try await Task.sleep(nanoseconds: 50_000_000)  // persistence runs in a Task
        io.to("news").emit("headline", "missed")
        io.to("elsewhere").emit("not-for-us")

        let again = try await io.openFakeConnection()
        try await again.receive(#"0{"pid":"\#(pid)","offset":"\#(offset)"}"#)
        let againReply = try JSONValue(parsing: String(try await again.nextText().dropFirst()))
        XCTAssertEqual(againReply["sid"]?.stringValue, sid)
        XCTAssertEqual(againReply["pid"]?.stringValue, pid)
        let missed = try JSONValue(parsing: String(try await again.nextText().dropFirst()))
        XCTAssertEqual(missed.arrayValue?.prefix(2), ["headline", "missed"])
        try await assertEqual(try await again.settle(), [])
        XCTAssertEqual(recoveredFlags.withLockedValue { $0 }, [false, true])
        let socket = try XCTUnwrap(io.sockets.localSocket(id: sid))
        XCTAssertTrue(socket.recovered)
        XCTAssertEqual(socket.rooms, [sid, "news"])
        XCTAssertEqual(socket.data, ["score": 7])

        // A session is restored once only.
        let third = try await io.openFakeConnection()
        try await third.receive(#"0{"pid":"\#(pid)","offset":"\#(offset)"}"#)
        let thirdReply = try JSONValue(parsing: String(try await third.nextText().dropFirst()))
        XCTAssertNotEqual(thirdReply["sid"]?.stringValue, sid)
    }

    /// Between the restore (which collects the missed packets) and the connect (which puts the
    /// socket in the namespace's table) middlewares may run for a while; a packet emitted then
    /// must still reach the socket, once, after the replay.
    func testAPacketEmittedWhileARestoredSocketIsAdmittedArrivesOnceAfterTheReplay() async throws {
        let io = SocketIOServer(SocketIOServerConfiguration(connectionStateRecovery: ConnectionStateRecovery(skipMiddlewares: false)))
        io.onConnection { socket in if !socket.recovered { socket.join("news") } }
        io.use { socket in
            // While the restored socket is being admitted: one packet for its room, one not.
            if socket.recovered {
                io.to("news").emit("headline", "during")
                io.to("elsewhere").emit("not-for-us")
                try await Task.sleep(nanoseconds: 20_000_000)
            }
        }
        let connection = try await io.openFakeConnection()
        try await connection.receive("0")
        let reply = try JSONValue(parsing: String(try await connection.nextText().dropFirst()))
        let pid = try XCTUnwrap(reply["pid"]?.stringValue)
        io.to("news").emit("headline", "first")
        let first = try JSONValue(parsing: String(try await connection.nextText().dropFirst()))
        let offset = try XCTUnwrap(first.arrayValue?.last?.stringValue)
        connection.close(reason: .transportClose)
        _ = try await connection.waitForClose()
        try await Task.sleep(nanoseconds: 50_000_000)  // persistence runs in a Task
        io.to("news").emit("headline", "missed")

        let again = try await io.openFakeConnection()
        try await again.receive(#"0{"pid":"\#(pid)","offset":"\#(offset)"}"#)
        let againReply = try JSONValue(parsing: String(try await again.nextText().dropFirst()))
        XCTAssertEqual(againReply["pid"]?.stringValue, pid, "recovered")
        var headlines: [JSONValue] = []
        for _ in 0..<2 {
            let event = try JSONValue(parsing: String(try await again.nextText().dropFirst()))
            headlines.append(event.arrayValue?[1] ?? .null)
        }
        XCTAssertEqual(headlines, ["missed", "during"])
        try await assertEqual(try await again.settle(), [])
    }

    func testClientNamespaceDisconnectAndExpiredSessionsAreNotRecovered() async throws {
        let (io, recoveredFlags) = makeServer(duration: .milliseconds(100))
        for closeByClient in [true, false] {
            let connection = try await io.openFakeConnection()
            try await connection.receive("0")
            let reply = try JSONValue(parsing: String(try await connection.nextText().dropFirst()))
            io.emit("tick")
            let tick = try await connection.nextText()
            let offset = try XCTUnwrap(try JSONValue(parsing: String(tick.dropFirst())).arrayValue?.last?.stringValue)
            if closeByClient {
                try await connection.receive("1")
            } else {
                connection.close(reason: .transportClose)
            }
            try await Task.sleep(nanoseconds: 200_000_000)  // longer than maxDisconnectionDuration
            let again = try await io.openFakeConnection()
            try await again.receive(#"0{"pid":"\#(reply["pid"]!.stringValue!)","offset":"\#(offset)"}"#)
            let againReply = try JSONValue(parsing: String(try await again.nextText().dropFirst()))
            XCTAssertNotEqual(againReply["sid"], reply["sid"])
        }
        XCTAssertEqual(recoveredFlags.withLockedValue { $0 }, [false, false, false, false])
    }

    func testSessionStoreIsBounded() {
        var store = SessionStore(configuration: ConnectionStateRecovery(maxDisconnectionDuration: .seconds(60), maxLoggedPackets: 3))
        var offsets: [String] = []
        for index in 0..<10 {
            let offset = store.nextOffset()
            offsets.append(offset)
            store.record(offset: offset, data: ["e", .number(index)], options: BroadcastOptions())
        }
        store.persist(PersistedSession(socketId: "s", privateId: "p", rooms: [], data: .null))
        // The first offsets fell out of the log: recovering from them would lose packets.
        XCTAssertNil(store.restore(privateId: "p", offset: offsets[0]))
        store.persist(PersistedSession(socketId: "s", privateId: "p", rooms: [], data: .null))
        let restored = store.restore(privateId: "p", offset: offsets[7])
        XCTAssertEqual(restored?.missedPackets, [["e", 8], ["e", 9]])
    }
}
