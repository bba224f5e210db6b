import NIOCore
import Testing
@testable import EngineIO

private typealias Machine = EngineSessionStateMachine
private let hello = EnginePacket(type: .message, text: "hello")
private let helloMessage = EngineMessage(text: "hello")

private func polling(maxOutboundBytes: Int = 1 << 20, allowUpgrades: Bool = true) -> Machine {
    Machine(transport: .polling, maxOutboundBytes: maxOutboundBytes, allowUpgrades: allowUpgrades)
}

private func close(
    _ reason: EngineCloseReason, pending: [EnginePacket]? = nil, reject: EngineRequestError? = nil,
    final: [EnginePacket]? = nil, webSocket: Bool = false
) -> Machine.Action {
    .close(.init(reason: reason, answerPendingPoll: pending, rejectCurrentRequest: reject,
                 finalPollPackets: final, closeWebSocket: webSocket))
}

@Suite struct PollingSessionTests {
    @Test func getParksUntilDataIsQueuedThenGetsEverythingQueued() {
        var machine = polling()
        #expect(machine.pollRequestArrived() == .parkPoll)
        #expect(machine.hasParkedPoll)
        #expect(machine.send([helloMessage]) == .answerPendingPoll([hello]))
        #expect(!machine.hasParkedPoll)
        // No GET parked: messages queue up and all go out in the next GET.
        #expect(machine.send([helloMessage]) == .none)
        #expect(machine.send([EngineMessage(binary: ByteBuffer(bytes: [1]))]) == .none)
        #expect(machine.queuedPacketCount == 2)
        #expect(machine.pollRequestArrived() == .answerPoll([hello, .binaryMessage(ByteBuffer(bytes: [1]))]))
        #expect(machine.queuedPacketCount == 0)
    }

    @Test func duplicateGetClosesTheSession() {
        var machine = polling()
        _ = machine.pollRequestArrived()
        #expect(machine.pollRequestArrived() == close(.transportError, pending: [.close], reject: .badRequest))
        #expect(machine.isClosed)
        #expect(machine.pollRequestArrived() == .rejectRequest(.unknownSessionID))
    }

    @Test func abandonedParkedGetIsNotADuplicate() {
        var machine = polling()
        _ = machine.pollRequestArrived()
        #expect(machine.parkedPollAbandoned() == .none)
        #expect(machine.pollRequestArrived() == .parkPoll)
    }

