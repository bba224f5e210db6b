import EngineIO
import NIOCore

/// Binary layout (all integers big-endian):
///
///     u8 version (4) | u8 type | str origin | u64 sequence | str namespace | type-specific body
///
/// `str` is u16 length + UTF-8 (u32 for `blob`), lists are u16 count + items, an encoded
/// packet is u16 count of Engine.IO messages, each u8 isBinary + u32 length + bytes.
enum ClusterMessageCodec {
    /// 2: socket data as an encoded packet (binary values kept), restore claims.
    /// 3: recoverable packets delivered from the stream (`deliveredByOrigin`), no restore markers.
    /// 4: session records carry their state and incarnation (written ahead while connected).
    static let formatVersion: UInt8 = 4

    static func encode(_ message: ClusterMessage, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(ClusterMessageEncodingError) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64 + estimatedBodySize(message.payload))
        try encode(message, into: &buffer)
        return buffer
    }

    static func encode(_ message: ClusterMessage, into buffer: inout ByteBuffer) throws(ClusterMessageEncodingError) {
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
            buffer.writeInteger(session.state.rawValue)
            try buffer.writeShortString(session.incarnation)
        case .restoreClaim(let id, let privateId):
            try buffer.writeShortString(id)
            try buffer.writeShortString(privateId)
        case .streamMark(let id):
            try buffer.writeShortString(id)
        }
    }

    static func decode(_ body: ByteBuffer) throws(ClusterMessageDecodingError) -> ClusterMessage {
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
            let data = try buffer.readPacket()
            let stateCode: UInt8 = try buffer.read("session.state")
            guard let state = SessionRecord.State(rawValue: stateCode) else { throw .invalidValue(field: "session.state") }
            let incarnation = try buffer.readShortString("session.incarnation")
            payload = .sessionRecord(SessionRecord(privateId: privateId, socketId: socketId, rooms: rooms, data: data,
                                                   state: state, incarnation: incarnation))
        case 16:
            let id = try buffer.readShortString("claim.id")
            payload = .restoreClaim(id: id, privateId: try buffer.readShortString("claim.privateId"))
        case 17: payload = .streamMark(id: try buffer.readShortString("mark.id"))
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
