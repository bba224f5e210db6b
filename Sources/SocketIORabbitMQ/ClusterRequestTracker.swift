/// Bookkeeping for requests this node sent to the cluster and the answers coming back.
///
/// A request goes to every node; the answers to wait for are those of the nodes alive (by
/// heartbeat) when it was sent. A node that dies meanwhile stops being waited for as soon as
/// membership drops it, and in any case the deadline ends the wait: a dead node costs at
/// most the request timeout. Pure: no clock, no I/O; the adapter runs the timers.
struct ClusterRequestTracker: Sendable {
    enum Kind: Sendable, Hashable {
        case fetchSockets
        case serverSideEmit
        /// Broadcast with acks: counts and acks are forwarded as they come; the request
        /// stays open until its deadline so that late acks still find their callback.
        case broadcastWithAck
    }

    /// A finished fetch-sockets or server-side-emit request.
    struct Completion: Sendable {
        let request: ClusterRequestID
        let kind: Kind
        let sockets: [RemoteSocketRecord]
        let replies: [EncodedPacket]
        /// Nodes that were waited for and never answered (empty when complete).
        let unansweredNodes: Set<String>
        var isComplete: Bool { unansweredNodes.isEmpty }
    }

    enum ResponseOutcome: Sendable {
        /// Not ours, already finished or timed out: drop it.
        case ignored
        /// Recorded; more answers are expected.
        case recorded
        case completed(Completion)
        /// A node sent to this many of its clients; expect that many acks from it.
        case clientCount(UInt32)
        case ack(EncodedPacket)
    }

    private struct Pending: Sendable {
        let kind: Kind
        var awaiting: Set<String>
        let deadlineNanoseconds: UInt64
        var sockets: [RemoteSocketRecord] = []
        var replies: [EncodedPacket] = []
    }

    private var pending: [ClusterRequestID: Pending] = [:]
    private var lastRequestID: ClusterRequestID = 0

    init() {}

    var pendingCount: Int { pending.count }

    /// Registers a request and returns its id. With no node to wait for a fetch or emit is
    /// complete at once: `begin` then returns the completion too, and nothing stays pending.
    mutating func begin(
        _ kind: Kind, awaiting nodes: Set<String>, deadlineNanoseconds: UInt64
    ) -> (request: ClusterRequestID, immediateCompletion: Completion?) {
        lastRequestID += 1
        let request = lastRequestID
        if nodes.isEmpty && kind != .broadcastWithAck {
            return (request, Completion(request: request, kind: kind, sockets: [], replies: [], unansweredNodes: []))
        }
        pending[request] = Pending(kind: kind, awaiting: nodes, deadlineNanoseconds: deadlineNanoseconds)
        return (request, nil)
    }

    /// An answer arrived from `node` on this node's queue.
    mutating func receive(_ payload: ClusterPayload, from node: String) -> ResponseOutcome {
        switch payload {
        case .fetchSocketsResponse(let request, let sockets):
            guard var entry = pending[request], entry.kind == .fetchSockets, entry.awaiting.remove(node) != nil else { return .ignored }
            entry.sockets.append(contentsOf: sockets)
            return store(entry, for: request)
        case .serverSideEmitResponse(let request, let packet):
            guard var entry = pending[request], entry.kind == .serverSideEmit, entry.awaiting.remove(node) != nil else { return .ignored }
            entry.replies.append(packet)
            return store(entry, for: request)
        case .broadcastClientCount(let request, let count):
            guard var entry = pending[request], entry.kind == .broadcastWithAck, entry.awaiting.remove(node) != nil else { return .ignored }
            pending[request] = entry
            return .clientCount(count)
        case .broadcastAck(let request, let packet):
            guard pending[request]?.kind == .broadcastWithAck else { return .ignored }
            return .ack(packet)
        default:
            return .ignored
        }
    }

    /// Membership dropped `node` (heartbeat timeout or adapter close): stop waiting for it.
    /// Returns the requests that were waiting only for it.
    mutating func nodeLeft(_ node: String) -> [Completion] {
        var completed: [Completion] = []
        for (request, var entry) in pending where entry.awaiting.contains(node) {
            entry.awaiting.remove(node)
            if entry.awaiting.isEmpty && entry.kind != .broadcastWithAck {
                pending.removeValue(forKey: request)
                completed.append(Self.completion(of: entry, request: request))
            } else {
                pending[request] = entry
            }
        }
        return completed.sorted { $0.request < $1.request }
    }

    /// Ends every request whose deadline has passed, with what it has (partial results
    /// name the nodes that did not answer).
    mutating func expire(atNanoseconds now: UInt64) -> [Completion] {
        let due = pending.filter { $0.value.deadlineNanoseconds <= now }
        for request in due.keys { pending.removeValue(forKey: request) }
        return due.map { Self.completion(of: $0.value, request: $0.key) }.sorted { $0.request < $1.request }
    }

    /// The earliest deadline, for arming one timer instead of one per request.
    var nextDeadlineNanoseconds: UInt64? { pending.values.map(\.deadlineNanoseconds).min() }

    private mutating func store(_ entry: Pending, for request: ClusterRequestID) -> ResponseOutcome {
        if entry.awaiting.isEmpty {
            pending.removeValue(forKey: request)
            return .completed(Self.completion(of: entry, request: request))
        }
        pending[request] = entry
        return .recorded
    }

    private static func completion(of entry: Pending, request: ClusterRequestID) -> Completion {
        Completion(request: request, kind: entry.kind, sockets: entry.sockets, replies: entry.replies, unansweredNodes: entry.awaiting)
    }
}
