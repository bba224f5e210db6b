import NIOCore

/// A value in an AMQP field table or array, with the type tags RabbitMQ reads and writes.
///
/// Note the tags follow RabbitMQ (and its errata to the 0-9-1 spec), not the original spec table:
/// 's' is a signed 16-bit integer, 'u' unsigned 16-bit, 'l' signed 64-bit, 'x' a byte array.
public enum AMQPFieldValue: Sendable, Hashable {
    case bool(Bool)                              // 't'
    case int8(Int8)                              // 'b'
    case uint8(UInt8)                            // 'B'
    case int16(Int16)                            // 's'
    case uint16(UInt16)                          // 'u'
    case int32(Int32)                            // 'I'
    case uint32(UInt32)                          // 'i'
    case int64(Int64)                            // 'l'
    case float(Float)                            // 'f'
    case double(Double)                          // 'd'
    case decimal(scale: UInt8, value: UInt32)    // 'D'
    /// 'S'. A received 'S' value that is not valid UTF-8 decodes as `.bytes` so no byte is lost.
    case longString(String)
    case bytes([UInt8])                          // 'x'
    case array([AMQPFieldValue])                 // 'A'
    case timestamp(UInt64)                       // 'T', seconds since the epoch
    case table(AMQPFieldTable)                   // 'F'
    case void                                    // 'V'

    /// The one-byte type tag written before the value.
    public var typeTag: UInt8 {
        switch self {
        case .bool: UInt8(ascii: "t")
        case .int8: UInt8(ascii: "b")
        case .uint8: UInt8(ascii: "B")
        case .int16: UInt8(ascii: "s")
        case .uint16: UInt8(ascii: "u")
        case .int32: UInt8(ascii: "I")
        case .uint32: UInt8(ascii: "i")
        case .int64: UInt8(ascii: "l")
        case .float: UInt8(ascii: "f")
        case .double: UInt8(ascii: "d")
        case .decimal: UInt8(ascii: "D")
        case .longString: UInt8(ascii: "S")
        case .bytes: UInt8(ascii: "x")
        case .array: UInt8(ascii: "A")
        case .timestamp: UInt8(ascii: "T")
        case .table: UInt8(ascii: "F")
        case .void: UInt8(ascii: "V")
        }
    }
}

