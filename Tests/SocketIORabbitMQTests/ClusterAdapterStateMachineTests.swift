import EngineIO
import NIOCore
import Testing
@testable import SocketIORabbitMQ

// Drives the cluster adapter's machine with events and checks the actions; no broker.
// Waiters are plain strings: the machine only stores them and hands them back.

private typealias Machine = ClusterAdapterStateMachine<String>
private let stream = "sio#/#recovery"

private func makeMachine(recovery: Bool = false, roomAware: Bool = false, capacity: Int = 100,
                         policy: OutboxOverflowPolicy = .dropOldest, start: Bool = true) -> Machine {
    var machine = Machine(configuration: .init(
        nodeID: "a", namespace: "/", exchangeName: "sio#/", exchangePrefix: "sio", recoveryStreamName: recovery ? stream : nil,
        outboxCapacity: capacity, outboxOverflowPolicy: policy, roomAwareRouting: roomAware, heartbeatTimeoutNanoseconds: 10,
        recoveryWindowNanoseconds: 1_000, maxLoggedPackets: 100))
    if start {
        _ = machine.started(now: 0)
        publishAll(&machine, now: 0)
    }
    return machine
}

/// Publishes and confirms everything waiting; returns the messages, in publish order.
@discardableResult
private func publishAll(_ machine: inout Machine, now: UInt64) -> [ClusterMessage] {
    var messages: [ClusterMessage] = []
    while let batch = machine.nextBatch() {
        messages += decode(batch)
        _ = machine.publishConfirmed(batch, now: now)
    }
    return messages
}

extension ClusterAdapterStateMachine {
    /// Takes the `.deliverInOrder` turn at once, as the adapter does: the ordered actions
    /// replace it, in order.
    mutating func settled(_ actions: [Action]) -> [Action] {
        var result: [Action] = []
        for action in actions {
            guard case .deliverInOrder = action else {
                result.append(action)
                continue
            }
            while true {
                let next = nextOrderedActions()
                if next.isEmpty { break }
                result += next
            }
        }
        return result
    }

    mutating func streamRead(_ body: ByteBuffer, streamOffset: Int64?, now: UInt64) -> [Action] {
        let actions = streamBodyRead(body, streamOffset: streamOffset, now: now)
        return settled(actions)
    }
}

private func hasBatch(_ machine: inout Machine) -> Bool { machine.nextBatch() != nil }

private func decode(_ batch: Machine.PublishBatch) -> [ClusterMessage] {
    ((try? ClusterBatchCodec.split(batch.body)) ?? []).compactMap { try? ClusterMessageCodec.decode($0) }
}

private func body(from origin: String = "b", sequence: UInt64, namespace: String = "/", _ payload: ClusterPayload) -> ByteBuffer {
    (try? ClusterMessageCodec.encode(ClusterMessage(origin: origin, sequence: sequence, namespace: namespace, payload: payload))) ?? ByteBuffer()
}

private let hello = EncodedPacket(messages: [EngineMessage(text: "2[\"hi\"]")])
private let everyone = ClusterSocketSelection()

private func deliveries(_ actions: [Machine.Action]) -> [(messages: [EngineMessage], held: [String])] {
    actions.compactMap { if case .deliver(let messages, _, _, let held, _) = $0 { (messages, held) } else { nil } }
}
private func completions(_ actions: [Machine.Action]) -> [(waiter: String, completion: ClusterRequestTracker.Completion)] {
    actions.compactMap { if case .completeRequest(let waiter, let completion) = $0 { (waiter, completion) } else { nil } }
}
private func routesResumed(_ actions: [Machine.Action]) -> [String] {
    actions.compactMap { if case .resumeRouteWaiter(let waiter) = $0 { waiter } else { nil } }
}
private func claimsResumed(_ actions: [Machine.Action]) -> [(waiter: String, outcome: Machine.ClaimOutcome?)] {
    actions.compactMap { if case .resumeClaimWaiter(let waiter, let outcome) = $0 { (waiter, outcome) } else { nil } }
}
private func wakesPublisher(_ actions: [Machine.Action]) -> Bool {
    actions.contains { if case .wakePublisher = $0 { true } else { false } }
}
private func remoteWork(_ actions: [Machine.Action]) -> [Machine.RemoteWork] {
    actions.compactMap { if case .handleRemote(let work) = $0 { work } else { nil } }
}

