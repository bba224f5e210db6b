import ArgumentParser
import EngineIO
import Logging
import NIOCore
import NIOHTTP1
import SocketIO
import SocketIONIO
import SocketIORabbitMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `sio-cluster-node`: one Socket.IO node clustered over RabbitMQ, with the handlers the
/// multi-node tests in pytests/cluster use. Prints `listening on http://127.0.0.1:PORT` once
/// it accepts connections and stops cleanly on SIGTERM/SIGINT.
@main
struct ClusterNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sio-cluster-node", abstract: "A Socket.IO node clustered over RabbitMQ (for tests).")

    @Option(help: "HTTP port on 127.0.0.1 (0 picks a free one).") var port: Int = 3000
    @Option(name: .customLong("amqp-url"), help: "AMQP URL; repeat for several brokers.") var amqpURLs: [String] = ["amqp://guest:guest@127.0.0.1:5672"]
    @Option(name: .customLong("node-name"), help: "Name shown in fetch-sockets answers and logs.") var nodeName: String = "node"
    @Option(name: .customLong("exchange-prefix")) var exchangePrefix: String = "socket.io"
    @Option(name: .customLong("heartbeat-interval"), help: "Seconds.") var heartbeatInterval: Double = 5
    @Option(name: .customLong("heartbeat-timeout"), help: "Seconds.") var heartbeatTimeout: Double = 10
    @Option(name: .customLong("request-timeout"), help: "Seconds.") var requestTimeout: Double = 5
    @Option(name: .customLong("queue-expires-ms")) var queueExpiresMilliseconds: Int = 30_000
    @Option(name: .customLong("outbox-capacity")) var outboxCapacity: Int = 10_000
    @Flag(name: .customLong("reject-new"), help: "Outbox overflow policy: refuse new messages instead of dropping the oldest.") var rejectNew = false
    @Flag(name: .customLong("room-aware"), help: "Bind per room and route room broadcasts by room.") var roomAware = false
    @Flag(name: .customLong("no-recovery"), help: "No connection state recovery: broadcasts travel through node queues, not the recovery stream.")
    var noRecovery = false
    @Option(name: .customLong("answer-chat-presence"),
            help: "Play a hostile peer of the chat: answer its presence queries (server-side emit 'chat-presence') with this JSON.")
    var chatPresenceAnswer: String?

    func run() async throws {
        var logger = Logger(label: "sio-cluster-node.\(nodeName)")
        logger.logLevel = .info
        var options = RabbitMQAdapterOptions()
        options.exchangePrefix = exchangePrefix
        options.heartbeatIntervalSeconds = heartbeatInterval
        options.heartbeatTimeoutSeconds = heartbeatTimeout
        options.requestTimeoutSeconds = requestTimeout
        options.queueExpiresMilliseconds = queueExpiresMilliseconds
        options.outboxCapacity = outboxCapacity
        options.outboxOverflowPolicy = rejectNew ? .rejectNew : .dropOldest
        options.roomAwareRouting = roomAware

        let cluster = try await RabbitMQCluster.connect(urls: amqpURLs, nodeName: nodeName, options: options, logger: logger)
        say("node id \(cluster.nodeID)")

        var configuration = SocketIOServerConfiguration()
        configuration.connectionStateRecovery = noRecovery ? nil : ConnectionStateRecovery()
        configuration.adapterFactory = cluster.adapterFactory
        configuration.logger = logger
        let io = SocketIOServer(configuration)
        installClusterTestHandlers(on: io, nodeName: nodeName, cluster: cluster)
        if let chatPresenceAnswer {
            let answer = try JSONValue(parsing: chatPresenceAnswer)
            io.sockets.onServerSideEmit("chat-presence") { _, ack in ack?(answer) }
        }
        try await io.start()

        let endpoint = EngineIOEndpoint(path: "/socket.io/", configuration: EngineServerConfiguration(), delegate: io, logger: logger)
        let server = EngineIOHTTPServer(
            configuration: EngineIOHTTPServerConfiguration(host: "127.0.0.1", port: port), endpoints: [endpoint],
            fallback: { request in
                switch request.path {
                case "/readyz":
                    // Not ready while the broker is away: a load balancer may prefer other
                    // nodes, though this one still serves its own clients.
                    return cluster.isReady
                        ? HTTPFallbackResponse(status: .ok, contentType: "text/plain", body: "ready")
                        : HTTPFallbackResponse(status: .serviceUnavailable, contentType: "text/plain", body: "broker unavailable")
                case "/metrics":
                    return HTTPFallbackResponse(status: .ok, contentType: "application/json", body: metricsJSON(cluster).jsonText)
                default:
                    return .notFound
                }
            }, logger: logger)
        try await server.start()
        say("listening on http://127.0.0.1:\(server.port ?? port)")

        await waitForTerminationSignal()
        await server.shutdown()
        await io.close()
        await cluster.close()
    }
}

/// Tests read stdout through a pipe, where it is block-buffered: flush every line.
private func say(_ line: String) {
    print(line)
    fflush(nil)
}
