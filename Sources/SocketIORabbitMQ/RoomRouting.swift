/// Room-aware routing over a direct exchange.
///
/// Without it every broadcast goes to every node. With it a node binds its queue once per
/// room it has local members in (on the room's first local join, unbinding on the last
/// leave), and a broadcast to rooms is published with one routing key per target room (the
/// first as the routing key, the rest in the `CC` header: RabbitMQ puts one copy in a queue
/// however many of its bindings match). A direct exchange looks routing keys up by hash, so
/// thousands of bindings cost nothing per message (a headers exchange would test each).
public enum RoomRoutingKeys {
    /// Every node binds this key: requests, heartbeats and broadcasts to the whole namespace.
    public static let everyNode = "all"

    public static func key(forRoom room: String) -> String { "r." + room }

    /// The routing keys a broadcast is published with. Empty rooms means the whole namespace.
    public static func keys(forBroadcastTo rooms: [String], roomAware: Bool) -> [String] {
        guard roomAware, !rooms.isEmpty else { return [everyNode] }
        var seen = Set<String>()
        return rooms.compactMap { seen.insert($0).inserted ? key(forRoom: $0) : nil }
    }
}

/// Counts local members per room and says when a binding must be added or removed.
public struct RoomBindingTracker: Sendable {
    public enum Change: Sendable, Hashable {
        case bind(routingKey: String)
        case unbind(routingKey: String)
    }

    private var memberCount: [String: Int] = [:]

    public init() {}

    /// A local socket joined `room`. Returns `.bind` on the room's first local member.
    public mutating func socketJoined(_ room: String) -> Change? {
        let count = memberCount[room, default: 0] + 1
        memberCount[room] = count
        return count == 1 ? .bind(routingKey: RoomRoutingKeys.key(forRoom: room)) : nil
    }

    /// A local socket left `room` (or disconnected). Returns `.unbind` on the last one.
    public mutating func socketLeft(_ room: String) -> Change? {
        guard let count = memberCount[room] else { return nil }
        if count <= 1 {
            memberCount.removeValue(forKey: room)
            return .unbind(routingKey: RoomRoutingKeys.key(forRoom: room))
        }
        memberCount[room] = count - 1
        return nil
    }

    /// Every binding this node needs, for re-declaring topology after a broker restart.
    public var boundRoutingKeys: [String] {
        [RoomRoutingKeys.everyNode] + memberCount.keys.sorted().map(RoomRoutingKeys.key(forRoom:))
    }

    public var roomCount: Int { memberCount.count }
}
