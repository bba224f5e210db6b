import AMQPProtocol
import Logging
import NIOCore
import NIOSSL

/// Receives what the socket handler learns once the connection is open. Called on the event loop.
protocol AMQPConnectionHandlerDelegate: AnyObject {
    func handlerReceived(channel: UInt16, frame: AMQPFrame)
    func handlerBlocked(reason: String)
    func handlerUnblocked()
    /// The socket is done; `error` nil means an orderly close we asked for.
    func handlerClosed(error: AMQPError?)
    /// One read burst is over: a good moment to hand buffered deliveries to consumers.
    func handlerReadComplete()
}

/// The one NIO handler of an AMQP socket. It cuts frames out of the byte stream, runs the
/// `ConnectionStateMachine` for channel 0 (handshake, heartbeats, close) and forwards every other
/// channel's frames to its delegate. Writes from the connection core go through `write(_:)`, and
/// flushes are coalesced to one per event-loop tick, so a burst of publishes costs one syscall.
///
/// Concurrency: created off-loop, but after it is added to the pipeline every member is used only on
/// the socket's event loop, which is also the connection core's loop. References only cross threads to
/// be handed back to that loop (`attach`), hence `@unchecked Sendable`.
final class AMQPConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    private var stateMachine: ConnectionStateMachine
    private var decoder = AMQPFrameDecoder()
    private var cumulation: ByteBuffer?
    private var context: ChannelHandlerContext?
    private var heartbeatTask: RepeatedTask?
    private var flushScheduled = false
    private var closeError: AMQPError?
    private let logger: Logger

    /// Completed once connection.open-ok arrives, failed if the handshake fails.
    let established: EventLoopPromise<AMQPNegotiatedParameters>
    weak var delegate: AMQPConnectionHandlerDelegate?
    private(set) var negotiated: AMQPNegotiatedParameters?

    init(credentials: ConnectionStateMachine.Credentials, established: EventLoopPromise<AMQPNegotiatedParameters>, logger: Logger) {
        self.stateMachine = ConnectionStateMachine(credentials: credentials)
        self.established = established
        self.logger = logger
    }

    var isOpen: Bool {
        if case .open = stateMachine.state { return true }
        return false
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { run(stateMachine.channelActive()) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        heartbeatTask?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        run(stateMachine.channelActive())
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        heartbeatTask?.cancel()
        heartbeatTask = nil
        let socketError = stateMachine.socketClosed()
        let error = closeError ?? socketError
        established.fail(error ?? AMQPError.connectionClosed)
        delegate?.handlerClosed(error: error)
        delegate = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if closeError == nil {
            closeError = (error as? AMQPError) ?? classify(error)
        }
        context.close(promise: nil)
    }

    /// A TLS error before the AMQP handshake finished is a handshake failure (untrusted or misnamed
    /// certificate) that retrying will not fix; later ones are just a lost connection.
    private func classify(_ error: Error) -> AMQPError {
        let isTLSError = error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError
        if isTLSError, !isOpen {
            return .tlsHandshakeFailed("\(error)")
        }
        return .connectionLost("\(error)")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Closing after an error: e.g. NIOSSL reports a certificate name mismatch after the TLS
        // handshake and may still pass on the broker's reply; acting on it would "open" a connection
        // that is already being torn down.
        guard closeError == nil else { return }
        var incoming = unwrapInboundIn(data)
        if cumulation == nil {
            cumulation = incoming
        } else {
            cumulation!.writeBuffer(&incoming)
        }
        do {
            while var buffer = cumulation, buffer.readableBytes > 0 {
                cumulation = nil  // keep the storage uniquely referenced while decoding
                let frame = try decoder.decode(buffer: &buffer)
                cumulation = buffer
                guard let frame else { break }
                handle(frame)
                if self.context == nil { return }
            }
            if let buffer = cumulation, buffer.readableBytes == 0 {
                cumulation = nil
            } else if cumulation != nil, cumulation!.readerIndex > 65_536 {
                cumulation!.discardReadBytes()
            }
        } catch {
            fail(.protocolViolation("undecodable frame: \(error)"))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.handlerReadComplete()
        context.fireChannelReadComplete()
    }

    // MARK: Writing (used by the connection core on the event loop)

    func write(_ frame: AMQPFrame) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        frame.encode(into: &buffer)
        write(buffer)
    }

    func write(_ buffer: ByteBuffer) {
        guard let context else { return }
        context.write(wrapOutboundOut(buffer), promise: nil)
        scheduleFlush()
    }

    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    func requestClose() {
        run(stateMachine.closeRequested())
    }

    func setAutoRead(_ enabled: Bool) {
        context?.channel.setOption(ChannelOptions.autoRead, value: enabled).whenFailure { _ in }
    }

    private func scheduleFlush() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        context.eventLoop.execute {
            self.flushScheduled = false
            self.context?.flush()
        }
    }

    // MARK: Internals

    private func handle(_ frame: AMQPFrame) {
        stateMachine.frameReceived()
        switch frame {
        case .heartbeat:
            return
        case .method(channel: 0, let method):
            run(stateMachine.received(method))
        case .method(let channel, _), .header(let channel, _), .body(let channel, _):
            guard channel != 0 else {
                fail(.protocolViolation("content frame on channel 0"))
                return
            }
            switch stateMachine.state {
            case .open:
                break
            case .closing, .closed:
                // Deliveries still in flight after our connection.close: the spec says discard them.
                return
            case .idle, .awaitingStart, .awaitingTune, .awaitingOpenOk:
                fail(.protocolViolation("frame for channel \(channel) before connection.open-ok"))
                return
            }
            delegate?.handlerReceived(channel: channel, frame: frame)
        }
    }

    private func run(_ action: ConnectionStateMachine.Action) {
        guard let context else { return }
        switch action {
        case .none:
            break
        case .sendProtocolHeader:
            var buffer = context.channel.allocator.buffer(capacity: 8)
            buffer.writeBytes(AMQPProtocolHeader.bytes)
            write(buffer)
        case .send(let method):
            write(.method(channel: 0, method))
        case .sendTuneOkAndOpen(let tuneOk, let open, let negotiated):
            self.negotiated = negotiated
            decoder.maxFrameSize = negotiated.frameMax
            write(.method(channel: 0, .connectionTuneOk(tuneOk)))
            write(.method(channel: 0, .connectionOpen(open)))
            startHeartbeats(seconds: negotiated.heartbeat, context: context)
        case .connectionEstablished(let negotiated):
            established.succeed(negotiated)
        case .sendHeartbeat:
            write(.heartbeat)
        case .blocked(let reason):
            logger.warning("broker blocked publishing on this connection", metadata: ["reason": "\(reason)"])
            delegate?.handlerBlocked(reason: reason)
        case .unblocked:
            logger.info("broker unblocked publishing")
            delegate?.handlerUnblocked()
        case .sendCloseOkAndClose(let error):
            closeError = closeError ?? error
            write(.method(channel: 0, .connectionCloseOk(ConnectionCloseOk())))
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                channel.close(promise: nil)
            }
        case .closeSocket(let error):
            closeError = closeError ?? error
            context.close(promise: nil)
        case .sendCloseAndFail(let close, let error):
            closeError = closeError ?? error
            write(.method(channel: 0, .connectionClose(close)))
            // Don't wait forever for close-ok from a peer that already misbehaves.
            let channel = context.channel
            context.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
    }

    private func startHeartbeats(seconds: UInt16, context: ChannelHandlerContext) {
        guard seconds > 0 else { return }
        let interval = TimeAmount.seconds(Int64(seconds))
        heartbeatTask = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            guard let self else { return }
            self.run(self.stateMachine.heartbeatTick())
        }
    }

    private func fail(_ error: AMQPError) {
        logger.error("closing connection", metadata: ["error": "\(error)"])
        closeError = closeError ?? error
        context?.close(promise: nil)
    }
}
