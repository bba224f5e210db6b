import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import SocketIO

/// A stand-in for a cluster adapter: delegates local work to InMemoryAdapter and records
/// what would cross the network, so the seam's contract is checked from the outside.
private final class RecordingAdapter: SocketIOAdapter {
    let local: InMemoryAdapter
    let broadcasts = NIOLockedValueBox<[(SocketIOPacket, BroadcastOptions)]>([])
    let serverSideEmits = NIOLockedValueBox<[[JSONValue]]>([])

    init(namespace: SocketIONamespace) { local = InMemoryAdapter(namespace: namespace) }

    func start() async throws {}
    func close() async {}
    func serverCount() async -> Int { 2 }
    func addAll(_ socketId: String, rooms: Set<String>) { local.addAll(socketId, rooms: rooms) }
    func del(_ socketId: String, room: String) { local.del(socketId, room: room) }
    func delAll(_ socketId: String) { local.delAll(socketId) }
    func broadcast(_ packet: SocketIOPacket, options: BroadcastOptions) {
        broadcasts.withLockedValue { $0.append((packet, options)) }
        local.broadcast(packet, options: options)
    }
    func broadcastWithAck(_ packet: SocketIOPacket, options: BroadcastOptions, clientCount: @escaping @Sendable (Int) -> Void, ack: @escaping @Sendable (String, [JSONValue]) -> Void) {
        local.broadcastWithAck(packet, options: options, clientCount: clientCount, ack: ack)
        // The "other node" has one socket which answers at once.
        clientCount(1)
        ack("remote-socket", ["from-remote"])
    }
    func sockets(in rooms: Set<String>) -> Set<String> { local.sockets(in: rooms) }
    func socketRooms(_ socketId: String) -> Set<String>? { local.socketRooms(socketId) }
    func fetchSockets(_ options: BroadcastOptions) async throws(SocketIOAdapterError) -> [SocketDescription] {
        let remote = SocketDescription(id: "remote-socket", namespace: "/", handshake: SocketIOHandshake(jsonValue: [:])!, rooms: ["remote-socket"], data: ["node": 2])
        return try await local.fetchSockets(options) + [remote]
    }
    func addSockets(_ options: BroadcastOptions, rooms: Set<String>) { local.addSockets(options, rooms: rooms) }
    func delSockets(_ options: BroadcastOptions, rooms: Set<String>) { local.delSockets(options, rooms: rooms) }
    func disconnectSockets(_ options: BroadcastOptions, close: Bool) { local.disconnectSockets(options, close: close) }
    func serverSideEmit(_ args: [JSONValue], expectAcks: Bool, timeout: TimeAmount) async throws(SocketIOAdapterError) -> [JSONValue] {
        serverSideEmits.withLockedValue { $0.append(args) }
        return expectAcks ? ["ok-from-node-2"] : []
    }
    func persistSession(_ session: PersistedSession) async {}
    /// What `restoreSession` finds (nothing unless a test sets it).
    let restorable = NIOLockedValueBox<RestoredSession?>(nil)
    func restoreSession(privateId: String, offset: String) async -> RestoredSession? { restorable.withLockedValue { $0 } }

    /// Joins wait here until `releaseRoutes` (as a cluster adapter waits for its broker).
    let routeWaiters = NIOLockedValueBox<[(Set<String>, CheckedContinuation<Void, Never>)]>([])
    func waitUntilRoomsRouted(_ rooms: Set<String>) async {
        await withCheckedContinuation { continuation in routeWaiters.withLockedValue { $0.append((rooms, continuation)) } }
    }
    func releaseRoutes() -> [Set<String>] {
        let waiters = routeWaiters.withLockedValue { waiters in
            defer { waiters.removeAll() }
            return waiters
        }
        for (_, continuation) in waiters { continuation.resume() }
        return waiters.map(\.0)
    }
}

