import EngineIO
import NIOCore
import Testing
@testable import SocketIORabbitMQ

// Drives the cluster adapter's machine with events and checks the actions; no broker.
// Waiters are plain strings: the machine only stores them and hands them back. The suites
// share these helpers as members (`ClusterMachineTesting`), so they never clash with other
// test files' own.

protocol ClusterMachineTesting {}

extension ClusterMachineTesting {
    typealias Machine = ClusterAdapterStateMachine<String>
    var stream: String { "sio#/#recovery" }

    func makeMachine(recovery: Bool = false, roomAware: Bool = false, capacity: Int = 100,
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
    func publishAll(_ machine: inout Machine, now: UInt64) -> [ClusterMessage] {
        var messages: [ClusterMessage] = []
        while let batch = machine.nextBatch() {
            messages += decode(batch)
            _ = machine.publishConfirmed(batch, now: now)
        }
        return messages
    }

    func hasBatch(_ machine: inout Machine) -> Bool { machine.nextBatch() != nil }

    func decode(_ batch: Machine.PublishBatch) -> [ClusterMessage] {
        ((try? ClusterBatchCodec.split(batch.body)) ?? []).compactMap { try? ClusterMessageCodec.decode($0) }
    }

    func body(from origin: String = "b", sequence: UInt64, namespace: String = "/", _ payload: ClusterPayload) -> ByteBuffer {
        (try? ClusterMessageCodec.encode(ClusterMessage(origin: origin, sequence: sequence, namespace: namespace, payload: payload))) ?? ByteBuffer()
    }

    var hello: EncodedPacket { EncodedPacket(messages: [EngineMessage(text: "2[\"hi\"]")]) }
    var everyone: ClusterSocketSelection { ClusterSocketSelection() }

    func deliveries(_ actions: [Machine.Action]) -> [(messages: [EngineMessage], held: [String])] {
        actions.compactMap { if case .deliver(let messages, _, _, let held, _) = $0 { (messages, held) } else { nil } }
    }
    func completions(_ actions: [Machine.Action]) -> [(waiter: String, completion: ClusterRequestTracker.Completion)] {
        actions.compactMap { if case .completeRequest(let waiter, let completion) = $0 { (waiter, completion) } else { nil } }
    }
    func routesResumed(_ actions: [Machine.Action]) -> [String] {
        actions.compactMap { if case .resumeRouteWaiter(let waiter) = $0 { waiter } else { nil } }
    }
    func claimsResumed(_ actions: [Machine.Action]) -> [(waiter: String, outcome: Machine.ClaimOutcome?)] {
        actions.compactMap { if case .resumeClaimWaiter(let waiter, let outcome) = $0 { (waiter, outcome) } else { nil } }
    }
    func wakesPublisher(_ actions: [Machine.Action]) -> Bool {
        actions.contains { if case .wakePublisher = $0 { true } else { false } }
    }
    func remoteWork(_ actions: [Machine.Action]) -> [Machine.RemoteWork] {
        actions.compactMap { if case .handleRemote(let work) = $0 { work } else { nil } }
    }
}

extension ClusterAdapterStateMachine {
    /// One message of the recovery stream read by the live consumer (the adapter runs the
    /// returned actions in order, on its loop).
    mutating func streamRead(_ body: ByteBuffer, streamOffset: Int64?, now: UInt64) -> [Action] {
        streamBodyRead(body, streamOffset: streamOffset, now: now)
    }
}
