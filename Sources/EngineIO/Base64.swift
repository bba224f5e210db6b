import NIOCore

/// Standard base64 (RFC 4648 section 4, with padding) as used by `b<base64>` packets in
/// polling payloads. Hand-written over ByteBuffer so EngineIO needs nothing beyond NIOCore
/// and no intermediate `Data`/`String` copies are made.
enum Base64 {
    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8
    )

    /// 0xFF marks a byte outside the alphabet.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, symbol) in alphabet.enumerated() { table[Int(symbol)] = UInt8(index) }
        return table
    }()

    static func encodedLength(of byteCount: Int) -> Int { ((byteCount + 2) / 3) * 4 }

    static func encode(_ bytes: ByteBufferView, into output: inout ByteBuffer) {
        output.reserveCapacity(minimumWritableBytes: encodedLength(of: bytes.count))
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = second == nil ? nil : iterator.next()
            let chunk = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            output.writeInteger(alphabet[Int((chunk >> 18) & 0x3F)])
            output.writeInteger(alphabet[Int((chunk >> 12) & 0x3F)])
            output.writeInteger(second == nil ? UInt8(ascii: "=") : alphabet[Int((chunk >> 6) & 0x3F)])
            output.writeInteger(third == nil ? UInt8(ascii: "=") : alphabet[Int(chunk & 0x3F)])
        }
    }

    /// Decodes padded or unpadded base64; nil when a byte is outside the alphabet or the
    /// length cannot be base64.
    static func decode(_ encoded: ByteBufferView) -> ByteBuffer? {
        var symbols = encoded[...]
        // Strip at most two padding characters.
        for _ in 0..<2 where symbols.last == UInt8(ascii: "=") { symbols = symbols.dropLast() }
        if symbols.count % 4 == 1 { return nil }
        var output = ByteBuffer()
        output.reserveCapacity(symbols.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bitCount = 0
        for symbol in symbols {
            let value = decodeTable[Int(symbol)]
            if value == 0xFF { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bitCount += 6
            if bitCount >= 8 {
                bitCount -= 8
                output.writeInteger(UInt8(truncatingIfNeeded: accumulator >> UInt32(bitCount)))
            }
        }
        return output
    }
}
