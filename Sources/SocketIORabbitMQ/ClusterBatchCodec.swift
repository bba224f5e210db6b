import NIOCore

/// Several encoded cluster messages in one AMQP body, so that one publish (and one confirm
/// round trip) carries everything that queued up while the previous publish was in flight.
///
///     u8 0xBA | u16 count | count × (u32 length | encoded ClusterMessage)
///
/// A single message is sent as is (its first byte is the format version, never 0xBA).
enum ClusterBatchCodec {
    static let marker: UInt8 = 0xBA

    /// A batch holds 1...65,535 messages (its count is 16 bits); any other number throws.
    static func encode(
        _ bodies: [ByteBuffer], allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(ClusterMessageEncodingError) -> ByteBuffer {
        guard !bodies.isEmpty, bodies.count <= Int(UInt16.max) else { throw .tooManyItems(count: bodies.count) }
        if bodies.count == 1 { return bodies[0] }
        var buffer = allocator.buffer(capacity: 3 + bodies.reduce(0) { $0 + 4 + $1.readableBytes })
        buffer.writeInteger(marker)
        buffer.writeInteger(UInt16(bodies.count))
        for body in bodies { buffer.writeBlob(body) }
        return buffer
    }

    /// The message bodies in a received AMQP body (one, unless it is a batch).
    static func split(_ body: ByteBuffer) throws(ClusterMessageDecodingError) -> [ByteBuffer] {
        guard body.getInteger(at: body.readerIndex, as: UInt8.self) == marker else { return [body] }
        var buffer = body
        buffer.moveReaderIndex(forwardBy: 1)
        let count: UInt16 = try buffer.read("batch.count")
        var bodies: [ByteBuffer] = []
        bodies.reserveCapacity(min(Int(count), buffer.readableBytes / 4))
        for _ in 0..<count { bodies.append(try buffer.readBlob("batch.message")) }
        guard buffer.readableBytes == 0 else { throw .trailingBytes(buffer.readableBytes) }
        return bodies
    }
}
