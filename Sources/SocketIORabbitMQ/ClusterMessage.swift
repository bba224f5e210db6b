import EngineIO
import NIOCore

// The messages nodes exchange over RabbitMQ. The set follows socket.io's cluster adapter
// (heartbeat membership, broadcast, sockets join/leave/disconnect, fetch sockets,
// server-side emit, broadcast acks, adapter close) so the behaviour clients observe is the
// one of a Node.js cluster. The encoding is our own compact binary format: a broadcast
// carries the Engine.IO messages that the emitting node already encoded, so receivers
// write those bytes to their clients without parsing or re-serialising the packet.

/// Which sockets an operation targets: the same selection rules as a local broadcast.
public struct ClusterSocketSelection: Sendable, Hashable {
    /// Empty means every socket of the namespace.
    public var rooms: [String]
    public var exceptRooms: [String]

    public init(rooms: [String] = [], exceptRooms: [String] = []) {
        self.rooms = rooms
        self.exceptRooms = exceptRooms
    }
}

/// Broadcast flags that matter on a receiving node.
public struct ClusterBroadcastFlags: Sendable, Hashable {
    /// May be dropped by a slow client instead of being queued.
    public var isVolatile: Bool
    public var compress: Bool
    /// Worth keeping in the recovery stream (connection state recovery is on and the
    /// packet is an event without ack).
    public var isRecoverable: Bool

    public init(isVolatile: Bool = false, compress: Bool = true, isRecoverable: Bool = false) {
        self.isVolatile = isVolatile
        self.compress = compress
        self.isRecoverable = isRecoverable
    }
}

/// One Socket.IO packet encoded once as Engine.IO messages: the text part first, then one
/// binary message per attachment. Opaque to the cluster layer.
public struct EncodedPacket: Sendable, Hashable {
    public var messages: [EngineMessage]

    public init(messages: [EngineMessage]) {
        self.messages = messages
    }
}

/// What a remote node tells about one of its sockets in answer to fetch-sockets.
public struct RemoteSocketRecord: Sendable, Hashable {
    public var id: String
    /// The handshake object, encoded by the Socket.IO layer (JSON text).
    public var handshake: ByteBuffer
    public var rooms: [String]
    /// `socket.data` as a Socket.IO packet (JSON text plus one binary message per attachment),
    /// so binary values inside it arrive intact; see `ClusterValueEncoding`.
    public var data: EncodedPacket

    public init(id: String, handshake: ByteBuffer, rooms: [String], data: EncodedPacket) {
        self.id = id
        self.handshake = handshake
        self.rooms = rooms
        self.data = data
    }
}

/// A disconnected socket's state, kept in the recovery stream for any node to restore.
public struct SessionRecord: Sendable, Hashable {
    public var privateId: String
    public var socketId: String
    public var rooms: [String]
    /// `socket.data` as a Socket.IO packet, binary values included (`ClusterValueEncoding`).
    public var data: EncodedPacket

    public init(privateId: String, socketId: String, rooms: [String], data: EncodedPacket) {
        self.privateId = privateId
        self.socketId = socketId
        self.rooms = rooms
        self.data = data
    }
}

/// A cluster request is answered on the asker's own queue and matched by this id.
public typealias ClusterRequestID = UInt64

