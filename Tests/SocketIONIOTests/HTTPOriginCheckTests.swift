import EngineIO
import Testing
@testable import SocketIONIO

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
