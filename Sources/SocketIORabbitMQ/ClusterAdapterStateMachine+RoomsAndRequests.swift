/// Room bindings, join waits, cluster requests and the timers that end them.
extension ClusterAdapterStateMachine {
    // MARK: Rooms (room-aware routing)

    // The adapter changes its local room table and calls these in one critical section, and
    // the operations queue here in that order: the broker sees binds and unbinds in exactly
    // the order the memberships changed, so a leave's unbind never lands after a new join's
    // bind of the same room.

    mutating func roomsJoined(_ socketId: String, rooms: some Sequence<String>) -> [Action] {
        guard configuration.roomAwareRouting else { return [] }
        let before = pendingBindings.count
        for room in rooms {
            if let operation = roomBindings.socketJoined(socketId, room: room) { pendingBindings.append(operation) }
        }
        return pendingBindings.count > before ? [.wakeBindingRunner] : []
    }

    mutating func roomsLeft(_ socketId: String, rooms: some Sequence<String>) -> [Action] {
        guard configuration.roomAwareRouting else { return [] }
        let before = pendingBindings.count
        for room in rooms {
            if let operation = roomBindings.socketLeft(socketId, room: room) { pendingBindings.append(operation) }
        }
        return pendingBindings.count > before ? [.wakeBindingRunner] : []
    }

    /// The next binding change for the broker, in number order.
    mutating func nextBindingOperation() -> RoomBindingTracker.Operation? { pendingBindings.popFirst() }

    /// A join waits until the broker bound its rooms (a broadcast another node publishes
    /// after that reaches this node), but never past `deadline`: a bind that never finishes
    /// must not hang the join.
    mutating func waitForRoutes(_ rooms: Set<String>, waiter: Waiter, deadline: UInt64) -> [Action] {
        guard configuration.roomAwareRouting, !isClosed, let operation = roomBindings.operationToAwait(rooms: rooms) else {
            return [.resumeRouteWaiter(waiter)]
        }
        routeWaiters.append((operation, deadline, waiter))
        return []
    }

    /// Binding operation `number` finished, or failed: a failed bind while the broker is away
    /// releases its joins (recovery re-binds every room with members, `rebindAll`).
    mutating func bindingOperationFinished(_ number: UInt64) -> [Action] {
        roomBindings.finished(number)
        let done = routeWaiters.filter { $0.operation <= number }
        routeWaiters.removeAll { $0.operation <= number }
        return done.map { .resumeRouteWaiter($0.waiter) }
    }

    // MARK: Requests

    /// A fetch-sockets or server-side-emit request: waits for the nodes alive now. With none
    /// it completes at once and nothing is sent.
    mutating func requestStarted(_ kind: ClusterRequestTracker.Kind, waiter: Waiter, deadline: UInt64, now: UInt64,
                                 payload: (ClusterRequestID) -> ClusterPayload) -> [Action] {
        let (request, immediate) = requests.begin(kind, awaiting: membership.liveNodes, deadlineNanoseconds: deadline)
        if let immediate { return [.completeRequest(waiter, immediate)] }
        requestWaiters[request] = waiter
        return send(payload(request), now: now)
    }

    /// A broadcast with acks to the other nodes; `callbacks` gets their counts and acks until
    /// `deadline`.
    mutating func ackBroadcastStarted(callbacks: Waiter, selection: ClusterSocketSelection, flags: ClusterBroadcastFlags,
                                      packet: EncodedPacket, deadline: UInt64, now: UInt64) -> [Action] {
        let (request, _) = requests.begin(.broadcastWithAck, awaiting: membership.liveNodes, deadlineNanoseconds: deadline)
        requestWaiters[request] = callbacks
        return send(.broadcast(selection: selection, flags: flags, packet: packet, ackRequest: request),
                    routingKeys: RoomRoutingKeys.keys(forBroadcastTo: selection.rooms, roomAware: configuration.roomAwareRouting), now: now)
    }

    /// A response reached this node's queue.
    mutating func responseRead(_ payload: ClusterPayload, from node: String) -> [Action] {
        let outcome = requests.receive(payload, from: node)
        switch outcome {
        case .completed(let completion):
            return requestWaiters.removeValue(forKey: completion.request).map { [.completeRequest($0, completion)] } ?? []
        case .clientCount(let count):
            guard case .broadcastClientCount(let request, _) = payload, let callbacks = requestWaiters[request] else { return [] }
            return [.forwardClientCount(callbacks, count)]
        case .ack(let packet):
            guard case .broadcastAck(let request, _) = payload, let callbacks = requestWaiters[request] else { return [] }
            return [.forwardAck(callbacks, packet)]
        case .ignored, .recorded:
            return []
        }
    }

    /// `node` left (goodbye or heartbeat timeout): requests waiting only for it finish.
    mutating func nodeLeft(_ node: String) -> [Action] {
        requests.nodeLeft(node).compactMap { completion in
            requestWaiters.removeValue(forKey: completion.request).map { .completeRequest($0, completion) }
        }
    }

    // MARK: Timers

    /// A deadline timer fired (requests, join waits, claims): whatever is due ends now. A
    /// broadcast with acks ends quietly: late acks no longer find their callback.
    mutating func deadlinesPassed(now: UInt64) -> [Action] {
        var actions: [Action] = []
        for completion in requests.expire(atNanoseconds: now) {
            guard let waiter = requestWaiters.removeValue(forKey: completion.request), completion.kind != .broadcastWithAck else { continue }
            actions.append(.completeRequest(waiter, completion))
        }
        let dueRoutes = routeWaiters.filter { $0.deadline <= now }
        routeWaiters.removeAll { $0.deadline <= now }
        actions += dueRoutes.map { .resumeRouteWaiter($0.waiter) }
        let dueDrains = drainWaiters.filter { $0.deadline <= now }
        drainWaiters.removeAll { $0.deadline <= now }
        actions += dueDrains.map { .resumeDrainWaiter($0.waiter) }
        for (id, claim) in pendingClaims where claim.deadline <= now {
            pendingClaims.removeValue(forKey: id)
            restoreHolds.removeValue(forKey: id)
            if let waiter = claim.waiter { actions.append(.resumeClaimWaiter(waiter, nil)) }
        }
        return actions
    }

    /// Every heartbeat interval: forget long-silent origins and stale holds; drop peers silent
    /// past the heartbeat timeout (unless our own connection is down: then silence proves
    /// nothing), finish the requests that waited only for them; send a heartbeat.
    mutating func heartbeatTick(now: UInt64) -> [Action] {
        duplicates.forgetSilentOrigins(atNanoseconds: now)
        if !restoreHolds.isEmpty {
            let lifetime = configuration.restoreHoldLifetimeNanoseconds
            restoreHolds = restoreHolds.filter { now &- $0.value.startedAtNanoseconds < lifetime }
        }
        guard outbox.isConnected else { return [] }
        var actions: [Action] = []
        for node in membership.expire(atNanoseconds: now) { actions += nodeLeft(node) }
        actions += send(.heartbeat(isInitial: false), now: now)
        actions += sessionRecordsDue(now: now)
        return actions
    }
}
