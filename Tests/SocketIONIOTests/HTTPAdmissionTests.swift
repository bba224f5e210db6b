import Atomics
import EngineIO
import Foundation
import NIOCore
import NIOHTTP1
import Testing
@testable import SocketIONIO

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
