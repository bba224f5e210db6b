import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import SocketIONIO

// Every kind of close must free what the connection allocated: its Engine.IO session and
// the WebSocket handlers it used. The delegate below keeps only weak references, so once a
// connection is closed nothing but a leak can keep them alive.

private let poll = "/engine.io/?EIO=4&transport=polling"
private let websocket = "/engine.io/?EIO=4&transport=websocket"

/// A weak reference, read and written only under `ReleaseTracker`'s lock.
private struct WeakReference: @unchecked Sendable {
    weak var object: AnyObject?
    let what: String
}

/// An Engine.IO delegate that remembers every session (and its WebSocket handler) weakly,
/// can answer an opened connection with a burst, and closes a connection on request.
private final class ReleaseTracker: EngineServerDelegate, EngineConnectionDelegate, Sendable {
    private let tracked = NIOLockedValueBox<[WeakReference]>([])
    private let closeReasons = NIOLockedValueBox<[EngineCloseReason]>([])
    private let burstOnOpen: [EngineMessage]

    init(burstOnOpen: [EngineMessage] = []) {
        self.burstOnOpen = burstOnOpen
    }

    func engineDidOpen(_ connection: any EngineConnection) {
        connection.delegate = self
        track(connection, as: "session")
        if !burstOnOpen.isEmpty { connection.send(burstOnOpen) }
    }

    func connection(_ connection: any EngineConnection, didReceive message: EngineMessage) {
        switch message.text {
        case "close me": connection.close(reason: .forcedClose)
        case "track transport": track(connection, as: "session")
        default: connection.send(message)
        }
    }

    func connectionDidClose(_ connection: any EngineConnection, reason: EngineCloseReason) {
        closeReasons.withLockedValue { $0.append(reason) }
    }

    /// Called on the session's loop, where its transport may be read.
    private func track(_ connection: any EngineConnection, as what: String) {
        var references = [WeakReference(object: connection as AnyObject, what: what)]
        if let session = connection as? EngineSession {
            references += session.webSocketHandlers.map { WeakReference(object: $0, what: "websocket handler") }
        }
        tracked.withLockedValue { $0.append(contentsOf: references) }
    }

    var reasons: [EngineCloseReason] { closeReasons.withLockedValue { $0 } }
    var trackedCount: Int { tracked.withLockedValue { $0.count } }

    func waitForClose(count: Int = 1, timeout: Double = 5) async throws {
        try await waitFor(timeout: timeout) { self.closeReasons.withLockedValue { $0.count >= count } }
    }

    /// Waits (bounded) until every tracked object is freed; names the survivors otherwise.
    func expectAllReleased(timeout: Double = 5, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        do {
            try await waitFor(timeout: timeout) { self.tracked.withLockedValue { $0.allSatisfy { $0.object == nil } } }
        } catch {
            let survivors = tracked.withLockedValue { $0.filter { $0.object != nil }.map(\.what) }
            Issue.record("still allocated after the close: \(survivors)", sourceLocation: sourceLocation)
        }
    }

    private func waitFor(timeout: Double, _ condition: @escaping @Sendable () -> Bool) async throws {
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeout * 1000))
        while !condition() {
            if NIODeadline.now() > deadline { throw TestTimeout() }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }
}

private func withReleaseServer(
    configure: (inout EngineServerConfiguration) -> Void = { _ in },
    tracker: ReleaseTracker = ReleaseTracker(),
    _ body: (Int, ReleaseTracker) async throws -> Void
) async throws {
    var configuration = EngineServerConfiguration(pingInterval: .milliseconds(300), pingTimeout: .milliseconds(200))
    configuration.webSocketMinimumFlushGap = .zero
    configure(&configuration)
    let server = EngineIOHTTPServer(
        configuration: EngineIOHTTPServerConfiguration(host: "127.0.0.1", port: 0),
        endpoints: [EngineIOEndpoint(path: "/engine.io/", configuration: configuration, delegate: tracker)]
    )
    try await server.start()
    do {
        try await body(try #require(server.port), tracker)
    } catch {
        await server.shutdown()
        throw error
    }
    await server.shutdown()
}

@Suite(.serialized) struct WebSocketReleaseTests {
    @Test func closedByTheClientsSocket() async throws {
        try await withReleaseServer { port, tracker in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await socket.nextText()
            #expect(tracker.trackedCount == 2)
            await socket.close()
            try await tracker.waitForClose()
            try await tracker.expectAllReleased()
        }
    }

    @Test func closedByTheClientsCloseFrame() async throws {
        try await withReleaseServer { port, tracker in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await socket.nextText()
            try await socket.sendClose()
            #expect(try await socket.next() == .close(code: 1000))
            try await tracker.waitForClose()
            try await tracker.expectAllReleased()
        }
    }

    @Test func closedByTheServer() async throws {
        try await withReleaseServer { port, tracker in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await socket.nextText()
            try await socket.send(text: "4close me")
            #expect(try await socket.next() == .close(code: 1000))
            try await tracker.waitForClose()
            #expect(tracker.reasons == [.forcedClose])
            try await tracker.expectAllReleased()
            await socket.close()
        }
    }

    @Test func closedByAPingTimeout() async throws {
        try await withReleaseServer { port, tracker in
            // The test client never answers pings.
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            try await tracker.waitForClose()
            #expect(tracker.reasons == [.pingTimeout])
            try await tracker.expectAllReleased()
            await socket.close()
        }
    }

    @Test func closedByATransportError() async throws {
        try await withReleaseServer { port, tracker in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await socket.nextText()
            try await socket.send(text: "not a packet")
            try await tracker.waitForClose()
            #expect(tracker.reasons == [.parseError])
            try await tracker.expectAllReleased()
            await socket.close()
        }
    }

    @Test func closedAsASlowClientThatNeverReadsAgain() async throws {
        // The close frame can never be written to a client that stopped reading: the socket
        // must still be closed (and everything freed) without the client's help.
        let burst = Array(repeating: EngineMessage(text: String(repeating: "x", count: 256 * 1024)), count: 64)
        try await withReleaseServer(
            configure: { $0.maxOutboundBufferBytes = 64 * 1024; $0.pingInterval = .seconds(30); $0.pingTimeout = .seconds(30) },
            tracker: ReleaseTracker(burstOnOpen: burst)
        ) { port, tracker in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket, autoRead: false)
            try await tracker.waitForClose()
            #expect(tracker.reasons == [.slowClient])
            try await tracker.expectAllReleased(timeout: Double(EngineWebSocketHandler.closeFrameGracePeriod.nanoseconds) / 1e9 + 3)
            await socket.close()
        }
    }
}