public enum ClusterPayload: Sendable, Hashable {
    /// `isInitial` asks every live node to answer with a heartbeat at once, so a node that
    /// just started learns the membership without waiting a whole interval.
    case heartbeat(isInitial: Bool)
    /// `ackRequest` is set for a broadcast with acks: receivers answer with
    /// `broadcastClientCount` and then one `broadcastAck` per client ack.
    case broadcast(selection: ClusterSocketSelection, flags: ClusterBroadcastFlags, packet: EncodedPacket, ackRequest: ClusterRequestID?)
    case socketsJoin(selection: ClusterSocketSelection, rooms: [String])
    case socketsLeave(selection: ClusterSocketSelection, rooms: [String])
    case disconnectSockets(selection: ClusterSocketSelection, closeUnderlyingConnection: Bool)
    case fetchSockets(request: ClusterRequestID, selection: ClusterSocketSelection)
    case fetchSocketsResponse(request: ClusterRequestID, sockets: [RemoteSocketRecord])
    /// `request` is set when the emitter waits for acknowledgements.
    case serverSideEmit(request: ClusterRequestID?, packet: EncodedPacket)
    case serverSideEmitResponse(request: ClusterRequestID, packet: EncodedPacket)
    case broadcastClientCount(request: ClusterRequestID, clientCount: UInt32)
    case broadcastAck(request: ClusterRequestID, packet: EncodedPacket)
    /// The node leaves the cluster on purpose; peers drop it from membership at once.
    case adapterClose
    /// Recovery stream only: a recoverable broadcast, with the offset that was appended to its
    /// arguments (the client sends it back when it reconnects). Every node, its origin
    /// included, delivers it to its clients when it reads it from the stream, so all nodes
    /// deliver these packets in one order. `deliveredByOrigin`: the broker was away when it
    /// was emitted, so its origin delivered it to its own clients at once (without offset).
    case recoverablePacket(offset: String, selection: ClusterSocketSelection, packet: EncodedPacket, deliveredByOrigin: Bool)
    /// Recovery stream only: what a socket had when it lost its connection.
    case sessionRecord(SessionRecord)
    /// Recovery stream only: appended by a node restoring session `privateId`, which then
    /// reads the stream up to it (a stream has no "current end" a consumer could ask for).
    /// It is also the claim that makes a restore single-use: of the claims that follow a
    /// session record, the first in stream order wins (`RecoveryStreamScan`).
    case restoreClaim(id: String, privateId: String)

    /// Wire type byte. Values follow socket.io's numbering so logs read alike.
    var typeCode: UInt8 {
        switch self {
        case .heartbeat(let isInitial): return isInitial ? 1 : 2
        case .broadcast: return 3
        case .socketsJoin: return 4
        case .socketsLeave: return 5
        case .disconnectSockets: return 6
        case .fetchSockets: return 7
        case .fetchSocketsResponse: return 8
        case .serverSideEmit: return 9
        case .serverSideEmitResponse: return 10
        case .broadcastClientCount: return 11
        case .broadcastAck: return 12
        case .adapterClose: return 13
        case .recoverablePacket: return 14
        case .sessionRecord: return 15
        case .restoreClaim: return 16
        }
    }

    /// Responses go to one node's queue; everything else is published to the namespace exchange.
    public var isResponse: Bool {
        switch self {
        case .fetchSocketsResponse, .serverSideEmitResponse, .broadcastClientCount, .broadcastAck: return true
        default: return false
        }
    }
}

/// One message between nodes.
public struct ClusterMessage: Sendable, Hashable {
    /// The node that published it (its unique id, not its display name).
    public var origin: String
    /// Per-origin sequence number, increasing by one per published message. With `origin`
    /// it identifies a message, so a receiver drops copies re-sent after a broker outage.
    public var sequence: UInt64
    public var namespace: String
    public var payload: ClusterPayload

    public init(origin: String, sequence: UInt64, namespace: String, payload: ClusterPayload) {
        self.origin = origin
        self.sequence = sequence
        self.namespace = namespace
        self.payload = payload
    }
}

/// Why a body could not be decoded. A peer running another format version, or a foreign
/// publisher on our exchange; the message is dropped and counted, never fatal.
public enum ClusterMessageDecodingError: Error, Sendable, Hashable {
    case unsupportedVersion(UInt8)
    case unknownType(UInt8)
    case truncated(field: String)
    case invalidUTF8(field: String)
    case trailingBytes(Int)
}

/// Why a message could not be encoded: a field over the format's limits. The adapter drops
/// that one message, counts it (`RabbitMQAdapterMetrics.encodingFailures`) and logs it.
public enum ClusterMessageEncodingError: Error, Sendable, Hashable {
    /// A string field longer than 65,535 bytes of UTF-8.
    case stringTooLong(bytes: Int)
    /// More than 65,535 items where the format counts them in 16 bits (rooms, attachments,
    /// a batch's messages), or a batch of none.
    case tooManyItems(count: Int)
}

// MARK: - Codec

/// Binary layout (all integers big-endian):
///
///     u8 version (3) | u8 type | str origin | u64 sequence | str namespace | type-specific body
///
/// `str` is u16 length + UTF-8 (u32 for `blob`), lists are u16 count + items, an encoded
/// packet is u16 count of Engine.IO messages, each u8 isBinary + u32 length + bytes.
public enum ClusterMessageCodec {
    /// 2: socket data as an encoded packet (binary values kept), restore claims.
    /// 3: recoverable packets delivered from the stream (`deliveredByOrigin`), no restore markers.
    public static let formatVersion: UInt8 = 3

