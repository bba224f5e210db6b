import EngineIO
import NIOCore
import NIOHTTP1
import Testing
@testable import SocketIONIO

private let poll = "/engine.io/?EIO=4&transport=polling"
private let websocket = "/engine.io/?EIO=4&transport=websocket"

@Suite(.serialized) struct PollingTests {
    @Test func handshakeOpenPacketAndHeaders() async throws {
        try await withTestServer { _, port, delegate in
            let response = try await TestHTTP.request(port: port, uri: poll)
            #expect(response.status == 200)
            #expect(response.headers.first(name: "Content-Type") == "text/plain; charset=UTF-8")
            let sid = try await openPollingSession(port: port)
            #expect(response.body.hasPrefix("0{\"sid\":\""))
            #expect(response.body.hasSuffix("\",\"upgrades\":[\"websocket\"],\"pingInterval\":300,\"pingTimeout\":200,\"maxPayload\":1000000}"))
            #expect(!response.body.contains(sid))  // every session gets a new sid
            try await delegate.waitUntil { $0.opened.count == 2 }
        }
    }

    @Test func postedTextAndBinaryComeBackInOneGet() async throws {
        try await withTestServer { server, port, _ in
            let sid = try await openPollingSession(port: port)
            let post = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "4hello\u{1e}bAQIDBA==")
            #expect(post.status == 200 && post.body == "ok")
            let get = try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
            #expect(get.status == 200 && get.body == "4hello\u{1e}bAQIDBA==")
            #expect(server.connectionCounts == EngineConnectionCounts(polling: 1, websocket: 0))
        }
    }

    @Test func getWaitsForData() async throws {
        try await withTestServer { _, port, _ in
            let sid = try await openPollingSession(port: port)
            async let parked = TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
            try await Task.sleep(nanoseconds: 50_000_000)
            _ = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "4late")
            let answer = try await parked
            #expect(answer.body == "4late")
        }
    }

    @Test func duplicateGetClosesTheSession() async throws {
        try await withTestServer { _, port, delegate in
            let sid = try await openPollingSession(port: port)
            async let first = TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
            try await Task.sleep(nanoseconds: 50_000_000)
            let second = try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
            #expect(second.status == 400)
            #expect(try await first.body == "1")
            #expect(try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)").status == 400)
            try await delegate.waitUntil { $0.closed.count == 1 }
            #expect(delegate.closeReasons == [.transportError])
        }
    }

    @Test func undecodablePostClosesTheSession() async throws {
        try await withTestServer { _, port, delegate in
            let sid = try await openPollingSession(port: port)
            let post = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "abc")
            #expect(post.status == 400)
            #expect(try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)").status == 400)
            #expect(delegate.closeReasons == [.parseError])
            // The server keeps serving others.
            _ = try await openPollingSession(port: port)
        }
    }

    @Test func closePacketReleasesTheParkedGetWithNoop() async throws {
        try await withTestServer { _, port, delegate in
            let sid = try await openPollingSession(port: port)
            async let parked = TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
            try await Task.sleep(nanoseconds: 50_000_000)
            _ = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "1")
            #expect(try await parked.body == "6")
            #expect(try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)").status == 400)
            #expect(delegate.closeReasons == [.transportClose])
        }
    }

    @Test func heartbeatOverPollingAndPingTimeout() async throws {
        try await withTestServer { _, port, delegate in
            let sid = try await openPollingSession(port: port)
            for _ in 0..<2 {
                let ping = try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
                #expect(ping.body == "2")
                _ = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "3")
            }
            // Now stop answering: the session dies pingInterval + pingTimeout later.
            try await Task.sleep(nanoseconds: 600_000_000)
            #expect(try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)").status == 400)
            #expect(delegate.closeReasons == [.pingTimeout])
        }
    }

    @Test func serverCloseIsCollectedByTheNextGet() async throws {
        try await withTestServer { _, port, delegate in
            let sid = try await openPollingSession(port: port)
            let connection = try #require(delegate.record.withLockedValue { $0.connections.first })
            connection.send(EngineMessage(text: "bye"))
            connection.close(reason: .forcedClose)
            #expect(try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)").body == "4bye\u{1e}1")
            #expect(try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)").status == 400)
            #expect(delegate.closeReasons == [.forcedClose])
        }
    }

    @Test func aPollingConnectionIsWritableOnlyWhileAGetIsParked() async throws {
        try await withTestServer(configure: { $0.pingInterval = .seconds(10) }, delegate: RecordingDelegate(echo: false)) { _, port, delegate in
            let sid = try await openPollingSession(port: port)
            try await delegate.waitUntil { $0.opened.count == 1 }
            let connection = try #require(delegate.record.withLockedValue { $0.connections.first })
            let writable: @Sendable () async throws -> Bool = { try await connection.eventLoop.submit { connection.isWritable }.get() }
            #expect(try await !writable())
            async let parked = TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
            let deadline = NIODeadline.now() + .seconds(3)
            while try await !writable() {
                if NIODeadline.now() > deadline { throw TestTimeout() }
                try await Task.sleep(nanoseconds: 5_000_000)
            }
            connection.send(EngineMessage(text: "released"))
            #expect(try await parked.body == "4released")
            #expect(try await !writable())
        }
    }

    @Test func oversizedPostIsRefused() async throws {
        try await withTestServer(configure: { $0.maxPayload = 100 }) { _, port, _ in
            let sid = try await openPollingSession(port: port)
            let post = try await TestHTTP.request(
                port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "4" + String(repeating: "x", count: 200))
            #expect(post.status == 413)
        }
    }
}

