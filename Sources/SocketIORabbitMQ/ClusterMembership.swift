/// Which other nodes are alive, from their heartbeats. A node that has not been heard from
/// for `heartbeatTimeoutNanoseconds` is considered gone: requests stop waiting for it and
/// `serverCount` no longer includes it. Pure: the caller passes the time in.
public struct ClusterMembership: Sendable {
    public let heartbeatTimeoutNanoseconds: UInt64
    private var lastHeard: [String: UInt64] = [:]

    public init(heartbeatTimeoutNanoseconds: UInt64) {
        self.heartbeatTimeoutNanoseconds = heartbeatTimeoutNanoseconds
    }

    /// Any message from a node proves it alive. Returns true when the node is new.
    @discardableResult
    public mutating func heard(from node: String, atNanoseconds now: UInt64) -> Bool {
        lastHeard.updateValue(now, forKey: node) == nil
    }

    /// The node said goodbye (adapter close). Returns true when it was a member.
    @discardableResult
    public mutating func remove(_ node: String) -> Bool {
        lastHeard.removeValue(forKey: node) != nil
    }

    /// Forgets nodes silent for longer than the timeout and returns them, sorted.
    public mutating func expire(atNanoseconds now: UInt64) -> [String] {
        let gone = lastHeard.filter { now > $0.value && now - $0.value > heartbeatTimeoutNanoseconds }.keys.sorted()
        for node in gone { lastHeard.removeValue(forKey: node) }
        return gone
    }

    /// Our own broker connection was down, so silence proved nothing: count every known
    /// node as heard now, giving it a full timeout to speak again.
    public mutating func refreshAll(atNanoseconds now: UInt64) {
        for node in lastHeard.keys { lastHeard[node] = now }
    }

    public var liveNodes: Set<String> { Set(lastHeard.keys) }
    public var liveNodeCount: Int { lastHeard.count }
    /// This node plus every live peer, as socket.io's `serverCount()` reports it.
    public var serverCount: Int { lastHeard.count + 1 }
    public func isAlive(_ node: String) -> Bool { lastHeard[node] != nil }
}
