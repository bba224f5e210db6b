import Atomics
import EngineIO
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOEmbedded
import NIOWebSocket
import Testing
@testable import SocketIONIO

/// A TCP client that sends exactly the bytes a test gives it and records what comes back
/// and when the server closes.
final class RawTCPClient: Sendable {
    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox(ByteBuffer())
        let closed = ManagedAtomic(false)

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            received.withLockedValue { $0.writeBuffer(&bytes) }
        }

        func channelInactive(context: ChannelHandlerContext) { closed.store(true, ordering: .relaxed) }

        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    let channel: any Channel
    private let recorder: Recorder

    private init(channel: any Channel, recorder: Recorder) {
        self.channel = channel
        self.recorder = recorder
    }

    /// `autoRead: false` makes a client that never reads (the kernel still acknowledges
    /// up to its small receive buffer).
    static func connect(port: Int, autoRead: Bool = true, receiveBuffer: Int? = nil) async throws -> RawTCPClient {
        let recorder = Recorder()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: autoRead)
        if let receiveBuffer { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer)) }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(recorder) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawTCPClient(channel: channel, recorder: recorder)
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    var received: String { recorder.received.withLockedValue { String(buffer: $0) } }
    var isClosed: Bool { recorder.closed.load(ordering: .relaxed) }

    /// Waits (bounded) until the server has closed the connection; false if it did not.
    func closes(within seconds: Double) async -> Bool {
        let deadline = NIODeadline.now() + .milliseconds(Int64(seconds * 1000))
        while NIODeadline.now() < deadline {
            if isClosed { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return isClosed
    }

    func close() async { try? await channel.close() }
}

private func fastTimeouts(_ http: inout EngineIOHTTPServerConfiguration) {
    http.timeouts = HTTPConnectionTimeouts(headers: .milliseconds(300), keepAlive: .milliseconds(300), request: .milliseconds(600))
}

private let pollHandshake = "/engine.io/?EIO=4&transport=polling"
private let okFallback: HTTPFallbackHandler = { _ in HTTPFallbackResponse(status: .ok, contentType: "text/plain", body: "ok") }

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
        try await withTestServer(fallback: okFallback, http: fastTimeouts) { _, port, delegate in
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

@Suite(.serialized) struct BackPressureTests {
    /// A client pipelines requests and never reads: the server must stop reading them once
    /// its answers back up, instead of answering all of them into memory.
    @Test func pipelinedRequestsAreNotReadWhileAnswersPileUp() async throws {
        let served = ManagedAtomic(0)
        let bigBody = String(repeating: "x", count: 64 * 1024)
        let fallback: HTTPFallbackHandler = { _ in
            served.wrappingIncrement(ordering: .relaxed)
            return HTTPFallbackResponse(status: .ok, contentType: "text/plain", body: bigBody)
        }
        // The pipelining limit is lifted: this is about answers not taken.
        try await withTestServer(fallback: fallback, http: { $0.maxPipelinedRequests = 100_000 }) { _, port, _ in
            let client = try await RawTCPClient.connect(port: port, autoRead: false, receiveBuffer: 16 * 1024)
            let requests = String(repeating: "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", count: 4_000)  // 256 MB of answers
            client.channel.writeAndFlush(ByteBuffer(string: requests), promise: nil)
            try await Task.sleep(nanoseconds: 1_500_000_000)
            let count = served.load(ordering: .relaxed)
            // Kernel buffers on loopback hold a few MB of answers; the rest waits unread.
            #expect(count > 0)
            #expect(count < 400, "served \(count) of 4000 pipelined requests to a client that reads nothing")
            await client.close()
        }
    }

    @Test func aClientWithTooManyPipelinedRequestsIsClosed() async throws {
        let served = ManagedAtomic(0)
        let fallback: HTTPFallbackHandler = { _ in
            served.wrappingIncrement(ordering: .relaxed)
            return HTTPFallbackResponse(status: .ok, contentType: "text/plain", body: "ok")
        }
        try await withTestServer(fallback: fallback) { _, port, _ in
            let client = try await RawTCPClient.connect(port: port, autoRead: false)
            client.channel.writeAndFlush(ByteBuffer(string: String(repeating: "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", count: 100_000)), promise: nil)
            #expect(await client.closes(within: 3))
            #expect(served.load(ordering: .relaxed) <= 17)
            // A client within the limit is served in order.
            let polite = try await RawTCPClient.connect(port: port)
            try await polite.send(String(repeating: "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", count: 8))
            try await Task.sleep(nanoseconds: 300_000_000)
            #expect(polite.received.components(separatedBy: "HTTP/1.1 200").count == 9)
            await polite.close()
        }
    }
}

private func headers(_ pairs: [(String, String)]) -> HTTPHeaders { HTTPHeaders(pairs) }

/// The answer to a WebSocket upgrade request sent by hand, as raw text.
private func upgradeAnswer(port: Int, uri: String = "/engine.io/?EIO=4&transport=websocket", extraHeaders: String = "") async throws -> String {
    let client = try await RawTCPClient.connect(port: port)
    try await client.send(
        "GET \(uri) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(extraHeaders)\r\n"
    )
    let deadline = NIODeadline.now() + .seconds(3)
    while NIODeadline.now() < deadline && !client.received.contains("\r\n\r\n") {
        try await Task.sleep(nanoseconds: 10_000_000)
    }
    try await Task.sleep(nanoseconds: 50_000_000)
    let text = client.received
    await client.close()
    return text
}

@Suite(.serialized) struct OriginCheckTests {
    private func allowOnly(_ configuration: inout EngineServerConfiguration) {
        configuration.allowedOrigins = EngineOriginPolicy(allowing: ["https://chat.example"], allowsSameHost: true)
    }

    @Test func aForeignOriginGets403OnThePollingHandshake() async throws {
        try await withTestServer(configure: allowOnly) { _, port, delegate in
            let refused = try await TestHTTP.request(port: port, uri: pollHandshake, headers: headers([("Origin", "https://evil.example")]))
            #expect(refused.status == 403)
            #expect(refused.body == "{\"code\":4,\"message\":\"Origin not allowed\"}")
            #expect(delegate.record.withLockedValue { $0.opened.isEmpty })
        }
    }

    @Test func aForeignOriginGets403OnTheWebSocketUpgrade() async throws {
        try await withTestServer(configure: allowOnly) { _, port, delegate in
            let answer = try await upgradeAnswer(port: port, extraHeaders: "Origin: https://evil.example\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 403"))
            #expect(answer.hasSuffix("{\"code\":4,\"message\":\"Origin not allowed\"}"))
            #expect(delegate.record.withLockedValue { $0.opened.isEmpty })
        }
    }

    @Test func aForeignOriginGets403OnAnExistingSessionsPolls() async throws {
        try await withTestServer(configure: allowOnly) { _, port, _ in
            let sid = try await openPollingSession(port: port)
            let refused = try await TestHTTP.request(
                port: port, method: .POST, uri: pollHandshake + "&sid=\(sid)", body: "4hi", headers: headers([("Origin", "https://evil.example")])
            )
            #expect(refused.status == 403)
        }
    }

    @Test func noOriginListedOriginAndSameHostAreServed() async throws {
        try await withTestServer(configure: allowOnly) { _, port, _ in
            #expect(try await TestHTTP.request(port: port, uri: pollHandshake).status == 200)
            #expect(try await TestHTTP.request(port: port, uri: pollHandshake, headers: headers([("Origin", "https://chat.example")])).status == 200)
            // TestHTTP sends Host: 127.0.0.1:port.
            #expect(try await TestHTTP.request(port: port, uri: pollHandshake, headers: headers([("Origin", "http://127.0.0.1:\(port)")])).status == 200)
            let answer = try await upgradeAnswer(port: port, extraHeaders: "Origin: http://127.0.0.1:\(port)\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 101"))
        }
    }
}

