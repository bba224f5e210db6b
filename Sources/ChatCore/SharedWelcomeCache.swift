/// What the shared part of a room's welcome (its history and the list of rooms) is made
/// from. Messages never change once stored and their ids are unique, so a room's history is
/// the same while its size and its first and last ids are.
public struct WelcomeFingerprint: Hashable, Sendable {
    public let messageCount: Int
    public let firstMessageId: String?
    public let lastMessageId: String?
    public let rooms: [String]

    public init(history: [ChatMessage], rooms: [String]) {
        self.messageCount = history.count
        self.firstMessageId = history.first?.id
        self.lastMessageId = history.last?.id
        self.rooms = rooms
    }
}

/// The last encoding of each room's shared welcome part, so that a crowd arriving in a room
/// is welcomed with one encoding (and one copy in memory) per change of the room instead of
/// one per arrival. At most `capacity` rooms are kept: a new room beyond it pushes out the
/// one used longest ago.
public struct SharedWelcomeCache<Encoded: Sendable>: Sendable {
    private struct Entry: Sendable {
        var fingerprint: WelcomeFingerprint
        var encoded: Encoded
        var stamp: UInt64
    }

    public let capacity: Int
    private var entries: [String: Entry] = [:]
    private var clock: UInt64 = 0
    /// How many times `encode` ran (for tests and metrics).
    public private(set) var encodings = 0

    public init(capacity: Int = 64) {
        self.capacity = max(capacity, 1)
    }

    public var count: Int { entries.count }

    /// The encoding for `room` as `fingerprint` describes it: the kept one if it still
    /// matches, else the result of `encode` (then kept).
    public mutating func encoded(
        room: String, fingerprint: WelcomeFingerprint, encode: () -> Encoded
    ) -> Encoded {
        clock &+= 1
        if let entry = entries[room], entry.fingerprint == fingerprint {
            entries[room]?.stamp = clock
            return entry.encoded
        }
        let encoded = encode()
        encodings += 1
        if entries[room] == nil, entries.count >= capacity,
            let oldest = entries.min(by: { $0.value.stamp < $1.value.stamp })?.key {
            // Linear in `capacity` (a constant), and only when a new room arrives at a full cache.
            entries[oldest] = nil
        }
        entries[room] = Entry(fingerprint: fingerprint, encoded: encoded, stamp: clock)
        return encoded
    }
}
