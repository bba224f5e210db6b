import XCTest
@testable import AMQPClient

final class ConfigurationTests: XCTestCase {
    func testURLTable() throws {
        struct Row {
            var url: String
            var host: String
            var port: Int
            var tls: Bool
            var user: String
            var password: String
            var vhost: String
        }
        let rows: [Row] = [
            Row(url: "amqp://", host: "localhost", port: 5672, tls: false, user: "guest", password: "guest", vhost: "/"),
            Row(url: "amqp://127.0.0.1", host: "127.0.0.1", port: 5672, tls: false, user: "guest", password: "guest", vhost: "/"),
            Row(url: "amqp://user:pass@host:1234/vh", host: "host", port: 1234, tls: false, user: "user", password: "pass", vhost: "vh"),
            Row(url: "amqps://h", host: "h", port: 5671, tls: true, user: "guest", password: "guest", vhost: "/"),
            Row(url: "amqp://h/%2f", host: "h", port: 5672, tls: false, user: "guest", password: "guest", vhost: "/"),
            Row(url: "amqp://h/%2Fprod", host: "h", port: 5672, tls: false, user: "guest", password: "guest", vhost: "/prod"),
            // A bare slash is the empty vhost name, per the RabbitMQ URI spec.
            Row(url: "amqp://h/", host: "h", port: 5672, tls: false, user: "guest", password: "guest", vhost: ""),
            Row(url: "amqp://us%40er:p%3Ass%2F@h:5673", host: "h", port: 5673, tls: false, user: "us@er", password: "p:ss/", vhost: "/"),
            Row(url: "amqp://u@h", host: "h", port: 5672, tls: false, user: "u", password: "", vhost: "/"),
            Row(url: "amqp://[::1]:5600/v", host: "::1", port: 5600, tls: false, user: "guest", password: "guest", vhost: "v"),
            Row(url: "AMQP://H:1", host: "H", port: 1, tls: false, user: "guest", password: "guest", vhost: "/"),
        ]
        for row in rows {
            let config = try AMQPConnectionConfiguration(url: row.url)
            XCTAssertEqual(config.endpoints, [AMQPEndpoint(host: row.host, port: row.port, useTLS: row.tls)], row.url)
            XCTAssertEqual(config.username, row.user, row.url)
            XCTAssertEqual(config.password, row.password, row.url)
            XCTAssertEqual(config.virtualHost, row.vhost, row.url)
            XCTAssertEqual(config.tlsConfiguration != nil, row.tls, row.url)
        }
    }

    func testQueryOptions() throws {
        let config = try AMQPConnectionConfiguration(
            url: "amqp://h?heartbeat=10&connection_name=my%20app&channel_max=100&frame_max=8192")
        XCTAssertEqual(config.heartbeat, 10)
        XCTAssertEqual(config.connectionName, "my app")
        XCTAssertEqual(config.channelMax, 100)
        XCTAssertEqual(config.frameMax, 8192)
        let defaults = try AMQPConnectionConfiguration(url: "amqp://h")
        XCTAssertEqual(defaults.heartbeat, 60)
        XCTAssertNil(defaults.connectionName)
    }

    func testInvalidURLs() {
        for url in ["http://h", "amqp://h:notaport", "amqp://h:70000", "amqp://h/a/b", "amqp://h?heartbeat=-1",
                    "amqp://h?frame_max=100", "amqp://h/%zz"] {
            XCTAssertThrowsError(try AMQPConnectionConfiguration(url: url), url) { error in
                guard case AMQPError.invalidURL = error else { return XCTFail("\(url): \(error)") }
            }
        }
    }

    func testSeveralURLsGiveEndpointsForRecovery() throws {
        let config = try AMQPConnectionConfiguration(urls: ["amqp://a:b@h1/v", "amqp://h2:5673"])
        XCTAssertEqual(config.endpoints.map(\.description), ["amqp://h1:5672", "amqp://h2:5673"])
        XCTAssertEqual(config.username, "a")
        XCTAssertEqual(config.virtualHost, "v")
    }