@Suite(.serialized) struct AdmissionTests {
    /// Polling sessions that nobody polls outlive the test (no ping timeout meanwhile).
    static func longPing(_ configuration: inout EngineServerConfiguration) {
        configuration.pingInterval = .seconds(20)
        configuration.pingTimeout = .seconds(20)
    }

    @Test func sessionsPerAddressAreCappedWith429OnPollingAndWebSocket() async throws {
        try await withTestServer(configure: Self.longPing, http: { $0.admission.maxSessionsPerAddress = 2 }) { _, port, delegate in
            _ = try await openPollingSession(port: port)
            _ = try await openPollingSession(port: port)
            let refused = try await TestHTTP.request(port: port, uri: pollHandshake)
            #expect(refused.status == 429)
            #expect(refused.headers.first(name: "Retry-After") == "1")
            #expect(refused.body == "{\"code\":4,\"message\":\"Too many connections from this address\"}")
            let upgrade = try await upgradeAnswer(port: port)
            #expect(upgrade.hasPrefix("HTTP/1.1 429"))
            // A session that ends frees its slot.
            let first = delegate.record.withLockedValue { $0.connections[0] }
            first.close(reason: .forcedClose)
            try await delegate.waitUntil { $0.closed.count == 1 }
            #expect(try await TestHTTP.request(port: port, uri: pollHandshake).status == 200)
        }
    }

