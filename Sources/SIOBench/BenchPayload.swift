import NIOCore

/// The text a sender emits: `bench:<sender>:<seq>:<sentNanos>`. It travels inside the chat's
/// `message` event as `text`, so the server needs no bench-specific handler, and the
/// receiver can tell latency from the bytes alone (sender and receivers share one process
/// and one monotonic clock).
struct BenchPayload: Sendable, Hashable {
    static let prefix = "bench:"

    var sender: Int
    var sequence: Int
    var sentNanos: UInt64

    var text: String { "\(Self.prefix)\(sender):\(sequence):\(sentNanos)" }

    /// Parses the `text` form; `nil` for anything else (another client's chat line).
    init?(text: Substring) {
        guard text.hasPrefix(Self.prefix) else { return nil }
        let fields = text.dropFirst(Self.prefix.count).split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count == 3, let sender = Int(fields[0]), let sequence = Int(fields[1]),
              let sentNanos = UInt64(fields[2]), sender >= 0, sequence >= 0
        else { return nil }
        self.init(sender: sender, sequence: sequence, sentNanos: sentNanos)
    }

    init(sender: Int, sequence: Int, sentNanos: UInt64) {
        self.sender = sender
        self.sequence = sequence
        self.sentNanos = sentNanos
    }
}

/// Reads what the bench needs from one Engine.IO text frame without decoding JSON: the
/// load generator sees every delivery, so a full parse per frame would make it, not the
/// server, the bottleneck. Anything it does not recognise is left to the full codecs.
enum BenchFrameScanner {
    private static let benchTextMarker: [UInt8] = Array(#""bench:"#.utf8)

    static func isMessageEvent(_ frame: ByteBuffer, protocol wire: BenchProtocol = .chat) -> Bool {
        frame.readableBytesView.starts(with: wire.deliveryPrefix)
    }

    /// The bench payload inside a delivery frame (`message` in the chat), if it carries one.
    static func benchPayload(in frame: ByteBuffer, protocol wire: BenchProtocol = .chat) -> BenchPayload? {
        let bytes = frame.readableBytesView
        guard bytes.starts(with: wire.deliveryPrefix),
              let markerStart = firstIndex(of: benchTextMarker, in: bytes)
        else { return nil }
        let textStart = markerStart + 1  // skip the opening quote
        guard let textEnd = bytes[textStart...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        let text = String(decoding: bytes[textStart..<textEnd], as: UTF8.self)
        return BenchPayload(text: Substring(text))
    }

    /// With connection state recovery on, the server appends the packet's offset as a last
    /// string argument: `42["message",{...},"<offset>"]`. Returns it when the frame ends
    /// that way; the caller decides whether recovery is on.
    static func trailingStringArgument(in frame: ByteBuffer) -> String? {
        let bytes = frame.readableBytesView
        guard bytes.count >= 4, bytes.last == UInt8(ascii: "]") else { return nil }
        let closingQuote = bytes.index(before: bytes.index(before: bytes.endIndex))
        guard bytes[closingQuote] == UInt8(ascii: "\"") else { return nil }
        var cursor = closingQuote
        while cursor > bytes.startIndex {
            cursor = bytes.index(before: cursor)
            if bytes[cursor] == UInt8(ascii: "\"") {
                // An escaped quote belongs to the string; offsets never contain one, so we
                // give up rather than unescape.
                if cursor > bytes.startIndex, bytes[bytes.index(before: cursor)] == UInt8(ascii: "\\") { return nil }
                guard cursor > bytes.startIndex, bytes[bytes.index(before: cursor)] == UInt8(ascii: ",") else { return nil }
                return String(decoding: bytes[bytes.index(after: cursor)..<closingQuote], as: UTF8.self)
            }
        }
        return nil
    }

    private static func firstIndex(of needle: [UInt8], in haystack: ByteBufferView) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count else { return nil }
        var start = haystack.startIndex
        let lastStart = haystack.endIndex - needle.count
        while start <= lastStart {
            guard let candidate = haystack[start...lastStart].firstIndex(of: first) else { return nil }
            if haystack[candidate..<(candidate + needle.count)].elementsEqual(needle) { return candidate }
            start = candidate + 1
        }
        return nil
    }
}

/// Which server events carry the load.
enum BenchProtocol: String, Sendable, CaseIterable {
    /// The chat (and the python peer): emit `message` with a string; everyone in the room
    /// receives `message` {text, date, ...}. The room is chosen with `auth.room`.
    case chat
    /// The `sio-conformance` fixture, which has no chat: `join` a room, then
    /// `broadcast` [room, text]; members receive `broadcast` [text].
    case conformance

    /// How a delivery frame starts: an Engine.IO message with a Socket.IO EVENT in `/`.
    var deliveryPrefix: [UInt8] {
        switch self {
        case .chat: Array(#"42["message","#.utf8)
        case .conformance: Array(#"42["broadcast","#.utf8)
        }
    }

    /// The frame that sends `text` to `room`. Room names and bench texts hold only
    /// letters, digits, `-` and `:`, so they need no JSON escaping.
    func sendFrame(room: String, text: String) -> String {
        switch self {
        case .chat: #"42["message",""# + text + #""]"#
        case .conformance: #"42["broadcast",""# + room + #"",""# + text + #""]"#
        }
    }

    /// Sent right after CONNECT to enter `room`, when the protocol has no room in `auth`.
    func joinFrame(room: String) -> String? {
        switch self {
        case .chat: nil
        case .conformance: #"42["join",""# + room + #""]"#
        }
    }
}
