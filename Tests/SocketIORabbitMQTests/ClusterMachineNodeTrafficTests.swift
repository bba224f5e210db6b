import EngineIO
import NIOCore
import Testing
@testable import SocketIORabbitMQ

// Messages from other nodes, requests to them, and room bindings.

@Suite struct ClusterAdapterNodeMessageTests: ClusterMachineTesting {
    @Test func aBroadcastFromAnotherNodeIsDeliveredOnce() {
        var machine = makeMachine()
        let broadcast = body(sequence: 1, .broadcast(selection: .init(rooms: ["r"]), flags: .init(), packet: hello, ackRequest: nil))
        #expect(deliveries(machine.nodeBodyRead(broadcast, now: 1)).map(\.messages) == [hello.messages])
        #expect(deliveries(machine.nodeBodyRead(broadcast, now: 2)).isEmpty, "a replayed copy")
        let snapshot = machine.metricsSnapshot
        #expect(snapshot.received == 1 && snapshot.receivedBroadcasts == 1 && snapshot.duplicatesDropped == 1)
        #expect(machine.membership.isAlive("b"), "any message is a sign of life")
    }

    @Test func ownMessagesOtherNamespacesAndForeignBodiesAreDropped() {
        var machine = makeMachine()
        #expect(machine.nodeBodyRead(body(from: "a", sequence: 9, .heartbeat(isInitial: true)), now: 1).isEmpty)
        #expect(machine.nodeBodyRead(body(sequence: 1, namespace: "/chat", .heartbeat(isInitial: true)), now: 1).isEmpty)
        #expect(machine.nodeBodyRead(ByteBuffer(bytes: [0xBA, 0, 2, 0]), now: 1).count == 1)
        #expect(machine.nodeBodyRead(ByteBuffer(bytes: [99]), now: 1).count == 1)
        #expect(machine.metricsSnapshot.undecodable == 2)
        #expect(machine.membership.liveNodes.isEmpty)
    }

    @Test func anInitialHeartbeatIsAnsweredAtOnce() {
        var machine = makeMachine()
        #expect(wakesPublisher(machine.nodeBodyRead(body(sequence: 1, .heartbeat(isInitial: true)), now: 1)))
        #expect(publishAll(&machine, now: 2).map(\.payload) == [.heartbeat(isInitial: false)])
        #expect(machine.nodeBodyRead(body(sequence: 2, .heartbeat(isInitial: false)), now: 3).isEmpty)
        #expect(machine.membership.serverCount == 2)
    }

    @Test func requestsFromOtherNodesBecomeRemoteWorkAnsweredToTheAsker() {
        var machine = makeMachine()
        let work = remoteWork(machine.nodeBodyRead(body(sequence: 1, .fetchSockets(request: 7, selection: everyone)), now: 1))
        guard case .fetchSockets(7, _, let replyQueue)? = work.first else { Issue.record("no fetch"); return }
        #expect(replyQueue == "sio#/#b")
        let join = remoteWork(machine.nodeBodyRead(body(sequence: 2, .socketsJoin(selection: everyone, rooms: ["x"])), now: 1))
        guard case .socketsJoin(_, ["x"])? = join.first else { Issue.record("no join"); return }
        let acks = remoteWork(machine.nodeBodyRead(body(sequence: 3, .broadcast(selection: everyone, flags: .init(), packet: hello, ackRequest: 4)), now: 1))
        guard case .broadcastWithAck(_, _, _, 4, "sio#/#b")? = acks.first else { Issue.record("no ack broadcast"); return }
    }

    @Test func recoveryStreamRecordsNeverCountFromNodeQueues() {
        var machine = makeMachine(recovery: true)
        let record = body(sequence: 1, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false))
        #expect(deliveries(machine.nodeBodyRead(record, now: 1)).isEmpty)
    }
}

@Suite struct ClusterAdapterRequestTests: ClusterMachineTesting {
    @Test func aRequestWithNoPeerCompletesAtOnceAndSendsNothing() {
        var machine = makeMachine()
        let actions = machine.requestStarted(.fetchSockets, waiter: "fetch", deadline: 100, now: 1) { .fetchSockets(request: $0, selection: everyone) }
        #expect(completions(actions).map(\.waiter) == ["fetch"])
        let published = hasBatch(&machine)
        #expect(!published)
    }

