import NIOCore

/// Messages from other nodes, read from this node's queue.
extension ClusterAdapterStateMachine {
    /// One AMQP delivery from the node queue (one message or a batch).
    mutating func nodeBodyRead(_ body: ByteBuffer, now: UInt64) -> [Action] {
        var actions: [Action] = []
        guard let bodies = batchParts(of: body, refusal: &actions) else { return actions }
        for body in bodies {
            do throws(ClusterMessageDecodingError) {
                actions += nodeMessageRead(try ClusterMessageCodec.decode(body), now: now)
            } catch {
                metrics.undecodable &+= 1
                actions.append(.log(.undecodable(error)))
            }
        }
        return actions
    }

    /// One decoded message from another node. A node never re-handles its own messages (its
    /// queue is bound to the same keys); copies replayed after an outage are dropped by
    /// (origin, sequence); any message is a sign of life, a goodbye removes the node at once.
    mutating func nodeMessageRead(_ message: ClusterMessage, now: UInt64) -> [Action] {
        guard message.origin != configuration.nodeID, message.namespace == configuration.namespace,
              duplicates.accept(origin: message.origin, sequence: message.sequence, atNanoseconds: now) else { return [] }
        metrics.received &+= 1
        let origin = message.origin
        let replyQueue = replyQueue(of: origin)
        switch message.payload {
        case .adapterClose:
            membership.remove(origin)
            duplicates.forget(origin: origin)
            return nodeLeft(origin)
        case .heartbeat(let isInitial):
            membership.heard(from: origin, atNanoseconds: now)
            // A starting node learns every peer within one round trip.
            return isInitial ? send(.heartbeat(isInitial: false), now: now) : []
        default:
            membership.heard(from: origin, atNanoseconds: now)
        }
        switch message.payload {
        case .broadcast(let selection, let flags, let packet, nil):
            metrics.receivedBroadcasts &+= 1
            return [.deliver(messages: packet.messages, rooms: Set(selection.rooms), except: Set(selection.exceptRooms),
                             heldSockets: [], volatile: flags.isVolatile)]
        case .broadcast(let selection, let flags, let packet, let request?):
            metrics.receivedBroadcasts &+= 1
            return [.handleRemote(.broadcastWithAck(selection, flags, packet, request: request, replyQueue: replyQueue))]
        case .socketsJoin(let selection, let rooms):
            return [.handleRemote(.socketsJoin(selection, rooms: rooms))]
        case .socketsLeave(let selection, let rooms):
            return [.handleRemote(.socketsLeave(selection, rooms: rooms))]
        case .disconnectSockets(let selection, let close):
            return [.handleRemote(.disconnectSockets(selection, close: close))]
        case .fetchSockets(let request, let selection):
            return [.handleRemote(.fetchSockets(request: request, selection: selection, replyQueue: replyQueue))]
        case .serverSideEmit(let request, let packet):
            return [.handleRemote(.serverSideEmit(request: request, packet: packet, replyQueue: replyQueue))]
        case .fetchSocketsResponse, .serverSideEmitResponse, .broadcastClientCount, .broadcastAck:
            return responseRead(message.payload, from: origin)
        case .recoverablePacket, .sessionRecord, .restoreClaim, .streamMark, .heartbeat, .adapterClose:
            // Recovery-stream records never travel through node queues.
            return []
        }
    }

    /// The cluster messages of one AMQP body (one, or a batch's); nil when its batch framing
    /// is broken, which is counted and given the log line to return.
    mutating func batchParts(of body: ByteBuffer, refusal: inout [Action]) -> [ByteBuffer]? {
        do throws(ClusterMessageDecodingError) {
            return try ClusterBatchCodec.split(body)
        } catch {
            metrics.undecodable &+= 1
            refusal = [.log(.undecodable(error))]
            return nil
        }
    }
}
