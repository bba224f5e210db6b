import ChatCore
import NIOConcurrencyHelpers
import SocketIORabbitMQ

/// Room history on a RabbitMQ cluster, fed from the cluster adapter's recovery stream.
///
/// Chat messages are recoverable events: the adapter publishes each once to the namespace's
/// replicated stream and every node reads it back from there. This store observes that
/// stream (`RabbitMQCluster.observeRecoverableEvents`) and keeps the last messages of each
/// room: a starting node replays what the stream holds before it accepts clients, then
/// follows it live. So every node has the same history, in the same order, from the one
/// pipeline and the one AMQP connection that carry the messages themselves; how far back it
/// reaches is the stream's retention (set by the chat: `ChatNode`).
final class ClusterChatHistory: ChatHistoryStore {
    private let histories: NIOLockedValueBox<RoomHistories>
    private let limits: ChatLimits

    init(limits: ChatLimits, cluster: RabbitMQCluster) {
        self.limits = limits
        self.histories = NIOLockedValueBox(RoomHistories(limits: limits))
        cluster.observeRecoverableEvents(in: "/") { [weak self] event in self?.observe(event) }
    }

    /// Nothing to do: the message comes back through the stream, at its place in the
    /// cluster's order, like everybody else's.
    func messageSent(_ message: ChatMessage) {}

    func messages(in room: String) -> [ChatMessage] { histories.withLockedValue { $0.messages(in: room) } }
    var activeRooms: [String] { histories.withLockedValue { $0.activeRooms } }

    private func observe(_ event: RecoverableEvent) {
        let object = event.arguments.first
        guard let message = ChatRules.historyEntry(eventName: event.eventName, rooms: event.rooms, exceptRooms: event.exceptRooms,
                                                   limits: limits, field: { object?[$0]?.stringValue }) else { return }
        histories.withLockedValue { _ = $0.append(message) }
    }
}
