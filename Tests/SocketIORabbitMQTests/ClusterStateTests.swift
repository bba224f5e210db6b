import EngineIO
import NIOCore
import XCTest

@testable import SocketIORabbitMQ

final class ClusterMembershipTests: XCTestCase {
    func testServerCountFollowsHeartbeatsAndTimeouts() {
        var membership = ClusterMembership(heartbeatTimeoutNanoseconds: 10)
        XCTAssertEqual(membership.serverCount, 1)
        XCTAssertTrue(membership.heard(from: "b", atNanoseconds: 0))
        XCTAssertTrue(membership.heard(from: "c", atNanoseconds: 5))
        XCTAssertFalse(membership.heard(from: "b", atNanoseconds: 8), "already known")
        XCTAssertEqual(membership.serverCount, 3)
        XCTAssertEqual(membership.expire(atNanoseconds: 15), [], "c was heard 10 ago: exactly the timeout is still alive")
        XCTAssertEqual(membership.expire(atNanoseconds: 16), ["c"])
        XCTAssertEqual(membership.liveNodes, ["b"])
        XCTAssertEqual(membership.expire(atNanoseconds: 18), [], "b was heard at 8")
        XCTAssertEqual(membership.serverCount, 2)
    }

    func testRefreshAllGivesEveryNodeAFullTimeoutAfterOurOwnOutage() {
        var membership = ClusterMembership(heartbeatTimeoutNanoseconds: 10)
        membership.heard(from: "b", atNanoseconds: 0)
        membership.refreshAll(atNanoseconds: 30)
        XCTAssertEqual(membership.expire(atNanoseconds: 40), [])
        XCTAssertEqual(membership.expire(atNanoseconds: 41), ["b"])
    }

    func testAdapterCloseRemovesAtOnce() {
        var membership = ClusterMembership(heartbeatTimeoutNanoseconds: 1_000)
        membership.heard(from: "b", atNanoseconds: 0)
        XCTAssertTrue(membership.remove("b"))
        XCTAssertFalse(membership.remove("b"))
        XCTAssertFalse(membership.isAlive("b"))
        XCTAssertEqual(membership.serverCount, 1)
    }
}

final class ClusterDuplicateFilterTests: XCTestCase {
    func testCopiesAfterAReplayAreDroppedPerOrigin() {
        var filter = ClusterDuplicateFilter()
        XCTAssertEqual([1, 2, 3].map { filter.accept(origin: "a", sequence: $0) }, [true, true, true])
        XCTAssertTrue(filter.accept(origin: "b", sequence: 1), "origins are independent")
        // The publisher replays 2...5 after the broker came back: 2 and 3 were delivered already.
        XCTAssertEqual([2, 3, 4, 5].map { filter.accept(origin: "a", sequence: $0) }, [false, false, true, true])
        XCTAssertEqual(filter.duplicateCount, 2)
        XCTAssertTrue(filter.accept(origin: "a", sequence: 9), "gaps are allowed")
        filter.forget(origin: "a")
        XCTAssertEqual(filter.trackedOriginCount, 1)
    }

    func testSilentOriginsAreForgottenOnlyAfterTheRetention() {
        var filter = ClusterDuplicateFilter(retentionNanoseconds: 100)
        XCTAssertTrue(filter.accept(origin: "a", sequence: 1, atNanoseconds: 0))
        XCTAssertTrue(filter.accept(origin: "b", sequence: 1, atNanoseconds: 50))
        XCTAssertEqual(filter.forgetSilentOrigins(atNanoseconds: 100), 0)
        XCTAssertFalse(filter.accept(origin: "a", sequence: 1, atNanoseconds: 100), "still remembered at the limit")
        XCTAssertEqual(filter.forgetSilentOrigins(atNanoseconds: 101), 1)
        XCTAssertEqual(filter.trackedOriginCount, 1)
        XCTAssertTrue(filter.accept(origin: "a", sequence: 1, atNanoseconds: 102), "a forgotten origin starts over")
    }
}

final class RoomRoutingTests: XCTestCase {
    func testBindingsFollowFirstJoinAndLastLeave() {
        var tracker = RoomBindingTracker()
        XCTAssertEqual(tracker.socketJoined("x"), .bind(routingKey: "r.x"))
        XCTAssertNil(tracker.socketJoined("x"))
        XCTAssertEqual(tracker.socketJoined("y"), .bind(routingKey: "r.y"))
        XCTAssertEqual(tracker.boundRoutingKeys, ["all", "r.x", "r.y"])
        XCTAssertNil(tracker.socketLeft("x"))
        XCTAssertEqual(tracker.socketLeft("x"), .unbind(routingKey: "r.x"))
        XCTAssertNil(tracker.socketLeft("x"), "leaving a room with no members changes nothing")
        XCTAssertEqual(tracker.roomCount, 1)
    }

    func testRoutingKeysForBroadcasts() {
        XCTAssertEqual(RoomRoutingKeys.keys(forBroadcastTo: [], roomAware: true), ["all"])
        XCTAssertEqual(RoomRoutingKeys.keys(forBroadcastTo: ["a", "b", "a"], roomAware: true), ["r.a", "r.b"])
        XCTAssertEqual(RoomRoutingKeys.keys(forBroadcastTo: ["a"], roomAware: false), ["all"])
    }
}

