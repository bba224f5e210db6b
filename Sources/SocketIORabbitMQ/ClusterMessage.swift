import EngineIO
import NIOCore

// The messages nodes exchange over RabbitMQ. The set follows socket.io's cluster adapter
// (heartbeat membership, broadcast, sockets join/leave/disconnect, fetch sockets,
// server-side emit, broadcast acks, adapter close) so the behaviour clients observe is the
// one of a Node.js cluster. The encoding is our own compact binary format: a broadcast
// carries the Engine.IO messages that the emitting node already encoded, so receivers
// write those bytes to their clients without parsing or re-serialising the packet.

/// Which sockets an operation targets: the same selection rules as a local broadcast.
struct ClusterSocketSelection: Sendable, Hashable {
    /// Empty means every socket of the namespace.
    var rooms: [String]
    var exceptRooms: [String]

    init(rooms: [String] = [], exceptRooms: [String] = []) {
        self.rooms = rooms
        self.exceptRooms = exceptRooms
    }
}

/// Broadcast flags that matter on a receiving node.
struct ClusterBroadcastFlags: Sendable, Hashable {
    /// May be dropped by a slow client instead of being queued.
    var isVolatile: Bool
    var compress: Bool
    /// Worth keeping in the recovery stream (connection state recovery is on and the
    /// packet is an event without ack).
    var isRecoverable: Bool

    init(isVolatile: Bool = false, compress: Bool = true, isRecoverable: Bool = false) {
        self.isVolatile = isVolatile
        self.compress = compress
        self.isRecoverable = isRecoverable
    }
}

/// One Socket.IO packet encoded once as Engine.IO messages: the text part first, then one
/// binary message per attachment. Opaque to the cluster layer.
struct EncodedPacket: Sendable, Hashable {
    var messages: [EngineMessage]

    init(messages: [EngineMessage]) {
        self.messages = messages
    }
}

/// What a remote node tells about one of its sockets in answer to fetch-sockets.
struct RemoteSocketRecord: Sendable, Hashable {
    var id: String
    /// The handshake object, encoded by the Socket.IO layer (JSON text).
    var handshake: ByteBuffer
    var rooms: [String]
    /// `socket.data` as a Socket.IO packet (JSON text plus one binary message per attachment),
    /// so binary values inside it arrive intact; see `ClusterValueEncoding`.
    var data: EncodedPacket

    init(id: String, handshake: ByteBuffer, rooms: [String], data: EncodedPacket) {
        self.id = id
        self.handshake = handshake
        self.rooms = rooms
        self.data = data
    }
}

/// A cluster request is answered on the asker's own queue and matched by this id.
typealias ClusterRequestID = UInt64

enum ClusterPayload: Sendable, Hashable {
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
    /// Recovery stream only: appended by a node that reads the stream from an earlier point
    /// (its history replay at start): reading its own mark back means it has caught up.
    case streamMark(id: String)

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
        case .streamMark: return 17
        }
    }

    /// Responses go to one node's queue; everything else is published to the namespace exchange.
    var isResponse: Bool {
        switch self {
        case .fetchSocketsResponse, .serverSideEmitResponse, .broadcastClientCount, .broadcastAck: return true
        default: return false
        }
    }
}

/// One message between nodes.
struct ClusterMessage: Sendable, Hashable {
    /// The node that published it (its unique id, not its display name).
    var origin: String
    /// Per-origin sequence number, increasing by one per published message. With `origin`
    /// it identifies a message, so a receiver drops copies re-sent after a broker outage.
    var sequence: UInt64
    var namespace: String
    var payload: ClusterPayload

    init(origin: String, sequence: UInt64, namespace: String, payload: ClusterPayload) {
        self.origin = origin
        self.sequence = sequence
        self.namespace = namespace
        self.payload = payload
    }
}

/// Why a body could not be decoded. A peer running another format version, or a foreign
/// publisher on our exchange; the message is dropped and counted, never fatal.
enum ClusterMessageDecodingError: Error, Sendable, Hashable {
    case unsupportedVersion(UInt8)
    case unknownType(UInt8)
    case truncated(field: String)
    case invalidUTF8(field: String)
    case trailingBytes(Int)
    /// A field holds a value the format does not define.
    case invalidValue(field: String)
}

/// Why a message could not be encoded: a field over the format's limits. The adapter drops
/// that one message, counts it (`RabbitMQAdapterMetrics.encodingFailures`) and logs it.
enum ClusterMessageEncodingError: Error, Sendable, Hashable {
    /// A string field longer than 65,535 bytes of UTF-8.
    case stringTooLong(bytes: Int)
    /// More than 65,535 items where the format counts them in 16 bits (rooms, attachments,
    /// a batch's messages), or a batch of none.
    case tooManyItems(count: Int)
}
