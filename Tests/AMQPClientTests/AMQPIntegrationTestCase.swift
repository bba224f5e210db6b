import Foundation
import Logging
import XCTest
@testable import AMQPClient

/// What the integration tests against a real RabbitMQ share: the broker's URL (AMQP_URL; the
/// tests skip without it), a logger and connections with a fast recovery. Run them with
/// `AMQP_URL=amqp://guest:guest@127.0.0.1:5672 swift test --filter AMQPClientIntegration`
/// (start the broker with `scripts/rabbitmq start`).
class AMQPIntegrationTestCase: XCTestCase {
    private(set) var url: String!
    let logger: Logger = {
        var logger = Logger(label: "amqp-it")
        logger.logLevel = ProcessInfo.processInfo.environment["AMQP_LOG"] == "debug" ? .debug : .warning
        return logger
    }()

    override func setUpWithError() throws {
        guard let url = ProcessInfo.processInfo.environment["AMQP_URL"], !url.isEmpty else {
            throw XCTSkip("AMQP_URL is not set: run `scripts/rabbitmq start` and `AMQP_URL=amqp://guest:guest@127.0.0.1:5672 swift test --filter AMQPClientIntegration`")
        }
        self.url = url
    }

    func connect(name: String, recovery: Bool = true) async throws -> AMQPConnection {
        var config = try AMQPConnectionConfiguration(url: url)
        config.connectionName = name
        config.recovery = .init(isEnabled: recovery, initialDelay: .milliseconds(100), maximumDelay: .seconds(1))
        return try await AMQPConnection.connect(config, logger: logger)
    }

    func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
    }
}