    @Test func postedPacketsAreRouted() {
        var machine = polling()
        #expect(machine.pollDataRequestCheck() == nil)
        #expect(machine.receivedPacket(hello, from: .polling) == .deliver(helloMessage))
        #expect(machine.receivedPacket(.binaryMessage(ByteBuffer(bytes: [9])), from: .polling)
            == .deliver(EngineMessage(binary: ByteBuffer(bytes: [9]))))
        #expect(machine.receivedPacket(.noop, from: .polling) == .none)
    }

    @Test func closePacketReleasesTheParkedGetWithNoop() {
        var machine = polling()
        _ = machine.pollRequestArrived()
        #expect(machine.receivedPacket(.close, from: .polling) == close(.transportClose, pending: [.noop]))
        #expect(machine.isClosed)
        #expect(machine.pollDataRequestCheck() == .unknownSessionID)
    }

    @Test func closePacketBeforeTheGetLetsOneGetCollectNoop() {
        var machine = polling()
        #expect(machine.receivedPacket(.close, from: .polling) == close(.transportClose, final: [.noop]))
        #expect(machine.isClosed)
        #expect(machine.pollRequestArrived() == .answerFinalPoll([.noop]))
        #expect(machine.pollRequestArrived() == .rejectRequest(.unknownSessionID))
    }

    @Test func undecodablePostClosesTheSession() {
        var machine = polling()
        #expect(machine.receivedUndecodableData(from: .polling) == close(.parseError, reject: .badRequest))
        #expect(machine.pollRequestArrived() == .rejectRequest(.unknownSessionID))
    }

    @Test func openPacketFromClientIsAParseError() {
        var machine = polling()
        _ = machine.pollRequestArrived()
        #expect(machine.receivedPacket(EnginePacket(type: .open), from: .polling)
            == close(.parseError, pending: [.close], reject: .badRequest))
    }

    @Test func serverCloseWithParkedGetSendsQueueAndClose() {
        var machine = polling()
        _ = machine.pollRequestArrived()
        _ = machine.send([])  // nothing to send does not release the GET with an empty body
        #expect(machine.closeRequested(.forcedClose) == close(.forcedClose, pending: [.close]))
        #expect(machine.closeRequested(.forcedClose) == .none)  // reported once
    }

    @Test func serverCloseWithoutParkedGetLingersForOneFinalPoll() {
        var machine = polling()
        _ = machine.send([helloMessage])
        #expect(machine.closeRequested(.forcedClose) == close(.forcedClose, final: [hello, .close]))
        #expect(machine.isClosed)
        #expect(machine.send([helloMessage]) == .none)
        #expect(machine.pollRequestArrived() == .answerFinalPoll([hello, .close]))
        #expect(machine.pollRequestArrived() == .rejectRequest(.unknownSessionID))
    }

    @Test func finalPollGraceTimeout() {
        var machine = polling()
        _ = machine.closeRequested(.serverShuttingDown)
        #expect(machine.finalPollTimeoutElapsed() == .answerFinalPoll([]))
        #expect(machine.finalPollTimeoutElapsed() == .none)
        #expect(machine.pollRequestArrived() == .rejectRequest(.unknownSessionID))
    }

    @Test func slowPollingClientIsClosed() {
        var machine = polling(maxOutboundBytes: 10)
        #expect(machine.send([EngineMessage(text: "12345")]) == .none)  // 6 bytes
        #expect(machine.send([EngineMessage(text: "12345")]) == close(.slowClient, final: nil))
        #expect(machine.isClosed)
        #expect(machine.queuedPacketCount == 0)
    }
}

@Suite struct HeartbeatTests {
    @Test func pingPongCycle() {
        var machine = polling()
        #expect(machine.pollRequestArrived() == .parkPoll)
        #expect(machine.pingIntervalElapsed() == .answerPendingPoll([.ping]))
        #expect(machine.receivedPacket(.pong, from: .polling) == .heartbeatAcknowledged)
        // A stale deadline after the pong must not close the session.
        #expect(machine.pingTimeoutElapsed() == .none)
        #expect(!machine.isClosed)
        // A pong nobody asked for is ignored.
        #expect(machine.receivedPacket(.pong, from: .polling) == .none)
    }

    @Test func missingPongClosesProactively() {
        var machine = polling()
        #expect(machine.pingIntervalElapsed() == .none)  // queued: no GET parked
        #expect(machine.pingTimeoutElapsed() == close(.pingTimeout))
        #expect(machine.pollRequestArrived() == .rejectRequest(.unknownSessionID))
    }

    @Test func missingPongWithParkedGetAnswersClose() {
        var machine = polling()
        _ = machine.pingIntervalElapsed()
        #expect(machine.pollRequestArrived() == .answerPoll([.ping]))
        #expect(machine.pollRequestArrived() == .parkPoll)
        #expect(machine.pingTimeoutElapsed() == close(.pingTimeout, pending: [.close]))
    }

