import ChatCore
import Logging
import SocketIO

/// What the chat needs from the world outside this process: how broadcasts reach other
/// nodes (the Socket.IO adapter), where history lives, and whether the node is ready.
struct ChatBackend: Sendable {
    let history: any ChatHistoryStore
    let isReady: @Sendable () -> Bool
    let readinessDetail: @Sendable () -> String
    let start: @Sendable () async -> Void
    let close: @Sendable () async -> Void

    static func make(
        _ kind: ChatCommand.AdapterKind, amqpURL: String, nodeName: String, limits: ChatLimits,
        configuration: inout SocketIOServerConfiguration, logger: Logger
    ) throws -> ChatBackend {
        switch kind {
        case .memory:
            return ChatBackend(
                history: InMemoryChatHistory(limits: limits),
                isReady: { true },
                readinessDetail: { "single node, in-memory adapter" },
                start: {},
                close: {}
            )
        case .rabbitmq:
            throw ChatBackendError.rabbitMQUnavailable
        }
    }
}

enum ChatBackendError: Error, CustomStringConvertible {
    case rabbitMQUnavailable

    var description: String {
        switch self {
        case .rabbitMQUnavailable: "this build has no RabbitMQ adapter yet; start with --adapter memory"
        }
    }
}
