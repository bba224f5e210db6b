import ChatCore
import NIOConcurrencyHelpers

/// Where the last messages of each room are kept.
protocol ChatHistoryStore: Sendable {
    /// A message this node just broadcast (returns at once).
    func messageSent(_ message: ChatMessage)
    func messages(in room: String) -> [ChatMessage]
    /// Rooms with history, most recently active first.
    var activeRooms: [String] { get }
}

/// History of this process only (`--adapter memory`): lost when the node stops.
final class InMemoryChatHistory: ChatHistoryStore {
    private let histories: NIOLockedValueBox<RoomHistories>

    init(limits: ChatLimits) {
        histories = NIOLockedValueBox(RoomHistories(limits: limits))
    }

    func messageSent(_ message: ChatMessage) {
        histories.withLockedValue { _ = $0.append(message) }
    }

    func messages(in room: String) -> [ChatMessage] {
        histories.withLockedValue { $0.messages(in: room) }
    }

    var activeRooms: [String] {
        histories.withLockedValue { $0.activeRooms }
    }
}
