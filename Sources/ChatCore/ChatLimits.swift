/// Every limit of the chat, with the defaults a user would expect. Each is a command-line
/// option and an environment variable of `chat` (named in `ChatLimits.Option`), checked at
/// start by `validate()`: a bad value stops the node with one line naming the option, never
/// later with a trap.
public struct ChatLimits: Sendable, Hashable {
    /// Longest message, in characters as people count them (grapheme clusters)...
    public var maxMessageLength: Int = 2_000
    /// ...and in UTF-8 bytes: "e" + 300,000 combining accents is one character of 600 KB.
    public var maxMessageBytes: Int = 8 * 1024
    /// Names and rooms: characters and UTF-8 bytes (22,000 x U+1100 is one character of 66 KB).
    public var maxNameLength: Int = 32
    public var maxNameBytes: Int = 128
    public var maxRoomLength: Int = 32
    public var maxRoomBytes: Int = 128
    /// Sustained messages per second per user (client address and name), across connections.
    public var messagesPerSecond: Double = 5
    /// Messages a user may send in a burst before the sustained rate applies.
    public var messageBurst: Double = 10
    /// A client address may send as many messages as this many users at the per-user rate
    /// (room for a few people behind one NAT), whatever names it uses.
    public var addressMessageFactor: Double = 4
    /// `typing` events relayed per connection (the rest are dropped: they are volatile anyway).
    public var typingPerSecond: Double = 5
    public var typingBurst: Double = 10
    /// `join` and `set-name` per connection.
    public var roomChangesPerSecond: Double = 2
    public var roomChangeBurst: Double = 10
    /// Namespace CONNECTs (recovery claims included) per client address.
    public var connectsPerSecond: Double = 50
    public var connectBurst: Double = 500
    /// Client addresses whose rate limits are remembered (the table is bounded, see
    /// `KeyedRateLimiter`).
    public var maxTrackedAddresses: Int = 100_000
    /// Messages of each room kept for newcomers...
    public var historyLength: Int = 100
    /// ...and their bytes (text, name, room, id, date), whichever limit comes first.
    public var historyBytesPerRoom: Int = 256 * 1024
    /// Rooms whose history is kept; the least recently active room is forgotten past it.
    public var maxRooms: Int = 1_000

    public init() {}

    public var messageLimit: RateLimit { RateLimit(perSecond: messagesPerSecond, burst: messageBurst) }
    public var addressMessageLimit: RateLimit {
        RateLimit(perSecond: messagesPerSecond * addressMessageFactor, burst: messageBurst * addressMessageFactor)
    }
    public var typingLimit: RateLimit { RateLimit(perSecond: typingPerSecond, burst: typingBurst) }
    public var roomChangeLimit: RateLimit { RateLimit(perSecond: roomChangesPerSecond, burst: roomChangeBurst) }
    public var connectLimit: RateLimit { RateLimit(perSecond: connectsPerSecond, burst: connectBurst) }

