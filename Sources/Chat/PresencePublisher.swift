import ChatCore
import Logging
import NIOConcurrencyHelpers
import SocketIO

/// Presence for the chat: membership changes mark a room; one update per room per
/// `interval` reads the members on every node (fetchSockets) and broadcasts them once.
/// The last lists read are kept for `interval` so that a crowd joining at once gets its
/// welcome snapshots without one cluster-wide lookup per arrival.
final class PresencePublisher: Sendable {
    private struct State {
        var schedule = PresenceSchedule()
        var recent: [String: (presence: RoomPresence, readAt: ContinuousClock.Instant)] = [:]
    }

    private let io: SocketIOServer
    private let interval: Duration
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    init(io: SocketIOServer, interval: Duration, logger: Logger) {
        self.io = io
        self.interval = interval
        self.logger = logger
    }

    /// Someone joined, left or was renamed in `room`: its members get an update within `interval`.
    func roomChanged(_ room: String) {
        guard state.withLockedValue({ $0.schedule.roomChanged(room) }) else { return }
        Task {
            try? await Task.sleep(for: interval)
            state.withLockedValue { $0.schedule.updateStarting(room) }
            let presence = await read(room)
            io.to(room).emit("presence", Self.json(presence))
        }
    }

    /// The room's presence, from a read younger than `interval` when there is one.
    func presence(of room: String) async -> RoomPresence {
        let now = ContinuousClock.now
        if let recent = state.withLockedValue({ $0.recent[room] }), now - recent.readAt < interval {
            return recent.presence
        }
        return await read(room)
    }

    private func read(_ room: String) async -> RoomPresence {
        let readAt = ContinuousClock.now
        let presence: RoomPresence
        do {
            let sockets = try await io.in(room).fetchSockets()
            presence = RoomPresence(room: room, names: sockets.compactMap { ChatProfile($0.data)?.name })
        } catch {
            logger.warning("presence: not every node answered", metadata: ["room": "\(room)", "error": "\(error)"])
            presence = RoomPresence(room: room, names: [])
        }
        state.withLockedValue { state in
            // Forget empty rooms: every guest's private room would otherwise stay here.
            if presence.count == 0 {
                state.recent[room] = nil
            } else {
                state.recent[room] = (presence, readAt)
            }
        }
        return presence
    }

    static func json(_ presence: RoomPresence) -> JSONValue {
        [
            "room": .string(presence.room),
            "members": .array(presence.names.map(JSONValue.string)),
            "count": .number(String(presence.count)),
        ]
    }
}