    func testBackoffGrowsExponentiallyWithJitterAndCaps() {
        let backoff = ReconnectBackoff(initialDelay: .milliseconds(100), maximumDelay: .seconds(2))
        XCTAssertEqual(backoff.delay(forAttempt: 1, randomUnit: 1), .milliseconds(100))
        XCTAssertEqual(backoff.delay(forAttempt: 1, randomUnit: 0), .milliseconds(50))
        XCTAssertEqual(backoff.delay(forAttempt: 3, randomUnit: 1), .milliseconds(400))
        XCTAssertEqual(backoff.delay(forAttempt: 20, randomUnit: 1), .seconds(2))
        XCTAssertEqual(backoff.delay(forAttempt: 20, randomUnit: 0), .seconds(1))
        XCTAssertEqual((1...5).map { ReconnectBackoff.endpointIndex(forAttempt: $0, endpointCount: 2) }, [0, 1, 0, 1, 0])
        XCTAssertNil(ReconnectBackoff.endpointIndex(forAttempt: 1, endpointCount: 0))
        XCTAssertEqual(ReconnectBackoff.endpointIndex(forAttempt: 0, endpointCount: 3), 0)
        XCTAssertEqual(ReconnectBackoff.endpointIndex(forAttempt: Int.min, endpointCount: 3), 0)
    }

    func testBackoffIsTotalForAnyAttemptAndConfiguration() {
        let backoff = ReconnectBackoff(initialDelay: .milliseconds(100), maximumDelay: .seconds(2))
        XCTAssertEqual(backoff.delay(forAttempt: 0, randomUnit: 1), .milliseconds(100), "attempt 0 counts as 1")
        XCTAssertEqual(backoff.delay(forAttempt: Int.min, randomUnit: 1), .milliseconds(100))
        XCTAssertEqual(backoff.delay(forAttempt: Int.max, randomUnit: 1), .seconds(2))
        XCTAssertEqual(backoff.delay(forAttempt: 1, randomUnit: .nan), .milliseconds(100))
        let huge = ReconnectBackoff(initialDelay: .seconds(Int64.max), maximumDelay: .seconds(Int64.max))
        XCTAssertEqual(huge.delay(forAttempt: 40, randomUnit: 1), .nanoseconds(Int64.max))
        let negative = ReconnectBackoff(initialDelay: .seconds(-5), maximumDelay: .seconds(-1))
        XCTAssertEqual(negative.delay(forAttempt: 3, randomUnit: 1), .zero)
    }

    func testCloseReasonKinds() {
        XCTAssertEqual(AMQPCloseReason(replyCode: 406, replyText: "x").kind, .preconditionFailed)
        XCTAssertEqual(AMQPCloseReason(replyCode: 404, replyText: "x").kind, .notFound)
        XCTAssertEqual(AMQPCloseReason(replyCode: 405, replyText: "x").kind, .resourceLocked)
        XCTAssertEqual(AMQPCloseReason(replyCode: 403, replyText: "x").kind, .accessRefused)
        XCTAssertNil(AMQPCloseReason(replyCode: 999, replyText: "x").kind)
    }

    func testTLSServerNameIsTheHostUnlessAnIPAddressOrOverridden() throws {
        var config = try AMQPConnectionConfiguration(urls: ["amqps://broker.example", "amqps://10.0.0.7", "amqps://[::1]:5671"])
        XCTAssertNotNil(config.tlsConfiguration, "amqps URLs verify certificates by default")
        let names = config.endpoints.map { AMQPConnection.tlsServerName(for: $0, config) }
        // SNI cannot carry an IP: those are checked against the certificate's IP entries instead.
        XCTAssertEqual(names, ["broker.example", nil, nil])
        config.tlsServerName = "rabbit.internal"
        XCTAssertEqual(config.endpoints.map { AMQPConnection.tlsServerName(for: $0, config) },
                       ["rabbit.internal", "rabbit.internal", "rabbit.internal"])
    }
}
