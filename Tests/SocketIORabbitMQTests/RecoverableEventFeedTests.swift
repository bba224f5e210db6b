import EngineIO
import NIOCore
import SocketIO
import Testing
@testable import SocketIORabbitMQ

// The recoverable events an observer (the chat's history) gets: the start-up replay's
// decisions, the feed that holds live packets until it ends, and the machine that combines
// them with its deliveries. No broker.

private func packet(_ text: String) -> EncodedPacket { EncodedPacket(messages: [EngineMessage(text: text)]) }

private func streamed(_ offset: Int64, origin: String = "b", sequence: UInt64? = nil) -> StreamedPacket {
    StreamedPacket(position: StreamPosition(offset: offset), origin: origin, sequence: sequence ?? UInt64(offset),
                   offset: "\(origin)-\(offset)", selection: ClusterSocketSelection(rooms: ["r"]), packet: packet("2[\"m\",\(offset)]"))
}

private func message(from origin: String = "b", sequence: UInt64, namespace: String = "/", _ payload: ClusterPayload) -> ClusterMessage {
    ClusterMessage(origin: origin, sequence: sequence, namespace: namespace, payload: payload)
}

private func recoverable(_ offset: String, text: String = "2[\"message\",{\"text\":\"hi\"},\"b-1\"]") -> ClusterPayload {
    .recoverablePacket(offset: offset, selection: ClusterSocketSelection(rooms: ["general"]), packet: packet(text), deliveredByOrigin: false)
}

@Suite struct RecoverablePacketFeedTests {
    @Test func livePacketsWaitForTheReplayThenThoseAfterItFollowInOrder() {
        var feed = RecoverablePacketFeed(capacity: 10)
        for offset: Int64 in 5...8 { #expect(feed.liveRead(streamed(offset)).isEmpty, "held while the replay runs") }
        // The replay read up to offset 6: 5 and 6 were its own, 7 and 8 are new to it.
        #expect(feed.replayFinished(lastPosition: StreamPosition(offset: 6)).map(\.position.offset) == [7, 8])
        #expect(feed.liveRead(streamed(9)).map(\.position.offset) == [9], "then live packets pass at once")
        #expect(feed.replayFinished(lastPosition: nil).isEmpty, "a replay ends once")
    }

    @Test func aReplayThatReadNothingLetsEveryWaitingPacketThrough() {
        var feed = RecoverablePacketFeed(capacity: 10)
        _ = feed.liveRead(streamed(1))
        _ = feed.liveRead(streamed(2))
        #expect(feed.replayFinished(lastPosition: nil).map(\.position.offset) == [1, 2])
    }

    @Test func overTheCapacityTheOldestWaitingAreDroppedAndCounted() {
        var feed = RecoverablePacketFeed(capacity: 2)
        for offset in 1...5 { _ = feed.liveRead(streamed(Int64(offset))) }
        #expect(feed.droppedWhileReplaying == 3)
        #expect(feed.replayFinished(lastPosition: nil).map(\.position.offset) == [4, 5])
    }
}

@Suite struct StreamReplayTests {
    @Test func observesItsNamespacesPacketsOnceAndStopsAtItsOwnMark() {
        var replay = StreamReplay(namespace: "/", markId: "mine")
        #expect(replay.read(message(sequence: 1, recoverable("b-1")), at: StreamPosition(offset: 1)) != .skip)
        #expect(replay.read(message(sequence: 1, namespace: "/admin", recoverable("b-1")), at: StreamPosition(offset: 2)) == .skip,
                "another namespace's record")
        #expect(replay.read(message(sequence: 1, recoverable("b-1")), at: StreamPosition(offset: 3)) == .skip,
                "a copy republished after a lost confirm")
        #expect(replay.read(message(sequence: 2, .sessionRecord(SessionRecord(privateId: "p", socketId: "s", rooms: [], data: packet("{}")))),
                            at: StreamPosition(offset: 4)) == .skip)
        #expect(replay.read(message(from: "c", sequence: 1, .streamMark(id: "theirs")), at: StreamPosition(offset: 5)) == .skip,
                "another node's mark")
        #expect(replay.read(message(sequence: 3, recoverable("b-3")), at: StreamPosition(offset: 6, index: 0)) != .skip)
        #expect(replay.read(message(from: "a", sequence: 9, .streamMark(id: "mine")), at: StreamPosition(offset: 6, index: 1)) == .caughtUp)
        #expect(replay.observedCount == 2)
        #expect(replay.lastPosition == StreamPosition(offset: 6, index: 1))
    }

    @Test func aRetriedReplayThatReadsAnOffsetAgainSkipsWhatItHad() {
        var replay = StreamReplay(namespace: "/", markId: "mine")
        _ = replay.read(message(sequence: 1, recoverable("b-1")), at: StreamPosition(offset: 7))
        // The retry attaches at offset 7 again.
        #expect(replay.read(message(from: "c", sequence: 1, recoverable("c-1")), at: StreamPosition(offset: 7)) == .skip)
        #expect(replay.observedCount == 1)
    }

    @Test func theObservedEventHasItsArgumentsWithoutTheRecoveryOffset() {
        var replay = StreamReplay(namespace: "/", markId: "mine")
        guard case .observe(let streamed) = replay.read(message(sequence: 1, recoverable("b-1")), at: StreamPosition(offset: 1)),
              let event = RecoverableEvent(streamed) else {
            Issue.record("a recoverable event must be observed"); return
        }
        #expect(event == RecoverableEvent(rooms: ["general"], exceptRooms: [], eventName: "message", arguments: [["text": "hi"]], origin: "b"))
        #expect(RecoverableEvent(StreamedPacket(position: streamed.position, origin: "b", sequence: 1, offset: "b-1",
                                                selection: streamed.selection, packet: packet("garbage"))) == nil)
    }
}

