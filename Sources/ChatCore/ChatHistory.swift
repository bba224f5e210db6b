/// The last messages of each room, kept in memory. Bounded three times: `historyLength`
/// messages and `maxBytesPerRoom` bytes per room (whichever comes first: a few large
/// messages must not make every newcomer's welcome huge), and `maxRooms` rooms (the room
/// least recently written to is forgotten first).
/// Not thread-safe by itself: the owner serialises access.
public struct RoomHistories: Sendable {
    public let historyLength: Int
    public let maxBytesPerRoom: Int
    public let maxRooms: Int
    private var rooms: [String: RingBuffer] = [:]
    private var lastWrite: [String: UInt64] = [:]
    private var writeCounter: UInt64 = 0

    /// Limits are checked at start-up (`ChatLimits.validate`); a value below 1 given here
    /// anyway counts as 1 rather than trapping.
    public init(historyLength: Int, maxRooms: Int, maxBytesPerRoom: Int = ChatLimits().historyBytesPerRoom) {
        self.historyLength = max(historyLength, 1)
        self.maxRooms = max(maxRooms, 1)
        self.maxBytesPerRoom = max(maxBytesPerRoom, 1)
    }

    public init(limits: ChatLimits) {
        self.init(historyLength: limits.historyLength, maxRooms: limits.maxRooms, maxBytesPerRoom: limits.historyBytesPerRoom)
    }

    /// Adds a message unless one with the same id is already in its room (a message may
    /// arrive twice: from the live path and from a replayed log), or it alone is larger than
    /// a room's byte budget. Returns whether it was added.
    @discardableResult
    public mutating func append(_ message: ChatMessage) -> Bool {
        guard message.historyBytes <= maxBytesPerRoom else { return false }
        if rooms[message.room] == nil {
            if rooms.count >= maxRooms, let oldest = lastWrite.min(by: { $0.value < $1.value })?.key {
                rooms[oldest] = nil
                lastWrite[oldest] = nil
            }
            rooms[message.room] = RingBuffer(capacity: historyLength, maxBytes: maxBytesPerRoom)
        }
        guard var buffer = rooms.removeValue(forKey: message.room) else { return false }
        defer { rooms[message.room] = buffer }
        guard !buffer.contains(id: message.id) else { return false }
        buffer.append(message)
        writeCounter += 1
        lastWrite[message.room] = writeCounter
        return true
    }

    /// Oldest first.
    public func messages(in room: String) -> [ChatMessage] {
        rooms[room]?.elements ?? []
    }

    /// The bytes a room's history holds (as `ChatMessage.historyBytes` counts them).
    public func bytes(in room: String) -> Int {
        rooms[room]?.bytes ?? 0
    }

    /// Rooms that have history, most recently active first.
    public var activeRooms: [String] {
        lastWrite.sorted { $0.value > $1.value }.map(\.key)
    }
}

extension ChatMessage {
    /// What a message costs in a history and in every welcome that carries it: its strings'
    /// UTF-8 bytes (the JSON around them is small and fixed).
    public var historyBytes: Int {
        id.utf8.count + text.utf8.count + date.utf8.count + name.utf8.count + room.utf8.count
    }
}

/// Oldest first; drops the oldest when over `capacity` messages or `maxBytes` bytes.
private struct RingBuffer: Sendable {
    let capacity: Int
    let maxBytes: Int
    private var storage: [ChatMessage] = []
    private var start = 0
    private(set) var bytes = 0

    init(capacity: Int, maxBytes: Int) {
        self.capacity = capacity
        self.maxBytes = maxBytes
        storage.reserveCapacity(min(capacity, 16))
    }

    mutating func append(_ message: ChatMessage) {
        let cost = message.historyBytes
        while !isEmpty, count >= capacity || bytes + cost > maxBytes {
            dropOldest()
        }
        storage.append(message)
        bytes += cost
    }

    /// Amortised O(1): the dropped prefix is compacted once it is half the storage.
    private mutating func dropOldest() {
        bytes -= storage[start].historyBytes
        start += 1
        if start == storage.count {
            storage.removeAll(keepingCapacity: true)
            start = 0
        } else if start * 2 >= storage.count {
            storage.removeFirst(start)
            start = 0
        }
    }

    var isEmpty: Bool { start >= storage.count }
    var count: Int { storage.count - start }

    func contains(id: String) -> Bool {
        storage[start...].contains { $0.id == id }
    }

    var elements: [ChatMessage] {
        Array(storage[start...])
    }
}
