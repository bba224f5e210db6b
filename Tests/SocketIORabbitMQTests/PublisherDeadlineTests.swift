import EngineIO
import NIOCore
import Testing
@testable import SocketIORabbitMQ

// The publisher's deadlines and republishing, and consumer restarts, on the adapter's machine
// (no broker): what a confirm that never comes, a nack, a new channel and a restarted node
// queue consumer mean.

private typealias Machine = ClusterAdapterStateMachine<String>
private let second: UInt64 = 1_000_000_000

private func startedMachine(roomAware: Bool = false) -> Machine {
    var machine = Machine(configuration: .init(
        nodeID: "a", namespace: "/", exchangeName: "sio#/", exchangePrefix: "sio", recoveryStreamName: nil,
        outboxCapacity: 100, outboxOverflowPolicy: .dropOldest, roomAwareRouting: roomAware, heartbeatTimeoutNanoseconds: 100 * second,
        publishConfirmTimeoutNanoseconds: 5 * second))
    _ = machine.started(now: 0)
    while let batch = machine.nextBatch() { _ = machine.publishConfirmed(batch, now: 0) }
    return machine
}

private func sequences(_ batch: Machine.PublishBatch) -> [UInt64] {
    ((try? ClusterBatchCodec.split(batch.body)) ?? []).compactMap { try? ClusterMessageCodec.decode($0).sequence }
}

private func republishDelay(_ actions: [Machine.Action]) -> UInt64? {
    for case .republishOnNewChannel(let delay) in actions { return delay }
    return nil
}

private func wakesPublisher(_ actions: [Machine.Action]) -> Bool {
    actions.contains { if case .wakePublisher = $0 { true } else { false } }
}

private func join(_ room: String) -> ClusterPayload { .socketsJoin(selection: ClusterSocketSelection(), rooms: [room]) }

@Suite struct PublisherDeadlineTests {
    @Test func aConfirmThatNeverComesRepublishesTheOutboxInOrderOnANewChannel() {
        var machine = startedMachine()
        _ = machine.send(join("1"), now: 1 * second)
        guard let stuck = machine.nextBatch() else { Issue.record("no batch"); return }
        _ = machine.send(join("2"), now: 2 * second)

        let actions = machine.publishConfirmTimedOut(stuck, now: 6 * second)
        #expect(republishDelay(actions) == 0, "the first timeout republishes at once")
        #expect(!machine.isReady, "a publisher without progress is not ready")
        #expect(machine.metricsSnapshot.confirmTimeouts == 1)
        #expect(machine.nextBatch() == nil, "nothing goes out on the stuck channel")
        let reasons = machine.notReadyReasons(now: 7 * second)
        #expect(reasons.count == 1)
        #expect(reasons.first?.contains("no confirm") == true)
        #expect(reasons.first?.contains("outbox 2, oldest 6.0 s") == true, "\(reasons)")

        _ = machine.publishConfirmed(stuck, now: 8 * second)
        #expect(machine.metricsSnapshot.published == 1, "a late confirm of the old channel is stale (only the start's hello counts)")

        #expect(wakesPublisher(machine.publishChannelReplaced()))
        var sent: [UInt64] = []
        while let batch = machine.nextBatch() {
            sent += sequences(batch)
            _ = machine.publishConfirmed(batch, now: 9 * second)
        }
        #expect(sent == [2, 3], "every unconfirmed message once, in order, on the new channel")
        #expect(machine.isReady, "confirms again: ready again")
        #expect(machine.notReadyReasons(now: 9 * second).isEmpty)
        #expect(machine.metricsSnapshot.outboxOldestEnqueuedAtNanoseconds == nil)
    }

    @Test func timeoutsInARowBackOffAndAStaleTimeoutChangesNothing() {
        var machine = startedMachine()
        _ = machine.send(join("1"), now: 1)
        guard let first = machine.nextBatch() else { Issue.record("no batch"); return }
        _ = machine.publishConfirmTimedOut(first, now: 5 * second)
        #expect(machine.publishConfirmTimedOut(first, now: 6 * second).isEmpty, "the same batch again: already handled")
        _ = machine.publishChannelReplaced()
        guard let again = machine.nextBatch() else { Issue.record("no batch"); return }
        let delay = republishDelay(machine.publishConfirmTimedOut(again, now: 11 * second)) ?? 0
        #expect(delay > 0, "a second timeout in a row waits before the next channel")
        #expect(machine.metricsSnapshot.confirmTimeouts == 2)
    }

    @Test func aNackRepublishesOnANewChannelWithoutWaitingForARecovery() {
        var machine = startedMachine()
        _ = machine.send(join("1"), now: 1)
        guard let batch = machine.nextBatch() else { Issue.record("no batch"); return }
        #expect(republishDelay(machine.publishNacked(batch, now: 2)) != nil)
        #expect(!machine.isReady)
        _ = machine.publishChannelReplaced()
        guard let again = machine.nextBatch() else { Issue.record("nothing republished"); return }
        #expect(sequences(again) == [2])
        _ = machine.publishConfirmed(again, now: 3)
        #expect(machine.isReady)
    }