    @Test func aRequestCompletesWithTheLastAnswer() {
        var machine = makeMachine()
        _ = machine.nodeBodyRead(body(sequence: 1, .heartbeat(isInitial: false)), now: 1)
        let actions = machine.requestStarted(.fetchSockets, waiter: "fetch", deadline: 100, now: 1) { .fetchSockets(request: $0, selection: everyone) }
        #expect(completions(actions).isEmpty && wakesPublisher(actions))
        guard case .fetchSockets(let request, _)? = publishAll(&machine, now: 2).first?.payload else { Issue.record("not sent"); return }
        let answer = machine.nodeBodyRead(body(sequence: 2, .fetchSocketsResponse(request: request, sockets: [])), now: 3)
        #expect(completions(answer).map { $0.waiter } == ["fetch"])
        #expect(completions(answer).first?.completion.isComplete == true)
    }

    @Test func aDeadlineEndsARequestWithWhatItHas() {
        var machine = makeMachine()
        _ = machine.nodeBodyRead(body(sequence: 1, .heartbeat(isInitial: false)), now: 1)
        _ = machine.requestStarted(.serverSideEmit, waiter: "emit", deadline: 50, now: 1) { .serverSideEmit(request: $0, packet: hello) }
        #expect(machine.deadlinesPassed(now: 49).isEmpty)
        let expired = completions(machine.deadlinesPassed(now: 50))
        #expect(expired.map(\.waiter) == ["emit"])
        #expect(expired.first?.completion.unansweredNodes == ["b"])
    }

    @Test func aNodeThatLeavesOrFallsSilentIsNoLongerWaitedFor() {
        var machine = makeMachine()
        _ = machine.nodeBodyRead(body(sequence: 1, .heartbeat(isInitial: false)), now: 1)
        _ = machine.requestStarted(.fetchSockets, waiter: "fetch", deadline: 1_000, now: 1) { .fetchSockets(request: $0, selection: everyone) }
        #expect(completions(machine.nodeBodyRead(body(sequence: 2, .adapterClose), now: 2)).map(\.waiter) == ["fetch"])
        #expect(machine.membership.liveNodes.isEmpty)

        _ = machine.nodeBodyRead(body(from: "c", sequence: 1, .heartbeat(isInitial: false)), now: 3)
        _ = machine.requestStarted(.fetchSockets, waiter: "again", deadline: 1_000, now: 3) { .fetchSockets(request: $0, selection: everyone) }
        #expect(completions(machine.heartbeatTick(now: 13)).isEmpty, "silent for exactly the timeout is still alive")
        #expect(completions(machine.heartbeatTick(now: 14)).map(\.waiter) == ["again"])
    }

    @Test func silenceDuringOurOwnOutageDropsNobody() {
        var machine = makeMachine()
        _ = machine.nodeBodyRead(body(sequence: 1, .heartbeat(isInitial: false)), now: 1)
        _ = machine.connectionLost()
        #expect(machine.heartbeatTick(now: 100).isEmpty)
        #expect(machine.membership.isAlive("b"))
        _ = machine.connectionRecovered(now: 100)
        _ = machine.heartbeatTick(now: 105)
        #expect(machine.membership.isAlive("b"), "recovery gives every peer a full timeout")
    }

    @Test func aBroadcastWithAcksForwardsCountsAndAcksUntilItsDeadline() {
        var machine = makeMachine()
        _ = machine.nodeBodyRead(body(sequence: 1, .heartbeat(isInitial: false)), now: 1)
        _ = machine.ackBroadcastStarted(callbacks: "acks", selection: everyone, flags: .init(), packet: hello, deadline: 50, now: 1)
        guard case .broadcast(_, _, _, let request?)? = publishAll(&machine, now: 2).first?.payload else { Issue.record("not sent"); return }
        let count = machine.nodeBodyRead(body(sequence: 2, .broadcastClientCount(request: request, clientCount: 3)), now: 3)
        #expect(count.contains { if case .forwardClientCount("acks", 3) = $0 { true } else { false } })
        let ack = machine.nodeBodyRead(body(sequence: 3, .broadcastAck(request: request, packet: hello)), now: 4)
        #expect(ack.contains { if case .forwardAck("acks", _) = $0 { true } else { false } })
        #expect(machine.deadlinesPassed(now: 50).isEmpty, "ends quietly")
        #expect(machine.nodeBodyRead(body(sequence: 4, .broadcastAck(request: request, packet: hello)), now: 51).isEmpty, "late acks find nobody")
    }

