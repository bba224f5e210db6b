import Foundation
import NIOCore

/// Why a user type could not be turned into a `JSONValue` or back.
public struct JSONBridgingError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

extension JSONValue {
    /// Encodes any `Encodable` through Foundation's JSON encoder and re-parses the text.
    /// The typed path costs an extra pass; handlers that care use `[JSONValue]` directly.
    public init<T: Encodable>(encoding value: T) throws(JSONBridgingError) {
        if let already = value as? JSONValue {
            self = already
            return
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]  // deterministic key order for Codable types
        let data: Data
        do {
            data = try encoder.encode(value)
        } catch {
            throw JSONBridgingError(description: "cannot encode \(T.self): \(error)")
        }
        do {
            self = try JSONParser.parseDocument([UInt8](data))
        } catch {
            throw JSONBridgingError(description: "encoder produced invalid JSON: \(error)")
        }
    }

    /// Decodes this value as `T`. Binary values cannot be decoded this way (JSON has no
    /// bytes); read them with `binaryValue`.
    public func decode<T: Decodable>(as type: T.Type = T.self) throws(JSONBridgingError) -> T {
        if let already = self as? T { return already }
        if containsBinary {
            throw JSONBridgingError(description: "binary values cannot be decoded as \(T.self)")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(jsonText.utf8))
        } catch {
            throw JSONBridgingError(description: "cannot decode \(T.self) from \(self): \(error)")
        }
    }
}

/// `JSONValue` itself is Codable, so it can sit inside user types.
extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let integer = try? container.decode(Int64.self) {
            self = .number(String(integer))
        } else if let double = try? container.decode(Double.self) {
            self = .number(double)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let items = try? container.decode([JSONValue].self) {
            self = .array(items)
        } else if let members = try? container.decode([String: JSONValue].self) {
            // Foundation's decoders lose key order; sort for a stable result.
            self = .object(JSONObject(members.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }))
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let flag):
            var container = encoder.singleValueContainer()
            try container.encode(flag)
        case .number(let text):
            var container = encoder.singleValueContainer()
            if let integer = Int64(text) {
                try container.encode(integer)
            } else {
                try container.encode(Double(text) ?? 0)
            }
        case .string(let text):
            var container = encoder.singleValueContainer()
            try container.encode(text)
        case .array(let items):
            var container = encoder.unkeyedContainer()
            for item in items { try container.encode(item) }
        case .object(let object):
            var container = encoder.container(keyedBy: DynamicKey.self)
            for member in object.members { try container.encode(member.value, forKey: DynamicKey(member.key)) }
        case .binary(let bytes):
            var container = encoder.singleValueContainer()
            try container.encode(Array(bytes.readableBytesView))
        }
    }

    private struct DynamicKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ key: String) { self.stringValue = key }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }
}
