import NIOCore

/// Why a text is not valid JSON. `offset` is the byte offset where parsing stopped.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case unexpectedEnd
        case unexpectedCharacter(UInt8)
        case invalidNumber
        case invalidEscape
        case controlCharacterInString
        case trailingCharacters
        /// Nesting deeper than `JSONParser.maximumDepth`: refused so that hostile input
        /// cannot exhaust the stack.
        case tooDeep
    }

    public let kind: Kind
    public let offset: Int

    public var description: String { "invalid JSON at byte \(offset): \(kind)" }
}

extension JSONValue {
    /// Parses one complete JSON text (whitespace around it allowed, nothing else).
    public init(parsing text: String) throws(JSONParseError) {
        var text = text
        let result: Result<JSONValue, JSONParseError> = text.withUTF8 { bytes in
            do throws(JSONParseError) {
                return .success(try JSONParser.parseDocument(UnsafeRawBufferPointer(bytes)))
            } catch {
                return .failure(error)
            }
        }
        self = try result.get()
    }

    public init(parsing buffer: ByteBuffer) throws(JSONParseError) {
        self = try JSONParser.parse(buffer.readableBytesView)
    }

    /// Compact JSON text: no spaces, `/` not escaped, numbers as they were written.
    /// Binary values, which JSON cannot hold, are written as placeholders numbered from 0.
    public var jsonText: String {
        String(buffer: jsonBuffer())
    }

    public func jsonBuffer(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var writer = JSONWriter(buffer: allocator.buffer(capacity: 64), binaryHandling: .placeholders)
        writer.write(self)
        return writer.buffer
    }
}

/// A recursive-descent parser over raw UTF-8 bytes.
enum JSONParser {
    static let maximumDepth = 256

    static func parse(_ view: ByteBufferView) throws(JSONParseError) -> JSONValue {
        // withContiguousStorageIfAvailable always succeeds for ByteBufferView.
        let result: Result<JSONValue, JSONParseError>? = view.withContiguousStorageIfAvailable { bytes in
            do throws(JSONParseError) {
                return .success(try parseDocument(UnsafeRawBufferPointer(bytes)))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let value): return value
        case .failure(let error): throw error
        case nil: return try parseDocument(Array(view))
        }
    }

    static func parseDocument(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBytes { raw in
            do throws(JSONParseError) { return .success(try parseDocument(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    static func parseDocument(_ bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> JSONValue {
        var cursor = Cursor(bytes: bytes, index: 0)
        cursor.skipWhitespace()
        let value = try cursor.parseValue(depth: 0)
        cursor.skipWhitespace()
        guard cursor.index == bytes.count else {
            throw JSONParseError(kind: .trailingCharacters, offset: cursor.index)
        }
        return value
    }

    struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var index: Int

        func fail(_ kind: JSONParseError.Kind) -> JSONParseError {
            JSONParseError(kind: kind, offset: index)
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): index += 1
                default: return
                }
            }
        }

        func peek() throws(JSONParseError) -> UInt8 {
            guard index < bytes.count else { throw fail(.unexpectedEnd) }
            return bytes[index]
        }

        mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw fail(.unexpectedEnd) }
            let start = literal.utf8Start
            for offset in 0..<count where bytes[index + offset] != start[offset] {
                index += offset
                throw fail(.unexpectedCharacter(bytes[index]))
            }
            index += count
        }

        mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
            guard depth < JSONParser.maximumDepth else { throw fail(.tooDeep) }
            let byte = try peek()
            switch byte {
            case UInt8(ascii: "{"): return try parseObject(depth: depth)
            case UInt8(ascii: "["): return try parseArray(depth: depth)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try expectLiteral("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
            default: throw fail(.unexpectedCharacter(byte))
            }
        }

        mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
            index += 1  // {
            var members: [(key: String, value: JSONValue)] = []
            // Position of each key, built once an object outgrows a linear scan: comparing each
            // new key with every earlier one made 40,000 distinct keys cost 2.7 s.
            var positions: [String: Int]?
            skipWhitespace()
            if try peek() == UInt8(ascii: "}") {
                index += 1
                return .object(JSONObject())
            }
            while true {
                skipWhitespace()
                let quote = try peek()
                guard quote == UInt8(ascii: "\"") else { throw fail(.unexpectedCharacter(quote)) }
                let key = try parseString()
                skipWhitespace()
                let colon = try peek()
                guard colon == UInt8(ascii: ":") else { throw fail(.unexpectedCharacter(colon)) }
                index += 1
                skipWhitespace()
                let value = try parseValue(depth: depth + 1)
                // JSON.parse keeps the last duplicate at the position of the first.
                if let existing = Self.position(of: key, in: members, index: &positions) {
                    members[existing].value = value
                } else {
                    positions?[key] = members.count
                    members.append((key: key, value: value))
                }
                skipWhitespace()
                let next = try peek()
                index += 1
                if next == UInt8(ascii: "}") { return .object(JSONObject(members)) }
                guard next == UInt8(ascii: ",") else {
                    index -= 1
                    throw fail(.unexpectedCharacter(next))
                }
            }
        }