@Suite(.serialized) struct RequestErrorTests {
    private func expectError(_ response: TestResponse, code: Int, message: String) {
        #expect(response.status == 400)
        #expect(response.headers.first(name: "Content-Type") == "application/json")
        #expect(response.body == "{\"code\":\(code),\"message\":\"\(message)\"}")
    }

    @Test func errorTableOverHTTP() async throws {
        try await withTestServer { _, port, _ in
            expectError(try await TestHTTP.request(port: port, uri: "/engine.io/?EIO=4"), code: 0, message: "Transport unknown")
            expectError(try await TestHTTP.request(port: port, uri: "/engine.io/?EIO=4&transport=abc"), code: 0, message: "Transport unknown")
            expectError(try await TestHTTP.request(port: port, uri: poll + "&sid=nope"), code: 1, message: "Session ID unknown")
            expectError(try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=nope", body: "4x"),
                        code: 1, message: "Session ID unknown")
            expectError(try await TestHTTP.request(port: port, method: .POST, uri: poll), code: 2, message: "Bad handshake method")
            expectError(try await TestHTTP.request(port: port, method: .PUT, uri: poll), code: 2, message: "Bad handshake method")
            expectError(try await TestHTTP.request(port: port, uri: websocket), code: 3, message: "Bad request")
            expectError(try await TestHTTP.request(port: port, uri: "/engine.io/?transport=polling"), code: 5,
                        message: "Unsupported protocol version")
            expectError(try await TestHTTP.request(port: port, uri: "/engine.io/?EIO=abc&transport=polling"), code: 5,
                        message: "Unsupported protocol version")
        }
    }

    @Test func corsPreflightAndHeaders() async throws {
        try await withTestServer(configure: { $0.cors = EngineCORSConfiguration(allowedOrigins: .list(["http://app"]), allowCredentials: true) }) { _, port, _ in
            let preflight = try await TestHTTP.request(port: port, method: .OPTIONS, uri: poll, headers: [
                "Origin": "http://app", "Access-Control-Request-Headers": "content-type",
            ])
            #expect(preflight.status == 204)
            #expect(preflight.headers.first(name: "Access-Control-Allow-Origin") == "http://app")
            #expect(preflight.headers.first(name: "Access-Control-Allow-Credentials") == "true")
            #expect(preflight.headers.first(name: "Access-Control-Allow-Headers") == "content-type")
            let other = try await TestHTTP.request(port: port, uri: poll, headers: ["Origin": "http://evil"])
            #expect(other.status == 200)
            #expect(other.headers.first(name: "Access-Control-Allow-Origin") == nil)
        }
    }

    @Test func fallbackServesOtherPaths() async throws {
        let fallback: HTTPFallbackHandler = { request in
            if request.path == "/healthz" { return HTTPFallbackResponse(status: .ok, contentType: "text/plain", body: "healthy \(request.method)") }
            if request.path == "/echo" { return HTTPFallbackResponse(status: .ok, headers: [:], body: request.body) }
            return .notFound
        }
        try await withTestServer(fallback: fallback) { _, port, _ in
            let health = try await TestHTTP.request(port: port, uri: "/healthz?x=1")
            #expect(health.status == 200 && health.body == "healthy GET")
            #expect(try await TestHTTP.request(port: port, method: .POST, uri: "/echo", body: "abc").body == "abc")
            #expect(try await TestHTTP.request(port: port, uri: "/nothing").status == 404)
        }
        try await withTestServer { _, port, _ in
            let withoutFallback = try await TestHTTP.request(port: port, uri: "/healthz")
            #expect(withoutFallback.status == 404)
        }
    }
}

