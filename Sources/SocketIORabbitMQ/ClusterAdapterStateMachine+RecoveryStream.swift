import EngineIO
import NIOCore

/// Connection state recovery across nodes: recoverable packets through the stream, what the
/// live stream consumer reads, claims and restore holds (docs/CLUSTER.md).
extension ClusterAdapterStateMachine {
    // MARK: Emitting

    /// The next Socket.IO offset of this node (`<nodeID>-<counter>`), appended to a
    /// recoverable packet before it is encoded.
    mutating func nextRecoveryOffset() -> String {
        lastRecoveryOffset &+= 1
        return "\(configuration.nodeID)-\(String(lastRecoveryOffset, radix: 36))"
    }

    enum RecoverableBroadcastOutcome: Sendable {
        /// Run these. Connected: nobody has the packet yet, every node (this one included)
        /// delivers it when it reads it from the stream. Broker away: they include this
        /// node's delivery of the packet without offset, in order.
        case done([Action])
        /// Run these, and write the packet without offset to this node's recipients now:
        /// the full outbox refused it (`rejectNew`) or it could not be encoded.
        case refused([Action])
        /// The broker is away: this node delivers the packet at once, without its offset
        /// (it has no place in the stream yet). Call again with that encoding.
        case needsPlainPacket
    }

    /// A recoverable packet of this node (`packet` carries `offset`; `plain` is the same
    /// packet without it, encoded only when asked for).
    mutating func recoverableBroadcast(offset: String, selection: ClusterSocketSelection, packet: EncodedPacket,
                                       plain: [EngineMessage]?, now: UInt64) -> RecoverableBroadcastOutcome {
        guard let streamName = configuration.recoveryStreamName else { return .refused([]) }
        if outbox.isConnected {
            let (actions, kept) = enqueue(.recoverablePacket(offset: offset, selection: selection, packet: packet, deliveredByOrigin: false),
                                          toQueue: streamName, now: now)
            // At least this node's clients get a packet the cluster could not take.
            guard kept else { return .refused(actions) }
            if ownUndelivered.count >= configuration.outboxCapacity { ownUndelivered.removeFirst() }
            ownUndelivered.append(OwnPacket(sequence: lastSequence, selection: selection, messages: packet.messages))
            return .done(actions)
        }
        guard let plain else { return .needsPlainPacket }
        // Local delivery never waits for RabbitMQ: this node's clients get it now, behind
        // whatever it is delivering already; the other nodes get it from the stream once
        // the outbox is flushed, and this node skips its record there.
        let (actions, _) = enqueue(.recoverablePacket(offset: offset, selection: selection, packet: packet, deliveredByOrigin: true),
                                   toQueue: streamName, now: now)
        deliveredAtOnceUpTo = lastSequence
        return .done(actions + inOrder([.deliver(messages: plain, rooms: Set(selection.rooms), except: Set(selection.exceptRooms),
                                                 heldSockets: [], volatile: false)]))
    }

    // MARK: Reading the stream

    /// One message of the recovery stream, read by the live consumer (`streamOffset` is the
    /// broker's `x-stream-offset` header). Its recoverable packets go to the local sockets
    /// they reach and to restores in progress; session records and claims feed the log.
    /// Deliveries and woken restores run in order, behind what was decided before.
    mutating func streamBodyRead(_ body: ByteBuffer, streamOffset: Int64?, now: UInt64) -> [Action] {
        let actions = streamBodyDecided(body, streamOffset: streamOffset, now: now)
        return inOrder(actions)
    }

    private mutating func streamBodyDecided(_ body: ByteBuffer, streamOffset: Int64?, now: UInt64) -> [Action] {
        guard let streamOffset else {
            metrics.undecodable &+= 1
            return [.log(.streamMessageWithoutOffset)]
        }
        var actions: [Action] = []
        guard let bodies = batchParts(of: body, refusal: &actions) else { return actions }
        for (index, part) in bodies.enumerated() {
            let position = StreamPosition(offset: streamOffset, index: index)
            // Redelivered after a recovery: handled already.
            if let last = lastStreamPosition, position <= last { continue }
            lastStreamPosition = position
            if index == 0 { lastStreamBody = body }
            guard let message = try? ClusterMessageCodec.decode(part), message.namespace == configuration.namespace else { continue }
            actions += streamMessageRead(message, at: position, now: now)
        }
        return actions
    }

    private mutating func streamMessageRead(_ message: ClusterMessage, at position: StreamPosition, now: UInt64) -> [Action] {
        switch message.payload {
        case .sessionRecord(let record):
            recoveryLog?.sessionRead(ClaimedSession(record: record, origin: message.origin, sequence: message.sequence), atNanoseconds: now)
            return []
        case .restoreClaim(let id, let privateId):
            return claimRead(id: id, privateId: privateId, at: position, now: now)
        case .recoverablePacket(let offset, let selection, let packet, let deliveredByOrigin):
            guard streamCopies.accept(origin: message.origin, sequence: message.sequence) else { return [] }
            let streamed = StreamedPacket(position: position, origin: message.origin, sequence: message.sequence, offset: offset,
                                          selection: selection, packet: packet, deliveredByOrigin: deliveredByOrigin)
            metrics.receivedStreamPackets &+= 1
            recoveryLog?.packetRead(streamed, atNanoseconds: now)
            let observed = observeLive(streamed)
            // Restores see the packet at its place in this node's delivery order.
            var held: [String] = []
            for restoreId in Array(restoreHolds.keys) {
                guard var hold = restoreHolds[restoreId] else { continue }
                hold.delivered(streamed)
                restoreHolds[restoreId] = hold
                if let socketId = hold.socketId { held.append(socketId) }
            }
            if message.origin == configuration.nodeID {
                while let first = ownUndelivered.first, first.sequence <= message.sequence { ownUndelivered.removeFirst() }
                // This node's clients got it at once, while the broker was away.
                if message.sequence <= deliveredAtOnceUpTo { return observed }
            }
            return observed + [.deliver(messages: packet.messages, rooms: Set(selection.rooms), except: Set(selection.exceptRooms),
                                        heldSockets: held, volatile: false)]
        default:
            return []
        }
    }

