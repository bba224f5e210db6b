import AMQPClient
import AMQPProtocol
import ChatCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketIORabbitMQ

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
        /// The channel the publisher uses, while a connection serves.
        var publishChannel: AMQPChannel?
        /// The publisher could not get a confirm in time: the connection is replaced.
        var publishStalled = false
    }

    /// A publish without a confirm after this long counts as stuck (in a RabbitMQ cluster a
    /// channel can keep one unconfirmed for good when the stream's leader dies).
    static let confirmDeadlineNanoseconds: UInt64 = 5_000_000_000
    private let streamReplicas: Int

    /// `maxUnpublished`: messages waiting for the broker beyond this are dropped from the
    /// shared history (they were still broadcast live); the count is logged.
    /// `streamReplicas`: the stream's `x-initial-cluster-size` when this node declares it first.
    init(limits: ChatLimits, configuration: AMQPConnectionConfiguration, logger: Logger, maxUnpublished: Int = 10_000,
         streamReplicas: Int = 3) {
        self.local = InMemoryChatHistory(limits: limits)
        self.streamReplicas = min(max(streamReplicas, 1), 255)
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
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.run() }
                group.addTask { await self.publishPending() }
            }
        }
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

    /// Connects and serves; whenever serving ends (the consumer was cancelled or refused,
    /// the publisher got stuck, the connection closed) the end is logged, the node is not
    /// ready, and it starts over with back-off (0.5 s doubling to 5 s) on a new connection:
    /// in a RabbitMQ cluster a stream consumer is refused for a while when its replica moves
    /// (406 "does not have a replica on the local node"). The consumer reads from the
    /// stream's start again; `RoomHistories` drops what it has already.
    private func run() async {
        var attempt = 0
        while !Task.isCancelled {
            var connection: AMQPConnection?
            var reason: String
            do {
                let opened = try await AMQPConnection.connect(configuration, logger: logger)
                connection = opened
                reason = try await serve(opened, onServing: { attempt = 0 })
            } catch {
                reason = "\(error)"
            }
            state.withLockedValue { $0.connected = false; $0.lastError = reason; $0.publishChannel = nil; $0.publishStalled = false }
            try? await connection?.close()
            guard !Task.isCancelled else { return }
            attempt += 1
            let delay = min(500_000_000 << UInt64(min(attempt - 1, 4)), 5_000_000_000)
            logger.error("history: stream connection ended; restarting (not ready meanwhile)", metadata: [
                "reason": "\(reason)", "attempt": "\(attempt)", "retryInSeconds": "\(Double(delay) / 1e9)",
            ])
            try? await Task.sleep(nanoseconds: UInt64(delay))
        }
    }

    /// Serves until a part ends; returns why. The connection recovers by itself from a
    /// dropped socket, and its consumers and topology come back with it.
    private func serve(_ connection: AMQPConnection, onServing: () -> Void) async throws -> String {
        try await RabbitMQStreams.declare(Self.streamName, arguments: ["x-max-age": .longString("7D"), "x-max-length-bytes": .int64(200_000_000)],
                                          replicas: streamReplicas, on: connection, logger: logger)
        let channel = try await connection.openChannel()
        try await channel.basicQos(prefetchCount: 500)
        let consumer = try await channel.consume(
            queue: Self.streamName, arguments: ["x-stream-offset": .longString("first")]
        )
        let publishChannel = try await connection.openChannel()
        try await publishChannel.confirmSelect()
        state.withLockedValue { $0.connected = true; $0.lastError = nil; $0.publishChannel = publishChannel }
        logger.info("history: connected to RabbitMQ")
        onServing()

        let states = connection.stateChanges
        return await withTaskGroup(of: String.self) { group in
            group.addTask { [self] in
                for await change in states {
                    switch change {
                    case .connected, .recovered: state.withLockedValue { $0.connected = true; $0.lastError = nil }
                    case .closed: return "connection closed"
                    // Another entity than ours may be the one refused; if our consumer was, its
                    // sequence ends and the consumer task below reports the error.
                    case .topologyRecoveryFailed(let failure): state.withLockedValue { $0.lastError = "\(failure)" }
                    default: state.withLockedValue { $0.connected = false; $0.lastError = "\(change)" }
                    }
                }
                return "connection closed"
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
                    return "stream consumer ended"
                } catch {
                    return "stream consumer ended: \(error)"
                }
            }
            group.addTask { [self] in
                // The publisher runs for the node's whole life; it flags a stuck channel here.
                while !Task.isCancelled {
                    if state.withLockedValue({ $0.publishStalled }) { return "publish not confirmed within 5 s" }
                    try? await Task.sleep(nanoseconds: 250_000_000)
                }
                return "stopped"
            }
            let reason = await group.next() ?? "stopped"
            group.cancelAll()
            return reason
        }
    }

    /// Publishes every accepted message to the stream, in order, for the node's whole life:
    /// an outage or a stuck channel only delays the shared history. A publish without a
    /// confirm in time is retried on the next connection (readers drop copies by id).
    private func publishPending() async {
        let encoder = JSONEncoder()
        for await message in pending {
            guard let body = try? encoder.encode(message) else { continue }
            while !Task.isCancelled {
                guard let channel = state.withLockedValue({ $0.publishStalled ? nil : $0.publishChannel }) else {
                    try? await Task.sleep(nanoseconds: 200_000_000)
                    continue
                }
                let outcome = await Self.publish(ByteBuffer(bytes: body), on: channel)
                if outcome == .confirmed { break }
                if outcome == .timedOut { state.withLockedValue { $0.publishStalled = true } }
                try? await Task.sleep(nanoseconds: 500_000_000)
            }
        }
    }

    private enum PublishOutcome: Sendable { case confirmed, failed, timedOut }

    /// One publish and its confirm, or `.timedOut` after `confirmDeadlineNanoseconds` (the
    /// publish is left behind; closing its connection ends it).
    private static func publish(_ body: ByteBuffer, on channel: AMQPChannel) async -> PublishOutcome {
        do {
            try await channel.publish(body, routingKey: streamName,
                                      properties: AMQPBasicProperties(contentType: "application/json", deliveryMode: 2),
                                      confirmDeadline: .now() + .nanoseconds(Int64(confirmDeadlineNanoseconds)))
            return .confirmed
        } catch AMQPError.confirmTimedOut {
            return .timedOut
        } catch {
            return .failed
        }
    }
}
