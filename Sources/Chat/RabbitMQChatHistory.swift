import AMQPClient
import AMQPProtocol
import ChatCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Room history shared by every node through a RabbitMQ stream (`chat.history`).
///
/// Each accepted message is published to the stream (with confirms); every node consumes the
/// whole stream from its start and keeps the last `historyLength` messages per room in memory.
/// So history is the same on every node, and a restarted node rebuilds it from the stream.
/// The stream is bounded by age and size, far above what 100 messages per room need.
/// A replay after reconnection delivers messages already seen: `RoomHistories` drops them by id.
final class RabbitMQChatHistory: ChatHistoryStore {
    static let streamName = "chat.history"

    private let local: InMemoryChatHistory
    private let limits: ChatLimits
    private let configuration: AMQPConnectionConfiguration
    private let logger: Logger
    private let pending: AsyncStream<ChatMessage>
    private let pendingInput: AsyncStream<ChatMessage>.Continuation
    private let state = NIOLockedValueBox(State())
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)

    private struct State {
        var connected = false
        var replayed = false
        var lastError: String?
    }

    /// `maxUnpublished`: messages waiting for the broker beyond this are dropped from the
    /// shared history (they were still broadcast live); the count is logged.
    init(limits: ChatLimits, configuration: AMQPConnectionConfiguration, logger: Logger, maxUnpublished: Int = 10_000) {
        self.local = InMemoryChatHistory(limits: limits)
        self.limits = limits
        self.configuration = configuration
        self.logger = logger
        (pending, pendingInput) = AsyncStream.makeStream(of: ChatMessage.self, bufferingPolicy: .bufferingOldest(maxUnpublished))
    }

    func append(_ message: ChatMessage) {
        local.append(message)
        if case .dropped = pendingInput.yield(message) {
            logger.warning("history: broker backlog full, a message stays out of the shared history", metadata: ["id": "\(message.id)"])
        }
    }

    func messages(in room: String) -> [ChatMessage] { local.messages(in: room) }
    var activeRooms: [String] { local.activeRooms }

    var isConnected: Bool { state.withLockedValue { $0.connected } }
    var detail: String {
        state.withLockedValue { state in
            state.connected ? "history stream connected" : "history stream: \(state.lastError ?? "connecting")"
        }
    }

    func start() {
        let task = Task { await self.run() }
        self.task.withLockedValue { $0 = task }
    }

    func close() async {
        pendingInput.finish()
        let task = self.task.withLockedValue { $0 }
        // Give queued messages a moment to reach the broker, then stop.
        try? await Task.sleep(nanoseconds: 500_000_000)
        task?.cancel()
        await task?.value
    }

    /// A JSON entry within the limits is at most this large (every character escaped as \uXXXX).
    static func maxEntryBytes(_ limits: ChatLimits) -> Int {
        6 * (limits.maxMessageBytes + limits.maxNameBytes + limits.maxRoomBytes + 128) + 256
    }

    private func run() async {
        var reportedFailure = false
        while !Task.isCancelled {
            do {
                let connection = try await AMQPConnection.connect(configuration, logger: logger)
                state.withLockedValue { $0.connected = true; $0.lastError = nil }
                logger.info("history: connected to RabbitMQ")
                try await serve(connection)
                return
            } catch {
                state.withLockedValue { $0.connected = false; $0.lastError = "\(error)" }
                if !reportedFailure {
                    logger.error("history: RabbitMQ is not reachable, retrying every 2 s (not ready meanwhile)", metadata: ["error": "\(error)"])
                    reportedFailure = true
                }
                try? await Task.sleep(nanoseconds: 2_000_000_000)
            }
        }
    }

    /// Runs until cancelled. The connection recovers by itself; consumers and topology come
    /// back with it, so only the publish loop needs to wait out an outage.
    private func serve(_ connection: AMQPConnection) async throws {
        let channel = try await connection.openChannel()
        _ = try await channel.queueDeclare(
            Self.streamName, durable: true,
            arguments: ["x-queue-type": .longString("stream"), "x-max-age": .longString("7D"),
                        "x-max-length-bytes": .int64(200_000_000)]
        )
        try await channel.basicQos(prefetchCount: 500)
        let consumer = try await channel.consume(
            queue: Self.streamName, arguments: ["x-stream-offset": .longString("first")]
        )
        let publishChannel = try await connection.openChannel()
        try await publishChannel.confirmSelect()

        let states = connection.stateChanges
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                for await change in states {
                    switch change {
                    case .connected, .recovered: state.withLockedValue { $0.connected = true; $0.lastError = nil }
                    case .closed: state.withLockedValue { $0.connected = false; $0.lastError = "closed" }
                    // Another entity than ours may be the one refused; if our consumer was, its
                    // sequence ends and the consumer task below reports the error.
                    case .topologyRecoveryFailed(let failure): state.withLockedValue { $0.lastError = "\(failure)" }
                    default: state.withLockedValue { $0.connected = false; $0.lastError = "\(change)" }
                    }
                }
            }
            group.addTask { [self] in
                do {
                    for try await delivery in consumer {
                        // The stream is input too: an entry over this node's limits (written by
                        // another version, or another publisher) is skipped, not replayed to newcomers.
                        if delivery.body.readableBytes <= Self.maxEntryBytes(limits),
                           let message = try? JSONDecoder().decode(ChatMessage.self, from: Data(delivery.body.readableBytesView)),
                           ChatRules.fitsLimits(message, limits: limits) {
                            local.append(message)
                        }
                        try? await delivery.ack()
                    }
                } catch {
                    logger.warning("history: stream consumer ended", metadata: ["error": "\(error)"])
                }
            }
            group.addTask { [self] in
                let encoder = JSONEncoder()
                for await message in pending {
                    guard let body = try? encoder.encode(message) else { continue }
                    // Retry until the broker has it: an outage only delays the shared history.
                    while !Task.isCancelled {
                        do {
                            try await publishChannel.publish(
                                ByteBuffer(bytes: body), routingKey: Self.streamName,
                                properties: AMQPBasicProperties(contentType: "application/json", deliveryMode: 2)
                            )
                            break
                        } catch {
                            try? await Task.sleep(nanoseconds: 500_000_000)
                        }
                    }
                }
            }
            await group.next()
            group.cancelAll()
        }
        try? await connection.close()
    }
}
