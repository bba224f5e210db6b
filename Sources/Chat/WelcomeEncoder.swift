import ChatCore
import NIOConcurrencyHelpers
import SocketIO

/// The part of a room's welcome that every newcomer receives alike (the room's history and
/// the rooms list), encoded once per change of the room and shared by reference: a crowd of
/// N arriving in a room with a full history costs one encoding of it, not N, and the N
/// welcomes waiting to be written hold one copy of it, not N.
final class WelcomeEncoder: Sendable {
    private let history: any ChatHistoryStore
    private let cache = NIOLockedValueBox(SharedWelcomeCache<SharedEventFields>())

    init(history: any ChatHistoryStore) {
        self.history = history
    }

    /// `"rooms":[...],"history":[...]` for `room`, from the cache when nothing changed.
    func sharedFields(room: String, rooms: [String]) -> SharedEventFields {
        let messages = history.messages(in: room)
        if messages.isEmpty {
            // Nothing worth sharing: a few bytes of rooms list, and a crowd of newcomers each in
            // a room of its own (a connect storm) would only churn the cache, evicting by a scan
            // under its lock once per arrival (3-4% of a storm's server CPU in a profile).
            return Self.encode(rooms: rooms, messages: [])
        }
        let fingerprint = WelcomeFingerprint(history: messages, rooms: rooms)
        // Encoded under the lock: newcomers on other loops wait for this one encoding
        // instead of each making their own.
        return cache.withLockedValue { cache in
            cache.encoded(room: room, fingerprint: fingerprint) { Self.encode(rooms: rooms, messages: messages) }
        }
    }

    private static func encode(rooms: [String], messages: [ChatMessage]) -> SharedEventFields {
        let fields: JSONObject = [
            "rooms": .array(rooms.map(JSONValue.string)),
            "history": .array(messages.map(\.json)),
        ]
        // Chat values are text only, and only binary values cannot be shared: `none`
        // is never used, but an impossible case must not trap either.
        return SharedEventFields(fields) ?? .none
    }
}
