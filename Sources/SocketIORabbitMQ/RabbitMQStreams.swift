import AMQPClient
import AMQPProtocol
import Logging

/// Declaring a RabbitMQ stream with an explicit replica count (`x-initial-cluster-size`).
public enum RabbitMQStreams {
    /// Declares stream `name` with `arguments` plus `x-initial-cluster-size: replicas`, on a
    /// short-lived channel of its own. RabbitMQ compares that argument with the existing
    /// stream's (406 "inequivalent arg"), and it only matters at creation: a stream declared
    /// before with another count, or none (an older version of this code), keeps its members
    /// and is used as it is, after a warning and a passive declare that checks it exists.
    public static func declare(_ name: String, arguments: AMQPFieldTable, replicas: Int, on connection: AMQPConnection,
                               logger: Logger) async throws {
        var withReplicas = arguments
        withReplicas["x-queue-type"] = .longString("stream")
        withReplicas["x-initial-cluster-size"] = .int32(Int32(clamping: replicas))
        let channel = try await connection.openChannel()
        do {
            _ = try await channel.queueDeclare(name, durable: true, arguments: withReplicas)
            try? await channel.close()
        } catch AMQPError.channelClosedByBroker(let reason) where reason.replyCode == 406 && reason.replyText.contains("x-initial-cluster-size") {
            logger.warning("stream exists with another x-initial-cluster-size; using it as it is (rabbitmq-streams add_replica changes its members)",
                           metadata: ["stream": "\(name)", "broker": "\(reason)"])
            let check = try await connection.openChannel()
            _ = try await check.queueDeclare(name, passive: true)
            try? await check.close()
        }
    }
}
