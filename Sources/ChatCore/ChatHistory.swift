/// The last messages of each room, kept in memory. Bounded twice: `historyLength` messages
/// per room and `maxRooms` rooms (the room least recently written to is forgotten first).
/// Not thread-safe by itself: the owner serialises access.
public struct RoomHistories: Sendable {
    public let historyLength: Int
    public let maxRooms: Int
    private var rooms: [String: RingBuffer] = [:]
    private var lastWrite: [String: UInt64] = [:]
    private var writeCounter: UInt64 = 0

    public init(historyLength: Int, maxRooms: Int) {
        precondition(historyLength > 0 && maxRooms > 0)
        self.historyLength = historyLength
        self.maxRooms = maxRooms
    }

    /// Adds a message unless one with the same id is already in its room (a message may
    /// arrive twice: from the live path and from a replayed log).
    /// Returns whether it was added.
    @discardableResult
    public mutating func append(_ message: ChatMessage) -> Bool {
        if rooms[message.room] == nil {
            if rooms.count >= maxRooms, let oldest = lastWrite.min(by: { $0.value < $1.value })?.key {
                rooms[oldest] = nil
                lastWrite[oldest] = nil
            }
            rooms[message.room] = RingBuffer(capacity: historyLength)
        }
        guard !rooms[message.room]!.contains(id: message.id) else { return false }
        rooms[message.room]!.append(message)
        writeCounter += 1
        lastWrite[message.room] = writeCounter
        return true
    }

    /// Oldest first.
    public func messages(in room: String) -> [ChatMessage] {
        rooms[room]?.elements ?? []
    }

    /// Rooms that have history, most recently active first.
    public var activeRooms: [String] {
        lastWrite.sorted { $0.value > $1.value }.map(\.key)
    }
}

private struct RingBuffer: Sendable {
    let capacity: Int
    private var storage: [ChatMessage] = []
    private var start = 0

    init(capacity: Int) {
        self.capacity = capacity
        storage.reserveCapacity(min(capacity, 16))
    }

    mutating func append(_ message: ChatMessage) {
        if storage.count < capacity {
            storage.append(message)
        } else {
            storage[start] = message
            start = (start + 1) % capacity
        }
    }

    func contains(id: String) -> Bool {
        storage.contains { $0.id == id }
    }

    var elements: [ChatMessage] {
        Array(storage[start...] + storage[..<start])
    }
}