final class AdapterSeamTests: XCTestCase {
    func testServerOperationsGoThroughTheConfiguredAdapter() async throws {
        var configuration = SocketIOServerConfiguration()
        let adapters = NIOLockedValueBox<[String: RecordingAdapter]>([:])
        configuration.adapterFactory = { namespace in
            let adapter = RecordingAdapter(namespace: namespace)
            adapters.withLockedValue { $0[namespace.name] = adapter }
            return adapter
        }
        let io = SocketIOServer(configuration)
        let (connection, sid) = try await io.connectedClient()
        let adapter = try XCTUnwrap(adapters.withLockedValue { $0["/"] })

        io.to("room").except("other").volatile.local.emit("e", 1)
        let (packet, options) = try XCTUnwrap(adapter.broadcasts.withLockedValue { $0.last })
        XCTAssertEqual(packet, .event("e", [1]))
        XCTAssertEqual(options, BroadcastOptions(rooms: ["room"], except: ["other"], flags: BroadcastFlags(volatile: true, local: true)))

        // Acked broadcast waits for both nodes' counts and answers.
        async let result = io.timeout(.seconds(3)).emitWithAck("q")
        let sent = try await connection.nextText()
        try await connection.receive("3\(sent.dropFirst().prefix { $0.isNumber })[\"from-local\"]")
        let answers = await result
        XCTAssertTrue(answers.complete)
        XCTAssertEqual(Set(answers.responses), ["from-local", "from-remote"])

        let sockets = try await io.fetchSockets()
        XCTAssertEqual(Set(sockets.map(\.id)), [sid, "remote-socket"])

        try await io.serverSideEmit("hello", 1)
        XCTAssertEqual(adapter.serverSideEmits.withLockedValue { $0 }, [["hello", 1]])
        try await assertEqual(try await io.sockets.serverSideEmitWithAck("ping", []), ["ok-from-node-2"])

        // Incoming server-side emits reach the namespace's handlers, ack included.
        let received = NIOLockedValueBox<[JSONValue]>([])
        io.sockets.onServerSideEmit("sync") { args, ack in
            received.withLockedValue { $0 = args }
            ack?("done")
        }
        let answered = NIOLockedValueBox<[JSONValue]>([])
        io.sockets.handleServerSideEmit(["sync", "a"], ack: SocketIOAcknowledgement { args in answered.withLockedValue { $0 = args } })
        XCTAssertEqual(received.withLockedValue { $0 }, ["a"])
        XCTAssertEqual(answered.withLockedValue { $0 }, ["done"])
    }

    func testJoinAndWaitReturnsOnlyOnceTheAdapterRoutedTheRooms() async throws {
        var configuration = SocketIOServerConfiguration()
        let adapters = NIOLockedValueBox<[String: RecordingAdapter]>([:])
        configuration.adapterFactory = { namespace in
            let adapter = RecordingAdapter(namespace: namespace)
            adapters.withLockedValue { $0[namespace.name] = adapter }
            return adapter
        }
        let io = SocketIOServer(configuration)
        let (_, sid) = try await io.connectedClient()
        let adapter = try XCTUnwrap(adapters.withLockedValue { $0["/"] })
        let socket = try XCTUnwrap(io.sockets.localSocket(id: sid))

        let finished = NIOLockedValueBox(false)
        let join = Task {
            await socket.joinAndWait("r1", "r2")
            finished.withLockedValue { $0 = true }
        }
        // The membership is local and immediate; only the return waits for the adapter.
        while adapter.routeWaiters.withLockedValue({ $0.isEmpty }) { await Task.yield() }
        XCTAssertEqual(socket.rooms, [sid, "r1", "r2"])
        try await Task.sleep(nanoseconds: 50_000_000)
        XCTAssertFalse(finished.withLockedValue { $0 }, "returned before the adapter said the rooms are routed")
        XCTAssertEqual(adapter.releaseRoutes(), [["r1", "r2"]])
        await join.value
        XCTAssertTrue(finished.withLockedValue { $0 })
    }

    func testJoinAndWaitWithTheInMemoryAdapterJoinsAtOnce() async throws {
        let io = SocketIOServer(SocketIOServerConfiguration())
        let (_, sid) = try await io.connectedClient()
        let socket = try XCTUnwrap(io.sockets.localSocket(id: sid))
        await socket.joinAndWait("lobby")
        XCTAssertEqual(socket.rooms, [sid, "lobby"])
    }

    func testARestoredSocketIsConnectedOnlyOnceItsRoomsAreRouted() async throws {
        var configuration = SocketIOServerConfiguration(connectionStateRecovery: ConnectionStateRecovery())
        let adapters = NIOLockedValueBox<[String: RecordingAdapter]>([:])
        configuration.adapterFactory = { namespace in
            let adapter = RecordingAdapter(namespace: namespace)
            adapters.withLockedValue { $0[namespace.name] = adapter }
            return adapter
        }
        let io = SocketIOServer(configuration)
        let adapter = try XCTUnwrap(adapters.withLockedValue { $0["/"] })
        adapter.restorable.withLockedValue {
            $0 = RestoredSession(session: PersistedSession(socketId: "old-id", privateId: "p", rooms: ["r"], data: .null), missedPackets: [])
        }
        let connection = try await io.openFakeConnection()
        // A pid and offset of the shape this server issues (others are ignored before the adapter).
        try await connection.receive(#"0{"pid":"AAAAAAAAAAAAAAAAAAAA","offset":"o-1"}"#)
        while adapter.routeWaiters.withLockedValue({ $0.isEmpty }) { await Task.yield() }
        XCTAssertEqual(adapter.socketRooms("old-id"), ["r"], "the rooms are joined before the client hears of it")
        try await assertEqual(try await connection.settle(), [], "no CONNECT reply before the rooms are routed")
        XCTAssertEqual(adapter.releaseRoutes(), [["r"]])
        let reply = try await connection.nextText()
        XCTAssertTrue(reply.hasPrefix(#"0{"sid":"old-id""#), reply)
        XCTAssertEqual(adapter.socketRooms("old-id"), ["old-id", "r"])
    }
}
