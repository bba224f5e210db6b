import AMQPProtocol
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// A connection to RabbitMQ that recovers by itself.
///
/// ```swift
/// let connection = try await AMQPConnection.connect(.init(url: "amqp://guest:guest@127.0.0.1"), logger: logger)
/// let channel = try await connection.openChannel()
/// ```
/// When the socket dies, in-flight operations fail with `AMQPError.connectionLost`, calls made while
/// disconnected fail at once with `.notConnected`, and recovery reconnects (exponential backoff with
/// jitter across the endpoints), reopens channels, restores qos and confirm mode, redeclares exchanges,
/// queues and bindings, and restarts consumers, whose async sequences keep delivering.
public final class AMQPConnection: Sendable {
    let core: ConnectionCore
    public let configuration: AMQPConnectionConfiguration
    let logger: Logger

    /// Connects to the first endpoint that accepts (no recovery on this first attempt: a wrong URL
    /// or password should surface at once). Throws `AMQPError`.
    public static func connect(
        _ configuration: AMQPConnectionConfiguration,
        eventLoopGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "amqp")
    ) async throws -> AMQPConnection {
        let eventLoop = eventLoopGroup.next()
        let core = ConnectionCore(eventLoop: eventLoop, configuration: configuration, logger: logger)
        let connection = AMQPConnection(core: core, configuration: configuration, logger: logger)
        var lastError: AMQPError = .connectFailed(endpoint: "-", reason: "no endpoints configured")
        for endpoint in configuration.endpoints {
            do {
                let (socket, handler, negotiated) = try await Self.openSocket(to: endpoint, core: core)
                try await eventLoop.submit {
                    guard case .opened = core.attach(handler: handler, socket: socket, negotiated: negotiated) else {
                        throw AMQPError.connectionClosed
                    }
                    core.onUnexpectedClose = { [weak connection] error in
                        guard let connection else { return }
                        Task { await connection.recover(after: error) }
                    }
                    core.emit(.connected)
                    if !socket.isActive { core.handlerClosed(error: .connectionLost("closed right after open")) }
                }.get()
                logger.info("AMQP connected", metadata: ["endpoint": "\(endpoint)", "frameMax": "\(negotiated.frameMax)",
                                                         "heartbeat": "\(negotiated.heartbeat)", "channelMax": "\(negotiated.channelMax)"])
                return connection
            } catch let error as AMQPError {
                lastError = error
                if case .authenticationFailed = error { break }
            } catch {
                lastError = .connectFailed(endpoint: "\(endpoint)", reason: "\(error)")
            }
        }
        let failure = lastError
        try? await eventLoop.submit { core.finishForGood(error: failure) }.get()
        throw failure
    }

    private init(core: ConnectionCore, configuration: AMQPConnectionConfiguration, logger: Logger) {
        self.core = core
        self.configuration = configuration
        self.logger = logger
    }

    /// The event loop the connection runs on: users arm their protocol timers here, so the
    /// timers live where the connection's state does.
    public var eventLoop: EventLoop { core.eventLoop }

    /// State changes from now on (each access gives a new stream). Buffers the newest 64 events.
    public var stateChanges: AsyncStream<AMQPConnectionState> {
        let (stream, continuation) = AsyncStream<AMQPConnectionState>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let core = self.core
        core.eventLoop.execute {
            if core.lifecycle.isClosed {
                continuation.yield(.closed)
                continuation.finish()
                return
            }
            let id = core.nextObserverID
            core.nextObserverID += 1
            core.stateObservers[id] = continuation
            continuation.onTermination = { _ in core.eventLoop.execute { core.stateObservers[id] = nil } }
        }
        return stream
    }

    /// The limits agreed with the broker on the current socket.
    public var negotiatedParameters: AMQPNegotiatedParameters? {
        get async { try? await core.eventLoop.submit { self.core.negotiated }.get() }
    }

    /// Connected and usable: false while recovery is still restoring the topology.
    public var isConnected: Bool {
        get async { (try? await core.eventLoop.submit { self.core.acceptsApplicationWork }.get()) ?? false }
    }

    /// Opens a channel with the lowest free id.
    public func openChannel() async throws -> AMQPChannel {
        let core = self.core
        let promise = core.eventLoop.makePromise(of: AMQPMethod.self)
        let channel = try await core.eventLoop.submit { () throws -> AMQPChannel in
            guard core.acceptsApplicationWork else { throw core.unavailableError }
            let id = try core.allocateChannelID()
            let channelCore = ChannelCore(id: id)
            core.channels[id] = channelCore
            let channel = AMQPChannel(connection: self, core: channelCore)
            core.publicChannels[id] = .init(value: channel)
            core.openChannel(channelCore, promise: promise)
            return channel
        }.get()
        do {
            _ = try await promise.futureResult.get()
        } catch {
            // Never opened: free the id.
            try? await core.eventLoop.submit {
                core.channels[channel.id] = nil
                core.publicChannels[channel.id] = nil
            }.get()
            throw error
        }
        return channel
    }

    /// Closes the connection cleanly (connection.close / close-ok). Recovery stops.
    public func close() async throws {
        let core = self.core
        try await core.eventLoop.submit {
            switch core.lifecycle.closeRequested() {
            case .closeSocket:
                core.handler?.requestClose()
                // Don't let a silent broker hold us: close the socket after 2 s regardless.
                let socket = core.socket
                core.eventLoop.scheduleTask(in: .seconds(2)) { socket?.close(promise: nil) }
            case .finish:
                core.finishForGood()
            case .none:
                break
            }
        }.get()
        try await core.closedPromise.futureResult.get()
    }
}
