import NIOCore

/// A Socket.IO argument: any JSON value, plus binary data (which Socket.IO carries as
/// attachments next to the JSON text, never inside it).
///
/// Numbers are kept as their literal text so that re-encoding is byte-identical
/// (`9007199254740991` and `1e400` survive), and objects keep the order in which their
/// keys arrived (`{"b":1,"a":2}` is echoed as is). Clients compare both as strings.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number exactly as written in JSON (already validated by the parser or built
    /// from a Swift number).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
    /// Raw bytes. Encoded as a `{"_placeholder":true,"num":N}` attachment in packets.
    case binary(ByteBuffer)

    public static func number(_ value: Int) -> JSONValue { .number(String(value)) }
    public static func number(_ value: Double) -> JSONValue {
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
            return .number(String(Int64(value)))
        }
        // JSON has no NaN or infinity; JSON.stringify writes null for them.
        return value.isFinite ? .number(String(value)) : .null
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var intValue: Int? {
        if case .number(let text) = self { return Int(text) ?? Double(text).flatMap { Int(exactly: $0) } }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var binaryValue: ByteBuffer? {
        if case .binary(let b) = self { return b }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// Member lookup for objects; `nil` for other values or missing keys.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// Whether any binary value is nested in this value (decides EVENT vs BINARY_EVENT).
    public var containsBinary: Bool {
        switch self {
        case .binary: return true
        case .array(let items): return items.contains { $0.containsBinary }
        case .object(let object): return object.contains { $0.value.containsBinary }
        default: return false
        }
    }
}

/// A JSON object that remembers the order of its keys. Lookups are linear, which beats
/// hashing for the handful of keys Socket.IO payloads usually have.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var members: [(key: String, value: JSONValue)]

    public init() { self.members = [] }

    public init(_ members: [(key: String, value: JSONValue)]) { self.members = members }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.members = elements.map { (key: $0.0, value: $0.1) }
    }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    /// Reading returns the value of `key`. Writing replaces it in place (keeping its
    /// position), appends a new key at the end, or removes the key when `nil`.
    public subscript(key: String) -> JSONValue? {
        get { members.first { $0.key == key }?.value }
        set {
            if let index = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[index].value = newValue } else { members.remove(at: index) }
            } else if let newValue {
                members.append((key: key, value: newValue))
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> {
        members.makeIterator()
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(members.count)
        for member in members {
            hasher.combine(member.key)
            hasher.combine(member.value)
        }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
}

extension JSONValue: CustomStringConvertible {
    /// Compact JSON text; binary values show as `<binary N bytes>`.
    public var description: String {
        var buffer = ByteBuffer()
        var writer = JSONWriter(buffer: buffer, binaryHandling: .describe)
        writer.write(self)
        buffer = writer.buffer
        return String(buffer: buffer)
    }
}
