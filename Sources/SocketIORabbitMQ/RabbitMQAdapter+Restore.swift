import AMQPClient
import EngineIO
import NIOCore
import SocketIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Connection state recovery across nodes: session records, claims and the restore itself.
extension RabbitMQAdapter {
    /// Restores a session from the recovery stream, on any node:
    ///
    /// 1. Appends a claim for `privateId` to the stream (through the outbox).
    /// 2. When this node's live stream consumer reads the claim, the machine decides from what
    ///    it has read (`RecoveryLog`): the latest session record, whether this claim is the
    ///    first after it (a session is restored at most once across all nodes), and the
    ///    packets after `offset` that reach the session's rooms. In the same step it starts a
    ///    hold (`RestoreHold`) for the packets after the claim. A node that started too
    ///    recently to know reads the stream instead, from `maxDisconnectionDuration` ago up
    ///    to the claim (`RecoveryStreamScan`).
    /// 3. Joins and routes the session's rooms; `restoredSocketConnecting` hands the held
    ///    packets over when the socket connects.
    ///
    /// Every node delivered the stream's packets in the stream's order, so the client had
    /// exactly those before its offset: nothing is missed and nothing comes twice.
    public func restoreSession(privateId: String, offset: String) async -> RestoredSession? {
        guard let recoveryStreamName, let recovery = namespace.server.configuration.connectionStateRecovery else { return nil }
        let restoreId = "\(cluster.nodeID)-claim-\(UInt64.random(in: 0...UInt64.max))"
        // At least 10 s: in a storm of restores (a node died, its clients all come back at once)
        // claims queue behind each other in the stream, and a restore given up becomes a new
        // session, which costs more than the wait (clients wait 20 s for a CONNECT by default).
        let deadline = Self.now() &+ Self.nanoseconds(seconds: max(options.requestTimeoutSeconds, Self.minimumClaimWaitSeconds))
        feed { machine, _ in
            machine.claimQueued(id: restoreId, offset: offset, deadline: deadline)
            return []
        }
        armDeadline(deadline)
        send(.restoreClaim(id: restoreId, privateId: privateId), toQueue: recoveryStreamName)
        let claim = await withCheckedContinuation { (continuation: CheckedContinuation<Machine.ClaimOutcome?, Never>) in
            feed { machine, _ in machine.waitForClaim(id: restoreId, waiter: .claim(continuation)) }
        }
        guard let (decision, claimedAt) = claim else {
            logger.warning("session restore: the claim did not come back from the recovery stream in time")
            return nil
        }
        let session: ClaimedSession
        let missed: [StreamedPacket]
        switch decision {
        case .restored(let found, let packets):
            (session, missed) = (found, packets)
        case .restoredIfOriginGone(let found, let packets):
            guard await originIsGone(found.origin) else {
                logger.debug("session not restored", metadata: ["reason": "its node still holds it"])
                scanFinished(restoreId, session: nil, claimedAt: claimedAt)
                return nil
            }
            (session, missed) = (found, packets)
        case .refused(let reason):
            logger.debug("session not restored", metadata: ["reason": "\(reason)"])
            return nil
        case .unknown:
            let scanned = await scanStream(recoveryStreamName, privateId: privateId, offset: offset, claimId: restoreId, recovery: recovery)
            var restorable = false
            if case .restored(let found, _, _)? = scanned {
                let needsCheck = await onLoop { machine, _ in (machine.restoreNeedsOriginCheck(found), []) } ?? true
                restorable = needsCheck ? await originIsGone(found.origin) : true
            }
            guard restorable, case .restored(let found, _, let packets)? = scanned else {
                scanFinished(restoreId, session: nil, claimedAt: claimedAt)
                return nil
            }
            scanFinished(restoreId, session: found, claimedAt: claimedAt)
            (session, missed) = (found, packets)
        }
        guard let data = ClusterValueEncoding.decode(session.record.data) else {
            feed { machine, _ in
                machine.restoreFailed(id: restoreId)
                return []
            }
            return nil
        }
        // Rooms matter for what still travels through node queues (volatile broadcasts and
        // broadcasts with acks): with room-aware routing they are bound before the CONNECT reply.
        addAll(session.record.socketId, rooms: session.rooms)
        await waitUntilRoomsRouted(session.rooms)
        return RestoredSession(
            session: PersistedSession(socketId: session.record.socketId, privateId: session.record.privateId, rooms: Set(session.record.rooms), data: data),
            missedPackets: missed.compactMap { Self.decodePacket($0.packet)?.data })
    }

