import EngineIO
import NIOCore
import Testing
@testable import SocketIORabbitMQ

// Session records written ahead, so a client of a node that is killed is restored elsewhere:
// the journal's coalescing and refreshes, and the machine's decisions (crash, expiry, a
// a node still counted alive, stale records). No broker.

private typealias Machine = ClusterAdapterStateMachine<String>
private let stream = "sio#/#recovery"
private let window: UInt64 = 1_000
private let refresh: UInt64 = 250
private let timeout: UInt64 = 10
private let hello = EncodedPacket(messages: [EngineMessage(text: "2[\"hi\"]")])
private let data = EncodedPacket(messages: [EngineMessage(text: "2[\"value\",{\"n\":1}]")])

private func makeMachine(node: String = "a") -> Machine {
    var machine = Machine(configuration: .init(
        nodeID: node, namespace: "/", exchangeName: "sio#/", exchangePrefix: "sio", recoveryStreamName: stream,
        outboxCapacity: 10_000, outboxOverflowPolicy: .dropOldest, roomAwareRouting: false, heartbeatTimeoutNanoseconds: timeout,
        recoveryWindowNanoseconds: window, maxLoggedPackets: 100, sessionRefreshNanoseconds: refresh))
    _ = machine.started(now: 0)
    _ = publishAll(&machine, now: 0)
    return machine
}

/// Publishes and confirms everything waiting: the AMQP publishes, each with its messages.
private func publishAll(_ machine: inout Machine, now: UInt64) -> [[ClusterMessage]] {
    var publishes: [[ClusterMessage]] = []
    while let batch = machine.nextBatch() {
        publishes.append(((try? ClusterBatchCodec.split(batch.body)) ?? []).compactMap { try? ClusterMessageCodec.decode($0) })
        _ = machine.publishConfirmed(batch, now: now)
    }
    return publishes
}

private func records(_ publishes: [[ClusterMessage]]) -> [SessionRecord] {
    publishes.joined().compactMap { if case .sessionRecord(let record) = $0.payload { record } else { nil } }
}

private func body(from origin: String, sequence: UInt64, _ payload: ClusterPayload) -> ByteBuffer {
    (try? ClusterMessageCodec.encode(ClusterMessage(origin: origin, sequence: sequence, namespace: "/", payload: payload))) ?? ByteBuffer()
}

private func node(_ machine: inout Machine, _ origin: String, heardAt now: UInt64) {
    _ = machine.nodeBodyRead(body(from: origin, sequence: now + 1, .heartbeat(isInitial: false)), now: now)
}

private func packet(_ offset: String, rooms: [String] = ["r"]) -> ClusterPayload {
    .recoverablePacket(offset: offset, selection: .init(rooms: rooms), packet: EncodedPacket(messages: [EngineMessage(text: "2[\"\(offset)\"]")]),
                       deliveredByOrigin: false)
}

private func connected(_ privateId: String = "p", socket: String = "s", rooms: [String] = ["r"], incarnation: String) -> ClusterPayload {
    .sessionRecord(SessionRecord(privateId: privateId, socketId: socket, rooms: rooms, data: data, state: .connected, incarnation: incarnation))
}

/// A claim of this node for `privateId` with the client's `offset`, read at `position`; the decision.
private func claim(_ machine: inout Machine, _ privateId: String = "p", offset: String, id: String, at position: Int64, now: UInt64) -> RecoveryLog.Decision? {
    machine.claimQueued(id: id, offset: offset, deadline: now + 10_000)
    _ = machine.streamRead(body(from: "a", sequence: UInt64(position) + 1_000, .restoreClaim(id: id, privateId: privateId)), streamOffset: position, now: now)
    let resumed = machine.waitForClaim(id: id, waiter: "restore")
    for action in resumed { if case .resumeClaimWaiter(_, let outcome) = action { return outcome?.decision } }
    return nil
}


