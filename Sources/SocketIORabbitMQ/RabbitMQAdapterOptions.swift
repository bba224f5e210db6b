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
    /// Messages older than this are dropped from a node's queue (a node that is down for
    /// longer would have lost its clients anyway).
    public var queueMessageTTLMilliseconds: Int? = 60_000
    /// Connection state recovery stream: kept this long / this large, whichever ends first.
    public var recoveryStreamMaxAge: String = "2m"
    public var recoveryStreamMaxLengthBytes: Int = 100_000_000

    public init() {}
}
