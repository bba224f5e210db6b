import AMQPProtocol
import Foundation
import Logging
import NIOCore
import NIOSSL
import XCTest
@testable import AMQPClient

/// Against a RabbitMQ node that accepts only TLS (`scripts/rabbitmq-tls start`): its certificate is
/// signed by a throwaway CA and names only `localhost` and `127.0.0.1`. Run with
/// `eval "$(scripts/rabbitmq-tls env | sed 's/^/export /')"; swift test --filter AMQPSIntegration`.
final class AMQPSIntegrationTests: XCTestCase {
    private var url: String!
    private var caFile: String!
    private let logger: Logger = {
        var logger = Logger(label: "amqps-it")
        logger.logLevel = .warning
        return logger
    }()

    override func setUpWithError() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["AMQPS_URL"], !url.isEmpty, let caFile = environment["AMQPS_CA_FILE"], !caFile.isEmpty else {
            throw XCTSkip("AMQPS_URL / AMQPS_CA_FILE not set: run `scripts/rabbitmq-tls start` and export what `scripts/rabbitmq-tls env` prints")
        }
        self.url = url
        self.caFile = caFile
    }

    /// The URL's configuration trusting the test CA; recovery off so failures surface directly.
    private func configuration(host: String? = nil) throws -> AMQPConnectionConfiguration {
        var config = try AMQPConnectionConfiguration(url: url)
        if let host { config.endpoints = config.endpoints.map { AMQPEndpoint(host: host, port: $0.port, useTLS: true) } }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(caFile)
        config.tlsConfiguration = tls
        config.recovery.isEnabled = false
        config.connectTimeout = .seconds(5)
        return config
    }

    func testConfirmedPublishAndConsumeOverTLS() async throws {
        XCTAssertTrue(try configuration().endpoints.allSatisfy(\.useTLS))
        let connection = try await AMQPConnection.connect(try configuration(), logger: logger)
        let consumeChannel = try await connection.openChannel()
        let queue = try await consumeChannel.queueDeclare("", exclusive: true, autoDelete: true).queue
        let consumer = try await consumeChannel.consume(queue: queue, noAck: true)
        let total = 2_000
        // Larger than one TLS record (16 KiB) and one frame for some messages, to cross both boundaries.
        let bigIndex = 7

        // Consume while publishing: a consumer left unread would pause the socket (back-pressure)
        // and with it the confirms this publisher waits for.
        let receiving = Task { () throws -> Set<Int> in
            var seen = Set<Int>()
            for try await message in consumer {
                var body = message.body
                let index = Int(body.readInteger(as: UInt32.self)!)
                XCTAssertEqual(body.readableBytes, index == bigIndex ? 300_000 : 60)
                XCTAssertEqual(body.readableBytesView.first, UInt8(index & 0xff))
                seen.insert(index)
                if seen.count == total { break }
            }
            return seen
        }
        let publishChannel = try await connection.openChannel()
        try await publishChannel.confirmSelect()
        try await withTimeout(seconds: 60) {
          try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<32 {
                group.addTask {
                    for index in stride(from: worker, to: total, by: 32) {
                        var body = ByteBuffer()
                        body.writeInteger(UInt32(index))
                        body.writeRepeatingByte(UInt8(index & 0xff), count: index == bigIndex ? 300_000 : 60)
                        try await publishChannel.publish(body, routingKey: queue)
                    }
                }
            }
            try await group.waitForAll()
          }
        }
        let received = try await withTimeout(seconds: 30) { try await receiving.value }
        XCTAssertEqual(received, Set(0..<total))
        try await connection.close()
    }

    func testClientThatDoesNotTrustTheCAFailsFastWithTypedError() async throws {
        var config = try configuration()
        config.tlsConfiguration = .makeClientConfiguration()  // system roots only
        let started = ContinuousClock.now
        do {
            _ = try await AMQPConnection.connect(config, logger: logger)
            XCTFail("connected to a broker whose CA is not trusted")
        } catch AMQPError.tlsHandshakeFailed(let reason) {
            XCTAssertTrue(reason.contains("CERTIFICATE_VERIFY_FAILED"), reason)
        }
        XCTAssertLessThan((ContinuousClock.now - started).seconds, 2)
    }

    func testHostnameVerification() async throws {
        // Names the certificate lists: its IP entry (via the URL's 127.0.0.1) and its DNS entry.
        for host in ["127.0.0.1", "localhost"] {
            let connection = try await AMQPConnection.connect(try configuration(host: host), logger: logger)
            let channel = try await connection.openChannel()
            _ = try await channel.queueDeclare("", exclusive: true, autoDelete: true)
            try await connection.close()
        }

        // NIOSSL accepts a certificate IP entry that matches the connected address whatever the name,
        // so the negative case connects to a second loopback address the certificate does not list.
        let unlisted = ProcessInfo.processInfo.environment["AMQPS_UNLISTED_ADDRESS"] ?? "127.0.0.2"
        var misnamed = try configuration(host: unlisted)
        let started = ContinuousClock.now
        do {
            _ = try await AMQPConnection.connect(misnamed, logger: logger)
            XCTFail("connected although the certificate does not name \(unlisted)")
        } catch AMQPError.tlsHandshakeFailed(let reason) {
            XCTAssertTrue(reason.contains("failedToValidateHostname"), reason)
        }
        XCTAssertLessThan((ContinuousClock.now - started).seconds, 2)

        // A name the certificate lists makes the same address acceptable...
        misnamed.tlsServerName = "localhost"
        try await AMQPConnection.connect(misnamed, logger: logger).close()
        // ...a name it does not list does not...
        misnamed.tlsServerName = "broker.invalid"
        do {
            _ = try await AMQPConnection.connect(misnamed, logger: logger)
            XCTFail("connected with a server name the certificate does not list")
        } catch AMQPError.tlsHandshakeFailed {}
        // ...unless hostname checks alone are switched off (the chain is still verified).
        misnamed.tlsConfiguration?.certificateVerification = .noHostnameVerification
        let connection = try await AMQPConnection.connect(misnamed, logger: logger)
        try await connection.close()
    }
}