@Suite struct SessionJournalTests {
    @Test func aConnectItsJoinsAndItsDataCostOneRecordAndOneFlush() {
        var journal = SessionJournal(refreshNanoseconds: refresh)
        let changed75 = journal.started(socketId: "s", privateId: "p", rooms: [], data: hello, nodeID: "a")
        #expect(changed75, "the first change arms the flush")
        let changed76 = journal.roomsChanged(socketId: "s", joined: ["s", "r1"])
        #expect(!changed76)
        let changed77 = journal.roomsChanged(socketId: "s", joined: ["r2"], left: ["r1"])
        #expect(!changed77)
        let changed78 = journal.dataChanged(socketId: "s", data: data)
        #expect(!changed78)
        let written = journal.due(now: 1)
        #expect(written.count == 1)
        #expect(written.first?.rooms == ["r2"], "its own id is not a room of the record")
        #expect(written.first?.data == data)
        #expect(written.first?.state == .connected)
        #expect(written.first?.incarnation.hasPrefix("a-") == true)
        #expect(journal.due(now: 2).isEmpty, "nothing changed since")
        let changed86 = journal.roomsChanged(socketId: "s", joined: ["r2"])
        #expect(!changed86, "no change, no record")
        let changed87 = journal.roomsChanged(socketId: "unknown", joined: ["r"])
        #expect(!changed87, "only tracked sockets")
    }

    @Test func aStormOfConnectionsIsOneFlushWithOneRecordPerSocket() {
        var journal = SessionJournal(refreshNanoseconds: refresh)
        var arms = 0
        for index in 0..<1_000 {
            if journal.started(socketId: "s\(index)", privateId: "p\(index)", rooms: [], data: hello, nodeID: "a") { arms += 1 }
            if journal.roomsChanged(socketId: "s\(index)", joined: ["lobby"]) { arms += 1 }
        }
        #expect(arms == 1)
        #expect(journal.due(now: 1).count == 1_000)
    }

    @Test func connectedRecordsAreWrittenAgainOldestFirstOncePerRefresh() {
        var journal = SessionJournal(refreshNanoseconds: refresh)
        _ = journal.started(socketId: "old", privateId: "p1", rooms: [], data: hello, nodeID: "a")
        _ = journal.due(now: 0)
        _ = journal.started(socketId: "young", privateId: "p2", rooms: [], data: hello, nodeID: "a")
        _ = journal.due(now: 100)
        #expect(journal.due(now: refresh - 1).isEmpty)
        #expect(journal.due(now: refresh).map(\.socketId) == ["old"])
        #expect(journal.due(now: 100 + refresh).map(\.socketId) == ["young"])
        // A change re-writes at once, and moves the next refresh.
        _ = journal.dataChanged(socketId: "old", data: data)
        #expect(journal.due(now: 300).map(\.socketId) == ["old"])
        #expect(journal.due(now: 300 + refresh - 1).isEmpty, "the refresh mark from before the change is stale")
    }

    @Test func aSocketOnItsWayOutIsWrittenNoMoreAndEndsWithItsIncarnation() {
        var journal = SessionJournal(refreshNanoseconds: refresh)
        _ = journal.started(socketId: "s", privateId: "p", rooms: ["r"], data: hello, nodeID: "a")
        let first = journal.due(now: 0)
        journal.stopping(socketId: "s")
        let changed121 = journal.roomsChanged(socketId: "s", left: ["r"])
        #expect(!changed121, "leaving its rooms on the way out is not a change")
        #expect(journal.due(now: 10 * refresh).isEmpty, "no refresh either")
        let ended = journal.ended(socketId: "s")
        #expect(ended?.written == true)
        #expect(ended?.incarnation == first.first?.incarnation)
        #expect(journal.ended(socketId: "s") == nil)
        // Never written (ended within the flush delay): the caller knows the stream never heard of it.
        _ = journal.started(socketId: "t", privateId: "q", rooms: [], data: hello, nodeID: "a")
        #expect(journal.ended(socketId: "t")?.written == false)
    }

    @Test func everyConnectionIsANewIncarnation() {
        var journal = SessionJournal(refreshNanoseconds: refresh)
        _ = journal.started(socketId: "s", privateId: "p", rooms: [], data: hello, nodeID: "a")
        let first = journal.entry(socketId: "s")?.incarnation
        _ = journal.ended(socketId: "s")
        _ = journal.started(socketId: "s", privateId: "p", rooms: [], data: hello, nodeID: "a")
        #expect(journal.entry(socketId: "s")?.incarnation != first)
    }
}

