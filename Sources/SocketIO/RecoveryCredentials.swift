/// What a reconnecting client may claim in its CONNECT (`auth.pid`, `auth.offset`), checked
/// before anything acts on it. A private id is only ever one of ours (`SocketIOSocket.makeId`:
/// 20 characters of base64url), and an offset is a short token of an adapter's making (the
/// in-memory adapter's `epoch-counter`, the RabbitMQ adapter's `node-counter`, both in base 36).
/// Anything else cannot name a session this server issued: the client is connected as a new
/// one, as if it had sent no pid, instead of the claim reaching the adapter (and, in a cluster,
/// the broker: a 70,000-byte pid used to stop the node in the cluster encoder).
public enum RecoveryCredentials {
    /// Longest offset accepted. Generous for `nodeName-<13 base-36 digits>` with a long node
    /// name, far below what any cluster field can carry.
    public static let maxOffsetBytes = 200

    /// Exactly the form `EngineSessionID.generate` produces.
    public static func isWellFormed(privateId: String) -> Bool {
        let utf8 = privateId.utf8
        return utf8.count == 20 && utf8.allSatisfy(isBase64URL)
    }

    /// 1...`maxOffsetBytes` printable ASCII characters (no space, quote or backslash), ending
    /// in `-` and base-36 digits, as both built-in adapters write them.
    public static func isWellFormed(offset: String) -> Bool {
        let utf8 = offset.utf8
        guard (3...maxOffsetBytes).contains(utf8.count),
              utf8.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }),
              let dash = utf8.lastIndex(of: UInt8(ascii: "-")), dash != utf8.startIndex
        else { return false }
        let counter = utf8[utf8.index(after: dash)...]
        return !counter.isEmpty && counter.allSatisfy(isBase36)
    }

    private static func isBase64URL(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"): true
        default: false
        }
    }

    private static func isBase36(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: false
        }
    }
}
