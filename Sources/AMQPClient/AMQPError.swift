import AMQPProtocol

/// Why the broker (or we) closed a channel or a connection: the AMQP reply code and the broker's text.
public struct AMQPCloseReason: Sendable, Hashable, CustomStringConvertible {
    public var replyCode: UInt16
    public var replyText: String
    /// The method that caused the close (0 when none), e.g. 50/10 for queue.declare.
    public var classID: UInt16
    public var methodID: UInt16

    public init(replyCode: UInt16, replyText: String, classID: UInt16 = 0, methodID: UInt16 = 0) {
        self.replyCode = replyCode
        self.replyText = replyText
        self.classID = classID
        self.methodID = methodID
    }

    /// RabbitMQ answers 404 "home node ... is down or inaccessible" for a durable queue (or
    /// stream) whose process has not started yet, as happens for a few seconds after the
    /// broker comes back. Recovery retries on this instead of giving the queue up.
    public var isTransientUnavailability: Bool {
        replyCode == 404 && replyText.contains("down or inaccessible")
    }

    /// The spec's name for the reply code, so callers can switch instead of comparing numbers;
    /// nil for a code the spec does not define.
    public var kind: AMQPReplyCode? { AMQPReplyCode(rawValue: replyCode) }

    public var description: String { "\(replyCode) \(replyText)" }
}

/// Every failure the client reports. Each case says what happened and, by its kind, what to do.
public enum AMQPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The URL could not be parsed; the text says which part.
    case invalidURL(String)
    /// TCP/TLS connect to every endpoint failed (the last failure is reported).
    case connectFailed(endpoint: String, reason: String)
    /// The TLS handshake failed: the broker's certificate is not trusted (add its CA to
    /// `tlsConfiguration.trustRoots`), does not name the host (`tlsServerName`), or the peers share no
    /// TLS version or cipher. The text is the TLS library's reason.
    case tlsHandshakeFailed(String)
    /// Wrong user/password or no access to the vhost. Not retried by recovery: fix the credentials.
    case authenticationFailed(String)
    /// The broker closed the connection (e.g. 320 CONNECTION_FORCED on shutdown, 530 NOT_ALLOWED vhost).
    case connectionClosedByBroker(AMQPCloseReason)
    /// The broker closed this channel (e.g. 406 PRECONDITION_FAILED for a conflicting declare, 404 NOT_FOUND).
    /// Only this channel is gone; the connection and its other channels go on.
    case channelClosedByBroker(AMQPCloseReason)
    /// The socket went away (or heartbeats stopped). Operations in flight, including publishes awaiting
    /// a confirm, fail with this: their outcome at the broker is unknown. Recovery may follow.
    case connectionLost(String)
    /// The connection is not usable right now (recovering, or closed). Retry later or keep an outbox.
    case notConnected
    /// The channel was closed by the application.
    case channelClosed
    /// The connection was closed by the application.
    case connectionClosed
    /// No broker frame for two heartbeat intervals.
    case heartbeatTimeout
    /// The broker answered basic.nack for this publish: it did not take responsibility for the message.
    case publishNacked
    /// No confirm came before the deadline the caller gave: the outcome is unknown (a late
    /// confirm is ignored). Publish again; receivers must tolerate the copy.
    case confirmTimedOut
    /// A mandatory publish could not be routed to any queue (basic.return), e.g. 312 NO_ROUTE.
    case unroutable(AMQPCloseReason)
    /// The broker cancelled the consumer (its queue was deleted, or the node hosting it went away).
    case consumerCancelledByBroker(consumerTag: String)
    /// Ack/nack/reject for a delivery from a channel incarnation before recovery. The broker has
    /// already requeued that message; it will be delivered again.
    case staleDelivery
    /// All channel ids up to the negotiated channel_max are in use.
    case tooManyChannels(limit: UInt16)
    /// The broker broke the protocol (unexpected frame or method); the connection is closed.
    case protocolViolation(String)
    /// Confirm-only operation on a channel that is not in confirm mode, or similar misuse.
    case invalidUsage(String)

    public var description: String {
        switch self {
        case .invalidURL(let text): "invalid AMQP URL: \(text)"
        case .connectFailed(let endpoint, let reason): "could not connect to \(endpoint): \(reason)"
        case .tlsHandshakeFailed(let text): "TLS handshake with the broker failed: \(text)"
        case .authenticationFailed(let text): "authentication failed: \(text)"
        case .connectionClosedByBroker(let reason): "connection closed by broker: \(reason)"
        case .channelClosedByBroker(let reason): "channel closed by broker: \(reason)"
        case .connectionLost(let text): "connection lost: \(text)"
        case .notConnected: "not connected (recovering or closed)"
        case .channelClosed: "channel closed"
        case .connectionClosed: "connection closed"
        case .heartbeatTimeout: "no traffic from broker for two heartbeat intervals"
        case .publishNacked: "broker nacked the publish"
        case .confirmTimedOut: "no publisher confirm before the deadline"
        case .unroutable(let reason): "mandatory message returned: \(reason)"
        case .consumerCancelledByBroker(let tag): "consumer \(tag) cancelled by broker"
        case .staleDelivery: "delivery belongs to a channel before recovery; it will be redelivered"
        case .tooManyChannels(let limit): "all \(limit) channel ids are in use"
        case .protocolViolation(let text): "protocol violation: \(text)"
        case .invalidUsage(let text): "invalid usage: \(text)"
        }
    }

    /// The close reason for broker-initiated closes, nil otherwise.
    public var closeReason: AMQPCloseReason? {
        switch self {
        case .connectionClosedByBroker(let reason), .channelClosedByBroker(let reason), .unroutable(let reason): reason
        default: nil
        }
    }
}