@Suite struct CrashedNodeRestoreTests {
    /// Node b wrote a connected record for its client and was killed: b's last heartbeat is
    /// the disconnection. Within the window after it: restored, with the packets after the
    /// client's offset that reach its rooms.
    @Test func aClientOfAKilledNodeIsRestoredFromTheRecordItsNodeWroteAhead() {
        var machine = makeMachine()
        node(&machine, "b", heardAt: 1)
        _ = machine.streamRead(body(from: "b", sequence: 1, connected(incarnation: "b-1")), streamOffset: 1, now: 1)
        _ = machine.streamRead(body(from: "b", sequence: 2, packet("b-1")), streamOffset: 2, now: 2)
        _ = machine.streamRead(body(from: "c", sequence: 1, packet("c-1")), streamOffset: 3, now: 3)
        _ = machine.streamRead(body(from: "c", sequence: 2, packet("c-2", rooms: ["elsewhere"])), streamOffset: 4, now: 4)
        // b falls silent and is dropped from membership.
        _ = machine.heartbeatTick(now: 1 + timeout + 1)
        #expect(!machine.membership.isAlive("b"))
        guard case .restored(let session, let missed)? = claim(&machine, offset: "b-1", id: "k", at: 5, now: 1 + window) else {
            Issue.record("not restored"); return
        }
        #expect(session.record.socketId == "s")
        #expect(session.record.rooms == ["r"])
        #expect(session.record.data == data)
        #expect(missed.map(\.offset) == ["c-1"])
    }

    @Test func theWindowCountsFromTheKilledNodesLastHeartbeatNotFromItsLastRecord() {
        var machine = makeMachine()
        node(&machine, "b", heardAt: 1)
        _ = machine.streamRead(body(from: "b", sequence: 1, connected(incarnation: "b-1")), streamOffset: 1, now: 1)
        _ = machine.streamRead(body(from: "b", sequence: 2, packet("b-1")), streamOffset: 2, now: 2)
        node(&machine, "b", heardAt: 200)  // alive well after its record
        _ = machine.heartbeatTick(now: 200 + timeout + 1)
        #expect(claim(&machine, offset: "b-1", id: "late", at: 3, now: 200 + window + 1) == .refused(.expired))
    }

    /// The record is older than the window, the client's last packet and the node's last
    /// heartbeat are not: restored (the record is kept a refresh longer than the window).
    @Test func aClaimInsideTheWindowAfterTheLastHeartbeatRestoresFromAnOlderRecord() {
        var machine = makeMachine()
        node(&machine, "b", heardAt: 1)
        _ = machine.streamRead(body(from: "b", sequence: 1, connected(incarnation: "b-1")), streamOffset: 1, now: 1)
        _ = machine.streamRead(body(from: "b", sequence: 2, packet("b-1")), streamOffset: 2, now: 190)
        node(&machine, "b", heardAt: 200)
        _ = machine.heartbeatTick(now: 200 + timeout + 1)
        guard case .restored? = claim(&machine, offset: "b-1", id: "k", at: 3, now: 200 + window - 20) else { Issue.record("not restored"); return }
    }

