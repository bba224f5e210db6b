/// Room-aware routing over a direct exchange.
///
/// Without it every broadcast goes to every node. With it a node binds its queue once per
/// room it has local members in (on the room's first local join, unbinding on the last
/// leave), and a broadcast to rooms is published with one routing key per target room (the
/// first as the routing key, the rest in the `CC` header: RabbitMQ puts one copy in a queue
/// however many of its bindings match). A direct exchange looks routing keys up by hash, so
/// thousands of bindings cost nothing per message (a headers exchange would test each).
enum RoomRoutingKeys {
    /// Every node binds this key: requests, heartbeats and broadcasts to the whole namespace.
    static let everyNode = "all"

    static func key(forRoom room: String) -> String { "r." + room }

    /// The routing keys a broadcast is published with. Empty rooms means the whole namespace.
    static func keys(forBroadcastTo rooms: [String], roomAware: Bool) -> [String] {
        guard roomAware, !rooms.isEmpty else { return [everyNode] }
        var seen = Set<String>()
        return rooms.compactMap { seen.insert($0).inserted ? key(forRoom: $0) : nil }
    }
}

/// The local members of each room and the broker bindings they need, as a plain value:
/// every decision the adapter takes on a join or leave, without I/O.
///
/// Binding changes are numbered operations that the adapter runs on the broker one at a
/// time, in number order (so an unbind can never overtake a later bind of the same room).
/// A join is complete (`operationToAwait` is nil) once the operation that bound its room has
/// finished: from then on a broadcast to the room published by any node lands in this
/// node's queue.
struct RoomBindingTracker: Sendable {
    enum Change: Sendable, Hashable {
        case bind(routingKey: String)
        case unbind(routingKey: String)
    }

    /// One binding change for the broker. `number` increases by one per operation.
    struct Operation: Sendable, Hashable {
        var number: UInt64
        var change: Change
    }

    /// Socket ids rather than counts: a socket joining a room twice (its own join racing a
    /// remote socketsJoin) is still one member, so the binding goes with its last leave.
    private var members: [String: Set<String>] = [:]
    /// The operation that (last) bound each room with members.
    private var bindingOperation: [String: UInt64] = [:]
    private var lastOperation: UInt64 = 0
    /// Every operation up to this one has finished (they finish in order).
    private(set) var finishedThrough: UInt64 = 0

    init() {}

    /// A local socket joined `room`. Returns the bind for the room's first local member.
    mutating func socketJoined(_ socketId: String, room: String) -> Operation? {
        let inserted = members[room, default: []].insert(socketId).inserted
        guard inserted, members[room]?.count == 1 else { return nil }
        let operation = nextOperation(.bind(routingKey: RoomRoutingKeys.key(forRoom: room)))
        bindingOperation[room] = operation.number
        return operation
    }

    /// A local socket left `room` (or disconnected). Returns the unbind for its last member.
    mutating func socketLeft(_ socketId: String, room: String) -> Operation? {
        guard members[room]?.remove(socketId) != nil else { return nil }
        guard members[room]?.isEmpty == true else { return nil }
        members.removeValue(forKey: room)
        bindingOperation.removeValue(forKey: room)
        return nextOperation(.unbind(routingKey: RoomRoutingKeys.key(forRoom: room)))
    }

    /// The operation whose end makes `rooms` routed to this node, or nil if they already are
    /// (or no longer have local members, so there is nothing to wait for).
    func operationToAwait(rooms: Set<String>) -> UInt64? {
        var awaited: UInt64?
        for room in rooms {
            guard let number = bindingOperation[room], number > finishedThrough else { continue }
            awaited = max(awaited ?? 0, number)
        }
        return awaited
    }

    /// The broker answered operation `number` (or it failed: the binding is then re-made by
    /// `rebindAll` when the connection recovers, and waiting longer would hang joins while
    /// the broker is away).
    mutating func finished(_ number: UInt64) {
        finishedThrough = max(finishedThrough, number)
    }

    /// Binds for every room with members, after the broker connection recovered.
    mutating func rebindAll() -> [Operation] {
        members.keys.sorted().map { room in
            let operation = nextOperation(.bind(routingKey: RoomRoutingKeys.key(forRoom: room)))
            bindingOperation[room] = operation.number
            return operation
        }
    }

    /// Every binding this node needs, for re-declaring topology after a broker restart.
    var boundRoutingKeys: [String] {
        [RoomRoutingKeys.everyNode] + members.keys.sorted().map(RoomRoutingKeys.key(forRoom:))
    }

    var roomCount: Int { members.count }

    func localMembers(of room: String) -> Set<String> { members[room] ?? [] }

    private mutating func nextOperation(_ change: Change) -> Operation {
        lastOperation += 1
        return Operation(number: lastOperation, change: change)
    }
}
