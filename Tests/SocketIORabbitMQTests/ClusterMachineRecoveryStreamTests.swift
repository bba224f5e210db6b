import EngineIO
import NIOCore
import Testing
@testable import SocketIORabbitMQ

// The recovery stream: recoverable packets emitted, read back, and the live consumer's life.

@Suite struct ClusterAdapterRecoveryStreamTests: ClusterMachineTesting {
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
        #expect(deliveries(decided).map(\.messages) == [plain], "delivered here at once, without offset")
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
        #expect(deliveries(failed).map(\.messages) == [hello.messages])
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

    @Test func everyEventReturnsItsOwnDeliveriesInStreamOrder() {
        // The adapter runs each event's actions on its loop before the next event: no turn to
        // take, no delivery queued in the machine for someone else to make.
        var machine = makeMachine(recovery: true)
        let second = EncodedPacket(messages: [EngineMessage(text: "2[\"second\"]")])
        let third = EncodedPacket(messages: [EngineMessage(text: "2[\"third\"]")])
        let first = machine.streamBodyRead(body(sequence: 1, .recoverablePacket(offset: "b-1", selection: everyone, packet: hello, deliveredByOrigin: false)),
                                           streamOffset: 1, now: 1)
        #expect(deliveries(first).map(\.messages) == [hello.messages])
        let parts = [2, 3].compactMap { sequence in
            try? ClusterMessageCodec.encode(ClusterMessage(origin: "b", sequence: UInt64(sequence), namespace: "/",
                payload: .recoverablePacket(offset: "b-\(sequence)", selection: everyone, packet: sequence == 2 ? second : third, deliveredByOrigin: false)))
        }
        guard let batch = try? ClusterBatchCodec.encode(parts) else { Issue.record("batch did not encode"); return }
        #expect(deliveries(machine.streamBodyRead(batch, streamOffset: 2, now: 2)).map(\.messages) == [second.messages, third.messages],
                "a batch's packets in the order they were written")
    }

    @Test func aClosedAdapterIgnoresARecoveryAndAConsumerEnd() {
        var machine = makeMachine(recovery: true)
        _ = machine.closeRequested(now: 1)
        _ = machine.connectionLost()
        #expect(machine.connectionRecovered(now: 2).isEmpty)
        #expect(machine.streamConsumerEnded().isEmpty)
        #expect(machine.nodeConsumerEnded().isEmpty)
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