extension AMQPFieldValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .longString(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension AMQPFieldValue {
    /// Convenience accessors for reading broker-sent tables without a switch.
    public var stringValue: String? {
        if case .longString(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var tableValue: AMQPFieldTable? {
        if case .table(let value) = self { return value }
        return nil
    }

    /// Any integer case widened to Int64 (nil for non-integers and for UInt64 timestamps).
    public var integerValue: Int64? {
        switch self {
        case .int8(let v): Int64(v)
        case .uint8(let v): Int64(v)
        case .int16(let v): Int64(v)
        case .uint16(let v): Int64(v)
        case .int32(let v): Int64(v)
        case .uint32(let v): Int64(v)
        case .int64(let v): v
        default: nil
        }
    }
}

extension AMQPFieldValue {
    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.typeTag)
        switch self {
        case .bool(let value): buffer.writeInteger(value ? 1 : 0 as UInt8)
        case .int8(let value): buffer.writeInteger(value)
        case .uint8(let value): buffer.writeInteger(value)
        case .int16(let value): buffer.writeInteger(value)
        case .uint16(let value): buffer.writeInteger(value)
        case .int32(let value): buffer.writeInteger(value)
        case .uint32(let value): buffer.writeInteger(value)
        case .int64(let value): buffer.writeInteger(value)
        case .float(let value): buffer.writeInteger(value.bitPattern)
        case .double(let value): buffer.writeInteger(value.bitPattern)
        case .decimal(let scale, let value):
            buffer.writeInteger(scale)
            buffer.writeInteger(value)
        case .longString(let value): buffer.writeAMQPLongString(value)
        case .bytes(let value):
            buffer.writeInteger(UInt32(truncatingIfNeeded: value.count))
            buffer.writeBytes(value)
        case .array(let values):
            let lengthIndex = buffer.writerIndex
            buffer.writeInteger(0 as UInt32)
            for value in values {
                value.encode(into: &buffer)
            }
            buffer.setInteger(UInt32(truncatingIfNeeded: buffer.writerIndex - lengthIndex - 4), at: lengthIndex)
        case .timestamp(let value): buffer.writeInteger(value)
        case .table(let table): buffer.writeAMQPFieldTable(table)
        case .void: break
        }
    }

    static func decode(from buffer: inout ByteBuffer, depth: Int) throws(AMQPProtocolError) -> AMQPFieldValue {
        let tag = try buffer.readAMQPUInt8()
        switch tag {
        case UInt8(ascii: "t"): return .bool(try buffer.readAMQPUInt8() != 0)
        case UInt8(ascii: "b"): return .int8(try buffer.readAMQPInteger(as: Int8.self))
        case UInt8(ascii: "B"): return .uint8(try buffer.readAMQPUInt8())
        case UInt8(ascii: "s"): return .int16(try buffer.readAMQPInteger(as: Int16.self))
        case UInt8(ascii: "u"): return .uint16(try buffer.readAMQPUInt16())
        case UInt8(ascii: "I"): return .int32(try buffer.readAMQPInteger(as: Int32.self))
        case UInt8(ascii: "i"): return .uint32(try buffer.readAMQPUInt32())
        case UInt8(ascii: "l"): return .int64(try buffer.readAMQPInteger(as: Int64.self))
        case UInt8(ascii: "f"): return .float(Float(bitPattern: try buffer.readAMQPUInt32()))
        case UInt8(ascii: "d"): return .double(Double(bitPattern: try buffer.readAMQPUInt64()))
        case UInt8(ascii: "D"):
            let scale = try buffer.readAMQPUInt8()
            return .decimal(scale: scale, value: try buffer.readAMQPUInt32())
        case UInt8(ascii: "S"):
            let length = Int(try buffer.readAMQPUInt32())
            let bytes = try buffer.readAMQPBytes(length: length)
            let string = String(buffer: bytes)
            // String(buffer:) repairs invalid UTF-8; keep such values as raw bytes instead.
            if string.utf8.count == length, string.utf8.elementsEqual(bytes.readableBytesView) {
                return .longString(string)
            }
            return .bytes(Array(bytes.readableBytesView))
        case UInt8(ascii: "x"):
            let length = Int(try buffer.readAMQPUInt32())
            return .bytes(Array(try buffer.readAMQPBytes(length: length).readableBytesView))
        case UInt8(ascii: "A"):
            guard depth < AMQPFieldTable.maxNestingDepth else {
                throw .fieldTableNestedTooDeep(limit: AMQPFieldTable.maxNestingDepth)
            }
            let length = Int(try buffer.readAMQPUInt32())
            var body = try buffer.readAMQPBytes(length: length)
            var values: [AMQPFieldValue] = []
            while body.readableBytes > 0 {
                values.append(try AMQPFieldValue.decode(from: &body, depth: depth + 1))
            }
            return .array(values)
        case UInt8(ascii: "T"): return .timestamp(try buffer.readAMQPUInt64())
        case UInt8(ascii: "F"):
            guard depth < AMQPFieldTable.maxNestingDepth else {
                throw .fieldTableNestedTooDeep(limit: AMQPFieldTable.maxNestingDepth)
            }
            return .table(try AMQPFieldTable.decode(from: &buffer, depth: depth + 1))
        case UInt8(ascii: "V"): return .void
        default: throw .unknownFieldValueType(tag)
        }
    }

    func validate(path: String) throws(AMQPProtocolError) {
        switch self {
        case .table(let table): try table.validate(path: path)
        case .array(let values):
            for value in values { try value.validate(path: path) }
        default: break
        }
    }
}
