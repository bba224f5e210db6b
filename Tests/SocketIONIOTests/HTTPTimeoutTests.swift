import NIOCore
import Testing
@testable import SocketIONIO

@Suite(.serialized) struct HTTPTimeoutTests {
    @Test func aSilentConnectionIsClosedAfterTheHeadersTimeout() async throws {
        try await withTestServer(http: fastTimeouts) { _, port, _ in
            let connecting = NIODeadline.now()
            let client = try await RawTCPClient.connect(port: port)
            #expect(await client.closes(within: 3))
            // Not before the headers timeout (300 ms from the accept, which follows `connecting`).
            #expect(NIODeadline.now() - connecting >= .milliseconds(290))
            #expect(client.received.isEmpty)  // no head, no 408: just closed
        }
    }

    @Test func slowHeadersAreClosedEvenWhileBytesTrickleIn() async throws {
        try await withTestServer(http: fastTimeouts) { _, port, _ in
            let client = try await RawTCPClient.connect(port: port)
            try await client.send("GET /healthz HTTP/1.1\r\n")
            for index in 0..<30 where !client.isClosed {
                try? await client.send("X-\(index): y\r\n")
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            #expect(await client.closes(within: 1))
        }
    }

    @Test func aBodyThatDoesNotArriveGets408() async throws {
        try await withTestServer(fallback: okFallback, http: fastTimeouts) { _, port, _ in
            let client = try await RawTCPClient.connect(port: port)
            try await client.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            #expect(await client.closes(within: 2))
            #expect(client.received.hasPrefix("HTTP/1.1 408"))
        }
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterItsTimeout() async throws {
        try await withTestServer(fallback: okFallback, http: fastTimeouts) { _, port, _ in
            let client = try await RawTCPClient.connect(port: port)
            try await client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try await Task.sleep(nanoseconds: 100_000_000)
            #expect(client.received.hasPrefix("HTTP/1.1 200"))
            // A second request on the same connection within the keep-alive time is served.
            try await client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try await Task.sleep(nanoseconds: 150_000_000)
            #expect(client.received.components(separatedBy: "HTTP/1.1 200").count == 3)
            #expect(!client.isClosed)
            #expect(await client.closes(within: 2))
        }
    }

    @Test func aParkedLongPollOutlivesEveryHTTPTimeout() async throws {
        try await withTestServer(configure: { $0.pingInterval = .milliseconds(1_500); $0.pingTimeout = .milliseconds(1_000) }, http: fastTimeouts) { _, port, _ in
            let sid = try await openPollingSession(port: port)
            let started = NIODeadline.now()
            // Parked until the ping, 1.5 s later: five times the timeouts.
            let answer = try await TestHTTP.request(port: port, uri: pollHandshake + "&sid=\(sid)")
            #expect(answer.status == 200 && answer.body == "2")
            #expect(NIODeadline.now() - started > .milliseconds(1_000))
        }
    }

    @Test func aWebSocketOutlivesEveryHTTPTimeout() async throws {
        try await withTestServer(configure: { $0.pingInterval = .seconds(10); $0.pingTimeout = .seconds(5) }, http: fastTimeouts) { _, port, _ in
            let socket = try await TestWebSocket.connect(port: port, uri: "/engine.io/?EIO=4&transport=websocket")
            #expect(try await socket.nextText()?.hasPrefix("0{") == true)
            try await Task.sleep(nanoseconds: 1_200_000_000)
            try await socket.send(text: "4still here")
            #expect(try await socket.nextText() == "4still here")
            await socket.close()
        }
    }
}

@Suite(.serialized) struct UpgradeRequestLeftoverTests {
    /// NIO's decoder passes on what followed an upgrade request as raw bytes once it is
    /// removed; none of the HTTP guards may still be there to take them for HTTP parts
    /// (a trap in the server before).
    @Test func bytesRightBehindAnUpgradeRequestReachOnlyTheWebSocket() async throws {
        // Default timeouts: each leftover is refused as a WebSocket frame, not by a timer, and
        // the fast ones cut a request a loaded machine was slow to read ("I/O on closed channel").
        try await withTestServer(fallback: okFallback) { _, port, delegate in
            for garbage in ["\u{1}\u{2}\u{3}garbage", String(repeating: "x", count: 300), "GET / HTTP/1.1\r\n\r\n"] {
                let client = try await RawTCPClient.connect(port: port)
                try await client.send(
                    "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" + garbage
                )
                #expect(await client.closes(within: 3))
                #expect(client.received.hasPrefix("HTTP/1.1 101"))
            }
            try await delegate.waitUntil { $0.opened.count == 3 }
            #expect(try await TestHTTP.request(port: port, uri: "/healthz").status == 200)
        }
    }
}
