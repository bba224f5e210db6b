import EngineIO
import NIOCore

/// The fields every cluster message is made of (all integers big-endian). Decoding never
/// trusts a length or a count: it reads what is there or throws.
extension ByteBuffer {
    mutating func writeShortString(_ string: String) throws(ClusterMessageEncodingError) {
        let bytes = string.utf8.count
        guard let length = UInt16(exactly: bytes) else { throw .stringTooLong(bytes: bytes) }
        writeInteger(length)
        writeString(string)
    }

    mutating func writeStringList(_ strings: [String]) throws(ClusterMessageEncodingError) {
        guard let count = UInt16(exactly: strings.count) else { throw .tooManyItems(count: strings.count) }
        writeInteger(count)
        for string in strings { try writeShortString(string) }
    }

    mutating func writeBlob(_ blob: ByteBuffer) {
        writeInteger(UInt32(blob.readableBytes))
        writeImmutableBuffer(blob)
    }

    mutating func writeSelection(_ selection: ClusterSocketSelection) throws(ClusterMessageEncodingError) {
        try writeStringList(selection.rooms)
        try writeStringList(selection.exceptRooms)
    }

    mutating func writePacket(_ packet: EncodedPacket) throws(ClusterMessageEncodingError) {
        guard let count = UInt16(exactly: packet.messages.count) else { throw .tooManyItems(count: packet.messages.count) }
        writeInteger(count)
        for message in packet.messages {
            writeInteger(message.isBinary ? UInt8(1) : 0)
            writeBlob(message.payload)
        }
    }

    mutating func read<Integer: FixedWidthInteger>(_ field: String) throws(ClusterMessageDecodingError) -> Integer {
        guard let value: Integer = readInteger() else { throw .truncated(field: field) }
        return value
    }

    mutating func readShortString(_ field: String) throws(ClusterMessageDecodingError) -> String {
        let length: UInt16 = try read(field)
        guard let bytes = readSlice(length: Int(length)) else { throw .truncated(field: field) }
        guard let string = String(validating: bytes.readableBytesView, as: UTF8.self) else {
            throw .invalidUTF8(field: field)
        }
        return string
    }

    mutating func readStringList(_ field: String) throws(ClusterMessageDecodingError) -> [String] {
        let count: UInt16 = try read(field)
        var strings: [String] = []
        strings.reserveCapacity(min(Int(count), readableBytes / 2))
        for _ in 0..<count { strings.append(try readShortString(field)) }
        return strings
    }

    mutating func readBlob(_ field: String) throws(ClusterMessageDecodingError) -> ByteBuffer {
        let length: UInt32 = try read(field)
        guard let blob = readSlice(length: Int(length)) else { throw .truncated(field: field) }
        return blob
    }

    mutating func readSelection() throws(ClusterMessageDecodingError) -> ClusterSocketSelection {
        ClusterSocketSelection(rooms: try readStringList("rooms"), exceptRooms: try readStringList("exceptRooms"))
    }

    mutating func readPacket() throws(ClusterMessageDecodingError) -> EncodedPacket {
        let count: UInt16 = try read("packet.count")
        var messages: [EngineMessage] = []
        messages.reserveCapacity(min(Int(count), readableBytes / 5))
        for _ in 0..<count {
            let isBinary: UInt8 = try read("packet.isBinary")
            let payload = try readBlob("packet.payload")
            // Text is not re-validated: only our own nodes publish to these exchanges and the
            // emitting node encoded it; checking it again would cost every receiver per message.
            messages.append(isBinary != 0 ? EngineMessage(binary: payload) : EngineMessage(textUTF8: payload))
        }
        return EncodedPacket(messages: messages)
    }
}
