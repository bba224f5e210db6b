import NIOCore

/// Writes compact JSON into a ByteBuffer.
struct JSONWriter {
    enum BinaryHandling {
        /// Write `{"_placeholder":true,"num":N}` and collect the bytes in `attachments`.
        case placeholders
        /// Human-readable `<binary N bytes>`, for descriptions only.
        case describe
    }

    var buffer: ByteBuffer
    let binaryHandling: BinaryHandling
    var attachments: [ByteBuffer] = []

    init(buffer: ByteBuffer, binaryHandling: BinaryHandling) {
        self.buffer = buffer
        self.binaryHandling = binaryHandling
    }

    mutating func write(_ value: JSONValue) {
        switch value {
        case .null: buffer.writeStaticString("null")
        case .bool(let flag): buffer.writeStaticString(flag ? "true" : "false")
        case .number(let text): buffer.writeString(text)
        case .string(let text): writeString(text)
        case .array(let items):
            buffer.writeInteger(UInt8(ascii: "["))
            for (offset, item) in items.enumerated() {
                if offset > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                write(item)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let object):
            buffer.writeInteger(UInt8(ascii: "{"))
            for (offset, member) in object.members.enumerated() {
                if offset > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                writeString(member.key)
                buffer.writeInteger(UInt8(ascii: ":"))
                write(member.value)
            }
            buffer.writeInteger(UInt8(ascii: "}"))
        case .binary(let bytes):
            switch binaryHandling {
            case .placeholders:
                buffer.writeStaticString("{\"_placeholder\":true,\"num\":")
                buffer.writeString(String(attachments.count))
                buffer.writeInteger(UInt8(ascii: "}"))
                attachments.append(bytes)
            case .describe:
                buffer.writeString("<binary \(bytes.readableBytes) bytes>")
            }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    mutating func writeString(_ text: String) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index {
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[runStart..<index]))
                }
                runStart = index + 1
                buffer.writeInteger(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""): buffer.writeInteger(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): buffer.writeInteger(UInt8(ascii: "\\"))
                case 0x08: buffer.writeInteger(UInt8(ascii: "b"))
                case 0x0C: buffer.writeInteger(UInt8(ascii: "f"))
                case 0x0A: buffer.writeInteger(UInt8(ascii: "n"))
                case 0x0D: buffer.writeInteger(UInt8(ascii: "r"))
                case 0x09: buffer.writeInteger(UInt8(ascii: "t"))
                default:
                    buffer.writeStaticString("u00")
                    buffer.writeInteger(Self.hexDigits[Int(byte >> 4)])
                    buffer.writeInteger(Self.hexDigits[Int(byte & 0x0F)])
                }
            }
            if runStart < utf8.count {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[runStart...]))
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }
}
