import DequeModule
import XCTest

@testable import SocketIORabbitMQ

final class PublishBatchingTests: XCTestCase {
    /// (destination, id); destination "stream" may be reordered.
    private typealias Job = (destination: String, id: Int)

    private func take(_ jobs: inout Deque<Job>, maxMessages: Int = 100, maxBytes: Int = 1_000) -> [Int] {
        PublishBatching.takeBatch(
            from: &jobs, maxMessages: maxMessages, maxBytes: maxBytes,
            destination: { $0.destination }, size: { _ in 10 }, mayBeReordered: { $0.destination == "stream" }
        ).map(\.id)
    }

    func testStreamRecordsAreSkippedSoBroadcastsBatchTogether() {
        var jobs: Deque<Job> = [("all", 1), ("stream", 2), ("all", 3), ("stream", 4), ("all", 5)]
        XCTAssertEqual(take(&jobs), [1, 3, 5])
        XCTAssertEqual(take(&jobs), [2, 4])
        XCTAssertTrue(jobs.isEmpty)
    }

    func testOrderedJobsNeverOvertakeOtherOrderedJobs() {
        // A reply to node b sits between two broadcasts: the second broadcast must wait.
        var jobs: Deque<Job> = [("all", 1), ("reply-b", 2), ("all", 3)]
        XCTAssertEqual(take(&jobs), [1])
        XCTAssertEqual(take(&jobs), [2])
        XCTAssertEqual(take(&jobs), [3])
    }

    func testStreamRecordsMayOvertakeNodeTraffic() {
        var jobs: Deque<Job> = [("stream", 1), ("all", 2), ("stream", 3), ("reply-b", 4), ("stream", 5)]
        XCTAssertEqual(take(&jobs), [1, 3, 5])
        XCTAssertEqual(jobs.map(\.id), [2, 4], "the others keep their order")
    }

    func testLimitsSplitBatchesWithoutReordering() {
        var jobs: Deque<Job> = [("all", 1), ("all", 2), ("all", 3), ("stream", 4), ("all", 5)]
        XCTAssertEqual(take(&jobs, maxMessages: 2), [1, 2])
        XCTAssertEqual(take(&jobs, maxMessages: 2), [3, 5])
        XCTAssertEqual(take(&jobs, maxBytes: 25), [4])
        var big: Deque<Job> = [("all", 1), ("all", 2), ("all", 3)]
        XCTAssertEqual(take(&big, maxBytes: 25), [1, 2], "10 + 10 fit in 25, a third does not")
        XCTAssertEqual(take(&big, maxBytes: 5), [3], "a single job larger than the limit still goes alone")
    }
}