    @Test func aConnectionRecoveryDuringTheReplacementReplaysOnlyOnce() {
        var machine = startedMachine()
        _ = machine.send(join("1"), now: 1)
        guard let batch = machine.nextBatch() else { Issue.record("no batch"); return }
        _ = machine.publishConfirmTimedOut(batch, now: 5 * second)
        _ = machine.connectionLost()
        _ = machine.connectionRecovered(now: 6 * second)
        _ = machine.publishChannelReplaced()
        var sent: [UInt64] = []
        while let next = machine.nextBatch() {
            sent += sequences(next)
            _ = machine.publishConfirmed(next, now: 7 * second)
        }
        #expect(sent == [2, 3], "the held message, then the recovery's hello; nothing twice")
        #expect(machine.isReady)
    }

    @Test func packetsEmittedWhileTheChannelIsReplacedStillGoThroughTheStream() {
        var machine = Machine(configuration: .init(
            nodeID: "a", namespace: "/", exchangeName: "sio#/", exchangePrefix: "sio", recoveryStreamName: "sio#/#recovery",
            outboxCapacity: 100, outboxOverflowPolicy: .dropOldest, roomAwareRouting: false, heartbeatTimeoutNanoseconds: 100 * second,
            recoveryWindowNanoseconds: 1_000, maxLoggedPackets: 100))
        _ = machine.started(now: 0)
        while let batch = machine.nextBatch() { _ = machine.publishConfirmed(batch, now: 0) }
        let packet = EncodedPacket(messages: [EngineMessage(text: "2[\"m\"]")])
        guard case .done = machine.recoverableBroadcast(offset: "a-1", selection: ClusterSocketSelection(), packet: packet, plain: nil, now: 1)
        else { Issue.record("not queued"); return }
        guard let stuck = machine.nextBatch() else { Issue.record("no batch"); return }
        _ = machine.publishConfirmTimedOut(stuck, now: 6 * second)
        // A stuck channel is no broker outage: nothing is delivered at once here, so the
        // packet in flight is not skipped when it is read back from the stream.
        guard case .done(let actions) = machine.recoverableBroadcast(offset: "a-2", selection: ClusterSocketSelection(), packet: packet,
                                                                      plain: nil, now: 7 * second)
        else { Issue.record("the broker counted as away"); return }
        #expect(!actions.contains { if case .deliver = $0 { true } else { false } }, "nothing delivered here at once")
        _ = machine.publishChannelReplaced()
        var sent: [UInt64] = []
        while let batch = machine.nextBatch() {
            sent += sequences(batch)
            _ = machine.publishConfirmed(batch, now: 8 * second)
        }
        #expect(sent == [2, 3])
    }

    @Test func aFailedChannelReplacementIsRetriedAfterABackOff() {
        var machine = startedMachine()
        _ = machine.send(join("1"), now: 1)
        guard let batch = machine.nextBatch() else { Issue.record("no batch"); return }
        _ = machine.publishConfirmTimedOut(batch, now: 5 * second)
        let retry = machine.publishChannelReplacementFailed("refused")
        #expect((republishDelay(retry) ?? 0) >= 500_000_000)
        #expect(machine.notReadyReasons(now: 6 * second).first?.contains("cannot open a new channel") == true)
    }

    @Test func aRestartedNodeQueueConsumerMakesTheNodeReadyAndBindsItsRoomsAgain() {
        var machine = startedMachine(roomAware: true)
        _ = machine.roomsJoined("s1", rooms: ["lobby"])
        while let operation = machine.nextBindingOperation() { _ = machine.bindingOperationFinished(operation.number) }
        _ = machine.nodeConsumerEnded()
        #expect(!machine.isReady)
        #expect(machine.notReadyReasons(now: 1).contains { $0.contains("node queue consumer ended") })
        let actions = machine.nodeConsumerRestarted()
        #expect(machine.isReady)
        #expect(actions.contains { if case .wakeBindingRunner = $0 { true } else { false } })
        let rebound = machine.nextBindingOperation()
        #expect(rebound?.change == .bind(routingKey: RoomRoutingKeys.key(forRoom: "lobby")), "a new queue has no room bindings yet")
    }
}

@Suite struct OutboxAgeTests {
    @Test func theOldestUnconfirmedMessageGivesTheOutboxAge() {
        var outbox = ClusterOutbox<Int>(capacity: 10, overflowPolicy: .dropOldest)
        #expect(outbox.oldestEnqueuedAtNanoseconds == nil)
        _ = outbox.connectionRestored()
        _ = outbox.enqueue(1, nowNanoseconds: 10)
        _ = outbox.enqueue(2, nowNanoseconds: 20)
        #expect(outbox.oldestEnqueuedAtNanoseconds == 10)
        _ = outbox.confirm(publishNumber: 1, multiple: false)
        #expect(outbox.oldestEnqueuedAtNanoseconds == 20)
        _ = outbox.confirm(publishNumber: 2, multiple: false)
        #expect(outbox.oldestEnqueuedAtNanoseconds == nil)
    }
}