    public static func encode(_ message: ClusterMessage, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(ClusterMessageEncodingError) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64 + estimatedBodySize(message.payload))
        try encode(message, into: &buffer)
        return buffer
    }

    public static func encode(_ message: ClusterMessage, into buffer: inout ByteBuffer) throws(ClusterMessageEncodingError) {
        buffer.writeInteger(formatVersion)
        buffer.writeInteger(message.payload.typeCode)
        try buffer.writeShortString(message.origin)
        buffer.writeInteger(message.sequence)
        try buffer.writeShortString(message.namespace)
        switch message.payload {
        case .heartbeat, .adapterClose:
            break
        case .broadcast(let selection, let flags, let packet, let ackRequest):
            try buffer.writeSelection(selection)
            var flagBits: UInt8 = 0
            if flags.isVolatile { flagBits |= 1 }
            if flags.compress { flagBits |= 2 }
            if flags.isRecoverable { flagBits |= 4 }
            if ackRequest != nil { flagBits |= 8 }
            buffer.writeInteger(flagBits)
            if let ackRequest { buffer.writeInteger(ackRequest) }
            try buffer.writePacket(packet)
        case .socketsJoin(let selection, let rooms), .socketsLeave(let selection, let rooms):
            try buffer.writeSelection(selection)
            try buffer.writeStringList(rooms)
        case .disconnectSockets(let selection, let close):
            try buffer.writeSelection(selection)
            buffer.writeInteger(close ? UInt8(1) : 0)
        case .fetchSockets(let request, let selection):
            buffer.writeInteger(request)
            try buffer.writeSelection(selection)
        case .fetchSocketsResponse(let request, let sockets):
            buffer.writeInteger(request)
            buffer.writeInteger(UInt32(sockets.count))
            for socket in sockets {
                try buffer.writeShortString(socket.id)
                buffer.writeBlob(socket.handshake)
                try buffer.writeStringList(socket.rooms)
                try buffer.writePacket(socket.data)
            }
        case .serverSideEmit(let request, let packet):
            buffer.writeInteger(request != nil ? UInt8(1) : 0)
            if let request { buffer.writeInteger(request) }
            try buffer.writePacket(packet)
        case .serverSideEmitResponse(let request, let packet), .broadcastAck(let request, let packet):
            buffer.writeInteger(request)
            try buffer.writePacket(packet)
        case .broadcastClientCount(let request, let count):
            buffer.writeInteger(request)
            buffer.writeInteger(count)
        case .recoverablePacket(let offset, let selection, let packet, let deliveredByOrigin):
            try buffer.writeShortString(offset)
            try buffer.writeSelection(selection)
            buffer.writeInteger(deliveredByOrigin ? UInt8(1) : 0)
            try buffer.writePacket(packet)
        case .sessionRecord(let session):
            try buffer.writeShortString(session.privateId)
            try buffer.writeShortString(session.socketId)
            try buffer.writeStringList(session.rooms)
            try buffer.writePacket(session.data)
        case .restoreClaim(let id, let privateId):
            try buffer.writeShortString(id)
            try buffer.writeShortString(privateId)
        }
    }

    public static func decode(_ body: ByteBuffer) throws(ClusterMessageDecodingError) -> ClusterMessage {
        var buffer = body
        let version: UInt8 = try buffer.read("version")
        guard version == formatVersion else { throw .unsupportedVersion(version) }
        let type: UInt8 = try buffer.read("type")
        let origin = try buffer.readShortString("origin")
        let sequence: UInt64 = try buffer.read("sequence")
        let namespace = try buffer.readShortString("namespace")
        let payload: ClusterPayload
        switch type {
        case 1: payload = .heartbeat(isInitial: true)
        case 2: payload = .heartbeat(isInitial: false)
        case 3:
            let selection = try buffer.readSelection()
            let flagBits: UInt8 = try buffer.read("flags")
            let ackRequest: ClusterRequestID? = flagBits & 8 != 0 ? try buffer.read("ackRequest") : nil
            let flags = ClusterBroadcastFlags(isVolatile: flagBits & 1 != 0, compress: flagBits & 2 != 0, isRecoverable: flagBits & 4 != 0)
            payload = .broadcast(selection: selection, flags: flags, packet: try buffer.readPacket(), ackRequest: ackRequest)
        case 4: payload = .socketsJoin(selection: try buffer.readSelection(), rooms: try buffer.readStringList("rooms"))
        case 5: payload = .socketsLeave(selection: try buffer.readSelection(), rooms: try buffer.readStringList("rooms"))
        case 6:
            let selection = try buffer.readSelection()
            let close: UInt8 = try buffer.read("close")
            payload = .disconnectSockets(selection: selection, closeUnderlyingConnection: close != 0)
        case 7:
            let request: ClusterRequestID = try buffer.read("request")
            payload = .fetchSockets(request: request, selection: try buffer.readSelection())
        case 8:
            let request: ClusterRequestID = try buffer.read("request")
            let count: UInt32 = try buffer.read("socketCount")
            var sockets: [RemoteSocketRecord] = []
            // A count is only a claim: never reserve more than the bytes could hold.
            sockets.reserveCapacity(min(Int(count), buffer.readableBytes / 8))
            for _ in 0..<count {
                let id = try buffer.readShortString("socket.id")
                let handshake = try buffer.readBlob("socket.handshake")
                let rooms = try buffer.readStringList("socket.rooms")
                let data = try buffer.readPacket()
                sockets.append(RemoteSocketRecord(id: id, handshake: handshake, rooms: rooms, data: data))
            }
            payload = .fetchSocketsResponse(request: request, sockets: sockets)
        case 9:
            let hasRequest: UInt8 = try buffer.read("hasRequest")
            let request: ClusterRequestID? = hasRequest != 0 ? try buffer.read("request") : nil
            payload = .serverSideEmit(request: request, packet: try buffer.readPacket())
        case 10:
            let request: ClusterRequestID = try buffer.read("request")
            payload = .serverSideEmitResponse(request: request, packet: try buffer.readPacket())
        case 11:
            let request: ClusterRequestID = try buffer.read("request")
            payload = .broadcastClientCount(request: request, clientCount: try buffer.read("clientCount"))
        case 12:
            let request: ClusterRequestID = try buffer.read("request")
            payload = .broadcastAck(request: request, packet: try buffer.readPacket())
        case 13: payload = .adapterClose
        case 14:
            let offset = try buffer.readShortString("offset")
            let selection = try buffer.readSelection()
            let deliveredByOrigin: UInt8 = try buffer.read("deliveredByOrigin")
            payload = .recoverablePacket(offset: offset, selection: selection, packet: try buffer.readPacket(), deliveredByOrigin: deliveredByOrigin & 1 != 0)
        case 15:
            let privateId = try buffer.readShortString("session.privateId")
            let socketId = try buffer.readShortString("session.socketId")
            let rooms = try buffer.readStringList("session.rooms")
            payload = .sessionRecord(SessionRecord(privateId: privateId, socketId: socketId, rooms: rooms, data: try buffer.readPacket()))
        case 16:
            let id = try buffer.readShortString("claim.id")
            payload = .restoreClaim(id: id, privateId: try buffer.readShortString("claim.privateId"))
        default: throw .unknownType(type)
        }
        guard buffer.readableBytes == 0 else { throw .trailingBytes(buffer.readableBytes) }
        return ClusterMessage(origin: origin, sequence: sequence, namespace: namespace, payload: payload)
    }

    private static func estimatedBodySize(_ payload: ClusterPayload) -> Int {
        switch payload {
        case .broadcast(_, _, let packet, _), .serverSideEmit(_, let packet), .recoverablePacket(_, _, let packet, _),
             .serverSideEmitResponse(_, let packet), .broadcastAck(_, let packet):
            return packet.messages.reduce(0) { $0 + 5 + $1.payload.readableBytes }
        default:
            return 64
        }
    }
}

// MARK: - Primitive fields

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

// MARK: - Batches

/// Several encoded cluster messages in one AMQP body, so that one publish (and one confirm
/// round trip) carries everything that queued up while the previous publish was in flight.
///
///     u8 0xBA | u16 count | count × (u32 length | encoded ClusterMessage)
///
/// A single message is sent as is (its first byte is the format version, never 0xBA).
public enum ClusterBatchCodec {
    static let marker: UInt8 = 0xBA

    /// A batch holds 1...65,535 messages (its count is 16 bits); any other number throws.
    public static func encode(
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
    public static func split(_ body: ByteBuffer) throws(ClusterMessageDecodingError) -> [ByteBuffer] {
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
