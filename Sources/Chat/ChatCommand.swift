import ArgumentParser
import ChatCore
import EngineIO
import Foundation
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import SocketIO
import SocketIONIO

/// `chat`: one node of the chat. Every option is also an environment variable (named in
/// its help), so nodes can be started as `NODE_PORT=3001 chat`.
@main
struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "A Socket.IO chat node. Nodes find each other only through RabbitMQ.",
        discussion: "Every option can also be set by the environment variable named in its help; a flag wins over the variable.",
        subcommands: [ChatTokenCommand.self]
    )

    enum AdapterKind: String, ExpressibleByArgument, CaseIterable, Sendable {
        case rabbitmq, memory
    }

    @Option(help: "TCP port to listen on (env NODE_PORT).")
    var port: Int = Env.int("NODE_PORT") ?? 3000

    @Option(help: "Address to bind (env HOST).")
    var host: String = Env.string("HOST") ?? "127.0.0.1"

    @Option(help: "How nodes share broadcasts: rabbitmq, or memory for a single node without a broker (env ADAPTER).")
    var adapter: AdapterKind = Env.string("ADAPTER").flatMap(AdapterKind.init(rawValue:)) ?? .rabbitmq

    @Option(name: .customLong("amqp-url"), help: "RabbitMQ URL; several may be given comma-separated for failover (env AMQP_URL).")
    var amqpURL: String = Env.string("AMQP_URL") ?? "amqp://guest:guest@localhost:5672"

    @Option(help: "Replicas of the recovery and history streams when first declared, x-initial-cluster-size (env STREAM_REPLICAS).")
    var streamReplicas: Int = Env.int("STREAM_REPLICAS") ?? 3

    @Option(help: "Name of this node in logs and cluster messages (env NODE_NAME; default chat-<port>).")
    var nodeName: String = Env.string("NODE_NAME") ?? ""

    @Option(help: "Folder with the page's files (env PUBLIC_DIR).")
    var publicDir: String = Env.string("PUBLIC_DIR") ?? "Public"

    @Option(help: "The official socket.io client bundle served at /socket.io/socket.io.min.js (env SOCKETIO_CLIENT_JS).")
    var clientBundle: String = Env.string("SOCKETIO_CLIENT_JS") ?? "vendor/socket.io.min.js"

    @Option(help: "Engine.IO ping interval in milliseconds (env PING_INTERVAL_MS).")
    var pingInterval: Int64 = Env.int64("PING_INTERVAL_MS") ?? 25_000

    @Option(help: "Engine.IO ping timeout in milliseconds (env PING_TIMEOUT_MS).")
    var pingTimeout: Int64 = Env.int64("PING_TIMEOUT_MS") ?? 20_000

    // Limits (docs/SECURITY.md). Each is checked at start (`validatedLimits`): a bad value
    // stops the node with one line naming the option.
    @Option(help: "Longest accepted message in characters (env MAX_MESSAGE_LENGTH).")
    var maxMessageLength: Int = Env.int("MAX_MESSAGE_LENGTH") ?? 2_000

    @Option(help: "Longest accepted message in UTF-8 bytes (env MAX_MESSAGE_BYTES).")
    var maxMessageBytes: Int = Env.int("MAX_MESSAGE_BYTES") ?? 8 * 1024

    @Option(help: "Longest name in characters (env MAX_NAME_LENGTH).")
    var maxNameLength: Int = Env.int("MAX_NAME_LENGTH") ?? 32

    @Option(help: "Longest name in UTF-8 bytes (env MAX_NAME_BYTES).")
    var maxNameBytes: Int = Env.int("MAX_NAME_BYTES") ?? 128

    @Option(help: "Longest room name in characters (env MAX_ROOM_LENGTH).")
    var maxRoomLength: Int = Env.int("MAX_ROOM_LENGTH") ?? 32

    @Option(help: "Longest room name in UTF-8 bytes (env MAX_ROOM_BYTES).")
    var maxRoomBytes: Int = Env.int("MAX_ROOM_BYTES") ?? 128

    @Option(help: "Sustained messages per second per user (client address and name), across reconnects (env RATE_LIMIT).")
    var rateLimit: Double = Env.double("RATE_LIMIT") ?? 5

    @Option(help: "Messages a user may send in a burst (env RATE_BURST).")
    var rateBurst: Double = Env.double("RATE_BURST") ?? 10

    @Option(help: "One client address may send as many messages as this many users, whatever its names (env ADDRESS_RATE_FACTOR).")
    var addressRateFactor: Double = Env.double("ADDRESS_RATE_FACTOR") ?? 4

    @Option(help: "typing events relayed per second per connection; more are dropped (env TYPING_RATE_LIMIT).")
    var typingRateLimit: Double = Env.double("TYPING_RATE_LIMIT") ?? 5

    @Option(help: "typing events relayed in a burst per connection (env TYPING_BURST).")
    var typingBurst: Double = Env.double("TYPING_BURST") ?? 10

    @Option(help: "join and set-name per second per connection (env ROOM_CHANGE_RATE_LIMIT).")
    var roomChangeRateLimit: Double = Env.double("ROOM_CHANGE_RATE_LIMIT") ?? 2

    @Option(help: "join and set-name in a burst per connection (env ROOM_CHANGE_BURST).")
    var roomChangeBurst: Double = Env.double("ROOM_CHANGE_BURST") ?? 10

    @Option(help: "Socket.IO CONNECTs (recovery claims included) per second per client address (env CONNECT_RATE_LIMIT).")
    var connectRateLimit: Double = Env.double("CONNECT_RATE_LIMIT") ?? 50

    @Option(help: "Socket.IO CONNECTs in a burst per client address (env CONNECT_BURST).")
    var connectBurst: Double = Env.double("CONNECT_BURST") ?? 500

    @Option(help: "Client addresses whose rate limits are remembered at once (env MAX_TRACKED_ADDRESSES).")
    var maxTrackedAddresses: Int = Env.int("MAX_TRACKED_ADDRESSES") ?? 100_000

    @Option(help: "Messages of history kept per room (env HISTORY_LENGTH).")
    var historyLength: Int = Env.int("HISTORY_LENGTH") ?? 100

    @Option(help: "Bytes of history kept per room (env HISTORY_BYTES).")
    var historyBytes: Int = Env.int("HISTORY_BYTES") ?? 256 * 1024

    @Option(help: "Rooms whose history is kept in memory (env MAX_ROOMS).")
    var maxRooms: Int = Env.int("MAX_ROOMS") ?? 1_000

    @Option(help: "Milliseconds between presence updates of one room: joins and leaves in between are sent together (env PRESENCE_INTERVAL_MS).")
    var presenceInterval: Int64 = Env.int64("PRESENCE_INTERVAL_MS") ?? 250

    @Option(help: "Seconds a dropped client may take to come back and get what it missed (env RECOVERY_WINDOW).")
    var recoveryWindow: Int64 = Env.int64("RECOVERY_WINDOW") ?? 120

    // A flag's default must be false for ArgumentParser (a default read from the environment
    // failed validation whenever it was true), so the environment is read beside it.
    @Flag(name: .customLong("room-aware-routing"),
          help: "Route room broadcasts only to nodes with members in the room (env ROOM_AWARE_ROUTING=1); all nodes must agree.")
    var roomAwareRoutingFlag = false
    var roomAwareRouting: Bool { roomAwareRoutingFlag || Env.string("ROOM_AWARE_ROUTING") == "1" }

    // Hostile clients (docs/SECURITY.md, "HTTP and transport").
    @Option(help: "Origins whose pages may connect besides the chat's own, comma-separated; * allows any (env ALLOWED_ORIGINS).")
    var allowedOrigins: String = Env.string("ALLOWED_ORIGINS") ?? ""
    @Option(help: "Proxies whose X-Forwarded-For names the client: IPs or CIDR ranges, comma-separated (env TRUSTED_PROXIES).")
    var trustedProxies: String = Env.string("TRUSTED_PROXIES") ?? ""
    @Option(help: "Open TCP connections at most; more are closed at accept, 0 = no cap (env MAX_CONNECTIONS).")
    var maxConnections: Int = Env.int("MAX_CONNECTIONS") ?? 19_000
    @Option(help: "Open Socket.IO connections per client address (IPv4 or IPv6 /64), 0 = no cap (env MAX_SESSIONS_PER_ADDRESS).")
    var maxSessionsPerAddress: Int = Env.int("MAX_SESSIONS_PER_ADDRESS") ?? 1_000
    @Option(help: "New connections per second per client address, 0 = no cap (env HANDSHAKE_RATE).")
    var handshakeRate: Double = Env.double("HANDSHAKE_RATE") ?? 100
    @Option(help: "New connections one address may open at once before HANDSHAKE_RATE applies (env HANDSHAKE_BURST).")
    var handshakeBurst: Double = Env.double("HANDSHAKE_BURST") ?? 300
    @Option(help: "HTTP headers timeout in milliseconds, as Node's (env HEADERS_TIMEOUT_MS).")
    var headersTimeout: Int64 = Env.int64("HEADERS_TIMEOUT_MS") ?? 60_000
    @Option(help: "HTTP keep-alive idle timeout in milliseconds, as Node's (env KEEP_ALIVE_TIMEOUT_MS).")
    var keepAliveTimeout: Int64 = Env.int64("KEEP_ALIVE_TIMEOUT_MS") ?? 5_000
    @Option(help: "HTTP request timeout in milliseconds, as Node's (env REQUEST_TIMEOUT_MS).")
    var requestTimeout: Int64 = Env.int64("REQUEST_TIMEOUT_MS") ?? 300_000

    @OptionGroup(title: "Sign-in and admin")
    var access: ChatAccessOptions

    @Option(help: "trace, debug, info, notice, warning, error or critical (env LOG_LEVEL).")
    var logLevel: String = Env.string("LOG_LEVEL") ?? "info"

    func run() async throws {
        let limits: ChatLimits
        do {
            limits = try validatedLimits()
        } catch {
            // One line that names the option; no trap, no stack of usage text.
            FileHandle.standardError.write(Data("chat: invalid configuration: \(error)\n".utf8))
            throw ExitCode(64)
        }
        let loadedAccess: ChatAccess
        do {
            loadedAccess = try await access.load(limits: limits)
        } catch {
            FileHandle.standardError.write(Data("chat: invalid configuration: \(error)\n".utf8))
            throw ExitCode(64)
        }
        guard (1...255).contains(streamReplicas) else {
            FileHandle.standardError.write(Data("chat: invalid configuration: STREAM_REPLICAS (--stream-replicas) is '\(streamReplicas)'; expected 1 to 255\n".utf8))
            throw ExitCode(64)
        }
        MallocArenas.limitToCoreCount()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let name = nodeName.isEmpty ? "chat-\(port)" : nodeName
        var logger = Logger(label: "chat")
        logger[metadataKey: "node"] = "\(name)"

        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let metrics = ChatMetrics(registry: registry)

        let node = ChatNode(
            settings: ChatNode.Settings(
                adapter: adapter,
                amqpURLs: amqpURL.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) },
                nodeName: name,
                limits: limits,
                recoveryWindow: .seconds(recoveryWindow),
                presenceInterval: .milliseconds(presenceInterval),
                roomAwareRouting: roomAwareRouting,
                streamReplicas: streamReplicas,
                access: loadedAccess
            ),
            metrics: metrics,
            logger: logger
        )

        var engineConfiguration = EngineServerConfiguration()
        engineConfiguration.pingInterval = .milliseconds(pingInterval)
        engineConfiguration.pingTimeout = .milliseconds(pingTimeout)
        // The chat's own page (same host) always; other pages only when listed.
        engineConfiguration.allowedOrigins = EngineOriginPolicy(allowing: Self.list(allowedOrigins), allowsSameHost: true)
        let endpoint = EngineIOEndpoint(path: "/socket.io/", configuration: engineConfiguration, delegate: node.engineDelegate)

        let files = try ChatHTTPRoutes.loadFiles(publicDirectory: publicDir, clientBundle: clientBundle, logger: logger)
        let routes = ChatHTTPRoutes(
            files: files,
            isReady: { node.isReady },
            readinessDetail: { node.readinessDetail },
            metrics: {
                node.updateClusterMetrics()
                let counts = endpoint.connectionCounts
                metrics.connections.set(Int64(counts.total))
                metrics.pollingConnections.set(Int64(counts.polling))
                metrics.websocketConnections.set(Int64(counts.websocket))
                return metrics.render()
            }
        )
        var httpConfiguration = EngineIOHTTPServerConfiguration(host: host, port: port)
        httpConfiguration.trustedProxies = Self.list(trustedProxies)
        httpConfiguration.admission.maxConnections = maxConnections > 0 ? maxConnections : nil
        httpConfiguration.admission.maxSessionsPerAddress = maxSessionsPerAddress > 0 ? maxSessionsPerAddress : nil
        httpConfiguration.admission.handshakesPerSecondPerAddress = handshakeRate > 0 ? handshakeRate : nil
        httpConfiguration.admission.handshakeBurstPerAddress = handshakeBurst
        httpConfiguration.timeouts = HTTPConnectionTimeouts(
            headers: .milliseconds(headersTimeout), keepAlive: .milliseconds(keepAliveTimeout), request: .milliseconds(requestTimeout)
        )
        let http = EngineIOHTTPServer(
            configuration: httpConfiguration,
            endpoints: [endpoint],
            fallback: { request in routes.handle(request) },
            logger: logger
        )

        // Started together; on SIGTERM shut down in reverse order, each after the one before
        // it finished: the HTTP server first (clients are told to reconnect, to another node
        // behind the load balancer), then the node (the adapter flushes what it holds for the
        // other nodes, the broker connection closes). A node that cannot start ends the group.
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: node, successTerminationBehavior: .ignore, failureTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: ChatHTTPService(http: http, logger: logger), failureTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        ))
        do {
            try await group.run()
        } catch {
            logger.critical("chat node stopped on an error", metadata: ["error": "\(error)"])
            throw error
        }
        logger.info("stopped")
    }
}
