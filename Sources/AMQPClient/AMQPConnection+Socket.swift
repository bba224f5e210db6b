import AMQPProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// Opening one socket to one endpoint: TCP, TLS when asked, the AMQP handshake with its own deadline.
extension AMQPConnection {
    static func openSocket(
        to endpoint: AMQPEndpoint, core: ConnectionCore
    ) async throws -> (Channel, AMQPConnectionHandler, AMQPNegotiatedParameters) {
        let configuration = core.configuration
        let established = core.eventLoop.makePromise(of: AMQPNegotiatedParameters.self)
        let credentials = ConnectionStateMachine.Credentials(
            username: configuration.username, password: configuration.password,
            virtualHost: configuration.virtualHost,
            clientProperties: clientProperties(connectionName: configuration.connectionName),
            desired: ConnectionTuneOk(channelMax: configuration.channelMax, frameMax: configuration.frameMax,
                                      heartbeat: configuration.heartbeat))
        let handler = AMQPConnectionHandler(credentials: credentials, established: established, logger: core.logger)
        let tlsContext: NIOSSLContext? = endpoint.useTLS
            ? try NIOSSLContext(configuration: configuration.tlsConfiguration ?? .makeClientConfiguration())
            : nil
        let timeout = configuration.connectTimeout
        let bootstrap = ClientBootstrap(group: core.eventLoop)
            .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
                                         + Int64(timeout.components.attoseconds / 1_000_000_000)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        let tls = try NIOSSLClientHandler(context: tlsContext,
                                                          serverHostname: Self.tlsServerName(for: endpoint, configuration))
                        try channel.pipeline.syncOperations.addHandler(tls)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let socket: Channel
        do {
            socket = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            let failure = AMQPError.connectFailed(endpoint: "\(endpoint)", reason: "\(error)")
            established.fail(failure)
            throw failure
        }
        // A broker that accepts TCP but never finishes the handshake must not hang us.
        let handshakeTimeout = core.eventLoop.scheduleTask(in: .seconds(Int64(max(1, timeout.components.seconds)))) {
            established.fail(AMQPError.connectFailed(endpoint: "\(endpoint)", reason: "AMQP handshake timed out"))
            socket.close(promise: nil)
        }
        do {
            let negotiated = try await established.futureResult.get()
            handshakeTimeout.cancel()
            return (socket, handler, negotiated)
        } catch {
            handshakeTimeout.cancel()
            socket.close(promise: nil)
            throw error
        }
    }

    /// SNI may not carry an IP address; without a name NIOSSL checks the peer's IP against the
    /// certificate instead, which is what connecting to `amqps://127.0.0.1` should mean.
    static func tlsServerName(for endpoint: AMQPEndpoint, _ configuration: AMQPConnectionConfiguration) -> String? {
        if let name = configuration.tlsServerName { return name }
        let isIPAddress = (try? SocketAddress(ipAddress: endpoint.host, port: 0)) != nil
        return isIPAddress ? nil : endpoint.host
    }

    static func clientProperties(connectionName: String?) -> AMQPFieldTable {
        var entries: [AMQPFieldTable.Entry] = [
            .init(key: "product", value: .longString("swift-amqp-client")),
            .init(key: "version", value: .longString("0.1.0")),
            .init(key: "platform", value: .longString("Swift")),
            .init(key: "capabilities", value: .table([
                "publisher_confirms": .bool(true),
                "consumer_cancel_notify": .bool(true),
                "connection.blocked": .bool(true),
                "basic.nack": .bool(true),
                "authentication_failure_close": .bool(true),
                "exchange_exchange_bindings": .bool(true),
                "per_consumer_qos": .bool(true),
            ])),
        ]
        if let connectionName {
            entries.append(.init(key: "connection_name", value: .longString(connectionName)))
        }
        return AMQPFieldTable(entries)
    }
}