@Suite(.serialized) struct WebSocketTests {
    @Test func handshakeEchoAndHeartbeat() async throws {
        try await withTestServer { server, port, delegate in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            let open = try #require(try await socket.nextText())
            #expect(open.hasPrefix("0{\"sid\":\"") && open.contains("\"upgrades\":[]"))
            #expect(server.connectionCounts == EngineConnectionCounts(polling: 0, websocket: 1))
            // A ping (every 300 ms) may come before an echo on a loaded machine: answer it
            // and keep reading, so the echo is checked rather than the timing.
            try await socket.send(text: "4hello")
            #expect(try await socket.nextAnsweringPings() == .text("4hello"))
            try await socket.send(binary: [1, 2, 3, 4])
            #expect(try await socket.nextAnsweringPings() == .binary([1, 2, 3, 4]))
            for _ in 0..<2 {
                #expect(try await socket.next() == .text("2"))
                try await socket.send(text: "3")
            }
            #expect(delegate.closeReasons.isEmpty)
            // No pong: closed with a close frame.
            #expect(try await socket.next() == .text("2"))
            #expect(try await socket.next() == .close(code: 1000))
            try await delegate.waitUntil { $0.closed.count == 1 }
            #expect(delegate.closeReasons == [.pingTimeout])
            #expect(server.connectionCounts.total == 0)
        }
    }

    @Test func invalidPacketAndClientCloseEndTheSession() async throws {
        try await withTestServer { _, port, delegate in
            let bad = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await bad.nextText()
            try await bad.send(text: "9hello")
            #expect(try await bad.next() == .close(code: 1000))
            let closing = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await closing.nextText()
            try await closing.send(text: "1")
            #expect(try await closing.next() == .close(code: 1000))
            try await delegate.waitUntil { $0.closed.count == 2 }
            #expect(Set(delegate.closeReasons) == [.parseError, .transportClose])
        }
    }

    @Test func oversizedFrameCloses1009() async throws {
        try await withTestServer(configure: { $0.maxPayload = 100 }) { _, port, delegate in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await socket.nextText()
            try await socket.send(text: "4" + String(repeating: "x", count: 500))
            #expect(try await socket.next() == .close(code: 1009))
            try await delegate.waitUntil { $0.closed.count == 1 }
        }
    }

    @Test func aFrameAgainstTheProtocolCloses1002() async throws {
        try await withTestServer { _, port, delegate in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await socket.nextText()
            // A (masked, empty) continuation frame with no message to continue.
            try await socket.channel.writeAndFlush(ByteBuffer(bytes: [0x80, 0x80, 1, 2, 3, 4]))
            #expect(try await socket.next() == .close(code: 1002))
            try await delegate.waitUntil { $0.closed.count == 1 }
            // An unmasked frame: every client masks (RFC 6455 section 5.1).
            let unmasked = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await unmasked.nextText()
            try await unmasked.channel.writeAndFlush(ByteBuffer(bytes: [0x81, 2] + Array("4x".utf8)))
            #expect(try await unmasked.next() == .close(code: 1002))
            try await delegate.waitUntil { $0.closed.count == 2 }
            #expect(delegate.record.withLockedValue { $0.received }.isEmpty, "nothing of either reached the application")
        }
    }

    @Test func aFragmentedMessageArrivesWhole() async throws {
        try await withTestServer { _, port, delegate in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await socket.nextText()
            // "4he" then "llo", a ping between them (masked with a zero key: the bytes as they are).
            let key: [UInt8] = [0, 0, 0, 0]
            try await socket.channel.writeAndFlush(ByteBuffer(bytes: [0x01, 0x83] + key + Array("4he".utf8) + [0x89, 0x80] + key
                                                                 + [0x80, 0x83] + key + Array("llo".utf8)))
            try await delegate.waitUntil { !$0.received.isEmpty }
            #expect(delegate.record.withLockedValue { $0.received } == [EngineMessage(text: "hello")])
        }
    }