        /// Objects of up to this many members are searched linearly (no hashing for the few keys
        /// Socket.IO payloads usually have); past it, through `index`.
        static let linearSearchLimit = 16

        static func position(of key: String, in members: [(key: String, value: JSONValue)], index: inout [String: Int]?) -> Int? {
            if index == nil {
                guard members.count >= linearSearchLimit else { return members.firstIndex { $0.key == key } }
                var built = [String: Int](minimumCapacity: members.count * 2)
                for (position, member) in members.enumerated() { built[member.key] = position }
                index = built
            }
            return index?[key]
        }

        mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
            index += 1  // [
            var items: [JSONValue] = []
            skipWhitespace()
            if try peek() == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                skipWhitespace()
                items.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                let next = try peek()
                index += 1
                if next == UInt8(ascii: "]") { return .array(items) }
                guard next == UInt8(ascii: ",") else {
                    index -= 1
                    throw fail(.unexpectedCharacter(next))
                }
            }
        }

        mutating func parseNumber() throws(JSONParseError) -> JSONValue {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { throw fail(.invalidNumber) }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else if isDigit(bytes[index]) {
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            } else {
                throw fail(.invalidNumber)
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard index < bytes.count, isDigit(bytes[index]) else { throw fail(.invalidNumber) }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard index < bytes.count, isDigit(bytes[index]) else { throw fail(.invalidNumber) }
                while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            return .number(text)
        }

        @inline(__always) func isDigit(_ byte: UInt8) -> Bool {
            byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        }

        mutating func parseString() throws(JSONParseError) -> String {
            index += 1  // opening quote
            let start = index
            // Fast path: no escapes, so the bytes are the string.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw fail(.controlCharacterInString) }
                index += 1
            }
            guard index < bytes.count else { throw fail(.unexpectedEnd) }
            var utf8 = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return String(decoding: utf8, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw fail(.unexpectedEnd) }
                    let escaped = bytes[index]
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""): utf8.append(UInt8(ascii: "\""))
                    case UInt8(ascii: "\\"): utf8.append(UInt8(ascii: "\\"))
                    case UInt8(ascii: "/"): utf8.append(UInt8(ascii: "/"))
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        let scalar = try parseUnicodeEscape()
                        utf8.append(contentsOf: String(Character(scalar)).utf8)
                    default:
                        index -= 1
                        throw fail(.invalidEscape)
                    }
                default:
                    if byte < 0x20 { throw fail(.controlCharacterInString) }
                    utf8.append(byte)
                    index += 1
                }
            }
            throw fail(.unexpectedEnd)
        }

        mutating func parseHex4() throws(JSONParseError) -> UInt16 {
            guard index + 4 <= bytes.count else { throw fail(.unexpectedEnd) }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw fail(.invalidEscape)
                }
                value = value << 4 | UInt16(digit)
                index += 1
            }
            return value
        }

        /// `\uXXXX`, joining surrogate pairs. A lone surrogate (legal in JSON, not in a
        /// Swift String) becomes U+FFFD, as a UTF-8 decoder would do.
        mutating func parseUnicodeEscape() throws(JSONParseError) -> Unicode.Scalar {
            let high = try parseHex4()
            if (0xD800...0xDBFF).contains(high) {
                if index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                    let save = index
                    index += 2
                    let low = try parseHex4()
                    if (0xDC00...0xDFFF).contains(low) {
                        let code = 0x10000 + ((UInt32(high) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
                        return Unicode.Scalar(code) ?? "\u{FFFD}"
                    }
                    index = save
                }
                return "\u{FFFD}"
            }
            return Unicode.Scalar(UInt32(high)) ?? "\u{FFFD}"
        }
    }
}
