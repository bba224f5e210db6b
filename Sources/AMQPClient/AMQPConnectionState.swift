/// What the connection is doing, as seen by `AMQPConnection.stateChanges`.
public enum AMQPConnectionState: Sendable, Hashable {
    case connecting
    case connected
    /// The connection died; recovery starts unless it was disabled.
    case disconnected(AMQPError)
    /// A reconnect attempt (1, 2, ...) is about to start.
    case recovering(attempt: Int)
    /// Reconnected; channels, qos, confirm mode, topology and consumers are restored.
    case recovered
    /// Finished for good (closed by the application, or recovery gave up).
    case closed
    /// Recovery could not restore one entity because the broker refused it (e.g. 406 for a queue that
    /// now exists with other arguments, 405 for one now exclusive to another connection). Recovery
    /// goes on with everything else; a failed consumer's sequence ends with the broker's error, and
    /// a channel the broker closed meanwhile is reopened with its other consumers.
    case topologyRecoveryFailed(AMQPRecoveryFailure)
    /// connection.blocked: the broker stopped reading our publishes (memory or disk alarm).
    case blocked(reason: String)
    case unblocked
}

/// One entity recovery could not restore, and the broker's reason.
public struct AMQPRecoveryFailure: Sendable, Hashable, CustomStringConvertible {
    public enum Entity: Sendable, Hashable {
        case exchange(String)
        case queue(String)
        case queueBinding(queue: String, exchange: String, routingKey: String)
        case exchangeBinding(destination: String, source: String, routingKey: String)
        case consumer(tag: String, queue: String)
    }

    public var entity: Entity
    public var reason: AMQPCloseReason

    public init(entity: Entity, reason: AMQPCloseReason) {
        self.entity = entity
        self.reason = reason
    }

    public var description: String {
        let what = switch entity {
        case .exchange(let name): "exchange \(name)"
        case .queue(let name): "queue \(name)"
        case .queueBinding(let queue, let exchange, let key): "binding \(exchange) -> \(queue) (\(key))"
        case .exchangeBinding(let destination, let source, let key): "binding \(source) -> \(destination) (\(key))"
        case .consumer(let tag, let queue): "consumer \(tag) on \(queue)"
        }
        return "\(what): \(reason)"
    }
}