    /// A claim was read: the log notes it, and if it is one of this node's restores, decides
    /// it and starts its hold here, at the claim's place in the delivery order.
    private mutating func claimRead(id: String, privateId: String, at position: StreamPosition, now: UInt64) -> [Action] {
        let pending = pendingClaims[id]
        let membership = self.membership
        guard let decision = recoveryLog?.claimRead(privateId: privateId, offset: pending?.offset, atNanoseconds: now,
                                                    liveness: { membership.liveness(of: $0) }),
              var pending else { return [] }
        switch decision {
        case .restored, .restoredIfOriginGone, .unknown:
            // On `.unknown` the scan names the session later; until then the hold keeps every
            // packet after the claim.
            var hold = RestoreHold(capacity: recoveryLog?.capacity ?? configuration.maxLoggedPackets, startedAtNanoseconds: now)
            switch decision {
            case .restored(let session, _), .restoredIfOriginGone(let session, _): hold.sessionFound(session, claimedAt: position)
            default: break
            }
            restoreHolds[id] = hold
        case .refused:
            break
        }
        if let waiter = pending.waiter {
            pendingClaims[id] = nil
            return [.resumeClaimWaiter(waiter, (decision, position))]
        }
        pending.outcome = (decision, position)
        pendingClaims[id] = pending
        return []
    }

    // MARK: Restores

    /// A restore of this node is about to append claim `id` (until `deadline`).
    mutating func claimQueued(id: String, offset: String, deadline: UInt64) {
        pendingClaims[id] = PendingClaim(offset: offset, deadline: deadline)
    }

    /// The restore waits for its claim. If the consumer has read it already, the restore
    /// resumes in order, behind the deliveries decided before the claim: one of those made
    /// after the socket is back would reach it besides its replay.
    mutating func waitForClaim(id: String, waiter: Waiter) -> [Action] {
        guard var pending = pendingClaims[id] else { return [.resumeClaimWaiter(waiter, nil)] }
        if let outcome = pending.outcome {
            pendingClaims[id] = nil
            return inOrder([.resumeClaimWaiter(waiter, outcome)])
        }
        pending.waiter = waiter
        pendingClaims[id] = pending
        return []
    }

    /// The fallback scan of a young node named the session (or not: `session` nil ends the restore).
    mutating func scanFinished(id: String, session: ClaimedSession?, claimedAt position: StreamPosition) {
        if let session {
            restoreHolds[id]?.sessionFound(session, claimedAt: position)
        } else {
            restoreHolds.removeValue(forKey: id)
        }
    }

    /// The restore gave up after its claim was decided (the session data did not decode).
    mutating func restoreFailed(id: String) { restoreHolds.removeValue(forKey: id) }

    /// The restored socket connects: its held packets, in stream order.
    mutating func restoredSocketConnecting(_ socketId: String) -> (packets: [[EngineMessage]], actions: [Action]) {
        guard let id = restoreHolds.first(where: { $0.value.socketId == socketId })?.key,
              let hold = restoreHolds.removeValue(forKey: id) else { return ([], []) }
        let actions: [Action] = hold.overflow > 0 ? [.log(.holdOverflow(socketId: socketId, dropped: hold.overflow))] : []
        return (hold.release().map(\.packet.messages), actions)
    }

    mutating func restoreAbandoned(_ socketId: String) {
        guard let id = restoreHolds.first(where: { $0.value.socketId == socketId })?.key else { return }
        restoreHolds.removeValue(forKey: id)
    }

    // MARK: The live consumer's life

    /// Where a restarted consumer resumes: after the last message handled, or (nothing yet)
    /// from when this node started.
    var streamResumePosition: StreamPosition? { lastStreamPosition }

    /// What to compare to tell whether the stream is still the one read (see the consumer).
    var lastStreamRead: (position: StreamPosition, body: ByteBuffer?)? { lastStreamPosition.map { ($0, lastStreamBody) } }

    /// The broker cancelled the live consumer while the connection stayed up.
    mutating func streamConsumerEnded() -> [Action] {
        guard !isClosed else { return [] }
        streamConsumerLost = true
        return [.readinessMayHaveChanged]
    }

    mutating func streamConsumerRestarted() -> [Action] {
        streamConsumerLost = false
        return [.readinessMayHaveChanged]
    }

    /// The stream was deleted and declared again: its offsets start over, and so does reading.
    mutating func streamRecreated() -> [Action] {
        let last = lastStreamPosition?.offset ?? 0
        lastStreamPosition = nil
        lastStreamBody = nil
        streamCopies = ClusterDuplicateFilter()
        return [.log(.streamRecreated(lastOffset: last))]
    }
}