@Suite struct ClusterAdapterPublishingTests {
    @Test func messagesSentBeforeStartAreHeldThenPublishedBeforeTheHello() {
        var machine = makeMachine(start: false)
        #expect(machine.send(.socketsJoin(selection: everyone, rooms: ["r"]), now: 0).isEmpty)
        let published = hasBatch(&machine)
        #expect(!published, "nothing goes out before the queues exist")
        #expect(!machine.isReady)
        let actions = machine.started(now: 1)
        #expect(wakesPublisher(actions))
        #expect(machine.isReady)
        let sent = publishAll(&machine, now: 2)
        #expect(sent.map(\.sequence) == [1, 2])
        #expect(sent.last?.payload == .heartbeat(isInitial: true))
        #expect(machine.outboxIsEmpty)
    }

    @Test func aConfirmFromAnOlderEpochIsStale() {
        var machine = makeMachine()
        _ = machine.send(.adapterClose, now: 5)
        guard let batch = machine.nextBatch() else { Issue.record("no batch"); return }
        _ = machine.connectionLost()
        _ = machine.publishConfirmed(batch, now: 9)
        #expect(machine.metricsSnapshot.published == 1, "only the hello of the start was confirmed")
        #expect(machine.metricsSnapshot.outboxSize == 1, "still waits for the new channel")
    }

    @Test func jobsOfALostChannelAreReplayedOnceInOrderAfterRecovery() {
        var machine = makeMachine()
        _ = machine.send(.socketsJoin(selection: everyone, rooms: ["1"]), now: 1)
        _ = machine.connectionLost()
        _ = machine.send(.socketsJoin(selection: everyone, rooms: ["2"]), now: 2)
        let published = hasBatch(&machine)
        #expect(!published, "no publish while the broker is away, and the old job is stale")
        #expect(!machine.isReady)
        let actions = machine.connectionRecovered(now: 3)
        #expect(wakesPublisher(actions))
        let sent = publishAll(&machine, now: 4)
        #expect(sent.map(\.sequence) == [2, 3, 4], "held messages first, in order, then the hello; nothing twice")
        #expect(sent.last?.payload == .heartbeat(isInitial: true))
        #expect(machine.isReady)
    }

    @Test func aNackKeepsTheMessageForTheNextChannel() {
        var machine = makeMachine()
        _ = machine.send(.adapterClose, now: 1)
        guard let batch = machine.nextBatch() else { Issue.record("no batch"); return }
        machine.publishNacked(batch)
        #expect(machine.metricsSnapshot.publishFailures == 1)
        #expect(machine.metricsSnapshot.outboxSize == 1)
        _ = machine.connectionRecovered(now: 2)
        _ = machine.publishChannelReplaced()  // the nack asked for a new channel
        #expect(publishAll(&machine, now: 3).first?.payload == .adapterClose)
    }

    @Test func onlyTheFirstFailedPublishOfAnEpochIsAConnectionLoss() {
        var machine = makeMachine()
        _ = machine.send(.adapterClose, now: 1)
        guard let batch = machine.nextBatch() else { Issue.record("no batch"); return }
        #expect(machine.publishFailed(batch).contains { if case .readinessMayHaveChanged = $0 { true } else { false } })
        #expect(machine.publishFailed(batch).isEmpty, "a later failure of the same epoch changes nothing")
        #expect(machine.metricsSnapshot.publishFailures == 2)
        #expect(machine.connectionLost().isEmpty, "the client's own disconnect comes after: already known")
    }

    @Test func aFullOutboxDropsTheOldestOrRefusesTheNewest() {
        var dropping = makeMachine(capacity: 1, policy: .dropOldest)
        _ = dropping.connectionLost()
        _ = dropping.send(.adapterClose, now: 1)
        let dropped = dropping.send(.adapterClose, now: 2)
        #expect(dropped.contains { if case .log(.outboxFull) = $0 { true } else { false } })
        var refusing = makeMachine(capacity: 1, policy: .rejectNew)
        _ = refusing.connectionLost()
        #expect(refusing.enqueue(.adapterClose, now: 1).kept)
        #expect(!refusing.enqueue(.adapterClose, now: 2).kept)
        #expect(refusing.metricsSnapshot.outboxOverflow == 1)
    }

