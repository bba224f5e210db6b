/// Everything that can be wrong with bytes received from (or values about to be sent to) an AMQP peer.
///
/// Any of these from the decoder means the peer's byte stream can no longer be trusted: the connection
/// should be closed (with reply code `frameError` or `syntaxError` where a close is still possible).
public enum AMQPProtocolError: Error, Hashable, Sendable {
    /// A field needed more bytes than the frame payload had left.
    case truncated(neededBytes: Int, availableBytes: Int)
    /// The byte after a frame's payload was not 0xCE: the stream lost its framing.
    case invalidFrameEnd(found: UInt8)
    /// A frame (payload plus 8 bytes of framing) exceeds the negotiated frame-max.
    case frameTooLarge(frameSize: UInt64, maxFrameSize: UInt32)
    /// The frame type byte is not method (1), header (2), body (3) or heartbeat (8).
    case unknownFrameType(UInt8)
    /// A method frame names a class/method pair this codec does not know.
    case unknownMethod(classID: UInt16, methodID: UInt16)
    /// A field table or array holds a value type tag this codec does not know.
    case unknownFieldValueType(UInt8)
    /// Field tables/arrays nest deeper than `AMQPFieldTable.maxNestingDepth`; refused to bound recursion.
    case fieldTableNestedTooDeep(limit: Int)
    /// A short string (names, keys, tags) is longer than the 255 bytes its length octet can say.
    case shortStringTooLong(field: String, byteCount: Int)
    /// A heartbeat frame must be on channel 0 with an empty payload.
    case invalidHeartbeat(channel: UInt16, payloadSize: UInt32)
    /// The server answered our protocol header with its own: it does not speak AMQP 0-9-1.
    case protocolVersionRejected(major: UInt8, minor: UInt8, revision: UInt8)
    /// A content header or body frame arrived when the content assembler did not expect one.
    case unexpectedContentFrame(expected: String, received: String)
    /// A content header announced more body bytes than the assembler is allowed to buffer.
    case bodyTooLarge(bodySize: UInt64, limit: UInt64)
    /// Body frames carried more bytes than the content header announced.
    case bodyExceedsDeclaredSize(declared: UInt64, received: UInt64)
}

extension AMQPProtocolError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .truncated(let needed, let available):
            "AMQP frame payload truncated: needed \(needed) more bytes, had \(available)"
        case .invalidFrameEnd(let found):
            "AMQP frame end byte was 0x\(String(found, radix: 16)) instead of 0xce; close the connection"
        case .frameTooLarge(let size, let max):
            "AMQP frame of \(size) bytes exceeds frame-max \(max); close the connection with frame-error"
        case .unknownFrameType(let type):
            "unknown AMQP frame type \(type)"
        case .unknownMethod(let classID, let methodID):
            "unknown AMQP method \(classID).\(methodID)"
        case .unknownFieldValueType(let tag):
            "unknown AMQP field value type 0x\(String(tag, radix: 16))"
        case .fieldTableNestedTooDeep(let limit):
            "AMQP field table nested deeper than \(limit) levels"
        case .shortStringTooLong(let field, let count):
            "\(field) is \(count) UTF-8 bytes; AMQP short strings hold at most 255"
        case .invalidHeartbeat(let channel, let size):
            "invalid AMQP heartbeat (channel \(channel), payload \(size) bytes)"
        case .protocolVersionRejected(let major, let minor, let revision):
            "server rejected AMQP 0-9-1 and offered \(major)-\(minor)-\(revision)"
        case .unexpectedContentFrame(let expected, let received):
            "unexpected AMQP \(received) while expecting \(expected)"
        case .bodyTooLarge(let size, let limit):
            "AMQP message body of \(size) bytes exceeds the limit of \(limit)"
        case .bodyExceedsDeclaredSize(let declared, let received):
            "AMQP body frames carried \(received) bytes but the header declared \(declared)"
        }
    }
}