    @Test func messagesSentInOneTickAfterTheFirstWaitForOneLaterFlush() async throws {
        let greeting = [EngineMessage(text: "a")]
        try await withTestServer(configure: { $0.webSocketMinimumFlushGap = .milliseconds(5) }, delegate: RecordingDelegate(greeting: greeting)) { _, port, delegate in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket)
            _ = try await socket.nextText()
            #expect(try await socket.next() == .text("4a"))
            let connection = try #require(delegate.record.withLockedValue { $0.connections.first })
            connection.eventLoop.execute {
                connection.send(EngineMessage(text: "1"))
                connection.send(EngineMessage(text: "2"))
                connection.send(EngineMessage(text: "3"))
            }
            #expect(try await socket.next() == .text("41"))
            #expect(try await socket.next() == .text("42"))
            #expect(try await socket.next() == .text("43"))
        }
    }

    @Test func aWebSocketIsNotWritableWhileItsClientIsNotReading() async throws {
        try await withTestServer(configure: { $0.maxOutboundBufferBytes = 64 * 1024 * 1024 }, delegate: RecordingDelegate(echo: false)) { _, port, delegate in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket, autoRead: false)
            try await delegate.waitUntil { $0.opened.count == 1 }
            let connection = try #require(delegate.record.withLockedValue { $0.connections.first })
            let writable: @Sendable () async throws -> Bool = { try await connection.eventLoop.submit { connection.isWritable }.get() }
            #expect(try await writable())
            // Fill the socket buffers: the kernel stops taking bytes, a flush stays pending.
            let chunk = EngineMessage(text: String(repeating: "x", count: 64 * 1024))
            for _ in 0..<200 where try await writable() {
                connection.send(chunk)
                try await Task.sleep(nanoseconds: 1_000_000)
            }
            #expect(try await !writable())
            // Reading again drains the backlog and the connection is writable again.
            try await socket.channel.setOption(.autoRead, value: true).get()
            socket.channel.read()
            let deadline = NIODeadline.now() + .seconds(10)
            while try await !writable() {
                if NIODeadline.now() > deadline { throw TestTimeout() }
                try await Task.sleep(nanoseconds: 10_000_000)
            }
            await socket.close()
        }
    }

    @Test func clientThatStopsReadingIsClosedAsSlow() async throws {
        try await withTestServer(configure: { $0.maxOutboundBufferBytes = 64 * 1024 }, delegate: RecordingDelegate(echo: false)) { _, port, delegate in
            let socket = try await TestWebSocket.connect(port: port, uri: websocket, autoRead: false)
            try await delegate.waitUntil { $0.opened.count == 1 }
            let connection = try #require(delegate.record.withLockedValue { $0.connections.first })
            let chunk = EngineMessage(text: String(repeating: "x", count: 32 * 1024))
            // Bounded: 32 MiB at most, far beyond socket buffers plus the 64 KiB budget.
            for _ in 0..<1024 where delegate.closeReasons.isEmpty {
                connection.send(chunk)
                try await Task.sleep(nanoseconds: 1_000_000)
            }
            try await delegate.waitUntil { $0.closed.count == 1 }
            #expect(delegate.closeReasons == [.slowClient])
            await socket.close()
        }
    }
}

@Suite(.serialized) struct UpgradeTests {
    @Test
    func pollingToWebSocketUpgrade() async throws {
        // Long heartbeat: this test checks exact polling bodies, which a ping would join.
        try await withTestServer(configure: { $0.pingInterval = .seconds(10) }) { server, port, delegate in
            let sid = try await openPollingSession(port: port)
            _ = try await TestHTTP.request(port: port, method: .POST, uri: poll + "&sid=\(sid)", body: "4queued")
            let socket = try await TestWebSocket.connect(port: port, uri: websocket + "&sid=\(sid)")
            try await socket.send(text: "2probe")
            #expect(try await socket.next() == .text("3probe"))
            // The echo of "4queued" is still delivered by polling; the next GET is released with noop.
            #expect(try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)").body == "4queued")
            #expect(try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)").body == "6")
            try await socket.send(text: "5")
            try await socket.send(text: "4over ws")
            #expect(try await socket.next() == .text("4over ws"))
            let stale = try await TestHTTP.request(port: port, uri: poll + "&sid=\(sid)")
            #expect(stale.status == 400 && stale.body.contains("\"code\":3"))
            #expect(server.connectionCounts == EngineConnectionCounts(polling: 0, websocket: 1))
            let connection = try #require(delegate.record.withLockedValue { $0.connections.first })
            #expect(connection.transportName == "websocket")
            // A second WebSocket for the session is accepted, then closed.
            let second = try await TestWebSocket.connect(port: port, uri: websocket + "&sid=\(sid)")
            #expect(try await second.next() == .close(code: 1000))
            try await socket.send(text: "4still")
            #expect(try await socket.next() == .text("4still"))
        }
    }

    @Test func webSocketForUnknownSidIsRefused() async throws {
        try await withTestServer { _, port, _ in
            let response = try await TestHTTP.request(port: port, uri: websocket + "&sid=nope", headers: [
                "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            ])
            #expect(response.status == 400)
            #expect(response.body == "{\"code\":1,\"message\":\"Session ID unknown\"}")
        }
    }
}