    @Test func aMessageOverTheFormatsLimitsIsDroppedCountedAndLoggedWithoutASequenceGap() {
        var machine = makeMachine()
        let tooLong = String(repeating: "x", count: 70_000)
        let actions = machine.send(.socketsJoin(selection: everyone, rooms: [tooLong]), now: 1)
        #expect(actions.count == 1)
        #expect(actions.contains { if case .log(.encodingFailed(.stringTooLong(bytes: 70_000), count: 1)) = $0 { true } else { false } })
        #expect(machine.metricsSnapshot.encodingFailures == 1)
        let logged = (2...8).map { _ in !machine.send(.socketsJoin(selection: everyone, rooms: [tooLong]), now: 1).isEmpty }
        #expect(logged == [true, false, true, false, false, false, true], "logged at the 2nd, 4th and 8th")
        _ = machine.send(.adapterClose, now: 2)
        #expect(publishAll(&machine, now: 3).map(\.sequence) == [2], "the next message follows the hello")
    }

    @Test func closeWaitsForTheGoodbyeToBeConfirmedOrItsDeadline() {
        var machine = makeMachine()
        let (first, goodbye) = machine.closeRequested(now: 1)
        #expect(first && wakesPublisher(goodbye))
        #expect(!machine.closeRequested(now: 2).first, "closing twice is closing once")
        #expect(machine.waitForDrain(waiter: "close", deadline: 100).isEmpty)
        guard let batch = machine.nextBatch() else { Issue.record("no goodbye"); return }
        #expect(decode(batch).first?.payload == .adapterClose)
        let confirmed = machine.publishConfirmed(batch, now: 3)
        #expect(confirmed.contains { if case .resumeDrainWaiter("close") = $0 { true } else { false } })

        var away = makeMachine()
        _ = away.connectionLost()
        _ = away.closeRequested(now: 1)
        #expect(away.waitForDrain(waiter: "close", deadline: 100).contains { if case .resumeDrainWaiter = $0 { true } else { false } },
                "with the broker away there is nothing to wait for")
    }
}

@Suite struct ClusterAdapterNodeMessageTests {
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

@Suite struct ClusterAdapterRequestTests {
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

@Suite struct ClusterAdapterRoomTests {
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

@Suite struct ClusterAdapterRecoveryStreamTests {
    /// A packet of this node read back from the stream, as the broker would hand it over.
    private func readBack(_ machine: inout Machine, _ sent: [ClusterMessage], at offset: Int64, now: UInt64 = 5) -> [Machine.Action] {
        let bodies = sent.compactMap { try? ClusterMessageCodec.encode($0) }
        guard let body = try? ClusterBatchCodec.encode(bodies) else {
            Issue.record("a batch of \(bodies.count) messages did not encode")
            return []
        }
        return machine.streamRead(body, streamOffset: offset, now: now)
    }

    @Test func aRecoverablePacketIsDeliveredHereOnlyWhenReadBackFromTheStream() {
        var machine = makeMachine(recovery: true)
        let offset = machine.nextRecoveryOffset()
        #expect(offset == "a-1")
        guard case .done(let actions) = machine.recoverableBroadcast(offset: offset, selection: everyone, packet: hello, plain: nil, now: 1) else {
            Issue.record("not queued"); return
        }
        #expect(deliveries(actions).isEmpty)
        let sent = publishAll(&machine, now: 2)
        #expect(deliveries(readBack(&machine, sent, at: 10)).map(\.messages) == [hello.messages])
        #expect(deliveries(readBack(&machine, sent, at: 10)).isEmpty, "a redelivery after recovery is handled already")
        #expect(machine.metricsSnapshot.receivedStreamPackets == 1)
    }

    @Test func whileTheBrokerIsAwayAPacketIsDeliveredHereAtOnceAndSkippedWhenReadBack() {
        var machine = makeMachine(recovery: true)
        _ = machine.connectionLost()
        let offset = machine.nextRecoveryOffset()
        guard case .needsPlainPacket = machine.recoverableBroadcast(offset: offset, selection: everyone, packet: hello, plain: nil, now: 1) else {
            Issue.record("must ask for the packet without offset"); return
        }
        let plain = [EngineMessage(text: "2[\"hi\"]")]
        guard case .done(let decided) = machine.recoverableBroadcast(offset: offset, selection: everyone, packet: hello, plain: plain, now: 1) else {
            Issue.record("not decided"); return
        }
        #expect(deliveries(machine.settled(decided)).map(\.messages) == [plain], "delivered here at once, without offset")
        _ = machine.connectionRecovered(now: 2)
        let sent = publishAll(&machine, now: 3)
        guard case .recoverablePacket(_, _, _, let deliveredByOrigin)? = sent.first?.payload else { Issue.record("not replayed"); return }
        #expect(deliveredByOrigin, "other nodes' restores learn that this node's clients had it")
        #expect(deliveries(readBack(&machine, sent, at: 1)).isEmpty)
    }

