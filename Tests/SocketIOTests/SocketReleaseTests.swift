import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import SocketIO

/// A closed connection leaves nothing in the Socket.IO layer: its client object and sockets
/// are freed (user handlers that capture their socket included), the namespace tables and
/// rooms forget them, pending acks are failed, and lost sessions expire with their window.
final class SocketReleaseTests: XCTestCase {
    /// A server whose handlers capture their socket, as real applications' do.
    private func makeServer(recovery: ConnectionStateRecovery? = nil) -> SocketIOServer {
        let io = SocketIOServer(SocketIOServerConfiguration(connectionStateRecovery: recovery))
        for name in ["/", "/custom"] {
            io.of(name).onConnection { socket in
                socket.join("lobby")
                socket.on("message") { args, _ in socket.emit("message-back", args) }
                socket.on("ask-client") { _, _ in socket.emit("question", [], timeout: .seconds(60)) { _ in _ = socket.id } }
                socket.onDisconnect { _ in _ = socket.rooms }
            }
        }
        return io
    }

    private struct Weak: @unchecked Sendable { weak var object: AnyObject? }

    /// The client object and every socket of `connection`, weakly, read on its loop.
    private func weakReferences(_ connection: FakeEngineConnection, namespaces: [SocketIONamespace]) async throws -> [Weak] {
        try await connection.eventLoop.submit {
            var references = [Weak(object: connection.delegate as AnyObject)]
            for namespace in namespaces {
                references += namespace.localSockets().filter { $0.connection === connection }.map { Weak(object: $0) }
            }
            return references
        }.get()
    }

    private func assertReleased(_ references: [Weak], file: StaticString = #filePath, line: UInt = #line) async throws {
        let deadline = NIODeadline.now() + .seconds(3)
        while references.contains(where: { $0.object != nil }), NIODeadline.now() < deadline {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertEqual(references.filter { $0.object != nil }.count, 0, "objects of a closed connection are still allocated", file: file, line: line)
    }

    func testEveryCloseReasonFreesTheClientAndItsSockets() async throws {
        let reasons: [EngineCloseReason] = [.transportClose, .transportError, .pingTimeout, .parseError, .forcedClose, .slowClient]
        for reason in reasons {
            let io = makeServer()
            let (root, custom) = (io.of("/"), io.of("/custom"))
            let (connection, _) = try await io.connectedClient("/")
            try await connection.receive("0/custom,")
            _ = try await connection.next()
            try await connection.receive(#"2["message","hi"]"#)
            try await connection.receive(#"2["ask-client"]"#)  // leaves an ack pending
            let references = try await weakReferences(connection, namespaces: [root, custom])
            XCTAssertEqual(references.count, 3, "client + two sockets")
            XCTAssertEqual((root.adapter as? InMemoryAdapter)?.roomCount, 2, "lobby + the socket's own room")

            connection.close(reason: reason)
            try await assertReleased(references)
            XCTAssertTrue(root.localSockets().isEmpty && custom.localSockets().isEmpty, "\(reason)")
            for namespace in [root, custom] {
                let adapter = try XCTUnwrap(namespace.adapter as? InMemoryAdapter)
                XCTAssertEqual(adapter.roomCount, 0, "\(reason): rooms of closed sockets remain")
                XCTAssertEqual(adapter.socketCount, 0, "\(reason)")
            }
        }
    }

    func testANamespaceDisconnectFreesTheSocketButNotTheClient() async throws {
        let io = makeServer()
        let (connection, _) = try await io.connectedClient("/custom")
        let references = try await weakReferences(connection, namespaces: [io.of("/custom")])
        try await connection.receive("1/custom,")
        try await Task.sleep(nanoseconds: 50_000_000)
        XCTAssertNil(references[1].object, "the socket that left its namespace")
        XCTAssertNotNil(references[0].object, "the client stays with its open connection")
        connection.close(reason: .transportClose)
        try await assertReleased(references)
    }

    func testRefusedAndUnfinishedConnectsFreeTheClient() async throws {
        let io = makeServer()
        io.of("/custom").use { _ in throw ConnectError(message: "no") }
        let connection = try await io.openFakeConnection()
        try await connection.receive("0/custom,")
        _ = try await connection.next()
        try await connection.receive("0/nowhere,")
        _ = try await connection.next()
        let references = try await weakReferences(connection, namespaces: [])
        connection.close(reason: .transportClose)
        try await assertReleased(references)
    }

    func testTheRecoveryLogKeepsTheNewestPacketsWithinItsByteBudget() async throws {
        let io = makeServer(recovery: ConnectionStateRecovery(maxLoggedBytes: 100_000))
        let (watcher, _) = try await io.connectedClient("/")
        let big = String(repeating: "x", count: 30_000)
        for index in 0..<10 { io.emit("big", .string(big), .number(String(index))) }
        _ = try await watcher.next(10)
        let adapter = try XCTUnwrap(io.of("/").adapter as? InMemoryAdapter)
        let logged = adapter.loggedPacketBytes
        XCTAssertLessThanOrEqual(logged, 100_000)
        XCTAssertGreaterThan(logged, 60_000, "the newest packets stay")
    }

    func testADirectEmitWithoutRecoveryIsNotLogged() async throws {
        let io = makeServer(recovery: ConnectionStateRecovery())
        io.of("/").onConnection { socket in socket.emitWithoutRecovery("snapshot", [.string(String(repeating: "y", count: 10_000))]) }
        let (connection, _) = try await io.connectedClient("/")
        let texts = try await connection.next(1)
        XCTAssertTrue(texts[0].hasPrefix("2[\"snapshot\""), texts[0])
        let arguments = try JSONValue(parsing: String(texts[0].dropFirst())).arrayValue
        XCTAssertEqual(arguments?.count, 2, "the event and its argument, no recovery offset appended")
        XCTAssertEqual(try XCTUnwrap(io.of("/").adapter as? InMemoryAdapter).loggedPacketBytes, 0)
    }

    func testLostSessionsExpireWithTheirWindow() async throws {
        let io = makeServer(recovery: ConnectionStateRecovery(maxDisconnectionDuration: .milliseconds(200)))
        let adapter = try XCTUnwrap(io.of("/").adapter as? InMemoryAdapter)
        for _ in 0..<20 {
            let (connection, _) = try await io.connectedClient("/")
            connection.close(reason: .transportClose)
        }
        try await Task.sleep(nanoseconds: 100_000_000)
        XCTAssertEqual(adapter.recoverableSessionCount, 20)
        try await Task.sleep(nanoseconds: 300_000_000)
        // The next loss prunes every expired one.
        let (last, _) = try await io.connectedClient("/")
        last.close(reason: .transportClose)
        try await Task.sleep(nanoseconds: 100_000_000)
        XCTAssertEqual(adapter.recoverableSessionCount, 1)
    }
}
