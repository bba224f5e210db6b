import EngineIO
import NIOCore
import NIOWebSocket

/// The Engine.IO WebSocket transport on one upgraded channel: one packet per frame in,
/// one packet per frame out. Writes made in one event-loop tick are flushed once at its
/// end. It either opens a new session (a plain `transport=websocket` handshake) or serves
/// as the upgrade probe of an existing polling session.
///
/// Sendable because its mutable state is touched only on the channel's loop: the session
/// (which may live on another loop) calls `sendFromSession`/`closeFromSession`, which hop.
final class EngineWebSocketHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    enum Role {
        case handshake(EngineIOEndpoint, EngineHandshakeRequest)
        case probe(EngineSession)
    }

    private let role: Role
    private let channelLoop: any EventLoop
    private var context: ChannelHandlerContext?
    private var session: EngineSession?
    private var flushScheduled = false
    private var closing = false
    /// Bytes written since the channel's buffer went over its high-water mark. The budget
    /// (half the endpoint's maxOutboundBufferBytes, the other half being the water mark)
    /// bounds memory for a client that stops reading.
    private var bytesWrittenWhileUnwritable = 0
    private let unwritableBudget: Int

    init(role: Role, channelLoop: any EventLoop, outboundBudget: Int) {
        self.role = role
        self.channelLoop = channelLoop
        self.unwritableBudget = max(outboundBudget / 2, 1)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        switch role {
        case .handshake(let endpoint, let request):
            let session = endpoint.createSession(transport: .websocket, on: context.eventLoop, handshake: request)
            self.session = session
            write(session.openPacket, context: context)
            session.opened(webSocket: self)
        case .probe(let session):
            self.session = session
            let handler = self
            if session.eventLoop.inEventLoop {
                session.probeWebSocketArrived(handler)
            } else {
                session.eventLoop.execute { session.probeWebSocketArrived(handler) }
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            do {
                let packet = try EnginePacketCodec.decodeTextFrame(frame.unmaskedData)
                toSession { $0.webSocketReceived(packet, from: $1) }
            } catch {
                toSession { $0.webSocketReceivedUndecodableData(from: $1) }
            }
        case .binary:
            let packet = EnginePacketCodec.decodeBinaryFrame(frame.unmaskedData)
            toSession { $0.webSocketReceived(packet, from: $1) }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.write(wrapOutboundOut(pong), promise: nil)
            scheduleFlush(context: context)
        case .connectionClose:
            // Echo the close (RFC 6455 section 5.5.1), then let the peer go.
            sendCloseAndClose(context: context, code: .normalClosure)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        toSession { $0.webSocketClosed($1) }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { bytesWrittenWhileUnwritable = 0 }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Fragmented messages over maxPayload end here (single frames are caught by the
        // frame decoder, which answers 1009 itself).
        if error is NIOWebSocketFrameAggregator.Error {
            sendCloseAndClose(context: context, code: .messageTooLarge)
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: Called by the session, from any loop

    func sendFromSession(_ packets: [EnginePacket]) {
        onChannelLoop { handler in
            guard let context = handler.context, !handler.closing else { return }
            for packet in packets { handler.write(packet, context: context) }
            if !context.channel.isWritable {
                handler.bytesWrittenWhileUnwritable += packets.reduce(0) { $0 + $1.approximateWireSize }
                if handler.bytesWrittenWhileUnwritable > handler.unwritableBudget {
                    handler.toSession { $0.webSocketOverflowed($1) }
                    handler.sendCloseAndClose(context: context, code: .policyViolation)
                }
            }
        }
    }

    func closeFromSession(code: WebSocketErrorCode) {
        onChannelLoop { handler in
            guard let context = handler.context else { return }
            handler.sendCloseAndClose(context: context, code: code)
        }
    }

    // MARK: Helpers

    private func write(_ packet: EnginePacket, context: ChannelHandlerContext) {
        let data = EnginePacketCodec.encodeFrame(packet, allocator: context.channel.allocator)
        let frame = WebSocketFrame(fin: true, opcode: packet.isBinary ? .binary : .text, data: data)
        context.write(wrapOutboundOut(frame), promise: nil)
        scheduleFlush(context: context)
    }

    /// One flush per tick, however many frames were written in it.
    private func scheduleFlush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.context?.flush()
        }
    }

    private func sendCloseAndClose(context: ChannelHandlerContext, code: WebSocketErrorCode) {
        guard !closing else { return }
        closing = true
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func onChannelLoop(_ body: @escaping @Sendable (EngineWebSocketHandler) -> Void) {
        if channelLoop.inEventLoop {
            body(self)
        } else {
            channelLoop.execute { body(self) }
        }
    }

    /// Runs `body` on the session's loop (hopping once if it lives elsewhere).
    private func toSession(_ body: @escaping @Sendable (EngineSession, EngineWebSocketHandler) -> Void) {
        guard let session else { return }
        if session.eventLoop.inEventLoop {
            body(session, self)
        } else {
            session.eventLoop.execute { body(session, self) }
        }
    }
}
