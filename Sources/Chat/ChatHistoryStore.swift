import ChatCore
import NIOConcurrencyHelpers

/// Where the last messages of each room are kept. `append` returns at once: replicating a
/// message to other nodes (if the store does) happens in the background.
protocol ChatHistoryStore: Sendable {
    func append(_ message: ChatMessage)
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

    func append(_ message: ChatMessage) {
        histories.withLockedValue { _ = $0.append(message) }
    }

    func messages(in room: String) -> [ChatMessage] {
        histories.withLockedValue { $0.messages(in: room) }
    }

    var activeRooms: [String] {
        histories.withLockedValue { $0.activeRooms }
    }
}