    @Test func aRefusedPacketStillReachesThisNodesClients() {
        var machine = makeMachine(recovery: true, capacity: 1, policy: .rejectNew)
        _ = machine.send(.adapterClose, now: 1)  // fills the outbox (unconfirmed)
        guard case .refused = machine.recoverableBroadcast(offset: "a-1", selection: everyone, packet: hello, plain: nil, now: 2) else {
            Issue.record("refused packet not delivered here"); return
        }
    }

    @Test func aConnectionLossDeliversOwnPacketsInFlightWhoseRecordsAreThenSkipped() {
        var machine = makeMachine(recovery: true)
        _ = machine.recoverableBroadcast(offset: "a-1", selection: everyone, packet: hello, plain: nil, now: 1)
        guard let batch = machine.nextBatch() else { Issue.record("no batch"); return }
        let failed = machine.publishFailed(batch)
        #expect(deliveries(machine.settled(failed)).map(\.messages) == [hello.messages])
        _ = machine.connectionRecovered(now: 2)
        let sent = publishAll(&machine, now: 3)
        #expect(deliveries(readBack(&machine, sent, at: 1)).isEmpty, "delivered already when the connection dropped")
    }

    @Test func anotherNodesCopiesInTheStreamAreDeliveredOnce() {
        var machine = makeMachine(recovery: true)
        let record = body(sequence: 4, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false))
        #expect(deliveries(machine.streamRead(record, streamOffset: 1, now: 1)).count == 1)
        #expect(deliveries(machine.streamRead(record, streamOffset: 2, now: 1)).isEmpty, "re-published after an outage")
        #expect(machine.streamRead(record, streamOffset: nil, now: 1).count == 1, "no offset: logged")
        #expect(machine.metricsSnapshot.undecodable == 1)
    }

    @Test func aClaimReadBeforeItsRestoreWaitsIsDecidedAndHeld() {
        var machine = makeMachine(recovery: true)
        let session = SessionRecord(privateId: "p", socketId: "s", rooms: ["s"], data: hello)
        _ = machine.streamRead(body(sequence: 1, .sessionRecord(session)), streamOffset: 1, now: 1)
        _ = machine.streamRead(body(sequence: 2, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false)),
                                   streamOffset: 2, now: 2)
        let missed = EncodedPacket(messages: [EngineMessage(text: "2[\"missed\"]")])
        _ = machine.streamRead(body(sequence: 3, .recoverablePacket(offset: "b-2", selection: everyone, packet: missed, deliveredByOrigin: false)),
                                   streamOffset: 3, now: 3)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        #expect(machine.streamRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 4, now: 4).isEmpty)
        // After the claim: the restoring socket gets it from its hold, not directly.
        let after = EncodedPacket(messages: [EngineMessage(text: "2[\"after\"]")])
        let live = machine.streamRead(body(sequence: 4, .recoverablePacket(offset: "b-3", selection: everyone, packet: after, deliveredByOrigin: false)),
                                          streamOffset: 5, now: 5)
        #expect(deliveries(live).first?.held == ["s"])
        let waited = machine.waitForClaim(id: "claim", waiter: "restore")
        let resumed = claimsResumed(machine.settled(waited))
        guard case .restored(let found, let packets)? = resumed.first?.outcome?.decision else { Issue.record("not restored"); return }
        #expect(found.record.socketId == "s")
        #expect(packets.map(\.packet) == [missed])
        #expect(machine.restoredSocketConnecting("s").packets == [after.messages])
        #expect(machine.restoredSocketConnecting("s").packets.isEmpty, "released once")
    }

