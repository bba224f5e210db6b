import EngineIO
import NIOCore
import Testing
@testable import SocketIORabbitMQ

@Suite struct ClusterAdapterPublishingTests: ClusterMachineTesting {
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

    @Test func theMonitoringCopyTellsReadinessWhyNotAndTheResumePosition() {
        var machine = makeMachine(recovery: true, start: false)
        #expect(!machine.monitoring.isReady)
        #expect(machine.monitoring.notReadyReasons(now: 0) == ["starting: queues and consumers not up yet"])
        _ = machine.started(now: 0)
        publishAll(&machine, now: 0)
        #expect(machine.monitoring.isReady)
        #expect(machine.monitoring.notReadyReasons(now: 0).isEmpty)
        _ = machine.connectionLost()
        _ = machine.send(.heartbeat(isInitial: false), now: 1)
        let copy = machine.monitoring
        #expect(!copy.isReady)
        #expect(copy.notReadyReasons(now: 2) == ["broker connection lost; holding 1 cluster messages"])
        #expect(copy.notReadyReasons(now: 2) == machine.notReadyReasons(now: 2), "one wording, the machine's and the copy's")
        #expect(copy.metrics(now: 1_000_000_001).outboxOldestAgeSeconds == 1.0, "the oldest age is computed when read")
        _ = machine.streamRead(body(sequence: 1, .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: [], data: hello))),
                               streamOffset: 7, now: 3)
        #expect(machine.monitoring.streamResumePosition == StreamPosition(offset: 7))
        #expect(copy.streamResumePosition == nil, "a copy: later events do not change it")
    }
}
