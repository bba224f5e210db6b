import ExtrasBase64
import NIOCore

/// Standard base64 (RFC 4648 section 4, with padding) for `b<base64>` packets in polling
/// payloads, done by swift-extras-base64 straight into and out of ByteBuffers (no
/// intermediate arrays or strings). docs/BENCHMARKS.md ("Base64") has the measurement that
/// chose it over a hand-written codec.
enum Base64 {
    static func encodedLength(of byteCount: Int) -> Int {
        ExtrasBase64.Base64.encodedLength(bytesCount: byteCount)
    }

    static func encode(_ bytes: ByteBufferView, into output: inout ByteBuffer) {
        let length = encodedLength(of: bytes.count)
        guard length > 0 else { return }
        withContiguousBytes(of: bytes) { input in
            _ = output.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { target in
                let typedTarget = target.bindMemory(to: UInt8.self)
                var span = typedTarget.mutableSpan
                return ExtrasBase64.Base64.encode(bytes: input.span, into: &span)
            }
        }
    }

    /// Decodes padded or unpadded base64; nil when a byte is outside the alphabet or the
    /// length cannot be base64.
    static func decode(_ encoded: ByteBufferView) -> ByteBuffer? {
        withContiguousBytes(of: encoded) { input -> ByteBuffer? in
            var output = ByteBuffer()
            guard !input.isEmpty else { return output }
            let options: ExtrasBase64.Base64.DecodingOptions = input.count % 4 == 0 ? [] : [.omitPaddingCharacter]
            let capacity = ExtrasBase64.Base64.decodedLength(bytesCount: input.count)
            do {
                _ = try output.writeWithUnsafeMutableBytes(minimumWritableBytes: capacity) { target in
                    let typedTarget = target.bindMemory(to: UInt8.self)
                    var span = typedTarget.mutableSpan
                    return try ExtrasBase64.Base64.decode(bytes: input.span, into: &span, options: options)
                }
            } catch {
                return nil
            }
            return output
        }
    }

    /// ByteBufferView is contiguous; the copy fallback only exists because the API is optional.
    private static func withContiguousBytes<Result>(
        of view: ByteBufferView, _ body: (UnsafeBufferPointer<UInt8>) -> Result
    ) -> Result {
        if let result = view.withContiguousStorageIfAvailable({ body($0) }) {
            return result
        }
        return Array(view).withUnsafeBufferPointer(body)
    }
}