    @Test func getAfterThePongDeadlineFindsTheSessionDeadEvenIfTheTimerIsLate() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var machine = Machine(transport: .polling, maxOutboundBytes: 1000, pingInterval: .milliseconds(300),
                              pingTimeout: .milliseconds(200), now: start)
        // Before the deadline a GET simply parks.
        #expect(machine.pollRequestArrived(now: start + .milliseconds(100)) == .parkPoll)
        _ = machine.parkedPollAbandoned()
        // 300 ms: ping timer fires (late, at 350 ms); the pong is due at 300 + 200 ms regardless.
        #expect(machine.pingIntervalElapsed() == .none)
        #expect(machine.pollRequestArrived(now: start + .milliseconds(450)) == .answerPoll([.ping]))
        #expect(machine.pollRequestArrived(now: start + .milliseconds(500))
            == close(.pingTimeout, reject: .unknownSessionID))
    }

    @Test func pongMovesTheDeadline() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var machine = Machine(transport: .polling, maxOutboundBytes: 1000, pingInterval: .milliseconds(300),
                              pingTimeout: .milliseconds(200), now: start)
        _ = machine.pingIntervalElapsed()
        #expect(machine.pollRequestArrived(now: start + .milliseconds(305)) == .answerPoll([.ping]))
        #expect(machine.receivedPacket(.pong, from: .polling, now: start + .milliseconds(310)) == .heartbeatAcknowledged)
        // next ping due at 610 ms, its pong at 810 ms
        #expect(machine.pollRequestArrived(now: start + .milliseconds(800)) == .parkPoll)
        _ = machine.parkedPollAbandoned()
        // A ping timer that never fired does not keep the session alive past due + timeout.
        #expect(machine.pollRequestArrived(now: start + .milliseconds(810))
            == close(.pingTimeout, reject: .unknownSessionID))
    }

    @Test func webSocketHeartbeat() {
        var machine = Machine(transport: .websocket, maxOutboundBytes: 1000)
        #expect(machine.pingIntervalElapsed() == .writeWebSocket([.ping]))
        #expect(machine.pingTimeoutElapsed() == close(.pingTimeout, webSocket: true))
        #expect(machine.pingIntervalElapsed() == .none)
    }
}

@Suite struct WebSocketSessionTests {
    @Test func messagesGoStraightOut() {
        var machine = Machine(transport: .websocket, maxOutboundBytes: 1000)
        #expect(machine.transport == .websocket)
        #expect(machine.send([helloMessage, helloMessage]) == .writeWebSocket([hello, hello]))
        #expect(machine.receivedPacket(hello, from: .websocket) == .deliver(helloMessage))
    }

    @Test func pollingRequestsAreRejected() {
        var machine = Machine(transport: .websocket, maxOutboundBytes: 1000)
        #expect(machine.pollRequestArrived() == .rejectRequest(.badRequest))
        #expect(machine.pollDataRequestCheck() == .badRequest)
    }

    @Test func clientCloseAndGarbageAndTransportLoss() {
        var a = Machine(transport: .websocket, maxOutboundBytes: 1000)
        #expect(a.receivedPacket(.close, from: .websocket) == close(.transportClose, pending: nil, webSocket: true))
        var b = Machine(transport: .websocket, maxOutboundBytes: 1000)
        #expect(b.receivedUndecodableData(from: .websocket) == close(.parseError, reject: .badRequest, webSocket: true))
        var c = Machine(transport: .websocket, maxOutboundBytes: 1000)
        #expect(c.webSocketClosed(wasProbe: false) == close(.transportClose, webSocket: true))
        #expect(c.webSocketClosed(wasProbe: false) == .none)
    }

    @Test func serverCloseClosesTheWebSocket() {
        var machine = Machine(transport: .websocket, maxOutboundBytes: 1000)
        #expect(machine.closeRequested(.serverShuttingDown) == close(.serverShuttingDown, webSocket: true))
    }

    @Test func clientPingIsAnsweredWithPong() {
        var machine = Machine(transport: .websocket, maxOutboundBytes: 1000)
        #expect(machine.receivedPacket(EnginePacket(type: .ping, text: "x"), from: .websocket)
            == .writeWebSocket([EnginePacket(type: .pong, text: "x")]))
    }
}

@Suite struct UpgradeTests {
    private let probe = EnginePacket(type: .ping, text: "probe")
    private let upgrade = EnginePacket(type: .upgrade)

