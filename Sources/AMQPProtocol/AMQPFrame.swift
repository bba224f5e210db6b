import NIOCore

/// The 8 bytes a client sends first: "AMQP" 0 0 9 1.
public enum AMQPProtocolHeader {
    public static let bytes: [UInt8] = [UInt8(ascii: "A"), UInt8(ascii: "M"), UInt8(ascii: "Q"), UInt8(ascii: "P"), 0, 0, 9, 1]
}

/// One AMQP frame. Wire layout: type (1 byte), channel (2), payload size (4), payload, frame-end 0xCE.
public enum AMQPFrame: Sendable, Hashable {
    case method(channel: UInt16, AMQPMethod)
    case header(channel: UInt16, AMQPContentHeader)
    case body(channel: UInt16, ByteBuffer)
    case heartbeat

    public enum FrameType {
        public static let method: UInt8 = 1
        public static let header: UInt8 = 2
        public static let body: UInt8 = 3
        public static let heartbeat: UInt8 = 8
    }

    public static let frameEnd: UInt8 = 0xCE
    /// Type, channel and size before the payload plus the end octet after it.
    public static let framingOverhead: UInt32 = 8
    /// The smallest frame-max a peer may negotiate; also the limit before connection.tune.
    public static let minimumFrameSize: UInt32 = 4096

    public var channel: UInt16 {
        switch self {
        case .method(let channel, _), .header(let channel, _), .body(let channel, _): channel
        case .heartbeat: 0
        }
    }

    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case .method(let channel, let method):
            let sizeIndex = Self.writeFrameStart(type: FrameType.method, channel: channel, into: &buffer)
            method.encode(into: &buffer)
            Self.finishFrame(sizeIndex: sizeIndex, into: &buffer)
        case .header(let channel, let header):
            let sizeIndex = Self.writeFrameStart(type: FrameType.header, channel: channel, into: &buffer)
            header.encode(into: &buffer)
            Self.finishFrame(sizeIndex: sizeIndex, into: &buffer)
        case .body(let channel, let body):
            buffer.writeInteger(FrameType.body)
            buffer.writeInteger(channel)
            buffer.writeInteger(UInt32(truncatingIfNeeded: body.readableBytes))
            buffer.writeImmutableBuffer(body)
            buffer.writeInteger(Self.frameEnd)
        case .heartbeat:
            buffer.writeInteger(FrameType.heartbeat)
            buffer.writeInteger(0 as UInt16)
            buffer.writeInteger(0 as UInt32)
            buffer.writeInteger(Self.frameEnd)
        }
    }

    @inline(__always)
    static func writeFrameStart(type: UInt8, channel: UInt16, into buffer: inout ByteBuffer) -> Int {
        buffer.writeInteger(type)
        buffer.writeInteger(channel)
        let sizeIndex = buffer.writerIndex
        buffer.writeInteger(0 as UInt32)
        return sizeIndex
    }

    @inline(__always)
    static func finishFrame(sizeIndex: Int, into buffer: inout ByteBuffer) {
        let payloadSize = buffer.writerIndex - sizeIndex - 4
        buffer.setInteger(UInt32(truncatingIfNeeded: payloadSize), at: sizeIndex)
        buffer.writeInteger(Self.frameEnd)
    }

    /// The largest body payload one frame may carry under `maxFrameSize` (0 means no limit).
    @inline(__always)
    static func maxBodyPayload(maxFrameSize: UInt32) -> Int {
        maxFrameSize == 0 ? Int(UInt32.max) : Int(max(maxFrameSize, minimumFrameSize) - framingOverhead)
    }

    /// The content header frame followed by as many body frames as the body needs, each at most
    /// `maxFrameSize - 8` bytes of payload. An empty body yields the header frame alone. Body frames are
    /// slices of `body`: nothing is copied.
    public static func contentFrames(
        channel: UInt16,
        classID: UInt16 = BasicPublish.classID,
        properties: AMQPBasicProperties,
        body: ByteBuffer,
        maxFrameSize: UInt32
    ) -> [AMQPFrame] {
        let header = AMQPContentHeader(classID: classID, bodySize: UInt64(body.readableBytes), properties: properties)
        let chunk = maxBodyPayload(maxFrameSize: maxFrameSize)
        var frames: [AMQPFrame] = [.header(channel: channel, header)]
        frames.reserveCapacity(1 + (body.readableBytes + chunk - 1) / chunk)
        var remaining = body
        while remaining.readableBytes > 0 {
            let slice = remaining.readSlice(length: min(chunk, remaining.readableBytes))!
            frames.append(.body(channel: channel, slice))
        }
        return frames
    }

    /// The hot path for publishing: writes a content-carrying method frame, its header frame and body
    /// frames straight into `buffer`, without building `AMQPFrame` values in between.
    public static func encodeMessage(
        channel: UInt16,
        method: AMQPMethod,
        properties: AMQPBasicProperties,
        body: ByteBuffer,
        maxFrameSize: UInt32,
        into buffer: inout ByteBuffer
    ) {
        let methodSizeIndex = writeFrameStart(type: FrameType.method, channel: channel, into: &buffer)
        method.encode(into: &buffer)
        finishFrame(sizeIndex: methodSizeIndex, into: &buffer)

        let headerSizeIndex = writeFrameStart(type: FrameType.header, channel: channel, into: &buffer)
        AMQPContentHeader(classID: method.classID, bodySize: UInt64(body.readableBytes), properties: properties)
            .encode(into: &buffer)
        finishFrame(sizeIndex: headerSizeIndex, into: &buffer)

        let chunk = maxBodyPayload(maxFrameSize: maxFrameSize)
        var offset = body.readerIndex
        let end = body.writerIndex
        while offset < end {
            let length = min(chunk, end - offset)
            buffer.writeInteger(FrameType.body)
            buffer.writeInteger(channel)
            buffer.writeInteger(UInt32(truncatingIfNeeded: length))
            buffer.writeImmutableBuffer(body.getSlice(at: offset, length: length)!)
            buffer.writeInteger(Self.frameEnd)
            offset += length
        }
    }
}

