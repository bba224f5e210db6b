import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import SocketIO

/// Records the session hooks a cluster adapter uses to write sessions ahead of their
/// disconnection (so a client of a node that dies can be restored elsewhere).
private final class SessionHookAdapter: SocketIOAdapter {
    enum Hook: Equatable {
        case started(PersistedSession)
        case dataChanged(String, JSONValue)
        case closed(String)
        case persisted(PersistedSession)
    }

    let local: InMemoryAdapter
    let hooks = NIOLockedValueBox<[Hook]>([])

    init(namespace: SocketIONamespace) { local = InMemoryAdapter(namespace: namespace) }

    func start() async throws {}
    func close() async {}
    func serverCount() async -> Int { 1 }
    func addAll(_ socketId: String, rooms: Set<String>) { local.addAll(socketId, rooms: rooms) }
    func del(_ socketId: String, room: String) { local.del(socketId, room: room) }
    func delAll(_ socketId: String) { local.delAll(socketId) }
    func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions) { local.broadcast(packet, options: options) }
    func broadcastWithAck(_ packet: SocketIOPacket, options: BroadcastOptions, clientCount: @escaping @Sendable (Int) -> Void, ack: @escaping @Sendable (String, [JSONValue]) -> Void) {
        local.broadcastWithAck(packet, options: options, clientCount: clientCount, ack: ack)
    }
    func sockets(in rooms: Set<String>) -> Set<String> { local.sockets(in: rooms) }
    func socketRooms(_ socketId: String) -> Set<String>? { local.socketRooms(socketId) }
    func fetchSockets(_ options: BroadcastOptions) async throws(SocketIOAdapterError) -> [SocketDescription] { try await local.fetchSockets(options) }
    func addSockets(_ options: BroadcastOptions, rooms: Set<String>) { local.addSockets(options, rooms: rooms) }
    func delSockets(_ options: BroadcastOptions, rooms: Set<String>) { local.delSockets(options, rooms: rooms) }
    func disconnectSockets(_ options: BroadcastOptions, close: Bool) { local.disconnectSockets(options, close: close) }
    func serverSideEmit(_ args: [JSONValue], expectAcks: Bool, timeout: TimeAmount) async throws(SocketIOAdapterError) -> [JSONValue] { [] }
    func persistSession(_ session: PersistedSession) async { hooks.withLockedValue { $0.append(.persisted(session)) } }
    func restoreSession(privateId: String, offset: String) async -> RestoredSession? { nil }

    func sessionStarted(_ session: PersistedSession) { hooks.withLockedValue { $0.append(.started(session)) } }
    func sessionDataChanged(socketId: String, data: JSONValue) { hooks.withLockedValue { $0.append(.dataChanged(socketId, data)) } }
    func sessionClosed(socketId: String) { hooks.withLockedValue { $0.append(.closed(socketId)) } }
}

/// Polls until `condition` holds (at most about 3 s): some hooks run in a task after the close.
private func eventually(_ condition: () -> Bool) async throws -> Bool {
    for _ in 0..<300 where !condition() { try await Task.sleep(nanoseconds: 10_000_000) }
    return condition()
}

final class SessionHookTests: XCTestCase {
    private func server(recovery: Bool) -> (SocketIOServer, NIOLockedValueBox<SessionHookAdapter?>) {
        var configuration = SocketIOServerConfiguration()
        if recovery { configuration.connectionStateRecovery = ConnectionStateRecovery() }
        let adapter = NIOLockedValueBox<SessionHookAdapter?>(nil)
        configuration.adapterFactory = { namespace in
            let made = SessionHookAdapter(namespace: namespace)
            if namespace.name == "/" { adapter.withLockedValue { $0 = made } }
            return made
        }
        return (SocketIOServer(configuration), adapter)
    }

    func testTheAdapterHearsOfAConnectionItsDataAndARecoverableEnd() async throws {
        let (io, box) = server(recovery: true)
        let (connection, sid) = try await io.connectedClient()
        let adapter = try XCTUnwrap(box.withLockedValue { $0 })
        let socket = try XCTUnwrap(io.sockets.localSocket(id: sid))
        guard case .started(let started)? = adapter.hooks.withLockedValue({ $0.first }) else { return XCTFail("no sessionStarted") }
        XCTAssertEqual(started.socketId, sid)
        XCTAssertEqual(started.privateId, socket.privateId)
        XCTAssertEqual(started.rooms, [], "its own id is not a session room")

        socket.data = ["n": 1]
        XCTAssertEqual(adapter.hooks.withLockedValue { $0.last }, .dataChanged(sid, ["n": 1]))

        connection.close(reason: .transportClose)
        let persisted = try await eventually { adapter.hooks.withLockedValue { hooks in hooks.contains { if case .persisted = $0 { true } else { false } } } }
        XCTAssertTrue(persisted)
        XCTAssertFalse(adapter.hooks.withLockedValue { $0.contains(.closed(sid)) }, "a recoverable end is persisted, not closed")
    }

    func testALeaveOnPurposeClosesTheSession() async throws {
        let (io, box) = server(recovery: true)
        let (connection, sid) = try await io.connectedClient()
        let adapter = try XCTUnwrap(box.withLockedValue { $0 })
        try await connection.receive("41")
        let closed = try await eventually { adapter.hooks.withLockedValue { $0.contains(.closed(sid)) } }
        XCTAssertTrue(closed)
        XCTAssertFalse(adapter.hooks.withLockedValue { hooks in hooks.contains { if case .persisted = $0 { true } else { false } } })
    }

    func testWithoutRecoveryNoHookIsCalled() async throws {
        let (io, box) = server(recovery: false)
        let (connection, sid) = try await io.connectedClient()
        let adapter = try XCTUnwrap(box.withLockedValue { $0 })
        io.sockets.localSocket(id: sid)?.data = ["n": 1]
        try await connection.receive("41")
        _ = try await connection.settle()
        XCTAssertEqual(adapter.hooks.withLockedValue { $0 }, [])
    }
}
