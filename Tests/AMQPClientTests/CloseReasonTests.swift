@testable import AMQPClient
import XCTest

final class CloseReasonTests: XCTestCase {
    func testAQueueWhoseProcessIsNotUpYetIsTransient() {
        // What RabbitMQ 3.10 answers for a durable queue or stream right after start_app.
        let starting = AMQPCloseReason(
            replyCode: 404,
            replyText: "NOT_FOUND - home node 'rabbit@vm' of durable queue 'chat.history' in vhost '/' is down or inaccessible",
            classID: 50, methodID: 10
        )
        XCTAssertTrue(starting.isTransientUnavailability)
    }

    func testMissingOrConflictingEntitiesAreNot() {
        let missing = AMQPCloseReason(replyCode: 404, replyText: "NOT_FOUND - no queue 'gone' in vhost '/'")
        let conflicting = AMQPCloseReason(replyCode: 406, replyText: "PRECONDITION_FAILED - inequivalent arg 'durable'")
        XCTAssertFalse(missing.isTransientUnavailability)
        XCTAssertFalse(conflicting.isTransientUnavailability)
        XCTAssertEqual(missing.kind, .notFound)
    }
}