    /// Node b killed a moment ago still counts alive: the decision is "restored if b is gone",
    /// which the adapter asks the broker (b's queue has no consumer). Whatever comes of it, the
    /// claim was the first: b's late record of that incarnation cannot start a new round.
    @Test func aConnectedRecordOfANodeStillCountedAliveIsRestoredOnlyIfTheNodeIsGone() {
        var machine = makeMachine()
        node(&machine, "b", heardAt: 1)
        _ = machine.streamRead(body(from: "b", sequence: 1, connected(incarnation: "b-1")), streamOffset: 1, now: 1)
        _ = machine.streamRead(body(from: "b", sequence: 2, packet("b-1")), streamOffset: 2, now: 2)
        _ = machine.streamRead(body(from: "c", sequence: 1, packet("c-1")), streamOffset: 3, now: 3)
        guard case .restoredIfOriginGone(let session, let missed)? = claim(&machine, offset: "b-1", id: "k1", at: 4, now: 4) else {
            Issue.record("not a conditional restore"); return
        }
        #expect(session.origin == "b")
        #expect(missed.map(\.offset) == ["c-1"])
        // b noticed the lost connection only after the claim: its record is stale.
        _ = machine.streamRead(body(from: "b", sequence: 3, .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: ["r"], data: data,
                                                                                         state: .disconnected, incarnation: "b-1"))),
                               streamOffset: 5, now: 5)
        #expect(claim(&machine, offset: "b-1", id: "k2", at: 6, now: 6) == .refused(.alreadyClaimed))
        // The restored socket's own record (a new incarnation, on c) starts a new round; c is
        // alive, so again only if c were gone (a replayed pid cannot take a live session).
        node(&machine, "c", heardAt: 7)
        _ = machine.streamRead(body(from: "c", sequence: 2, connected(incarnation: "c-1")), streamOffset: 7, now: 7)
        guard case .restoredIfOriginGone? = claim(&machine, offset: "b-1", id: "k3", at: 8, now: 8) else { Issue.record("new round"); return }
    }

    /// This node never heard of b (b died before it started): the record's own time stands for
    /// the disconnection.
    @Test func aConnectedRecordOfANodeNeverHeardOfExpiresAWindowAfterTheRecord() {
        var machine = makeMachine()
        _ = machine.streamRead(body(from: "b", sequence: 1, connected(incarnation: "b-1")), streamOffset: 1, now: 300)
        _ = machine.streamRead(body(from: "b", sequence: 2, packet("b-1")), streamOffset: 2, now: 301)
        guard case .restored? = claim(&machine, offset: "b-1", id: "k1", at: 3, now: 300 + window - 10) else { Issue.record("not restored"); return }
        var late = makeMachine()
        _ = late.streamRead(body(from: "b", sequence: 1, connected(incarnation: "b-1")), streamOffset: 1, now: 300)
        _ = late.streamRead(body(from: "b", sequence: 2, packet("b-1")), streamOffset: 2, now: 301)
        #expect(claim(&late, offset: "b-1", id: "k2", at: 3, now: 300 + window + 1) == .refused(.expired))
    }

    @Test func aDisconnectedRecordIsRestoredWhetherItsNodeLivesOrNot() {
        var machine = makeMachine()
        node(&machine, "b", heardAt: 1)
        _ = machine.streamRead(body(from: "b", sequence: 1, connected(incarnation: "b-1")), streamOffset: 1, now: 1)
        _ = machine.streamRead(body(from: "b", sequence: 2, packet("b-1")), streamOffset: 2, now: 2)
        _ = machine.streamRead(body(from: "b", sequence: 3, .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: ["r"], data: data,
                                                                                         state: .disconnected, incarnation: "b-1"))),
                               streamOffset: 3, now: 3)
        guard case .restored? = claim(&machine, offset: "b-1", id: "k", at: 4, now: 4) else { Issue.record("not restored"); return }
        #expect(machine.restoreNeedsOriginCheck(ClaimedSession(record: SessionRecord(privateId: "p", socketId: "s", rooms: [], data: data,
                                                                                      state: .connected, incarnation: "b-1"), origin: "b", sequence: 1)),
                "after a scan, the same rule: b is alive")
    }

    @Test func theLastRecordOfADisconnectedSocketCarriesItsIncarnation() {
        var machine = makeMachine()
        _ = machine.sessionStarted(socketId: "s", privateId: "p", rooms: [], data: hello)
        _ = machine.sessionRoomsChanged(socketId: "s", joined: ["r"])
        _ = machine.sessionRecordsDue(now: 1)
        let ahead = records(publishAll(&machine, now: 1))
        machine.sessionStopping(socketId: "s")
        _ = machine.sessionDisconnected(SessionRecord(privateId: "p", socketId: "s", rooms: ["r"], data: data), now: 2)
        let last = records(publishAll(&machine, now: 2))
        #expect(ahead.map(\.state) == [.connected])
        #expect(last.map(\.state) == [.disconnected])
        #expect(last.first?.incarnation == ahead.first?.incarnation)
        #expect(last.first?.data == data, "what it had at the end")
    }

    @Test func aClientThatLeftOnPurposeIsMarkedClosedOnlyIfTheStreamKnewIt() {
        var machine = makeMachine()
        _ = machine.sessionStarted(socketId: "quick", privateId: "q", rooms: [], data: hello)
        machine.sessionStopping(socketId: "quick")
        _ = machine.sessionClosed(socketId: "quick", now: 1)
        _ = machine.sessionRecordsDue(now: 1)
        #expect(records(publishAll(&machine, now: 1)).isEmpty, "never written, nothing to close")
        _ = machine.sessionStarted(socketId: "s", privateId: "p", rooms: [], data: hello)
        _ = machine.sessionRecordsDue(now: 2)
        _ = publishAll(&machine, now: 2)
        machine.sessionStopping(socketId: "s")
        _ = machine.sessionClosed(socketId: "s", now: 3)
        #expect(records(publishAll(&machine, now: 3)).map(\.state) == [.closed])
    }

    @Test func aStormOfConnectionsIsAFewPublishesNotOnePerSocket() {
        var machine = makeMachine()
        for index in 0..<1_000 {
            _ = machine.sessionStarted(socketId: "s\(index)", privateId: "p\(index)", rooms: [], data: hello)
            _ = machine.sessionRoomsChanged(socketId: "s\(index)", joined: ["lobby"])
        }
        _ = machine.sessionRecordsDue(now: 1)
        let publishes = publishAll(&machine, now: 1)
        #expect(records(publishes).count == 1_000)
        #expect(publishes.count <= 4, "\(publishes.count) publishes: at most 256 messages each")
    }

    @Test func theHeartbeatRefreshesConnectedRecords() {
        var machine = makeMachine()
        _ = machine.sessionStarted(socketId: "s", privateId: "p", rooms: [], data: hello)
        _ = machine.sessionRecordsDue(now: 1)
        _ = publishAll(&machine, now: 1)
        _ = machine.heartbeatTick(now: 1 + refresh)
        #expect(records(publishAll(&machine, now: 1 + refresh)).map(\.socketId) == ["s"])
    }
}