@Suite(.serialized) struct PollingReleaseTests {
    @Test func closedByTheClientsClosePacket() async throws {
        try await withReleaseServer { port, tracker in
            let sid = try await openPollingSession(port: port)
            let post = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "1")
            #expect(post.status == 200)
            try await tracker.waitForClose()
            #expect(tracker.reasons == [.transportClose])
            try await tracker.expectAllReleased()
        }
    }

    @Test func closedByTheServerWhileAGetIsParked() async throws {
        try await withReleaseServer(configure: { $0.pingInterval = .seconds(30); $0.pingTimeout = .seconds(30) }) { port, tracker in
            let sid = try await openPollingSession(port: port)
            async let parked = TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
            try await Task.sleep(nanoseconds: 50_000_000)
            _ = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "4close me")
            #expect(try await parked.body == "1")
            try await tracker.waitForClose()
            try await tracker.expectAllReleased()
        }
    }

    @Test func closedByAPingTimeoutWithNoPollEver() async throws {
        try await withReleaseServer { port, tracker in
            _ = try await openPollingSession(port: port)
            try await tracker.waitForClose()
            #expect(tracker.reasons == [.pingTimeout])
            // The sid is kept for one final GET for pingInterval + pingTimeout.
            try await tracker.expectAllReleased(timeout: 3)
        }
    }

    @Test func closedByAnUndecodablePost() async throws {
        try await withReleaseServer { port, tracker in
            let sid = try await openPollingSession(port: port)
            #expect(try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "abc").status == 400)
            try await tracker.waitForClose()
            #expect(tracker.reasons == [.parseError])
            try await tracker.expectAllReleased()
        }
    }
}

@Suite(.serialized) struct UpgradeReleaseTests {
    @Test func upgradedThenClosedByTheClient() async throws {
        try await withReleaseServer(configure: { $0.pingInterval = .seconds(30); $0.pingTimeout = .seconds(30) }) { port, tracker in
            let sid = try await openPollingSession(port: port)
            let socket = try await TestWebSocket.connect(port: port, uri: websocket + "&sid=\(sid)")
            try await socket.send(text: "2probe")
            #expect(try await socket.next() == .text("3probe"))
            try await socket.send(text: "5")
            // Remember the upgraded transport's handler too.
            try await socket.send(text: "4track transport")
            try await Task.sleep(nanoseconds: 100_000_000)
            #expect(tracker.trackedCount == 3)
            await socket.close()
            try await tracker.waitForClose()
            try await tracker.expectAllReleased()
        }
    }

    @Test func probeThatNeverCompletesThenSessionClosed() async throws {
        try await withReleaseServer(configure: {
            // Short enough that the sid kept for a final GET (ping interval + timeout) expires
            // within the test, long enough that no ping interferes before the close.
            $0.pingInterval = .seconds(1); $0.pingTimeout = .seconds(1); $0.upgradeTimeout = .milliseconds(200)
        }) { port, tracker in
            let sid = try await openPollingSession(port: port)
            let probe = try await TestWebSocket.connect(port: port, uri: websocket + "&sid=\(sid)")
            try await probe.send(text: "2probe")
            #expect(try await probe.next() == .text("3probe"))
            _ = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "4track transport")
            #expect(tracker.trackedCount == 3)
            // No "5": the upgrade times out and the server closes the probe.
            #expect(try await probe.next(timeout: 3) == .close(code: 1000))
            _ = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "1")
            try await tracker.waitForClose()
            try await tracker.expectAllReleased()
            await probe.close()
        }
    }
}
