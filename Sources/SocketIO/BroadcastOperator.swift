import NIOConcurrencyHelpers
import NIOCore

/// What an acknowledged broadcast collected: the first argument of each answer, in
/// arrival order, and whether every recipient answered before the timeout.
public struct BroadcastAckResult: Sendable, Hashable {
    public var responses: [JSONValue]
    public var complete: Bool
}

/// An immutable selection of sockets (`to`, `except`, flags) plus the operations on it.
/// Every operation goes through the namespace's adapter, so it reaches the whole cluster.
public struct BroadcastOperator: Sendable {
    public let namespace: SocketIONamespace
    public private(set) var options = BroadcastOptions()

    init(namespace: SocketIONamespace) {
        self.namespace = namespace
    }

    public func to(_ rooms: String...) -> BroadcastOperator { to(Set(rooms)) }
    public func to(_ rooms: Set<String>) -> BroadcastOperator {
        var copy = self
        copy.options.rooms.formUnion(rooms)
        return copy
    }
    public func `in`(_ rooms: String...) -> BroadcastOperator { to(Set(rooms)) }

    public func except(_ rooms: String...) -> BroadcastOperator { except(Set(rooms)) }
    public func except(_ rooms: Set<String>) -> BroadcastOperator {
        var copy = self
        copy.options.except.formUnion(rooms)
        return copy
    }

    /// The packet may be dropped and is never logged for recovery.
    public var volatile: BroadcastOperator {
        var copy = self
        copy.options.flags.volatile = true
        return copy
    }

    /// Only this node's sockets.
    public var local: BroadcastOperator {
        var copy = self
        copy.options.flags.local = true
        return copy
    }

    public func timeout(_ timeout: TimeAmount) -> BroadcastOperator {
        var copy = self
        copy.options.flags.timeout = timeout
        return copy
    }

    /// Targets: this namespace, or for a dynamic parent, all of its children.
    private var targets: [SocketIONamespace] {
        let children = namespace.dynamicChildren
        return children.isEmpty ? [namespace] : [namespace] + children
    }

    public func emit(_ event: String, _ args: JSONValue...) { emit(event, args) }

    public func emit(_ event: String, _ args: [JSONValue]) {
        for target in targets {
            target.adapter.broadcast(.event(event, args, namespace: target.name), options: options)
        }
    }

    public func emit<T: Encodable>(_ event: String, encoding value: T) throws {
        emit(event, [try JSONValue(encoding: value)])
    }

    /// Emits to every selected socket and waits until all answered or the timeout
    /// (`timeout(_:)`, else the configured default) passed. Never throws: a timeout
    /// returns what arrived, with `complete == false`.
    public func emitWithAck(_ event: String, _ args: JSONValue...) async -> BroadcastAckResult {
        await emitWithAck(event, args)
    }

    public func emitWithAck(_ event: String, _ args: [JSONValue]) async -> BroadcastAckResult {
        let namespace = self.namespace
        let options = self.options
        let timeout = options.flags.timeout ?? namespace.server.configuration.defaultAckTimeout
        let collector = AckCollector()
        // A local broadcast involves this node only, whatever the cluster size.
        let expectedServers = options.flags.local ? 1 : await namespace.adapter.serverCount()
        return await withCheckedContinuation { (continuation: CheckedContinuation<BroadcastAckResult, Never>) in
            collector.start(continuation: continuation, expectedServers: expectedServers)
            // No event loop belongs to the caller here, so the timer is a sleeping Task.
            let timer = Task {
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout.nanoseconds)))
                collector.finish(complete: false)
            }
            collector.onFinish { timer.cancel() }
            let ackId = namespace.nextAckId()
            namespace.adapter.broadcastWithAck(
                .event(event, args, namespace: namespace.name, ackId: ackId),
                options: options,
                clientCount: { collector.addClients($0) },
                ack: { _, answer in collector.addResponse(answer.first ?? .null) }
            )
        }
    }

    public func fetchSockets() async throws -> [SocketDescription] {
        try await namespace.adapter.fetchSockets(options)
    }

    public func socketsJoin(_ rooms: String...) { socketsJoin(Set(rooms)) }
    public func socketsJoin(_ rooms: Set<String>) { namespace.adapter.addSockets(options, rooms: rooms) }

    public func socketsLeave(_ rooms: String...) { socketsLeave(Set(rooms)) }
    public func socketsLeave(_ rooms: Set<String>) { namespace.adapter.delSockets(options, rooms: rooms) }

    public func disconnectSockets(close: Bool = false) { namespace.adapter.disconnectSockets(options, close: close) }
}

/// Counts answers of an acknowledged broadcast across nodes, finishing exactly once.
final class AckCollector: Sendable {
    private struct State {
        var continuation: CheckedContinuation<BroadcastAckResult, Never>?
        var expectedServers = Int.max
        var reportedServers = 0
        var expectedClients = 0
        var responses: [JSONValue] = []
        var finishHooks: [@Sendable () -> Void] = []
        var finished = false
    }

    private let state = NIOLockedValueBox(State())

    func start(continuation: CheckedContinuation<BroadcastAckResult, Never>, expectedServers: Int) {
        state.withLockedValue {
            $0.continuation = continuation
            $0.expectedServers = expectedServers
        }
    }

    func onFinish(_ hook: @escaping @Sendable () -> Void) {
        let alreadyFinished = state.withLockedValue { state in
            if !state.finished { state.finishHooks.append(hook) }
            return state.finished
        }
        if alreadyFinished { hook() }
    }

    func addClients(_ count: Int) {
        state.withLockedValue {
            $0.expectedClients += count
            $0.reportedServers += 1
        }
        finishIfComplete()
    }

    func addResponse(_ response: JSONValue) {
        state.withLockedValue { $0.responses.append(response) }
        finishIfComplete()
    }

    private func finishIfComplete() {
        let complete = state.withLockedValue {
            $0.reportedServers >= $0.expectedServers && $0.responses.count >= $0.expectedClients
        }
        if complete { finish(complete: true) }
    }

    func finish(complete: Bool) {
        let outcome = state.withLockedValue { state -> (CheckedContinuation<BroadcastAckResult, Never>, BroadcastAckResult, [@Sendable () -> Void])? in
            guard !state.finished, let continuation = state.continuation else { return nil }
            state.finished = true
            state.continuation = nil
            let hooks = state.finishHooks
            state.finishHooks = []
            return (continuation, BroadcastAckResult(responses: state.responses, complete: complete), hooks)
        }
        guard let (continuation, result, hooks) = outcome else { return }
        for hook in hooks { hook() }
        continuation.resume(returning: result)
    }
}