/// Cuts complete frames out of a byte stream. Use from a NIO `ByteToMessageDecoder`:
/// call `decode(buffer:)` until it returns nil (= wait for more bytes).
public struct AMQPFrameDecoder: Sendable {
    /// RabbitMQ's default frame-max, a sensible limit until connection.tune says otherwise.
    public static let defaultMaxFrameSize: UInt32 = 131_072

    /// Frames larger than this (payload + 8) are rejected before their payload is buffered, so a peer
    /// cannot make us hold unbounded bytes. 0 means no limit, as in connection.tune.
    public var maxFrameSize: UInt32

    public init(maxFrameSize: UInt32 = AMQPFrameDecoder.defaultMaxFrameSize) {
        self.maxFrameSize = maxFrameSize
    }

    private static let headerSize = 7
    private static let protocolHeaderFirstByte = UInt8(ascii: "A")

    public mutating func decode(buffer: inout ByteBuffer) throws(AMQPProtocolError) -> AMQPFrame? {
        let start = buffer.readerIndex
        guard let type = buffer.getInteger(at: start, as: UInt8.self) else { return nil }

        switch type {
        case AMQPFrame.FrameType.method, AMQPFrame.FrameType.header, AMQPFrame.FrameType.body,
            AMQPFrame.FrameType.heartbeat:
            break
        case Self.protocolHeaderFirstByte:
            // A server that does not accept our version answers with its own 8-byte protocol header.
            guard buffer.readableBytes >= 8 else { return nil }
            let bytes = buffer.getBytes(at: start, length: 8)!
            if bytes[0..<4].elementsEqual(AMQPProtocolHeader.bytes[0..<4]) {
                throw .protocolVersionRejected(major: bytes[5], minor: bytes[6], revision: bytes[7])
            }
            throw .unknownFrameType(type)
        default:
            throw .unknownFrameType(type)
        }

        guard buffer.readableBytes >= Self.headerSize else { return nil }
        let channel = buffer.getInteger(at: start + 1, as: UInt16.self)!
        let payloadSize = buffer.getInteger(at: start + 3, as: UInt32.self)!
        let frameSize = UInt64(payloadSize) + UInt64(AMQPFrame.framingOverhead)
        if self.maxFrameSize != 0, frameSize > UInt64(self.maxFrameSize) {
            throw .frameTooLarge(frameSize: frameSize, maxFrameSize: self.maxFrameSize)
        }
        guard buffer.readableBytes >= Int(frameSize) else { return nil }

        let endIndex = start + Self.headerSize + Int(payloadSize)
        let end = buffer.getInteger(at: endIndex, as: UInt8.self)!
        guard end == AMQPFrame.frameEnd else { throw .invalidFrameEnd(found: end) }

        var payload = buffer.getSlice(at: start + Self.headerSize, length: Int(payloadSize))!
        buffer.moveReaderIndex(to: endIndex + 1)

        switch type {
        case AMQPFrame.FrameType.method:
            return .method(channel: channel, try AMQPMethod.decode(from: &payload))
        case AMQPFrame.FrameType.header:
            return .header(channel: channel, try AMQPContentHeader.decode(from: &payload))
        case AMQPFrame.FrameType.body:
            return .body(channel: channel, payload)
        default:
            guard channel == 0, payloadSize == 0 else {
                throw .invalidHeartbeat(channel: channel, payloadSize: payloadSize)
            }
            return .heartbeat
        }
    }
}