@Suite struct DepartedMembershipTests {
    @Test func aNodeThatLeftIsRememberedWithItsLastHeartbeatForAWhile() {
        var membership = ClusterMembership(heartbeatTimeoutNanoseconds: 10)
        membership.departedMemoryNanoseconds = 100
        membership.heard(from: "b", atNanoseconds: 5)
        #expect(membership.liveness(of: "b") == .alive)
        let gone = membership.expire(atNanoseconds: 16)
        #expect(gone == ["b"])
        #expect(membership.liveness(of: "b") == .departed(lastHeardAtNanoseconds: 5))
        _ = membership.expire(atNanoseconds: 106)
        #expect(membership.liveness(of: "b") == .unknown, "forgotten after the memory")
        membership.heard(from: "c", atNanoseconds: 200)
        let changed295 = membership.remove("c")
        #expect(changed295)
        #expect(membership.liveness(of: "c") == .departed(lastHeardAtNanoseconds: 200))
        membership.heard(from: "c", atNanoseconds: 210)
        #expect(membership.liveness(of: "c") == .alive, "back")
    }
}

@Suite struct StaleRecordScanTests {
    @Test func theScanIgnoresRecordsOfAnIncarnationAClaimEnded() {
        var scan = RecoveryStreamScan(privateId: "p", offset: "b-1", claimId: "mine")
        let messages: [(String, ClusterPayload)] = [
            ("b", connected(incarnation: "b-1")),
            ("b", packet("b-1")),
            ("c", .restoreClaim(id: "theirs", privateId: "p")),
            ("b", .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: ["r"], data: data, state: .disconnected, incarnation: "b-1"))),
            ("a", .restoreClaim(id: "mine", privateId: "p")),
        ]
        var outcome: RecoveryStreamScan.Outcome?
        for (index, (origin, payload)) in messages.enumerated() {
            outcome = scan.read(ClusterMessage(origin: origin, sequence: UInt64(index + 1), namespace: "/", payload: payload),
                                at: StreamPosition(offset: Int64(index)))
        }
        #expect(outcome == .refused(.alreadyClaimed))
    }
}
