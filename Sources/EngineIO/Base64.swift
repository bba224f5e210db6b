import NIOCore

/// Standard base64 (RFC 4648 section 4, with padding) as used by `b<base64>` packets in
/// polling payloads. Hand-written over ByteBuffer so EngineIO needs nothing beyond NIOCore
/// and no intermediate `Data`/`String` copies are made.
///
/// Both directions work on raw buffer pointers: per-byte `ByteBuffer` calls cost about 3 µs
/// a byte in debug builds, which made a 300 KB attachment block the event loop for more than
/// a heartbeat interval.
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
        let length = encodedLength(of: bytes.count)
        guard length > 0 else { return }
        withContiguousBytes(of: bytes) { input in
            alphabet.withUnsafeBufferPointer { symbols in
                _ = output.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { target in
                    encode(input, symbols: symbols, into: target)
                    return length
                }
            }
        }
    }

    /// Decodes padded or unpadded base64; nil when a byte is outside the alphabet or the
    /// length cannot be base64.
    static func decode(_ encoded: ByteBufferView) -> ByteBuffer? {
        withContiguousBytes(of: encoded) { input -> ByteBuffer? in
            var symbolCount = input.count
            // Strip at most two padding characters.
            for _ in 0..<2 where symbolCount > 0 && input[symbolCount - 1] == UInt8(ascii: "=") {
                symbolCount -= 1
            }
            if symbolCount % 4 == 1 { return nil }
            let decodedLength = symbolCount * 6 / 8
            var output = ByteBuffer()
            guard decodedLength > 0 else { return output }
            var valid = true
            decodeTable.withUnsafeBufferPointer { table in
                _ = output.writeWithUnsafeMutableBytes(minimumWritableBytes: decodedLength) { target in
                    valid = decode(UnsafeRawBufferPointer(rebasing: input[0..<symbolCount]), table: table, into: target)
                    return valid ? decodedLength : 0
                }
            }
            return valid ? output : nil
        }
    }

    private static func encode(
        _ input: UnsafeRawBufferPointer, symbols: UnsafeBufferPointer<UInt8>, into target: UnsafeMutableRawBufferPointer
    ) {
        var readIndex = 0
        var writeIndex = 0
        while readIndex < input.count {
            let remaining = input.count - readIndex
            let first = UInt32(input[readIndex])
            let second = remaining > 1 ? UInt32(input[readIndex + 1]) : 0
            let third = remaining > 2 ? UInt32(input[readIndex + 2]) : 0
            let chunk = first << 16 | second << 8 | third
            target[writeIndex] = symbols[Int((chunk >> 18) & 0x3F)]
            target[writeIndex + 1] = symbols[Int((chunk >> 12) & 0x3F)]
            target[writeIndex + 2] = remaining > 1 ? symbols[Int((chunk >> 6) & 0x3F)] : UInt8(ascii: "=")
            target[writeIndex + 3] = remaining > 2 ? symbols[Int(chunk & 0x3F)] : UInt8(ascii: "=")
            readIndex += 3
            writeIndex += 4
        }
    }

    /// Writes exactly `symbols.count * 6 / 8` bytes; false at the first byte outside the alphabet.
    private static func decode(
        _ symbols: UnsafeRawBufferPointer, table: UnsafeBufferPointer<UInt8>, into target: UnsafeMutableRawBufferPointer
    ) -> Bool {
        var accumulator: UInt32 = 0
        var bitCount = 0
        var writeIndex = 0
        for symbol in symbols {
            let value = table[Int(symbol)]
            if value == 0xFF { return false }
            accumulator = accumulator << 6 | UInt32(value)
            bitCount += 6
            if bitCount >= 8 {
                bitCount -= 8
                target[writeIndex] = UInt8(truncatingIfNeeded: accumulator >> UInt32(bitCount))
                writeIndex += 1
            }
        }
        return true
    }

    /// ByteBufferView is contiguous; the copy fallback only exists because the API is optional.
    private static func withContiguousBytes<Result>(
        of view: ByteBufferView, _ body: (UnsafeRawBufferPointer) -> Result
    ) -> Result {
        if let result = view.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(view).withUnsafeBytes(body)
    }
}
