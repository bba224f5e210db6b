import NIOCore

/// An AMQP field table: key/value pairs that keep the order they were written or received in.
///
/// Lookup by key is a linear scan: tables on the wire are small (arguments, peer properties,
/// headers), and keeping one array makes encoding a single pass with no hashing.
public struct AMQPFieldTable: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public var key: String
        public var value: AMQPFieldValue

        public init(key: String, value: AMQPFieldValue) {
            self.key = key
            self.value = value
        }
    }

    /// Deeper nesting than this is refused when decoding, so hostile input cannot exhaust the stack.
    public static let maxNestingDepth = 32

    public private(set) var entries: [Entry]

    public init() { self.entries = [] }

    public init(_ entries: [Entry]) { self.entries = entries }

    public var count: Int { self.entries.count }
    public var isEmpty: Bool { self.entries.isEmpty }
    public var keys: [String] { self.entries.map(\.key) }

    /// The first value stored under `key`; setting replaces it in place, appends a new key at the end,
    /// and setting nil removes the key.
    public subscript(key: String) -> AMQPFieldValue? {
        get { self.entries.first(where: { $0.key == key })?.value }
        set {
            if let index = self.entries.firstIndex(where: { $0.key == key }) {
                if let newValue {
                    self.entries[index].value = newValue
                } else {
                    self.entries.remove(at: index)
                }
            } else if let newValue {
                self.entries.append(Entry(key: key, value: newValue))
            }
        }
    }

    /// Throws if a key (a short string) is over 255 bytes, here or in a nested table.
    public func validate() throws(AMQPProtocolError) {
        try self.validate(path: "field table")
    }

    func validate(path: String) throws(AMQPProtocolError) {
        for entry in self.entries {
            try AMQPShortString.validate(entry.key, field: "\(path) key")
            try entry.value.validate(path: "\(path).\(entry.key)")
        }
    }
}

extension AMQPFieldTable: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, AMQPFieldValue)...) {
        self.entries = elements.map { Entry(key: $0.0, value: $0.1) }
    }
}

extension AMQPFieldTable: RandomAccessCollection {
    public var startIndex: Int { self.entries.startIndex }
    public var endIndex: Int { self.entries.endIndex }
    public subscript(position: Int) -> Entry { self.entries[position] }
}

extension AMQPFieldTable {
    static func decode(from buffer: inout ByteBuffer, depth: Int) throws(AMQPProtocolError) -> AMQPFieldTable {
        let length = Int(try buffer.readAMQPUInt32())
        var body = try buffer.readAMQPBytes(length: length)
        var entries: [Entry] = []
        while body.readableBytes > 0 {
            let key = try body.readAMQPShortString()
            let value = try AMQPFieldValue.decode(from: &body, depth: depth)
            entries.append(Entry(key: key, value: value))
        }
        return AMQPFieldTable(entries)
    }

    func encode(into buffer: inout ByteBuffer) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(0 as UInt32)
        for entry in self.entries {
            buffer.writeAMQPShortString(entry.key)
            entry.value.encode(into: &buffer)
        }
        buffer.setInteger(UInt32(truncatingIfNeeded: buffer.writerIndex - lengthIndex - 4), at: lengthIndex)
    }
}

extension ByteBuffer {
    mutating func readAMQPFieldTable() throws(AMQPProtocolError) -> AMQPFieldTable {
        try AMQPFieldTable.decode(from: &self, depth: 0)
    }

    @inline(__always)
    mutating func writeAMQPFieldTable(_ table: AMQPFieldTable) {
        if table.isEmpty {
            self.writeInteger(0 as UInt32)
        } else {
            table.encode(into: &self)
        }
    }
}