    /// Whether `origin`, which membership still counts alive, is gone: its node queue has no
    /// consumer (the broker drops a killed process's consumers as soon as its TCP connection
    /// closes) or no longer exists. One question per origin and second, shared by a storm of
    /// restores; a consumer still there is asked about once more half a second later, in case
    /// the broker had not yet seen the connection close. Broker trouble: not gone (no restore).
    func originIsGone(_ origin: String) async -> Bool {
        guard origin != cluster.nodeID else { return false }
        let check = await withLoopState { [weak self] state -> Task<Bool, Never> in
            let now = Self.now()
            if let recent = state.originChecks[origin], now &- recent.at < 1_000_000_000 { return recent.task }
            let task = Task { await self?.askBrokerWhetherGone(origin) ?? false }
            state.originChecks = state.originChecks.filter { now &- $0.value.at < 1_000_000_000 }
            state.originChecks[origin] = (task, now)
            return task
        }
        return await check?.value ?? false
    }

    private func askBrokerWhetherGone(_ origin: String) async -> Bool {
        let queue = "\(options.exchangePrefix)#\(namespace.name)#\(origin)"
        for attempt in 0..<2 {
            if attempt > 0 { try? await Task.sleep(nanoseconds: 500_000_000) }
            do {
                let channel = try await cluster.connection.openChannel()
                defer { Task { try? await channel.close() } }
                if try await channel.queueDeclare(queue, passive: true).consumerCount == 0 { return true }
            } catch AMQPError.channelClosedByBroker(let reason) where reason.replyCode == 404 {
                return true
            } catch {
                logger.warning("session restore: could not ask the broker whether a node is gone", metadata: ["error": "\(error)"])
                return false
            }
        }
        return false
    }

    static let minimumClaimWaitSeconds = 10.0

    /// The hold ends on the loop; `send` gets its packets from there, before any delivery
    /// decided later is issued (and deliveries reach a socket's loop in the order issued).
    public func restoredSocketConnecting(_ socketId: String, sendHeld send: @escaping @Sendable ([[EngineMessage]]) -> Void) {
        feed { machine, _ in machine.restoredSocketConnecting(socketId, waiter: .heldPackets(send)) }
    }

    public func restoreAbandoned(_ socketId: String) {
        feed { machine, _ in
            machine.restoreAbandoned(socketId)
            return []
        }
    }

    private func scanFinished(_ restoreId: String, session: ClaimedSession?, claimedAt: StreamPosition) {
        feed { machine, _ in
            machine.scanFinished(id: restoreId, session: session, claimedAt: claimedAt)
            return []
        }
    }

    /// The fallback of a node that started too recently: reads the stream from
    /// `maxDisconnectionDuration` ago up to the claim, for at most the request timeout.
    private func scanStream(_ streamName: String, privateId: String, offset: String, claimId: String,
                            recovery: ConnectionStateRecovery) async -> RecoveryStreamScan.Outcome? {
        var scan = RecoveryStreamScan(privateId: privateId, offset: offset, claimId: claimId)
        do {
            let channel = try await cluster.connection.openChannel()
            defer { Task { try? await channel.close() } }
            try await channel.basicQos(prefetchCount: 1000)
            let windowSeconds = UInt64(max(1, recovery.maxDisconnectionDuration.nanoseconds / 1_000_000_000))
            let nowSeconds = UInt64(max(0, time(nil)))
            let consumer = try await channel.consume(queue: streamName, noAck: false, arguments: [
                // Connected records are re-written every quarter window: the latest may be that much older.
                "x-stream-offset": .timestamp(nowSeconds - min(nowSeconds, windowSeconds &+ max(windowSeconds / 4, 1) &+ 5)),
            ])
            // A scan that never reaches its claim (the stream lost it) must not hang the restore.
            let timeout = cluster.connection.eventLoop.scheduleTask(in: .nanoseconds(Int64(clamping: Self.nanoseconds(seconds: 2 * max(options.requestTimeoutSeconds, 0.1))))) {
                Task { try? await consumer.cancel() }
            }
            defer { timeout.cancel() }
            var found: RecoveryStreamScan.Outcome?
            _ = try await readStreamMessages(consumer) { message, position in
                found = scan.read(message, at: position)
                return found != nil
            }
            if case .refused(let reason)? = found { logger.debug("session not restored", metadata: ["reason": "\(reason)"]) }
            return found
        } catch {
            logger.warning("session restore failed", metadata: ["error": "\(error)"])
        }
        return nil
    }
}
