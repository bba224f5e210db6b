import NIOCore

/// A complete message: the method that carried it (basic.deliver, basic.return, basic.get-ok or
/// basic.publish), its properties and its whole body.
public struct AMQPContentMessage: Sendable, Hashable {
    public var method: AMQPMethod
    public var properties: AMQPBasicProperties
    public var body: ByteBuffer

    public init(method: AMQPMethod, properties: AMQPBasicProperties, body: ByteBuffer) {
        self.method = method
        self.properties = properties
        self.body = body
    }
}

/// Reassembles one channel's content: a content-carrying method, then a header frame, then body frames
/// until the header's body size is reached. Keep one per channel; frames of different channels may
/// interleave on the connection but never within a channel.
public struct AMQPContentAssembler: Sendable {
    private enum State: Sendable {
        case idle
        case awaitingHeader(AMQPMethod)
        case awaitingBody(AMQPMethod, AMQPContentHeader)
    }

    /// Bodies larger than this are refused when their header arrives, before any byte is buffered.
    public var maxBodySize: UInt64
    private var state: State = .idle
    /// Body bytes of the current message when it spans several frames.
    private var partialBody: ByteBuffer?

    public init(maxBodySize: UInt64 = 128 * 1024 * 1024) {
        self.maxBodySize = maxBodySize
    }

    /// True between a content method and the last byte of its body: other methods on this channel
    /// are then a protocol violation.
    public var isAssembling: Bool {
        if case .idle = self.state { return false }
        return true
    }

    /// Starts a message. `method.hasContent` must be true.
    public mutating func start(method: AMQPMethod) throws(AMQPProtocolError) {
        guard case .idle = self.state else {
            throw .unexpectedContentFrame(expected: self.expectation, received: "method \(method.name)")
        }
        guard method.hasContent else {
            throw .unexpectedContentFrame(expected: "a content-carrying method", received: "method \(method.name)")
        }
        self.state = .awaitingHeader(method)
    }

    /// Returns the message when the body is empty, else nil until the body frames arrive.
    public mutating func append(header: AMQPContentHeader) throws(AMQPProtocolError) -> AMQPContentMessage? {
        guard case .awaitingHeader(let method) = self.state else {
            throw .unexpectedContentFrame(expected: self.expectation, received: "content header")
        }
        guard header.bodySize <= self.maxBodySize else {
            self.state = .idle
            throw .bodyTooLarge(bodySize: header.bodySize, limit: self.maxBodySize)
        }
        if header.bodySize == 0 {
            self.state = .idle
            return AMQPContentMessage(method: method, properties: header.properties, body: ByteBuffer())
        }
        self.state = .awaitingBody(method, header)
        return nil
    }

    /// Returns the message once the body is complete. A body that arrives in one frame is passed on
    /// as that frame's slice, without copying.
    public mutating func append(body: ByteBuffer) throws(AMQPProtocolError) -> AMQPContentMessage? {
        guard case .awaitingBody(let method, let header) = self.state else {
            throw .unexpectedContentFrame(expected: self.expectation, received: "content body")
        }
        let total = UInt64(self.partialBody?.readableBytes ?? 0) + UInt64(body.readableBytes)
        guard total <= header.bodySize else {
            self.reset()
            throw .bodyExceedsDeclaredSize(declared: header.bodySize, received: total)
        }
        // Move the partial body out of self so appending to it never copies on write.
        var accumulated = self.partialBody
        self.partialBody = nil
        if accumulated == nil {
            if total == header.bodySize {
                self.state = .idle
                return AMQPContentMessage(method: method, properties: header.properties, body: body)
            }
            accumulated = ByteBufferAllocator().buffer(capacity: Int(header.bodySize))
        }
        accumulated!.writeImmutableBuffer(body)
        if total == header.bodySize {
            self.state = .idle
            return AMQPContentMessage(method: method, properties: header.properties, body: accumulated!)
        }
        self.partialBody = accumulated
        return nil
    }

    /// Drops a partly received message, e.g. when its channel closes.
    public mutating func reset() {
        self.state = .idle
        self.partialBody = nil
    }

    private var expectation: String {
        switch self.state {
        case .idle: "a content-carrying method"
        case .awaitingHeader: "content header"
        case .awaitingBody: "content body"
        }
    }
}