    @Test func orderedDeliveriesKeepTheDecidedOrderWhoeverMakesThem() {
        var machine = makeMachine(recovery: true)
        let first = body(sequence: 1, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false))
        let second = EncodedPacket(messages: [EngineMessage(text: "2[\"second\"]")])
        let turn = machine.streamBodyRead(first, streamOffset: 1, now: 1)
        #expect(deliveries(turn).isEmpty, "the first reader takes the turn")
        #expect(turn.contains { if case .deliverInOrder = $0 { true } else { false } })
        // While the turn-holder is writing, another delivery is decided: it queues behind.
        let queued = machine.streamBodyRead(body(sequence: 2, .recoverablePacket(offset: "b-2", selection: everyone, packet: second, deliveredByOrigin: false)),
                                            streamOffset: 2, now: 2)
        #expect(queued.isEmpty)
        #expect(deliveries(machine.nextOrderedActions()).map(\.messages) == [hello.messages, second.messages])
        #expect(machine.nextOrderedActions().isEmpty, "nothing left ends the turn")
        let next = machine.streamBodyRead(body(sequence: 3, .recoverablePacket(offset: "b-3", selection: everyone, packet: hello, deliveredByOrigin: false)),
                                          streamOffset: 3, now: 3)
        #expect(next.contains { if case .deliverInOrder = $0 { true } else { false } }, "the next one takes a new turn")
    }

