import EngineIO
import NIOCore
import Testing
@testable import SocketIONIO

private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
private func at(milliseconds: Int64) -> NIODeadline { start + .milliseconds(milliseconds) }

@Suite struct AdmissionLedgerTests {
    @Test func sessionsPerAddressAreCappedAndReleased() {
        var limits = EngineAdmissionLimits()
        limits.maxSessionsPerAddress = 2
        var ledger = EngineAdmissionLedger(limits: limits, now: start)
        do { let result = ledger.admitHandshake(address: "1.2.3.4", now: start); #expect(result == nil) }
        ledger.sessionOpened(address: "1.2.3.4")
        ledger.sessionOpened(address: "1.2.3.4")
        do { let result = ledger.admitHandshake(address: "1.2.3.4", now: start); #expect(result == .tooManyConnections) }
        do { let result = ledger.admitHandshake(address: "5.6.7.8", now: start); #expect(result == nil) }
        ledger.sessionClosed(address: "1.2.3.4")
        do { let result = ledger.admitHandshake(address: "1.2.3.4", now: start); #expect(result == nil) }
        ledger.sessionClosed(address: "1.2.3.4")
        // An address without sessions leaves the table.
        #expect(ledger.sessions(of: "1.2.3.4") == 0)
        ledger.sessionClosed(address: "1.2.3.4")  // one too many: saturates, no trap
        #expect(ledger.sessionCount == 0)
    }

    @Test func nodeFullRefusesWith503() {
        var limits = EngineAdmissionLimits()
        limits.maxSessions = 1
        var ledger = EngineAdmissionLedger(limits: limits, now: start)
        ledger.sessionOpened(address: nil)
        let refusal = ledger.admitHandshake(address: "1.2.3.4", now: start)
        #expect(refusal == .nodeFull)
        #expect(refusal?.status == 503)
    }

    @Test func handshakeRateIsATokenBucketPerAddress() {
        var limits = EngineAdmissionLimits()
        limits.handshakesPerSecondPerAddress = 2
        limits.handshakeBurstPerAddress = 3
        var ledger = EngineAdmissionLedger(limits: limits, now: start)
        for _ in 0..<3 { let result = ledger.admitHandshake(address: "1.2.3.4", now: start); #expect(result == nil) }
        let refusal = ledger.admitHandshake(address: "1.2.3.4", now: start)
        #expect(refusal == .tooManyHandshakes)
        #expect(refusal?.status == 429)
        do { let result = ledger.admitHandshake(address: "9.9.9.9", now: start); #expect(result == nil) }  // others unaffected
        // 2 per second: one more token after half a second.
        do { let result = ledger.admitHandshake(address: "1.2.3.4", now: at(milliseconds: 500)); #expect(result == nil) }
        do { let result = ledger.admitHandshake(address: "1.2.3.4", now: at(milliseconds: 500)); #expect(result == .tooManyHandshakes) }
    }

    @Test func theRateTableStaysBoundedUnderAnAddressSpray() {
        var table = HandshakeRateTable(rate: 1, burst: 5, capacity: 100, now: start)
        for index in 0..<10_000 {
            _ = table.take("10.0.\(index / 256).\(index % 256)", now: start)
            #expect(table.count <= 200)
        }
    }

    @Test func idleAddressesAreForgottenAfterTwoGenerations() {
        var table = HandshakeRateTable(rate: 1, burst: 2, capacity: 1_000, now: start)
        _ = table.take("a", now: start)
        _ = table.take("a", now: start)
        do { let result = table.take("a", now: start); #expect(!result) }
        // A generation is the 2 s a bucket takes to refill; after two, "a" is gone, and full.
        _ = table.take("b", now: at(milliseconds: 2_100))
        _ = table.take("b", now: at(milliseconds: 4_200))
        #expect(table.count == 1)
        do { let result = table.take("a", now: at(milliseconds: 4_200)); #expect(result) }
    }

    @Test func anEarlyRotationKeepsTheBucketsOfTheLastGeneration() {
        var table = HandshakeRateTable(rate: 0.1, burst: 1, capacity: 2, now: start)
        do { let result = table.take("a", now: start); #expect(result) }
        do { let result = table.take("b", now: start); #expect(result) }  // the table is full: it rotates
        // "a" moved to the previous generation with its empty bucket; it is not reset.
        do { let result = table.take("a", now: start); #expect(!result) }
    }
}

@Suite struct ClientAddressTests {
    @Test func parsesIPv4AndIPv6AndFoldsMappedAddresses() {
        #expect(IPAddress("192.168.1.20")?.description == "192.168.1.20")
        #expect(IPAddress("::ffff:192.168.1.20") == IPAddress("192.168.1.20"))
        #expect(IPAddress("2001:db8::1")?.bytes.count == 16)
        #expect(IPAddress("2001:db8::1")?.admissionKey == IPAddress("2001:db8::ffff")?.admissionKey)
        #expect(IPAddress("2001:db8:0:1::1")?.admissionKey != IPAddress("2001:db8::1")?.admissionKey)
        for bad in ["", "1.2.3", "1.2.3.4.5", "evil", "1.2.3.4:80", String(repeating: "1", count: 100_000)] {
            #expect(IPAddress(Substring(bad)) == nil, "\(bad.prefix(20))")
        }
    }

    @Test func cidrRanges() {
        let network = IPNetwork("10.0.0.0/8")
        #expect(network?.contains(IPAddress("10.200.3.4")!) == true)
        #expect(network?.contains(IPAddress("11.0.0.1")!) == false)
        #expect(network?.contains(IPAddress("::1")!) == false)
        #expect(IPNetwork("fd00::/8")?.contains(IPAddress("fd12::1")!) == true)
        #expect(IPNetwork("127.0.0.1")?.contains(IPAddress("127.0.0.1")!) == true)
        #expect(IPNetwork("127.0.0.1")?.contains(IPAddress("127.0.0.2")!) == false)
        #expect(IPNetwork("0.0.0.0/0")?.contains(IPAddress("8.8.8.8")!) == true)
        for bad in ["10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/x", "nginx", "::/129"] {
            #expect(IPNetwork(bad) == nil, "\(bad)")
        }
    }

    @Test func invalidTrustedProxiesAreReportedByName() {
        #expect(throws: InvalidTrustedProxies.self) { try TrustedProxies(["127.0.0.1", "nginx.local"]) }
        do {
            _ = try TrustedProxies(["nginx.local"])
        } catch {
            #expect(error.description.contains("nginx.local"))
        }
    }

    @Test func forwardedForIsBelievedOnlyFromATrustedPeer() throws {
        let proxies = try TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.9"])?.description == "203.0.113.9")
        // An untrusted peer's header is ignored.
        #expect(proxies.clientAddress(peer: "198.51.100.1", forwardedFor: ["203.0.113.9"])?.description == "198.51.100.1")
        // A client's own forged entries sit left of what the proxies appended: skipped.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["1.1.1.1, 203.0.113.9, 10.1.1.1"])?.description == "203.0.113.9")
        // Several header lines are one list, in order.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["1.1.1.1", "203.0.113.9"])?.description == "203.0.113.9")
        // Garbage stops the walk at the proxy that passed it on.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["garbage"])?.description == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: [])?.description == "127.0.0.1")
        // Without trusted proxies the header means nothing.
        #expect(try TrustedProxies([]).clientAddress(peer: "127.0.0.1", forwardedFor: ["203.0.113.9"])?.description == "127.0.0.1")
    }

    @Test func aHugeForwardedForCostsABoundedWalk() throws {
        let proxies = try TrustedProxies(["10.0.0.0/8"])
        let chain = Array(repeating: "10.0.0.1", count: 20_000).joined(separator: ",")
        #expect(proxies.clientAddress(peer: "10.0.0.2", forwardedFor: [chain])?.description == "10.0.0.1")
    }
}

@Suite struct OriginPolicyTests {
    @Test func anyAllowsEverything() {
        #expect(EngineOriginPolicy.any.allows(origin: "https://evil.example", host: "chat.example"))
        #expect(EngineOriginPolicy(allowing: ["*"]).allows(origin: "https://evil.example", host: nil))
    }

    @Test func aRequestWithoutOriginIsServed() {
        #expect(EngineOriginPolicy(allowing: []).allows(origin: nil, host: nil))
    }

    @Test func listedOriginsMatchExactlyIgnoringCaseAndTrailingSlash() {
        let policy = EngineOriginPolicy(allowing: ["https://Chat.example/", " https://admin.example "])
        #expect(policy.allows(origin: "https://chat.example", host: nil))
        #expect(policy.allows(origin: "https://admin.example", host: nil))
        #expect(!policy.allows(origin: "http://chat.example", host: nil))
        #expect(!policy.allows(origin: "https://chat.example.evil.example", host: nil))
        #expect(!policy.allows(origin: "null", host: nil))
    }

    @Test func sameHostOnHttpOrHttps() {
        let policy = EngineOriginPolicy(allowing: [], allowsSameHost: true)
        #expect(policy.allows(origin: "http://localhost:8080", host: "localhost:8080"))
        #expect(policy.allows(origin: "https://chat.example", host: "Chat.example"))
        #expect(!policy.allows(origin: "https://evil.example", host: "chat.example"))
        #expect(!policy.allows(origin: "http://localhost:8081", host: "localhost:8080"))
        #expect(!policy.allows(origin: "ftp://chat.example", host: "chat.example"))
        #expect(!policy.allows(origin: "http://chat.example", host: nil))
        #expect(!EngineOriginPolicy(allowing: []).allows(origin: "http://chat.example", host: "chat.example"))
    }

    @Test func refusalBodiesAreEngineIOShapedAndEscaped() {
        #expect(EngineAdmissionRefusal.originNotAllowed.jsonBody == "{\"code\":4,\"message\":\"Origin not allowed\"}")
        let custom = EngineAdmissionRefusal(reason: .allowRequest, status: 200, message: "no \"quotes\"\n\u{1}")
        #expect(custom.status == 403)  // a success status cannot be a refusal
        #expect(custom.jsonBody == "{\"code\":4,\"message\":\"no \\\"quotes\\\"\\n\\u0001\"}")
    }
}