    @Test func fullUpgradeWithParkedGet() {
        var machine = polling()
        #expect(machine.pollRequestArrived() == .parkPoll)
        #expect(machine.probeWebSocketArrived() == .none)
        #expect(machine.receivedPacket(probe, from: .websocket) == .answerProbe)
        #expect(machine.isUpgrading)
        // The parked GET is released by the next upgrade check, not at once.
        #expect(machine.hasParkedPoll)
        #expect(machine.upgradeCheckElapsed() == .answerPendingPoll([.noop]))
        #expect(machine.upgradeCheckElapsed() == .none)
        // Data queued while upgrading still goes out by polling until `5`.
        #expect(machine.send([helloMessage]) == .none)
        #expect(machine.pollRequestArrived() == .answerPoll([hello]))
        #expect(machine.send([helloMessage]) == .none)
        #expect(machine.receivedPacket(upgrade, from: .websocket)
            == .completeUpgrade(flush: [hello], rejectPendingPoll: false))
        #expect(machine.transport == .websocket)
        #expect(!machine.isUpgrading)
        #expect(machine.upgradeCheckElapsed() == .none)
        #expect(machine.pollRequestArrived() == .rejectRequest(.badRequest))
        #expect(machine.send([helloMessage]) == .writeWebSocket([hello]))
        #expect(machine.receivedPacket(hello, from: .websocket) == .deliver(helloMessage))
    }

    @Test func upgradeWithoutParkedGet() {
        var machine = polling()
        _ = machine.probeWebSocketArrived()
        #expect(machine.receivedPacket(probe, from: .websocket) == .answerProbe)
        #expect(machine.upgradeCheckElapsed() == .none)
        #expect(machine.receivedPacket(upgrade, from: .websocket) == .completeUpgrade(flush: [], rejectPendingPoll: false))
    }

    @Test func getStillParkedWhenTheUpgradeCompletesIsRefused() {
        var machine = polling()
        _ = machine.probeWebSocketArrived()
        _ = machine.receivedPacket(probe, from: .websocket)
        #expect(machine.pollRequestArrived() == .parkPoll)
        #expect(machine.receivedPacket(upgrade, from: .websocket) == .completeUpgrade(flush: [], rejectPendingPoll: true))
    }

    @Test func upgradePacketRightAfterAttachStillUpgrades() {
        var machine = polling()
        _ = machine.probeWebSocketArrived()
        #expect(machine.receivedPacket(upgrade, from: .websocket) == .completeUpgrade(flush: [], rejectPendingPoll: false))
    }

    @Test func secondWebSocketIsClosed() {
        var machine = polling()
        #expect(machine.probeWebSocketArrived() == .none)
        #expect(machine.probeWebSocketArrived() == .closeProbeWebSocket)
        _ = machine.receivedPacket(upgrade, from: .websocket)
        #expect(machine.probeWebSocketArrived() == .closeProbeWebSocket)
    }

    @Test func upgradesCanBeDisabled() {
        var machine = polling(allowUpgrades: false)
        #expect(machine.probeWebSocketArrived() == .closeProbeWebSocket)
    }

    @Test func unexpectedProbePacketOrGarbageAbortsOnlyTheUpgrade() {
        var machine = polling()
        _ = machine.probeWebSocketArrived()
        #expect(machine.receivedPacket(hello, from: .websocket) == .closeProbeWebSocket)
        #expect(machine.transport == .polling)
        _ = machine.probeWebSocketArrived()
        #expect(machine.receivedUndecodableData(from: .websocket) == .closeProbeWebSocket)
        #expect(!machine.isClosed)
        // and a new probe is welcome afterwards
        #expect(machine.probeWebSocketArrived() == .none)
    }

    @Test func upgradeTimeoutAndProbeLoss() {
        var machine = polling()
        #expect(machine.upgradeTimeoutElapsed() == .none)
        _ = machine.probeWebSocketArrived()
        _ = machine.receivedPacket(probe, from: .websocket)
        #expect(machine.upgradeTimeoutElapsed() == .closeProbeWebSocket)
        #expect(!machine.isUpgrading)
        #expect(machine.pollRequestArrived() == .parkPoll)
        _ = machine.probeWebSocketArrived()
        #expect(machine.webSocketClosed(wasProbe: true) == .none)
        #expect(machine.transport == .polling)
        #expect(machine.probeWebSocketArrived() == .none)
    }
}
