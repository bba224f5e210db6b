/// How the RabbitMQ cluster adapter behaves. Plain values; defaults match socket.io's
/// cluster adapter where it has one (heartbeat 5 s, timeout 10 s, request timeout 5 s).
public struct RabbitMQAdapterOptions: Sendable {
    /// Prefix of every exchange and queue name, so several applications can share a broker.
    public var exchangePrefix: String = "socket.io"
    public var heartbeatIntervalSeconds: Double = 5
    /// A node silent this long is dropped from membership.
    public var heartbeatTimeoutSeconds: Double = 10
    /// How long fetch-sockets and server-side-emit wait for answers.
    public var requestTimeoutSeconds: Double = 5
    /// Cluster messages kept while the broker is unreachable or not yet confirming.
    public var outboxCapacity: Int = 10_000
    public var outboxOverflowPolicy: OutboxOverflowPolicy = .dropOldest
    /// Bind per room with local members and publish room broadcasts by room (see
    /// `RoomRoutingKeys`). Every node of a cluster must use the same setting.
    public var roomAwareRouting: Bool = false
    /// A node's queue is deleted by the broker after this long unused (no consumer), so a
    /// killed node leaves no queue filling up. Long enough to ride out a broker restart.
    public var queueExpiresMilliseconds: Int = 30_000
    /// Whether a node's own queue is durable. Off (the default), it is a transient queue
    /// on whichever broker node the connection reaches, declared again there after a
    /// reconnect: no broker node is special in a RabbitMQ cluster. A durable classic queue
    /// lives on one broker node only, and while that node is down it can be neither used nor
    /// declared again elsewhere (404 "home node ... is down"). What travels through node
    /// queues is not what connection state recovery promises (that is in the replicated
    /// recovery stream); docs/CLUSTER.md weighs the two.
    public var durableNodeQueues: Bool = false
    /// A publish the broker has not confirmed after this long is republished on a new
    /// channel (receivers drop copies), and the node is not ready until confirms come again.
    public var publishConfirmTimeoutSeconds: Double = 5
    /// Replicas of the recovery stream when it is first declared (`x-initial-cluster-size`):
    /// RabbitMQ places this many members (at most the cluster's node count). A stream needs a
    /// majority of its members to accept writes: 3 of a 3-node cluster survive one broker loss.
    public var streamInitialClusterSize: Int = 3
    /// Messages older than this are dropped from a node's queue (a node that is down for
    /// longer would have lost its clients anyway).
    public var queueMessageTTLMilliseconds: Int? = 60_000
    /// Connection state recovery stream: kept this long / this large, whichever ends first.
    public var recoveryStreamMaxAge: String = "2m"
    public var recoveryStreamMaxLengthBytes: Int = 100_000_000

    public init() {}
}

/// An option `RabbitMQCluster.connect` cannot run with; the text names it and what it takes.
public struct RabbitMQOptionsError: Error, Sendable, Hashable, CustomStringConvertible {
    public var option: String
    public var expected: String

    public var description: String { "RabbitMQAdapterOptions.\(option): expected \(expected)" }
}

extension RabbitMQAdapterOptions {
    /// Checked by `RabbitMQCluster.connect`, so a mistake is one clear error at start rather
    /// than a node that misbehaves (a zero heartbeat interval would spin; durations are
    /// converted with saturation anyway, see `RabbitMQAdapter.nanoseconds(seconds:)`).
    public func validate() throws(RabbitMQOptionsError) {
        func seconds(_ value: Double, _ name: String) throws(RabbitMQOptionsError) {
            guard value.isFinite, value > 0, value <= 86_400 else { throw RabbitMQOptionsError(option: name, expected: "0 < seconds <= 86400") }
        }
        try seconds(heartbeatIntervalSeconds, "heartbeatIntervalSeconds")
        try seconds(heartbeatTimeoutSeconds, "heartbeatTimeoutSeconds")
        try seconds(requestTimeoutSeconds, "requestTimeoutSeconds")
        try seconds(publishConfirmTimeoutSeconds, "publishConfirmTimeoutSeconds")
        guard (1...255).contains(streamInitialClusterSize) else {
            throw RabbitMQOptionsError(option: "streamInitialClusterSize", expected: "1...255")
        }
        guard outboxCapacity >= 1 else { throw RabbitMQOptionsError(option: "outboxCapacity", expected: "at least 1") }
        guard queueExpiresMilliseconds >= 1 else { throw RabbitMQOptionsError(option: "queueExpiresMilliseconds", expected: "at least 1") }
        if let ttl = queueMessageTTLMilliseconds, ttl < 0 {
            throw RabbitMQOptionsError(option: "queueMessageTTLMilliseconds", expected: "0 or more, or nil")
        }
        guard recoveryStreamMaxLengthBytes >= 1 else { throw RabbitMQOptionsError(option: "recoveryStreamMaxLengthBytes", expected: "at least 1") }
    }
}

/// What to do when the outbox is full (the broker has been away long enough, or publishes
/// are not being confirmed fast enough).
public enum OutboxOverflowPolicy: Sendable, Hashable {
    /// Keep the newest messages: a chat wants what was said last more than what was said first.
    case dropOldest
    /// Keep what is already queued and refuse the new message (callers see `rejected`).
    case rejectNew
}
