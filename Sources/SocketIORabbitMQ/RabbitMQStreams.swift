import AMQPClient
import AMQPProtocol
import Logging

/// Declaring a RabbitMQ stream with an explicit replica count (`x-initial-cluster-size`).
public enum RabbitMQStreams {
    /// Declares stream `name` with `arguments` plus `x-initial-cluster-size: replicas`, on a
    /// short-lived channel of its own. RabbitMQ compares the arguments with the existing
    /// stream's (406 "inequivalent arg"). A stream declared before with other arguments (an
    /// older version of this code, another replica count or retention) keeps them and is used
    /// as it is, after a warning naming the argument and a passive declare that checks it
    /// exists: its members change with `rabbitmq-streams add_replica`, its retention with a
    /// policy (docs/CLUSTER.md).
    public static func declare(_ name: String, arguments: AMQPFieldTable, replicas: Int, on connection: AMQPConnection,
                               logger: Logger) async throws {
        var withReplicas = arguments
        withReplicas["x-queue-type"] = .longString("stream")
        withReplicas["x-initial-cluster-size"] = .int32(Int32(clamping: replicas))
        let channel = try await connection.openChannel()
        do {
            _ = try await channel.queueDeclare(name, durable: true, arguments: withReplicas)
            try? await channel.close()
        } catch AMQPError.channelClosedByBroker(let reason) where reason.replyCode == 406 && reason.replyText.contains("inequivalent arg") {
            logger.warning("stream exists with other arguments; using it as it is", metadata: ["stream": "\(name)", "broker": "\(reason)"])
            let check = try await connection.openChannel()
            _ = try await check.queueDeclare(name, passive: true)
            try? await check.close()
        }
    }
}
