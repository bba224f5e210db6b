import NIOCore

/// Short strings ("shortstr") carry a one-octet length, so they hold at most 255 UTF-8 bytes.
public enum AMQPShortString {
    public static let maxByteCount = 255

    /// Throws `shortStringTooLong` when `value` would not fit; `field` names it in the error.
    public static func validate(_ value: String, field: String) throws(AMQPProtocolError) {
        let count = value.utf8.count
        if count > maxByteCount {
            throw .shortStringTooLong(field: field, byteCount: count)
        }
    }
}

// Readers throw `truncated` instead of returning nil: inside a frame the payload length is known, so
// running out of bytes means a malformed frame, never "wait for more".
extension ByteBuffer {
    @inline(__always)
    mutating func readAMQPInteger<Integer: FixedWidthInteger>(as: Integer.Type) throws(AMQPProtocolError) -> Integer {
        guard let value = self.readInteger(as: Integer.self) else {
            throw .truncated(neededBytes: MemoryLayout<Integer>.size, availableBytes: self.readableBytes)
        }
        return value
    }

    @inline(__always)
    mutating func readAMQPUInt8() throws(AMQPProtocolError) -> UInt8 { try self.readAMQPInteger(as: UInt8.self) }
    @inline(__always)
    mutating func readAMQPUInt16() throws(AMQPProtocolError) -> UInt16 { try self.readAMQPInteger(as: UInt16.self) }
    @inline(__always)
    mutating func readAMQPUInt32() throws(AMQPProtocolError) -> UInt32 { try self.readAMQPInteger(as: UInt32.self) }
    @inline(__always)
    mutating func readAMQPUInt64() throws(AMQPProtocolError) -> UInt64 { try self.readAMQPInteger(as: UInt64.self) }

    mutating func readAMQPShortString() throws(AMQPProtocolError) -> String {
        let length = Int(try self.readAMQPUInt8())
        guard let value = self.readString(length: length) else {
            throw .truncated(neededBytes: length, availableBytes: self.readableBytes)
        }
        return value
    }

    mutating func readAMQPLongString() throws(AMQPProtocolError) -> String {
        let length = Int(try self.readAMQPUInt32())
        guard let value = self.readString(length: length) else {
            throw .truncated(neededBytes: length, availableBytes: self.readableBytes)
        }
        return value
    }

    mutating func readAMQPBytes(length: Int) throws(AMQPProtocolError) -> ByteBuffer {
        guard let slice = self.readSlice(length: length) else {
            throw .truncated(neededBytes: length, availableBytes: self.readableBytes)
        }
        return slice
    }

    mutating func skipAMQPShortString() throws(AMQPProtocolError) {
        let length = Int(try self.readAMQPUInt8())
        _ = try self.readAMQPBytes(length: length)
    }

    mutating func skipAMQPLongString() throws(AMQPProtocolError) {
        let length = Int(try self.readAMQPUInt32())
        _ = try self.readAMQPBytes(length: length)
    }

    /// Writes a short string. Callers validate user-supplied strings first (`AMQPMethod.validate()`);
    /// anything longer than 255 bytes is cut there so the frame stays well-formed instead of trapping.
    @inline(__always)
    mutating func writeAMQPShortString(_ value: String) {
        let utf8 = value.utf8
        let count = utf8.count
        if count <= AMQPShortString.maxByteCount {
            self.writeInteger(UInt8(truncatingIfNeeded: count))
            self.writeString(value)
        } else {
            self.writeInteger(UInt8(AMQPShortString.maxByteCount))
            self.writeBytes(utf8.prefix(AMQPShortString.maxByteCount))
        }
    }

    @inline(__always)
    mutating func writeAMQPLongString(_ value: String) {
        let lengthIndex = self.writerIndex
        self.writeInteger(0 as UInt32)
        let written = self.writeString(value)
        self.setInteger(UInt32(truncatingIfNeeded: written), at: lengthIndex)
    }
}
