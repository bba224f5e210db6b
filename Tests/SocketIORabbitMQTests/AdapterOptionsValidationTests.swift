import XCTest

@testable import SocketIORabbitMQ

/// Options come from configuration: a bad one is a clear error at connect, never a trap when a
/// duration is converted or an outbox is built.
final class AdapterOptionsValidationTests: XCTestCase {
    func testDefaultsAreValid() throws {
        try RabbitMQAdapterOptions().validate()
    }

    func testEachBadOptionIsNamed() {
        let broken: [(String, (inout RabbitMQAdapterOptions) -> Void)] = [
            ("heartbeatIntervalSeconds", { $0.heartbeatIntervalSeconds = 0 }),
            ("heartbeatTimeoutSeconds", { $0.heartbeatTimeoutSeconds = .nan }),
            ("requestTimeoutSeconds", { $0.requestTimeoutSeconds = -1 }),
            ("outboxCapacity", { $0.outboxCapacity = 0 }),
            ("queueExpiresMilliseconds", { $0.queueExpiresMilliseconds = 0 }),
            ("queueMessageTTLMilliseconds", { $0.queueMessageTTLMilliseconds = -5 }),
            ("recoveryStreamMaxLengthBytes", { $0.recoveryStreamMaxLengthBytes = 0 }),
        ]
        for (name, breakIt) in broken {
            var options = RabbitMQAdapterOptions()
            breakIt(&options)
            XCTAssertThrowsError(try options.validate(), name) { error in
                XCTAssertEqual((error as? RabbitMQOptionsError)?.option, name)
            }
        }
    }

    func testTheOutboxCapacityIsClampedInsteadOfTrapping() {
        XCTAssertEqual(ClusterOutbox<Int>(capacity: 0, overflowPolicy: .dropOldest).capacity, 1)
    }
}