final class ClusterRequestTrackerTests: XCTestCase {
    private let reply = EncodedPacket(messages: [EngineMessage(text: "3[\"ok\"]")])

    func testFetchSocketsCompletesWhenEveryLiveNodeAnswered() {
        var tracker = ClusterRequestTracker()
        let (request, immediate) = tracker.begin(.fetchSockets, awaiting: ["b", "c"], deadlineNanoseconds: 100)
        XCTAssertNil(immediate)
        let socket = RemoteSocketRecord(id: "s1", handshake: ByteBuffer(), rooms: ["s1"], data: ByteBuffer(string: "null"))
        guard case .recorded = tracker.receive(.fetchSocketsResponse(request: request, sockets: [socket]), from: "b") else { return XCTFail() }
        guard case .ignored = tracker.receive(.fetchSocketsResponse(request: request, sockets: [socket]), from: "b") else {
            return XCTFail("a second answer from the same node is ignored")
        }
        guard case .completed(let completion) = tracker.receive(.fetchSocketsResponse(request: request, sockets: []), from: "c") else { return XCTFail() }
        XCTAssertTrue(completion.isComplete)
        XCTAssertEqual(completion.sockets.map(\.id), ["s1"])
        XCTAssertEqual(tracker.pendingCount, 0)
    }

    func testNoPeersCompletesImmediately() {
        var tracker = ClusterRequestTracker()
        let (_, immediate) = tracker.begin(.serverSideEmit, awaiting: [], deadlineNanoseconds: 100)
        XCTAssertEqual(immediate?.isComplete, true)
        XCTAssertEqual(tracker.pendingCount, 0)
    }

    func testADeadNodeCostsAtMostTheTimeoutAndNoLongerOnceDropped() {
        var tracker = ClusterRequestTracker()
        let (first, _) = tracker.begin(.serverSideEmit, awaiting: ["b", "dead"], deadlineNanoseconds: 100)
        let (second, _) = tracker.begin(.serverSideEmit, awaiting: ["b", "dead"], deadlineNanoseconds: 200)
        _ = tracker.receive(.serverSideEmitResponse(request: first, packet: reply), from: "b")
        XCTAssertEqual(tracker.nextDeadlineNanoseconds, 100)
        XCTAssertTrue(tracker.expire(atNanoseconds: 99).isEmpty)
        let expired = tracker.expire(atNanoseconds: 100)
        XCTAssertEqual(expired.map(\.request), [first])
        XCTAssertEqual(expired.first?.unansweredNodes, ["dead"])
        XCTAssertEqual(expired.first?.replies.count, 1)
        // Membership drops the dead node: the second request stops waiting for it.
        XCTAssertTrue(tracker.nodeLeft("dead").isEmpty, "second still waits for b")
        guard case .completed(let done) = tracker.receive(.serverSideEmitResponse(request: second, packet: reply), from: "b") else { return XCTFail() }
        XCTAssertEqual(done.request, second)
        XCTAssertTrue(done.isComplete)
    }

    func testNodeLeavingCompletesRequestsWaitingOnlyForIt() {
        var tracker = ClusterRequestTracker()
        let (request, _) = tracker.begin(.fetchSockets, awaiting: ["dead"], deadlineNanoseconds: 100)
        XCTAssertEqual(tracker.nodeLeft("dead").map(\.request), [request])
        XCTAssertEqual(tracker.pendingCount, 0)
    }

    func testBroadcastAcksForwardCountsAndAcksUntilTheDeadline() {
        var tracker = ClusterRequestTracker()
        let (request, immediate) = tracker.begin(.broadcastWithAck, awaiting: ["b"], deadlineNanoseconds: 50)
        XCTAssertNil(immediate)
        guard case .clientCount(3) = tracker.receive(.broadcastClientCount(request: request, clientCount: 3), from: "b") else { return XCTFail() }
        guard case .ignored = tracker.receive(.broadcastClientCount(request: request, clientCount: 3), from: "b") else { return XCTFail("counted once") }
        guard case .ack = tracker.receive(.broadcastAck(request: request, packet: reply), from: "b") else { return XCTFail() }
        XCTAssertEqual(tracker.pendingCount, 1, "late acks still need their callback")
        XCTAssertEqual(tracker.expire(atNanoseconds: 50).count, 1)
        guard case .ignored = tracker.receive(.broadcastAck(request: request, packet: reply), from: "b") else { return XCTFail("after the deadline") }
    }

    func testAnswersOfTheWrongKindAreIgnored() {
        var tracker = ClusterRequestTracker()
        let (request, _) = tracker.begin(.fetchSockets, awaiting: ["b"], deadlineNanoseconds: 50)
        guard case .ignored = tracker.receive(.serverSideEmitResponse(request: request, packet: reply), from: "b") else { return XCTFail() }
        guard case .ignored = tracker.receive(.fetchSocketsResponse(request: request + 1, sockets: []), from: "b") else { return XCTFail() }
        XCTAssertEqual(tracker.pendingCount, 1)
    }
}
