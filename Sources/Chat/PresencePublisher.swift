import ChatCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketIO

/// Presence for the chat: membership changes mark a room; one update per room per
/// `interval` asks every node for its part (at most 100 names and a count) and broadcasts the
/// result once. The last lists read are kept for `interval` so that a crowd joining at once gets its
/// welcome snapshots without one cluster-wide lookup per arrival.
final class PresencePublisher: Sendable {
    private struct State {
        var schedule = PresenceSchedule()
        var recent: [String: (presence: RoomPresence, readAt: ContinuousClock.Instant)] = [:]
        /// `recent` is swept of reads older than `interval` (never used again) when it reaches
        /// this size: without it every one-member room stayed here for good, about 130 bytes
        /// per idle connection when each is alone in its room.
        var sweepAt = State.minimumSweepSize
        static let minimumSweepSize = 64
        /// One lookup per room at a time: a crowd arriving together shares it.
        var reading: [String: Task<RoomPresence, Never>] = [:]
    }

    private let io: SocketIOServer
    private let limits: ChatLimits
    private let interval: Duration
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    /// The node's adapter is the in-memory one: every member is local, so presence is read
    /// here without asking other nodes, and an update is a timer on an event loop instead of
    /// a `Task` that sleeps (a connect storm spent a quarter of its CPU on those tasks).
    private let isLocal: Bool

    /// The server-side event other nodes answer with their part of a room's presence.
    static let queryEvent = "chat-presence"

    init(io: SocketIOServer, limits: ChatLimits = ChatLimits(), interval: Duration, logger: Logger) {
        self.io = io
        self.limits = limits
        self.interval = interval
        self.logger = logger
        self.isLocal = io.sockets.adapter is InMemoryAdapter
        io.sockets.onServerSideEmit(Self.queryEvent) { [self] args, ack in
            guard let room = args.first?.stringValue else { return }
            // Only rooms within the limits can have members: no lookup for anything longer.
            let presence = room.utf8.count <= limits.maxRoomBytes ? localPresence(room) : RoomPresence(room: "", names: [])
            ack?(Self.json(presence))
        }
    }

    /// Someone joined, left or was renamed in `room`: its members get an update within
    /// `interval`. `eventLoop` (the changed socket's) runs it when every member is local.
    func roomChanged(_ room: String, on eventLoop: (any EventLoop)? = nil) {
        guard state.withLockedValue({ $0.schedule.roomChanged(room) }) else { return }
        if isLocal, let eventLoop {
            eventLoop.scheduleTask(in: Self.timeAmount(interval)) { [self] in
                state.withLockedValue { $0.schedule.updateStarting(room) }
                io.to(room).emit("presence", Self.json(readLocally(room)))
            }
            return
        }
        Task {
            try? await Task.sleep(for: interval)
            state.withLockedValue { $0.schedule.updateStarting(room) }
            let presence = await read(room)
            io.to(room).emit("presence", Self.json(presence))
        }
    }

    /// The room's presence without waiting, when that needs no other node: a read younger
    /// than `interval`, or with every member local a read made now. Nil: use `presence(of:)`.
    func presenceNow(of room: String) -> RoomPresence? {
        let now = ContinuousClock.now
        let fresh = state.withLockedValue { state in
            state.recent[room].flatMap { now - $0.readAt < interval ? $0.presence : nil }
        }
        if let fresh { return fresh }
        return isLocal ? readLocally(room) : nil
    }

    private func readLocally(_ room: String) -> RoomPresence {
        let readAt = ContinuousClock.now
        let presence = localPresence(room)
        state.withLockedValue { remember(presence, readAt: readAt, in: &$0) }
        return presence
    }

    /// The room's presence, from a read younger than `interval` or the one under way, if any.
    func presence(of room: String) async -> RoomPresence {
        let now = ContinuousClock.now
        let task = state.withLockedValue { state -> Task<RoomPresence, Never>? in
            if let recent = state.recent[room], now - recent.readAt < interval { return nil }
            if let running = state.reading[room] { return running }
            let started = Task { await self.read(room) }
            state.reading[room] = started
            return started
        }
        guard let task else { return state.withLockedValue { $0.recent[room]?.presence } ?? RoomPresence(room: room, names: []) }
        return await task.value
    }

    /// Every node answers with at most 100 names and its count, not with whole socket
    /// descriptions (fetchSockets): for a 9,000-member room that is a few KB per node
    /// instead of megabytes per lookup.
    private func read(_ room: String) async -> RoomPresence {
        let readAt = ContinuousClock.now
        var parts = [localPresence(room)]
        do {
            let answers = try await io.sockets.serverSideEmitWithAck(Self.queryEvent, [.string(room)])
            parts += answers.compactMap { remotePresence(from: $0, room: room) }
        } catch {
            logger.warning("presence: not every node answered", metadata: ["room": "\(room)", "error": "\(error)"])
        }
        let presence = RoomPresence(room: room, parts: parts)
        state.withLockedValue { state in
            state.reading[room] = nil
            remember(presence, readAt: readAt, in: &state)
        }
        return presence
    }

    private func remember(_ presence: RoomPresence, readAt: ContinuousClock.Instant, in state: inout State) {
        // Forget empty rooms: every guest's private room would otherwise stay here.
        if presence.count == 0 {
            state.recent[presence.room] = nil
        } else {
            state.recent[presence.room] = (presence, readAt)
        }
        if state.recent.count >= state.sweepAt {
            let now = ContinuousClock.now
            state.recent = state.recent.filter { now - $0.value.readAt < interval }
            // Twice what is left: sweeping stays linear in the reads made.
            state.sweepAt = max(State.minimumSweepSize, state.recent.count * 2)
        }
    }

    /// `interval` for an event loop timer (clamped: a configured interval never traps).
    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let (nanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .nanoseconds(seconds < 0 ? 0 : .max) }
        let (total, overflowSum) = nanos.addingReportingOverflow(attoseconds / 1_000_000_000)
        return .nanoseconds(overflowSum ? .max : max(total, 0))
    }

    private func localPresence(_ room: String) -> RoomPresence {
        let namespace = io.sockets
        let names = namespace.adapter.sockets(in: [room]).compactMap { namespace.localSocket(id: $0) }
            .compactMap { ChatProfile($0.data)?.name }
        return RoomPresence(room: room, names: names)
    }

    /// Another node's answer, read as hostile: at most `RoomPresence.defaultLimit` names, each
    /// within the name limits, and a count clamped by `RoomPresence` (a number too large for
    /// an Int counts as the maximum rather than dropping the answer).
    private func remotePresence(from answer: JSONValue, room: String) -> RoomPresence? {
        guard case .array(let names)? = answer["members"], let countText = answer["count"] else { return nil }
        let count: Int
        if let exact = countText.intValue {
            count = exact
        } else if let approximate = countText.doubleValue, !approximate.isNaN {
            count = approximate > 0 ? RoomPresence.maxCount : 0
        } else {
            return nil
        }
        let plausible = names.prefix(RoomPresence.defaultLimit).compactMap(\.stringValue)
            .filter { $0.utf8.count <= limits.maxNameBytes }
        return RoomPresence(room: room, names: plausible, count: count)
    }

    static func json(_ presence: RoomPresence) -> JSONValue {
        [
            "room": .string(presence.room),
            "members": .array(presence.names.map(JSONValue.string)),
            "count": .number(String(presence.count)),
        ]
    }
}