    @Test func closingReleasesEveryWaiter() {
        var machine = makeMachine(recovery: true, roomAware: true)
        _ = machine.nodeBodyRead(body(sequence: 1, .heartbeat(isInitial: false)), now: 1)
        _ = machine.requestStarted(.fetchSockets, waiter: "fetch", deadline: 1_000, now: 1) { .fetchSockets(request: $0, selection: everyone) }
        _ = machine.roomsJoined("s1", rooms: ["r"])
        _ = machine.waitForRoutes(["r"], waiter: "join", deadline: 1_000)
        machine.claimQueued(id: "claim", offset: "x", deadline: 1_000)
        _ = machine.waitForClaim(id: "claim", waiter: "restore")
        _ = machine.closeRequested(now: 2)
        let actions = machine.closed()
        #expect(completions(actions).map(\.waiter) == ["fetch"])
        #expect(routesResumed(actions) == ["join"])
        #expect(claimsResumed(actions).map(\.waiter) == ["restore"])
        #expect(claimsResumed(actions).first.map { $0.outcome == nil } == true)
    }
}

@Suite struct ClusterAdapterRoomTests: ClusterMachineTesting {
    @Test func aJoinWaitsForItsBindAndALeaveUnbindsInOrder() {
        var machine = makeMachine(roomAware: true)
        #expect(!machine.roomsJoined("s1", rooms: ["r"]).isEmpty)
        #expect(machine.roomsJoined("s2", rooms: ["r"]).isEmpty, "the room is bound already")
        #expect(machine.waitForRoutes(["r"], waiter: "join", deadline: 100).isEmpty)
        guard let bind = machine.nextBindingOperation() else { Issue.record("no bind"); return }
        #expect(bind.change == .bind(routingKey: "r.r"))
        #expect(routesResumed(machine.bindingOperationFinished(bind.number)) == ["join"])
        #expect(routesResumed(machine.waitForRoutes(["r"], waiter: "later", deadline: 100)) == ["later"], "routed already")
        _ = machine.roomsLeft("s1", rooms: ["r"])
        _ = machine.roomsLeft("s2", rooms: ["r"])
        #expect(machine.nextBindingOperation()?.change == .unbind(routingKey: "r.r"))
    }

    @Test func aJoinWaitEndsAtItsDeadline() {
        var machine = makeMachine(roomAware: true)
        _ = machine.roomsJoined("s1", rooms: ["r"])
        _ = machine.waitForRoutes(["r"], waiter: "join", deadline: 100)
        #expect(routesResumed(machine.deadlinesPassed(now: 99)).isEmpty)
        #expect(routesResumed(machine.deadlinesPassed(now: 100)) == ["join"])
    }

    @Test func recoveryRebindsEveryRoomWithMembers() {
        var machine = makeMachine(roomAware: true)
        _ = machine.roomsJoined("s1", rooms: ["a", "b"])
        while machine.nextBindingOperation() != nil {}
        _ = machine.connectionLost()
        _ = machine.connectionRecovered(now: 5)
        var rebound: [RoomBindingTracker.Change] = []
        while let operation = machine.nextBindingOperation() { rebound.append(operation.change) }
        #expect(rebound == [.bind(routingKey: "r.a"), .bind(routingKey: "r.b")])
    }

    @Test func withoutRoomAwareRoutingNothingIsBoundOrAwaited() {
        var machine = makeMachine()
        #expect(machine.roomsJoined("s1", rooms: ["r"]).isEmpty)
        #expect(routesResumed(machine.waitForRoutes(["r"], waiter: "join", deadline: 1)) == ["join"])
    }
}
