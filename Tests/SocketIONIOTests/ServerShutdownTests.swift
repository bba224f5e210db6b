import EngineIO
import NIOCore
import NIOPosix
import Testing
@testable import SocketIONIO

private let poll = "/engine.io/?EIO=4&transport=polling"
private let websocket = "/engine.io/?EIO=4&transport=websocket"

/// `EngineIOHTTPServer.shutdown`: every session is told, and the wait ends with them.
@Suite(.serialized) struct ServerShutdownTests {
    @Test func shutdownClosesConnectionsWithServerShuttingDown() async throws {
        let delegate = RecordingDelegate()
        var configuration = EngineServerConfiguration(pingInterval: .seconds(10), pingTimeout: .seconds(10))
        configuration.webSocketMinimumFlushGap = .zero
        let server = EngineIOHTTPServer(
            configuration: .init(host: "127.0.0.1", port: 0),
            endpoints: [EngineIOEndpoint(path: "/engine.io/", configuration: configuration, delegate: delegate)]
        )
        try await server.start()
        let port = try #require(server.port)
        let socket = try await TestWebSocket.connect(port: port, uri: websocket)
        _ = try await socket.nextText()
        _ = try await openPollingSession(port: port)
        await server.shutdown()
        #expect(try await socket.next() == .close(code: 1000))
        try await delegate.waitUntil { $0.closed.count == 2 }
        #expect(delegate.closeReasons == [.serverShuttingDown, .serverShuttingDown])
        await #expect(throws: (any Error).self) { _ = try await TestHTTP.request(port: port, uri: poll) }
    }

    @Test func shutdownReturnsWhenTheSessionsEndedNotAfterTheGracePeriod() async throws {
        let delegate = RecordingDelegate()
        var configuration = EngineServerConfiguration(pingInterval: .seconds(10), pingTimeout: .seconds(10))
        configuration.webSocketMinimumFlushGap = .zero
        var http = EngineIOHTTPServerConfiguration(host: "127.0.0.1", port: 0)
        http.shutdownGracePeriod = .seconds(120)
        let endpoint = EngineIOEndpoint(path: "/engine.io/", configuration: configuration, delegate: delegate)
        let server = EngineIOHTTPServer(configuration: http, endpoints: [endpoint])
        try await server.start()
        let port = try #require(server.port)
        let socket = try await TestWebSocket.connect(port: port, uri: websocket)
        _ = try await socket.nextText()
        let sid = try await openPollingSession(port: port)
        async let parked = TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
        try await delegate.waitUntil { $0.opened.count == 2 }
        try await Task.sleep(nanoseconds: 200_000_000)  // the GET is parked
        let started = ContinuousClock.now
        await server.shutdown()
        #expect(try await socket.next() == .close(code: 1000))
        #expect(try await parked.body == "1", "the parked poll gets the close packet")
        // Waiting out the grace period would take two minutes (and the heartbeat timeout 20 s):
        // ending with the session takes a round trip.
        #expect(ContinuousClock.now - started < .seconds(10))
        try await endpoint.sessionsEnded(on: MultiThreadedEventLoopGroup.singleton.any()).get()
    }
}