    @Test func handshakesPerSecondAreCappedWith429() async throws {
        try await withTestServer(http: { $0.admission.handshakesPerSecondPerAddress = 1; $0.admission.handshakeBurstPerAddress = 3 }) { _, port, _ in
            var sids: [String] = []
            for _ in 0..<3 { sids.append(try await openPollingSession(port: port)) }
            let refused = try await TestHTTP.request(port: port, uri: pollHandshake)
            #expect(refused.status == 429)
            #expect(refused.body.contains("Too many connection attempts"))
            // Requests of an existing session are not handshakes: they still go through.
            let post = try await TestHTTP.request(port: port, method: .POST, uri: pollHandshake + "&sid=\(sids[0])", body: "4hi")
            #expect(post.status == 200)
        }
    }

    @Test func aFullNodeAnswers503() async throws {
        try await withTestServer(configure: Self.longPing, http: { $0.admission.maxSessions = 1 }) { _, port, _ in
            _ = try await openPollingSession(port: port)
            let refused = try await TestHTTP.request(port: port, uri: pollHandshake)
            #expect(refused.status == 503)
            #expect(refused.body == "{\"code\":4,\"message\":\"Server full, retry later\"}")
            #expect(try await upgradeAnswer(port: port).hasPrefix("HTTP/1.1 503"))
        }
    }

    @Test func connectionsOverMaxConnectionsAreClosedAtAccept() async throws {
        try await withTestServer(fallback: okFallback, http: { $0.admission.maxConnections = 2 }) { _, port, _ in
            let first = try await RawTCPClient.connect(port: port)
            let second = try await RawTCPClient.connect(port: port)
            try await Task.sleep(nanoseconds: 100_000_000)
            let third = try await RawTCPClient.connect(port: port)
            #expect(await third.closes(within: 2))
            #expect(!first.isClosed && !second.isClosed)
            await first.close()
            try await Task.sleep(nanoseconds: 100_000_000)
            #expect(try await TestHTTP.request(port: port, uri: "/healthz").status == 200)
            await second.close()
        }
    }

