import NIOCore
import NIOWebSocket

/// Reads a client's WebSocket bytes (RFC 6455 section 5) as whole messages: frames parsed,
/// payloads unmasked, fragments joined. A pure value fed with whatever the socket read, so an
/// upgraded connection needs one handler instead of NIO's decoder, encoder, protocol-error
/// handler and aggregator (four handlers, their contexts and buffers: about 1 KB per idle
/// connection). Between messages it keeps no buffer at all.
///
/// Strict where the RFC says a server must be: an unmasked frame, reserved bits or opcodes, a
/// long or fragmented control frame fail with `.protocolViolation`.
///
/// Bounded: a frame or a fragmented message over `maxMessageBytes`, or more than
/// `maxFragments` fragments, fails with `.tooLarge` as soon as its header says so, before its
/// payload is buffered.
struct WebSocketMessageReader {
    enum Message: Equatable {
        case text(ByteBuffer)
        case binary(ByteBuffer)
        case ping(ByteBuffer)
        case pong
        case close
    }

    enum Failure: Error, Equatable {
        /// Close with 1009.
        case tooLarge
        /// Close with 1002: an unmasked frame, reserved bits or opcodes, a fragmented or long
        /// control frame, a continuation out of place.
        case protocolViolation
    }

    let maxMessageBytes: Int
    let maxFragments: Int
    /// Bytes read but not yet part of a whole frame; nil when everything was used.
    private var unread: ByteBuffer?
    /// The message being assembled from fragments.
    private var fragments: ByteBuffer?
    private var fragmentsAreText = false
    private var fragmentCount = 0

    init(maxMessageBytes: Int, maxFragments: Int = 1024) {
        self.maxMessageBytes = max(maxMessageBytes, 0)
        self.maxFragments = max(maxFragments, 1)
    }

    /// Whether part of a frame or of a fragmented message is waiting for more bytes.
    var isHoldingBytes: Bool { unread != nil || fragments != nil }

    /// Adds what the socket read; call `next()` until it returns nil.
    mutating func append(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        guard var waiting = unread else {
            unread = bytes
            return
        }
        unread = nil  // one owner while it grows: no copy of what is already there
        waiting.writeImmutableBuffer(bytes)
        unread = waiting
    }

    /// The next whole message, or nil until more bytes arrive. After a failure the
    /// connection is to be closed; the reader is not used again.
    mutating func next() throws(Failure) -> Message? {
        while let frame = try nextFrame() {
            if let message = try assemble(frame) { return message }
        }
        return nil
    }

    private struct Frame {
        var fin: Bool
        var opcode: UInt8
        var payload: ByteBuffer
    }

    private static let continuation: UInt8 = 0x0, text: UInt8 = 0x1, binary: UInt8 = 0x2
    private static let close: UInt8 = 0x8, ping: UInt8 = 0x9, pong: UInt8 = 0xA

    /// One whole frame off the front of `unread`, unmasked, or nil if it has not all arrived.
    private mutating func nextFrame() throws(Failure) -> Frame? {
        guard var bytes = unread else { return nil }
        let start = bytes.readerIndex
        guard let first = bytes.getInteger(at: start, as: UInt8.self),
            let second = bytes.getInteger(at: start + 1, as: UInt8.self)
        else { return nil }
        let fin = first & 0x80 != 0
        let opcode = first & 0x0F
        // No extension is ever negotiated, so the reserved bits must be clear.
        guard first & 0x70 == 0 else { throw .protocolViolation }
        let isControl = opcode & 0x8 != 0
        switch opcode {
        case Self.continuation, Self.text, Self.binary, Self.close, Self.ping, Self.pong: break
        default: throw .protocolViolation
        }
        // Section 5.1: a client masks every frame, and a server closes on one that is not.
        guard second & 0x80 != 0 else { throw .protocolViolation }
        var headerLength = 2
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let extended = bytes.getInteger(at: start + 2, as: UInt16.self) else { return nil }
            length = Int(extended)
            headerLength += 2
        } else if length == 127 {
            guard let extended = bytes.getInteger(at: start + 2, as: UInt64.self) else { return nil }
            // Compared before any conversion: a 64-bit length never reaches an Int.
            guard extended <= UInt64(maxMessageBytes) else { throw .tooLarge }
            length = Int(extended)
            headerLength += 8
        }
        if isControl {
            // Section 5.5: control frames are never fragmented and carry at most 125 bytes.
            guard fin, length <= 125 else { throw .protocolViolation }
        } else {
            let assembled = fragments?.readableBytes ?? 0
            guard length <= maxMessageBytes - assembled else { throw .tooLarge }
        }
        let keyOffset = headerLength
        headerLength += 4
        guard bytes.readableBytes >= headerLength + length,
            let key = bytes.viewBytes(at: start + keyOffset, length: 4).flatMap(WebSocketMaskingKey.init)
        else { return nil }
        bytes.moveReaderIndex(forwardBy: headerLength)
        guard var payload = bytes.readSlice(length: length) else { return nil }
        payload.webSocketUnmask(key)
        unread = bytes.readableBytes > 0 ? bytes : nil
        return Frame(fin: fin, opcode: opcode, payload: payload)
    }

    /// A message once `frame` completes one; control frames pass between fragments.
    private mutating func assemble(_ frame: Frame) throws(Failure) -> Message? {
        switch frame.opcode {
        case Self.ping: return .ping(frame.payload)
        case Self.pong: return .pong
        case Self.close: return .close
        case Self.continuation:
            guard var assembled = fragments else { throw .protocolViolation }
            fragmentCount += 1
            guard fragmentCount <= maxFragments else { throw .tooLarge }
            fragments = nil  // one owner while it grows
            assembled.writeImmutableBuffer(frame.payload)
            guard frame.fin else {
                fragments = assembled
                return nil
            }
            fragmentCount = 0
            return fragmentsAreText ? .text(assembled) : .binary(assembled)
        default:
            // A new message while another is still being assembled.
            guard fragments == nil else { throw .protocolViolation }
            let isText = frame.opcode == Self.text
            if frame.fin { return isText ? .text(frame.payload) : .binary(frame.payload) }
            fragments = frame.payload
            fragmentsAreText = isText
            fragmentCount = 1
            return nil
        }
    }
}