    @Test func aRestoreWhoseClaimWasReadResumesBehindTheDeliveriesBeforeIt() {
        var machine = makeMachine(recovery: true)
        _ = machine.streamRead(body(sequence: 1, .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: [], data: hello))),
                               streamOffset: 1, now: 1)
        _ = machine.streamRead(body(sequence: 2, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false)),
                               streamOffset: 2, now: 2)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        let before = EncodedPacket(messages: [EngineMessage(text: "2[\"before the claim\"]")])
        // Read but not yet written when the claim is read:
        _ = machine.streamBodyRead(body(sequence: 3, .recoverablePacket(offset: "b-2", selection: everyone, packet: before, deliveredByOrigin: false)),
                                   streamOffset: 3, now: 3)
        _ = machine.streamBodyRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 4, now: 4)
        #expect(machine.waitForClaim(id: "claim", waiter: "restore").isEmpty, "behind the turn in progress")
        let ordered = machine.nextOrderedActions()
        #expect(ordered.count == 2)
        guard case .deliver = ordered.first, case .resumeClaimWaiter("restore", _)? = ordered.last else {
            Issue.record("the restore must resume after the delivery decided before its claim"); return
        }
    }

    @Test func aYoungNodeHoldsEverythingAfterTheClaimUntilItsScanNamesTheSession() {
        var machine = makeMachine(recovery: true)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        // Started at 0 with a window of 1,000: at 4 the log cannot know the session.
        _ = machine.streamRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 1, now: 4)
        let waited = machine.waitForClaim(id: "claim", waiter: "restore")
        guard case .unknown? = claimsResumed(machine.settled(waited)).first?.outcome?.decision else { Issue.record("not unknown"); return }
        let other = EncodedPacket(messages: [EngineMessage(text: "2[\"elsewhere\"]")])
        let mine = EncodedPacket(messages: [EngineMessage(text: "2[\"mine\"]")])
        _ = machine.streamRead(body(sequence: 1, .recoverablePacket(offset: "b-2", selection: .init(rooms: ["x"]), packet: other, deliveredByOrigin: false)),
                               streamOffset: 2, now: 5)
        _ = machine.streamRead(body(sequence: 2, .recoverablePacket(offset: "b-3", selection: .init(rooms: ["s"]), packet: mine, deliveredByOrigin: false)),
                               streamOffset: 3, now: 6)
        let session = ClaimedSession(record: SessionRecord(privateId: "p", socketId: "s", rooms: ["s"], data: hello), origin: "b", sequence: 0)
        machine.scanFinished(id: "claim", session: session, claimedAt: StreamPosition(offset: 1))
        #expect(machine.restoredSocketConnecting("s").packets == [mine.messages], "only what reaches the session's rooms")
    }

    @Test func aScanThatFindsNothingOrAnAbandonedRestoreEndsTheHold() {
        var machine = makeMachine(recovery: true)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        _ = machine.streamRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 1, now: 4)
        #expect(machine.restoreHolds.count == 1)
        machine.scanFinished(id: "claim", session: nil, claimedAt: StreamPosition(offset: 1))
        #expect(machine.restoreHolds.isEmpty)

        let session = SessionRecord(privateId: "q", socketId: "t", rooms: [], data: hello)
        _ = machine.streamRead(body(sequence: 1, .sessionRecord(session)), streamOffset: 2, now: 5)
        _ = machine.streamRead(body(sequence: 2, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false)),
                               streamOffset: 3, now: 6)
        machine.claimQueued(id: "again", offset: "b-1", deadline: 100)
        _ = machine.streamRead(body(from: "a", sequence: 10, .restoreClaim(id: "again", privateId: "q")), streamOffset: 4, now: 7)
        #expect(machine.restoreHolds.count == 1)
        machine.restoreAbandoned("t")
        #expect(machine.restoreHolds.isEmpty)
        let live = machine.streamRead(body(sequence: 3, .recoverablePacket(offset: "b-2", selection: everyone, packet: hello, deliveredByOrigin: false)),
                                      streamOffset: 5, now: 8)
        #expect(deliveries(live).first?.held == [], "an abandoned restore holds nothing back")
    }

    @Test func aSessionIsRestoredOnceWhicheverNodeClaimsFirst() {
        var machine = makeMachine(recovery: true)
        let session = SessionRecord(privateId: "p", socketId: "s", rooms: [], data: hello)
        _ = machine.streamRead(body(sequence: 1, .sessionRecord(session)), streamOffset: 1, now: 1)
        _ = machine.streamRead(body(sequence: 2, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false)),
                               streamOffset: 2, now: 2)
        // Another node's claim comes first in the stream.
        _ = machine.streamRead(body(from: "c", sequence: 1, .restoreClaim(id: "c-claim", privateId: "p")), streamOffset: 3, now: 3)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        _ = machine.streamRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 4, now: 4)
        let waited = machine.waitForClaim(id: "claim", waiter: "restore")
        guard case .refused(.alreadyClaimed)? = claimsResumed(machine.settled(waited)).first?.outcome?.decision else {
            Issue.record("a second claim must be refused"); return
        }
        #expect(machine.restoreHolds.isEmpty, "a refused claim holds nothing")
    }

    @Test func aHoldWhoseSocketNeverCameIsDroppedAfterItsLifetime() {
        var machine = makeMachine(recovery: true)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        _ = machine.streamRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 1, now: 4)
        _ = machine.heartbeatTick(now: 4 + 299_999_999_999)
        #expect(machine.restoreHolds.count == 1)
        _ = machine.heartbeatTick(now: 4 + 300_000_000_000)
        #expect(machine.restoreHolds.isEmpty)
    }

    @Test func aClosedAdapterIgnoresARecoveryAndAConsumerEnd() {
        var machine = makeMachine(recovery: true)
        _ = machine.closeRequested(now: 1)
        _ = machine.connectionLost()
        #expect(machine.connectionRecovered(now: 2).isEmpty)
        #expect(machine.streamConsumerEnded().isEmpty)
        #expect(machine.nodeConsumerEnded().isEmpty)
    }

    @Test func aClaimThatNeverComesBackTimesOut() {
        var machine = makeMachine(recovery: true)
        machine.claimQueued(id: "claim", offset: "x", deadline: 100)
        #expect(machine.waitForClaim(id: "claim", waiter: "restore").isEmpty)
        let resumed = claimsResumed(machine.deadlinesPassed(now: 100))
        #expect(resumed.map(\.waiter) == ["restore"])
        #expect(resumed.first.map { $0.outcome == nil } == true)
        #expect(claimsResumed(machine.waitForClaim(id: "claim", waiter: "late")).map(\.waiter) == ["late"], "unknown claims resume at once")
    }

    @Test func aStreamConsumerCancelledByTheBrokerMakesTheNodeNotReadyUntilRestarted() {
        var machine = makeMachine(recovery: true)
        _ = machine.streamRead(body(sequence: 1, .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: [], data: hello))),
                                   streamOffset: 7, now: 1)
        _ = machine.streamConsumerEnded()
        #expect(!machine.isReady)
        #expect(machine.streamResumePosition == StreamPosition(offset: 7))
        _ = machine.streamRecreated()
        #expect(machine.streamResumePosition == nil, "a stream declared again is read from its start")
        _ = machine.streamConsumerRestarted()
        #expect(machine.isReady)
    }

    @Test func aNodeQueueConsumerThatEndsMakesTheNodeNotReady() {
        var machine = makeMachine()
        _ = machine.nodeConsumerEnded()
        #expect(!machine.isReady)
    }
}