@Suite struct ClusterAdapterPacketFeedTests {
    private typealias Machine = ClusterAdapterStateMachine<String>

    private func makeMachine(observed: Bool) -> Machine {
        var machine = Machine(configuration: .init(
            nodeID: "a", namespace: "/", exchangeName: "sio#/", exchangePrefix: "sio", recoveryStreamName: "sio#/#recovery",
            outboxCapacity: 100, outboxOverflowPolicy: .dropOldest, roomAwareRouting: false, heartbeatTimeoutNanoseconds: 10,
            recoveryWindowNanoseconds: 1_000, maxLoggedPackets: 100, observesRecoverablePackets: observed))
        _ = machine.started(now: 0)
        return machine
    }

    private func read(_ machine: inout Machine, sequence: UInt64, at offset: Int64) -> [Machine.Action] {
        let body = (try? ClusterMessageCodec.encode(message(sequence: sequence, recoverable("b-\(sequence)")))) ?? ByteBuffer()
        return machine.streamRead(body, streamOffset: offset, now: UInt64(offset))
    }

    private func observed(_ actions: [Machine.Action]) -> [Int64] {
        actions.flatMap { action -> [Int64] in
            if case .observeRecoverable(let packets) = action { return packets.map(\.position.offset) }
            return []
        }
    }

    private func delivered(_ actions: [Machine.Action]) -> Int {
        actions.filter { if case .deliver = $0 { true } else { false } }.count
    }

    @Test func packetsAreDeliveredAtOnceButObservedOnlyAfterTheReplay() {
        var machine = makeMachine(observed: true)
        let during = read(&machine, sequence: 1, at: 10)
        #expect(delivered(during) == 1, "clients do not wait for the observer's replay")
        #expect(observed(during).isEmpty)
        _ = read(&machine, sequence: 2, at: 11)
        #expect(observed(machine.settled(machine.packetReplayFinished(lastPosition: StreamPosition(offset: 10)))) == [11])
        let after = read(&machine, sequence: 3, at: 12)
        #expect(observed(after) == [12])
        #expect(delivered(after) == 1)
        #expect(observed(read(&machine, sequence: 3, at: 13)).isEmpty, "a copy is observed no more than delivered")
    }

    @Test func withoutAnObserverNothingIsHeldOrObserved() {
        var machine = makeMachine(observed: false)
        #expect(observed(read(&machine, sequence: 1, at: 1)).isEmpty)
        #expect(machine.packetReplayFinished(lastPosition: nil).isEmpty)
        #expect(observed(read(&machine, sequence: 2, at: 2)).isEmpty)
    }
}
