import Atomics

/// Counts the instances of one kind of per-connection object that are still allocated
/// (incremented in `init`, decremented in `deinit`), so a leak shows as a number that
/// does not return to zero once every client has gone. One relaxed atomic add per object
/// lifetime; reading it is a load.
public final class LiveObjectCounter: Sendable {
    public let name: String
    private let value = ManagedAtomic<Int>(0)

    public init(name: String) {
        self.name = name
    }

    public var count: Int { value.load(ordering: .relaxed) }

    public func created() { value.wrappingIncrement(ordering: .relaxed) }
    public func destroyed() { value.wrappingDecrement(ordering: .relaxed) }
}

/// The process-wide counters of the objects every connection allocates. Exposed by the
/// applications' `/metrics` (`engineio_live_objects{kind=…}`) and asserted on by the
/// churn tests: after every client has gone, all of them must be back at zero.
public enum LiveObjects {
    /// Engine.IO sessions (one per connection, whatever its transport).
    public static let engineSessions = LiveObjectCounter(name: "engine_sessions")
    /// WebSocket transport handlers (a session's WebSocket, or an upgrade probe).
    public static let webSocketHandlers = LiveObjectCounter(name: "websocket_handlers")
    /// Socket.IO client objects (one per Engine.IO connection that reached Socket.IO).
    public static let socketIOClients = LiveObjectCounter(name: "socketio_clients")
    /// Socket.IO sockets (one per namespace a client joined).
    public static let socketIOSockets = LiveObjectCounter(name: "socketio_sockets")

    public static let all: [LiveObjectCounter] = [engineSessions, webSocketHandlers, socketIOClients, socketIOSockets]

    /// Prometheus text exposition of every counter, for applications without a registry.
    public static var prometheusText: String {
        var text = "# HELP engineio_live_objects Per-connection objects still allocated, by kind.\n"
        text += "# TYPE engineio_live_objects gauge\n"
        for counter in all { text += "engineio_live_objects{kind=\"\(counter.name)\"} \(counter.count)\n" }
        return text
    }
}