    /// Checks every limit; the error names the option to fix.
    public func validate() throws(ChatConfigurationError) {
        func positive(_ value: Int, _ option: Option, max: Int = Int(Int32.max)) throws(ChatConfigurationError) {
            guard (1...max).contains(value) else { throw ChatConfigurationError(option: option, value: "\(value)", expected: "a whole number from 1 to \(max)") }
        }
        func rate(_ value: Double, _ option: Option) throws(ChatConfigurationError) {
            guard value.isFinite, value > 0, value <= 1e9 else { throw ChatConfigurationError(option: option, value: "\(value)", expected: "a number above 0 (at most 1e9)") }
        }
        func burst(_ value: Double, _ option: Option) throws(ChatConfigurationError) {
            guard value.isFinite, value >= 1, value <= 1e9 else { throw ChatConfigurationError(option: option, value: "\(value)", expected: "a number from 1 to 1e9") }
        }
        try positive(maxMessageLength, .maxMessageLength, max: 1_000_000)
        try positive(maxMessageBytes, .maxMessageBytes, max: 16 * 1024 * 1024)
        try positive(maxNameLength, .maxNameLength, max: 1_000)
        // Room and name travel in every cluster message; the cluster format carries 65,535 bytes.
        try positive(maxNameBytes, .maxNameBytes, max: 4_096)
        try positive(maxRoomLength, .maxRoomLength, max: 1_000)
        try positive(maxRoomBytes, .maxRoomBytes, max: 4_096)
        try rate(messagesPerSecond, .rateLimit)
        try burst(messageBurst, .rateBurst)
        guard addressMessageFactor.isFinite, addressMessageFactor >= 1, addressMessageFactor <= 1e6 else {
            throw ChatConfigurationError(option: .addressRateFactor, value: "\(addressMessageFactor)", expected: "a number from 1 to 1e6")
        }
        try rate(typingPerSecond, .typingRateLimit)
        try burst(typingBurst, .typingBurst)
        try rate(roomChangesPerSecond, .roomChangeRateLimit)
        try burst(roomChangeBurst, .roomChangeBurst)
        try rate(connectsPerSecond, .connectRateLimit)
        try burst(connectBurst, .connectBurst)
        try positive(maxTrackedAddresses, .maxTrackedAddresses, max: 10_000_000)
        try positive(historyLength, .historyLength, max: 100_000)
        try positive(historyBytesPerRoom, .historyBytes, max: 1 << 30)
        guard historyBytesPerRoom >= maxMessageBytes else {
            throw ChatConfigurationError(option: .historyBytes, value: "\(historyBytesPerRoom)",
                                         expected: "at least MAX_MESSAGE_BYTES (\(maxMessageBytes)), or no message would fit")
        }
        try positive(maxRooms, .maxRooms, max: 10_000_000)
    }

    /// The command-line option and environment variable of each limit.
    public enum Option: String, Sendable, CaseIterable {
        case maxMessageLength = "max-message-length", maxMessageBytes = "max-message-bytes"
        case maxNameLength = "max-name-length", maxNameBytes = "max-name-bytes"
        case maxRoomLength = "max-room-length", maxRoomBytes = "max-room-bytes"
        case rateLimit = "rate-limit", rateBurst = "rate-burst", addressRateFactor = "address-rate-factor"
        case typingRateLimit = "typing-rate-limit", typingBurst = "typing-burst"
        case roomChangeRateLimit = "room-change-rate-limit", roomChangeBurst = "room-change-burst"
        case connectRateLimit = "connect-rate-limit", connectBurst = "connect-burst"
        case maxTrackedAddresses = "max-tracked-addresses"
        case historyLength = "history-length", historyBytes = "history-bytes", maxRooms = "max-rooms"
        case presenceInterval = "presence-interval", recoveryWindow = "recovery-window"
        case pingInterval = "ping-interval", pingTimeout = "ping-timeout", port, amqpURL = "amqp-url", nodeName = "node-name"

        /// `--rate-limit` is `RATE_LIMIT`, and so on (a few keep their historical names).
        public var environmentVariable: String {
            switch self {
            case .port: "NODE_PORT"
            case .presenceInterval: "PRESENCE_INTERVAL_MS"
            case .pingInterval: "PING_INTERVAL_MS"
            case .pingTimeout: "PING_TIMEOUT_MS"
            case .amqpURL: "AMQP_URL"
            default: rawValue.uppercased().replacingHyphens()
            }
        }
    }
}

/// A configuration value the chat cannot run with. One line, naming the option, the value and
/// what is expected: `RATE_LIMIT (--rate-limit) is 0; expected a number above 0 (at most 1e9)`.
public struct ChatConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var option: ChatLimits.Option
    public var value: String
    public var expected: String

    public init(option: ChatLimits.Option, value: String, expected: String) {
        self.option = option
        self.value = value
        self.expected = expected
    }

    public var description: String {
        let shown = value.isEmpty ? "empty" : "'\(value)'"
        return "\(option.environmentVariable) (--\(option.rawValue)) is \(shown); expected \(expected)"
    }
}

extension String {
    func replacingHyphens() -> String { String(map { $0 == "-" ? "_" : $0 }) }
}
