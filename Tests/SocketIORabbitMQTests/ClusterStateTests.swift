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
    private func bind(_ room: String, _ number: UInt64) -> RoomBindingTracker.Operation {
        .init(number: number, change: .bind(routingKey: "r." + room))
    }

    private func unbind(_ room: String, _ number: UInt64) -> RoomBindingTracker.Operation {
        .init(number: number, change: .unbind(routingKey: "r." + room))
    }

    func testBindingsFollowFirstJoinAndLastLeave() {
        var tracker = RoomBindingTracker()
        XCTAssertEqual(tracker.socketJoined("s1", room: "x"), bind("x", 1))
        XCTAssertNil(tracker.socketJoined("s2", room: "x"))
        XCTAssertEqual(tracker.socketJoined("s1", room: "y"), bind("y", 2))
        XCTAssertEqual(tracker.boundRoutingKeys, ["all", "r.x", "r.y"])
        XCTAssertNil(tracker.socketLeft("s1", room: "x"))
        XCTAssertEqual(tracker.socketLeft("s2", room: "x"), unbind("x", 3))
        XCTAssertNil(tracker.socketLeft("s2", room: "x"), "leaving a room with no members changes nothing")
        XCTAssertEqual(tracker.roomCount, 1)
    }

    func testASocketJoiningTwiceIsOneMember() {
        var tracker = RoomBindingTracker()
        XCTAssertEqual(tracker.socketJoined("s1", room: "x"), bind("x", 1))
        XCTAssertNil(tracker.socketJoined("s1", room: "x"), "its own join racing a remote socketsJoin")
        XCTAssertNil(tracker.socketLeft("s9", room: "x"), "a socket that never joined cannot empty the room")
        XCTAssertEqual(tracker.socketLeft("s1", room: "x"), unbind("x", 2), "one leave ends the membership")
    }

    func testAJoinWaitsForTheBindOfItsRoomAndNoLonger() {
        var tracker = RoomBindingTracker()
        _ = tracker.socketJoined("s1", room: "x")  // operation 1
        XCTAssertEqual(tracker.operationToAwait(rooms: ["x"]), 1)
        XCTAssertNil(tracker.socketJoined("s2", room: "x"))
        XCTAssertEqual(tracker.operationToAwait(rooms: ["x"]), 1, "a second member waits for the pending bind too")
        _ = tracker.socketJoined("s2", room: "y")  // operation 2
        XCTAssertEqual(tracker.operationToAwait(rooms: ["x", "y"]), 2, "the later of the two binds")
        tracker.finished(1)
        XCTAssertNil(tracker.operationToAwait(rooms: ["x"]))
        XCTAssertEqual(tracker.operationToAwait(rooms: ["x", "y"]), 2)
        tracker.finished(2)
        XCTAssertNil(tracker.operationToAwait(rooms: ["x", "y"]))
        XCTAssertNil(tracker.operationToAwait(rooms: ["never-joined"]))
    }

    func testRejoinAfterTheLastLeaveBindsAgainAfterTheUnbind() {
        var tracker = RoomBindingTracker()
        _ = tracker.socketJoined("s1", room: "x")
        tracker.finished(1)
        XCTAssertEqual(tracker.socketLeft("s1", room: "x"), unbind("x", 2))
        // The unbind has not run yet; a new member must not count on the old binding.
        XCTAssertEqual(tracker.socketJoined("s2", room: "x"), bind("x", 3), "the bind is ordered after the unbind")
        XCTAssertEqual(tracker.operationToAwait(rooms: ["x"]), 3)
        tracker.finished(2)
        XCTAssertEqual(tracker.operationToAwait(rooms: ["x"]), 3, "the unbind finishing does not complete the join")
        tracker.finished(3)
        XCTAssertNil(tracker.operationToAwait(rooms: ["x"]))
    }

    func testRecoveryRebindsEveryRoomWithMembers() {
        var tracker = RoomBindingTracker()
        _ = tracker.socketJoined("s1", room: "b")
        _ = tracker.socketJoined("s1", room: "a")
        _ = tracker.socketJoined("s2", room: "gone")
        _ = tracker.socketLeft("s2", room: "gone")
        tracker.finished(4)
        XCTAssertEqual(tracker.rebindAll(), [bind("a", 5), bind("b", 6)])
        XCTAssertEqual(tracker.operationToAwait(rooms: ["a", "b"]), 6)
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
        let socket = RemoteSocketRecord(id: "s1", handshake: ByteBuffer(), rooms: ["s1"], data: EncodedPacket(messages: [EngineMessage(text: "2[null]")]))
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
