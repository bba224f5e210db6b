/// Which other nodes are alive, from their heartbeats. A node that has not been heard from
/// for `heartbeatTimeoutNanoseconds` is considered gone: requests stop waiting for it and
/// `serverCount` no longer includes it. Pure: the caller passes the time in.
struct ClusterMembership: Sendable {
    let heartbeatTimeoutNanoseconds: UInt64
    private var lastHeard: [String: UInt64] = [:]
    /// When nodes that left (silent past the timeout, or said goodbye) were last heard, for
    /// as long as `departedMemoryNanoseconds`: a crashed node's clients count their
    /// disconnection from there (connection state recovery).
    private var departed: [String: UInt64] = [:]
    /// How long a departed node's last sign of life is remembered (0: not at all).
    var departedMemoryNanoseconds: UInt64 = 0

    init(heartbeatTimeoutNanoseconds: UInt64) {
        self.heartbeatTimeoutNanoseconds = heartbeatTimeoutNanoseconds
    }

    /// Any message from a node proves it alive. Returns true when the node is new.
    @discardableResult
    mutating func heard(from node: String, atNanoseconds now: UInt64) -> Bool {
        if !departed.isEmpty { departed.removeValue(forKey: node) }
        return lastHeard.updateValue(now, forKey: node) == nil
    }

    /// The node said goodbye (adapter close). Returns true when it was a member.
    @discardableResult
    mutating func remove(_ node: String) -> Bool {
        guard let last = lastHeard.removeValue(forKey: node) else { return false }
        remember(node, lastHeardAt: last)
        return true
    }

    /// Forgets nodes silent for longer than the timeout and returns them, sorted.
    mutating func expire(atNanoseconds now: UInt64) -> [String] {
        let gone = lastHeard.filter { now > $0.value && now - $0.value > heartbeatTimeoutNanoseconds }.keys.sorted()
        for node in gone {
            if let last = lastHeard.removeValue(forKey: node) { remember(node, lastHeardAt: last) }
        }
        // Forgetting in bulk here keeps `departed` bounded by the nodes that left within the memory.
        if !departed.isEmpty {
            departed = departed.filter { now <= $0.value || now - $0.value <= departedMemoryNanoseconds }
        }
        return gone
    }

    private mutating func remember(_ node: String, lastHeardAt last: UInt64) {
        guard departedMemoryNanoseconds > 0 else { return }
        departed[node] = last
    }

    /// Whether `node` is alive, and if it left, when it was last heard.
    enum Liveness: Sendable, Hashable {
        case alive
        case departed(lastHeardAtNanoseconds: UInt64)
        /// Never heard of (or forgotten): it left before this node started, or long ago.
        case unknown
    }

    func liveness(of node: String) -> Liveness {
        if lastHeard[node] != nil { return .alive }
        if let last = departed[node] { return .departed(lastHeardAtNanoseconds: last) }
        return .unknown
    }

    /// Our own broker connection was down, so silence proved nothing: count every known
    /// node as heard now, giving it a full timeout to speak again.
    mutating func refreshAll(atNanoseconds now: UInt64) {
        for node in lastHeard.keys { lastHeard[node] = now }
    }

    var liveNodes: Set<String> { Set(lastHeard.keys) }
    var liveNodeCount: Int { lastHeard.count }
    /// This node plus every live peer, as socket.io's `serverCount()` reports it.
    var serverCount: Int { lastHeard.count + 1 }
    func isAlive(_ node: String) -> Bool { lastHeard[node] != nil }
}
