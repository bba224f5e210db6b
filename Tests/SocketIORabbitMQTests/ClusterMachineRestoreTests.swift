import EngineIO
import NIOCore
import Testing
@testable import SocketIORabbitMQ

// Restores: claims read from the stream, holds, and handing the held packets to the socket.

@Suite struct ClusterAdapterRestoreTests: ClusterMachineTesting {
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
        let resumed = claimsResumed(waited)
        guard case .restored(let found, let packets)? = resumed.first?.outcome?.decision else { Issue.record("not restored"); return }
        #expect(found.record.socketId == "s")
        #expect(packets.map(\.packet) == [missed])
        #expect(heldSent(machine.restoredSocketConnecting("s", waiter: "socket")) == [after.messages])
        #expect(heldSent(machine.restoredSocketConnecting("s", waiter: "socket")) == [], "released once")
    }

    @Test func aYoungNodeHoldsEverythingAfterTheClaimUntilItsScanNamesTheSession() {
        var machine = makeMachine(recovery: true)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        // Started at 0 with a window of 1,000: at 4 the log cannot know the session.
        _ = machine.streamRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 1, now: 4)
        let waited = machine.waitForClaim(id: "claim", waiter: "restore")
        guard case .unknown? = claimsResumed(waited).first?.outcome?.decision else { Issue.record("not unknown"); return }
        let other = EncodedPacket(messages: [EngineMessage(text: "2[\"elsewhere\"]")])
        let mine = EncodedPacket(messages: [EngineMessage(text: "2[\"mine\"]")])
        _ = machine.streamRead(body(sequence: 1, .recoverablePacket(offset: "b-2", selection: .init(rooms: ["x"]), packet: other, deliveredByOrigin: false)),
                               streamOffset: 2, now: 5)
        _ = machine.streamRead(body(sequence: 2, .recoverablePacket(offset: "b-3", selection: .init(rooms: ["s"]), packet: mine, deliveredByOrigin: false)),
                               streamOffset: 3, now: 6)
        let session = ClaimedSession(record: SessionRecord(privateId: "p", socketId: "s", rooms: ["s"], data: hello), origin: "b", sequence: 0)
        machine.scanFinished(id: "claim", session: session, claimedAt: StreamPosition(offset: 1))
        #expect(heldSent(machine.restoredSocketConnecting("s", waiter: "socket")) == [mine.messages], "only what reaches the session's rooms")
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
        guard case .refused(.alreadyClaimed)? = claimsResumed(waited).first?.outcome?.decision else {
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

    @Test func aClaimThatNeverComesBackTimesOut() {
        var machine = makeMachine(recovery: true)
        machine.claimQueued(id: "claim", offset: "x", deadline: 100)
        #expect(machine.waitForClaim(id: "claim", waiter: "restore").isEmpty)
        let resumed = claimsResumed(machine.deadlinesPassed(now: 100))
        #expect(resumed.map(\.waiter) == ["restore"])
        #expect(resumed.first.map { $0.outcome == nil } == true)
        #expect(claimsResumed(machine.waitForClaim(id: "claim", waiter: "late")).map(\.waiter) == ["late"], "unknown claims resume at once")
    }

    @Test func aRestoreWhoseClaimWasReadResumesAtOnceAfterTheDeliveriesBeforeIt() {
        var machine = makeMachine(recovery: true)
        _ = machine.streamRead(body(sequence: 1, .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: [], data: hello))),
                               streamOffset: 1, now: 1)
        _ = machine.streamRead(body(sequence: 2, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false)),
                               streamOffset: 2, now: 2)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        let before = EncodedPacket(messages: [EngineMessage(text: "2[\"before the claim\"]")])
        let decidedBefore = machine.streamBodyRead(
            body(sequence: 3, .recoverablePacket(offset: "b-2", selection: everyone, packet: before, deliveredByOrigin: false)), streamOffset: 3, now: 3)
        #expect(deliveries(decidedBefore).first?.held == [], "decided before the claim: delivered, not held (it is a missed packet)")
        #expect(machine.streamBodyRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 4, now: 4).isEmpty)
        let waited = machine.waitForClaim(id: "claim", waiter: "restore")
        guard case .resumeClaimWaiter("restore", let outcome)? = waited.first, waited.count == 1 else {
            Issue.record("a claim read already resumes its restore at once"); return
        }
        guard case .restored(_, let missed)? = outcome?.decision else { Issue.record("not restored"); return }
        #expect(missed.map(\.packet) == [before], "the packet delivered before the claim is replayed as missed")
    }

    @Test func aRestoredSocketGetsItsHoldInOneActionAndEveryLaterDeliveryIncludesIt() {
        var machine = makeMachine(recovery: true)
        _ = machine.streamRead(body(sequence: 1, .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: ["s"], data: hello))),
                               streamOffset: 1, now: 1)
        _ = machine.streamRead(body(sequence: 2, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false)),
                               streamOffset: 2, now: 2)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        _ = machine.streamRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 3, now: 3)
        _ = machine.waitForClaim(id: "claim", waiter: "restore")
        let held = EncodedPacket(messages: [EngineMessage(text: "2[\"held\"]")])
        let whileHeld = machine.streamRead(body(sequence: 3, .recoverablePacket(offset: "b-2", selection: everyone, packet: held, deliveredByOrigin: false)),
                                           streamOffset: 4, now: 4)
        #expect(deliveries(whileHeld).first?.held == ["s"])
        let connecting = machine.restoredSocketConnecting("s", waiter: "socket")
        guard case .sendHeldPackets("socket", let packets)? = connecting.last else { Issue.record("the socket's waiter gets its hold"); return }
        #expect(packets == [held.messages])
        let newer = machine.streamRead(body(sequence: 4, .recoverablePacket(offset: "b-3", selection: everyone, packet: hello, deliveredByOrigin: false)),
                                       streamOffset: 5, now: 5)
        #expect(deliveries(newer).first?.held == [], "decided after the hold ended: written to the socket directly")
    }

    @Test func aSocketWithoutAHoldIsAnsweredWithNothingAndAnOverflowIsLoggedFirst() {
        var machine = makeMachine(recovery: true)
        #expect(heldSent(machine.restoredSocketConnecting("nobody", waiter: "socket")) == [], "answered, with nothing")
        _ = machine.streamRead(body(sequence: 1, .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: [], data: hello))),
                               streamOffset: 1, now: 1)
        _ = machine.streamRead(body(sequence: 2, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false)),
                               streamOffset: 2, now: 2)
        machine.claimQueued(id: "claim", offset: "b-1", deadline: 100)
        _ = machine.streamRead(body(from: "a", sequence: 9, .restoreClaim(id: "claim", privateId: "p")), streamOffset: 3, now: 3)
        // The hold keeps at most the log's capacity (100 here).
        for sequence in 3...103 {
            _ = machine.streamRead(body(sequence: UInt64(sequence), .recoverablePacket(offset: "b-\(sequence)", selection: everyone, packet: hello,
                                                                                     deliveredByOrigin: false)),
                                   streamOffset: Int64(sequence + 1), now: 4)
        }
        let connecting = machine.restoredSocketConnecting("s", waiter: "socket")
        guard case .log(.holdOverflow(socketId: "s", let dropped))? = connecting.first, case .sendHeldPackets? = connecting.last else {
            Issue.record("an overflowing hold is logged, then sent"); return
        }
        #expect(dropped == 1)
        #expect(heldSent(connecting)?.count == 100)
    }

    /// The packets handed to a `.sendHeldPackets` waiter (nil when there is none).
    private func heldSent(_ actions: [Machine.Action]) -> [[EngineMessage]]? {
        for case .sendHeldPackets(_, let packets) in actions { return packets }
        return nil
    }
}