    @Test func forwardedForCountsOnlyFromATrustedProxy() async throws {
        let forwarded = { (address: String) in headers([("X-Forwarded-For", "6.6.6.6, \(address)")]) }
        // Trusted: each forwarded client has its own cap.
        try await withTestServer(configure: Self.longPing, http: { $0.admission.maxSessionsPerAddress = 1; $0.trustedProxies = ["127.0.0.1"] }) { _, port, delegate in
            #expect(try await TestHTTP.request(port: port, uri: pollHandshake, headers: forwarded("203.0.113.1")).status == 200)
            #expect(try await TestHTTP.request(port: port, uri: pollHandshake, headers: forwarded("203.0.113.2")).status == 200)
            #expect(try await TestHTTP.request(port: port, uri: pollHandshake, headers: forwarded("203.0.113.1")).status == 429)
            try await delegate.waitUntil { $0.opened.count == 2 }
            let addresses = delegate.record.withLockedValue { $0.connections.map(\.handshake.clientAddress) }
            #expect(addresses == ["203.0.113.1", "203.0.113.2"])
            #expect(delegate.record.withLockedValue { $0.connections.map(\.handshake.remoteAddress) } == ["127.0.0.1", "127.0.0.1"])
        }
        // Not trusted: the header is ignored, everyone is 127.0.0.1.
        try await withTestServer(configure: Self.longPing, http: { $0.admission.maxSessionsPerAddress = 1; $0.trustedProxies = ["10.0.0.0/8"] }) { _, port, _ in
            let first = try await TestHTTP.request(port: port, uri: pollHandshake, headers: forwarded("203.0.113.1"))
            let second = try await TestHTTP.request(port: port, uri: pollHandshake, headers: forwarded("203.0.113.2"))
            #expect(first.status == 200 && second.status == 429)
        }
    }

    @Test func invalidTrustedProxiesFailTheStart() async throws {
        var configuration = EngineIOHTTPServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.trustedProxies = ["my-nginx"]
        let server = EngineIOHTTPServer(configuration: configuration, endpoints: [])
        await #expect(throws: EngineIOHTTPServerError.self) { try await server.start() }
    }

    @Test func allowRequestSeesTheHandshakeAndMayRefuse() async throws {
        let configure: (inout EngineServerConfiguration) -> Void = {
            $0.allowRequest = { request in
                request.query["token"] == "ok" && request.header("x-app") == "chat" && request.clientAddress == "127.0.0.1"
                    ? .allow : .refuse(status: 401, message: "bad \"token\"")
            }
        }
        try await withTestServer(configure: configure) { _, port, _ in
            let refused = try await TestHTTP.request(port: port, uri: pollHandshake + "&token=no", headers: headers([("X-App", "chat")]))
            #expect(refused.status == 401)
            #expect(refused.body == "{\"code\":4,\"message\":\"bad \\\"token\\\"\"}")
            #expect(try await upgradeAnswer(port: port, uri: "/engine.io/?EIO=4&transport=websocket&token=no").hasPrefix("HTTP/1.1 401"))
            let allowed = try await TestHTTP.request(port: port, uri: pollHandshake + "&token=ok", headers: headers([("X-App", "chat")]))
            #expect(allowed.status == 200)
            let upgrade = try await upgradeAnswer(port: port, uri: "/engine.io/?EIO=4&transport=websocket&token=ok", extraHeaders: "X-App: chat\r\n")
            #expect(upgrade.hasPrefix("HTTP/1.1 101"))
        }
    }

    @Test func aHeadOver80KBIsRefusedByTheDecoder() async throws {
        try await withTestServer { _, port, delegate in
            let client = try await RawTCPClient.connect(port: port)
            try await client.send("GET \(pollHandshake) HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 100_000))\r\n\r\n")
            #expect(await client.closes(within: 3))
            #expect(client.received.hasPrefix("HTTP/1.1 400"))
            #expect(delegate.record.withLockedValue { $0.opened.isEmpty })
        }
    }

