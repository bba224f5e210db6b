/// Who is in a room, as the chat shows it: the total count and, for a crowd, only the first
/// `limit` names. A full list for a 9,000-member room is ~100 KB sent to 9,000 sockets: the
/// cap keeps a presence update O(limit) in bytes whatever the crowd.
public struct RoomPresence: Equatable, Sendable {
    public static let defaultLimit = 100

    public let room: String
    /// Sorted, distinct, at most `limit` of them.
    public let names: [String]
    /// Connections in the room on every node (`names` may be fewer: capped, and two tabs of
    /// one person share a name).
    public let count: Int

    /// Counts come from other nodes through the broker: they are clamped to
    /// 0...`maxCount` and added with saturation, so a huge or negative answer cannot trap.
    public static let maxCount = Int(Int32.max)

    /// `count` defaults to the number of names given (one per connection).
    public init<Names: Collection<String>>(room: String, names: Names, count: Int? = nil, limit: Int = RoomPresence.defaultLimit) {
        let distinct = Set(names).sorted()
        self.room = room
        self.names = Array(distinct.prefix(max(limit, 0)))
        self.count = min(max(count ?? names.count, self.names.count, 0), Self.maxCount)
    }

    /// One room's presence from every node's part (each capped already): names merged and
    /// capped again, counts added (saturating at `maxCount`).
    public init(room: String, parts: [RoomPresence], limit: Int = RoomPresence.defaultLimit) {
        let total = parts.reduce(0) { Self.saturatingSum($0, $1.count) }
        // A part is capped when built; its names are capped again so a hostile part cannot
        // make the merge costly.
        self.init(room: room, names: parts.flatMap { $0.names.prefix(max(limit, 0)) }, count: total, limit: limit)
    }

    /// This presence with `name` counted in: a joining user's own snapshot may be built from a
    /// list computed a moment before it arrived.
    public func including(_ name: String, limit: Int = RoomPresence.defaultLimit) -> RoomPresence {
        if names.contains(name) { return self }
        // Names beyond the cap are not known here, so the count is only ever raised by one.
        return RoomPresence(room: room, names: names + [name], count: Self.saturatingSum(count, 1), limit: limit)
    }

    static func saturatingSum(_ a: Int, _ b: Int) -> Int {
        let clampedA = min(max(a, 0), maxCount), clampedB = min(max(b, 0), maxCount)
        return min(clampedA + clampedB, maxCount)  // both at most Int32.max: cannot overflow Int
    }
}

/// Which rooms need a presence update, so that a burst of joins and leaves in one room costs
/// ONE member lookup and ONE broadcast per interval instead of one per change (a crowd of N
/// arriving together would otherwise cost N cluster-wide lookups and N broadcasts to up to N
/// members: O(N^2)).
public struct PresenceSchedule: Sendable {
    private var pending: Set<String> = []

    public init() {}

    /// Records a change; true when the caller must schedule the room's next update (none is
    /// pending yet). Changes while one is pending ride on it.
    public mutating func roomChanged(_ room: String) -> Bool {
        pending.insert(room).inserted
    }

    /// The update is about to read the members: later changes need a new update.
    public mutating func updateStarting(_ room: String) {
        pending.remove(room)
    }
}