    @Test func theHandshakeKeepsBoundedMergedHeaders() async throws {
        try await withTestServer { _, port, delegate in
            var many: [(String, String)] = (0..<300).map { ("X-Header-\($0)", "v") }
            many.insert(("X-Repeated", "a"), at: 0)
            many.insert(("x-repeated", "b"), at: 1)
            many.append(("X-Repeated", "c"))  // past the cap, but a name already kept
            _ = try await TestHTTP.request(port: port, uri: pollHandshake, headers: headers(many))
            try await delegate.waitUntil { $0.opened.count == 1 }
            let handshake = delegate.record.withLockedValue { $0.connections[0].handshake }
            #expect(handshake.headers.count == EngineHTTPHandler.maxHandshakeHeaders)
            #expect(handshake.header("x-repeated") == "a, b, c")
            #expect(handshake.headers.allSatisfy { $0.name == $0.name.lowercased() })
        }
    }
}

/// Keeps every write pending, as a peer that never reads leaves them: nothing is passed on
/// and no promise completes.
private final class StalledPeer: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = NIOAny
    var pending: [EventLoopPromise<Void>?] = []
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) { pending.append(promise) }
    func flush(context: ChannelHandlerContext) {}
}

@Suite(.serialized) struct WebSocketControlBudgetTests {
    private static func handshake() -> EngineHandshakeRequest {
        EngineHandshakeRequest(uri: "/engine.io/", headers: [], query: [:], remoteAddress: "127.0.0.1", isSecure: false, issuedAt: 0)
    }

    /// An upgraded WebSocket on an EmbeddedChannel, budget 64 KB, behind `peer`.
    private static func webSocket(peer: (any ChannelOutboundHandler & Sendable)?) throws -> (EmbeddedChannel, RecordingDelegate) {
        let delegate = RecordingDelegate()
        var configuration = EngineServerConfiguration(pingInterval: .seconds(25), pingTimeout: .seconds(20))
        configuration.maxOutboundBufferBytes = 64 * 1024
        let endpoint = EngineIOEndpoint(path: "/engine.io/", configuration: configuration, delegate: delegate)
        let channel = EmbeddedChannel()
        if let peer { try channel.pipeline.syncOperations.addHandler(peer) }
        try channel.pipeline.syncOperations.addHandler(EngineWebSocketHandler(
            role: .handshake(endpoint, handshake()), channelLoop: channel.eventLoop, outboundBudget: 64 * 1024,
            minimumFlushGap: .zero, maxPayload: 1_000_000
        ))
        return (channel, delegate)
    }

    /// A client's ping with 125 bytes, on the wire (unmasked: the server reads both).
    private static func ping() -> ByteBuffer {
        ByteBuffer(bytes: [0x89, 125] + Array(repeating: 7, count: 125))
    }

    @Test func pongsToAPeerThatNeverReadsCountAgainstTheBudget() throws {
        let peer = StalledPeer()
        let (channel, delegate) = try Self.webSocket(peer: peer)
        var pings = 0
        while delegate.record.withLockedValue({ $0.closed.isEmpty }) && pings < 10_000 {
            try channel.writeInbound(Self.ping())
            pings += 1
        }
        #expect(delegate.closeReasons == [.slowClient])
        // 64 KB at 125 bytes plus the per-write cost: a couple of hundred pongs, not thousands.
        #expect(pings < 200, "\(pings) pings before the close")
        #expect(peer.pending.count < 200)
        for promise in peer.pending { promise?.fail(ChannelError.ioOnClosedChannel) }
        _ = try? channel.finish()
    }

    @Test func pongsThatAreTakenDoNotAddUp() throws {
        let (channel, delegate) = try Self.webSocket(peer: nil)
        for _ in 0..<5_000 {
            try channel.writeInbound(Self.ping())
            while let _ = try channel.readOutbound(as: ByteBuffer.self) {}
        }
        #expect(delegate.record.withLockedValue { $0.closed.isEmpty })
        _ = try? channel.finish()
    }
}
