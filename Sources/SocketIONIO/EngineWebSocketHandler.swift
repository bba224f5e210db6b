import EngineIO
import NIOCore
import NIOWebSocket

/// The Engine.IO WebSocket transport on one upgraded channel: one packet per frame in,
/// one packet per frame out. It either opens a new session (a plain `transport=websocket`
/// handshake) or serves as the upgrade probe of an existing polling session.
///
/// Writes: a send on an idle connection is written and flushed at once. When that send
/// is a reply made while reading, everything else sent before the read completes waits;
/// so does everything sent while a write is still pending. What waits goes out in ONE
/// flush `minimumFlushGap` later (the reference server's writable/drain rhythm). So a lone message has no added latency, a
/// burst costs two flushes, and a client that stops reading only grows the waiting queue,
/// bounded by `maxOutboundBufferBytes` (then `.slowClient`). Clients rely on this rhythm:
/// the official suite expects a CONNECT reply and the event sent in the same tick right
/// after it in separate TCP reads (node `ws` emits all frames of one read synchronously,
/// before the test can listen for the second).
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
    private var closing = false
    private var flushInFlight = false
    private var flushScheduled = false
    /// Inside channelRead...channelReadComplete (sends made then are replies to this read).
    private var readInProgress = false
    /// A reply was flushed during the current read; more sends wait for the read to end.
    private var burstOpen = false
    private let minimumFlushGap: TimeAmount
    /// Packets sent while a flush was in flight; they go out together when it completes.
    private var waitingPackets: [EnginePacket] = []
    private var waitingBytes = 0
    private let outboundBudget: Int
    /// The endpoint's limit; the shared frame decoder only knows the largest of all endpoints.
    private let maxPayload: Int

    init(role: Role, channelLoop: any EventLoop, outboundBudget: Int, minimumFlushGap: TimeAmount, maxPayload: Int) {
        self.maxPayload = maxPayload
        self.role = role
        self.channelLoop = channelLoop
        self.outboundBudget = max(outboundBudget, 1)
        self.minimumFlushGap = minimumFlushGap
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        switch role {
        case .handshake(let endpoint, let request):
            let session = endpoint.createSession(transport: .websocket, on: context.eventLoop, handshake: request)
            self.session = session
            enqueue([session.openPacket], context: context)
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
        readInProgress = true
        if frame.length > maxPayload {
            session?.endpoint.logger.info("closing WebSocket: message over maxPayload", metadata: ["bytes": "\(frame.length)"])
            sendCloseAndClose(context: context, code: .messageTooLarge)
            return
        }
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
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            // Echo the close (RFC 6455 section 5.5.1), then let the peer go.
            sendCloseAndClose(context: context, code: .normalClosure)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readInProgress = false
        burstOpen = false
        scheduleWaitingFlush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        toSession { $0.webSocketClosed($1) }
        context.fireChannelInactive()
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
            guard let context = handler.context else { return }
            handler.enqueue(packets, context: context)
        }
    }

    func closeFromSession(code: WebSocketErrorCode) {
        onChannelLoop { handler in
            guard let context = handler.context else { return }
            handler.sendCloseAndClose(context: context, code: code)
        }
    }

    // MARK: Writing

    private func enqueue(_ packets: [EnginePacket], context: ChannelHandlerContext) {
        guard !closing, !packets.isEmpty else { return }
        if !flushInFlight && !flushScheduled && waitingPackets.isEmpty && !burstOpen {
            writeAndFlush(packets, context: context)
            return
        }
        waitingPackets.append(contentsOf: packets)
        waitingBytes += packets.reduce(0) { $0 + $1.approximateWireSize }
        if waitingBytes > outboundBudget {
            waitingPackets = []
            waitingBytes = 0
            toSession { $0.webSocketOverflowed($1) }
            sendCloseAndClose(context: context, code: .policyViolation)
            return
        }
        scheduleWaitingFlush()
    }

    /// Writes and flushes `packets`. When this happens while reading (a reply), it opens a
    /// burst: whatever else is sent before `channelReadComplete` waits, and goes out in one
    /// flush `minimumFlushGap` later.
    private func writeAndFlush(_ packets: [EnginePacket], context: ChannelHandlerContext) {
        flushInFlight = true
        if readInProgress { burstOpen = true }
        for packet in packets.dropLast() {
            context.write(wrapOutboundOut(frame(for: packet, context: context)), promise: nil)
        }
        let lastWritten = context.writeAndFlush(wrapOutboundOut(frame(for: packets.last!, context: context)))
        // A client that stops reading keeps this write pending; then everything else
        // piles up in `waitingPackets`, which is bounded.
        lastWritten.assumeIsolated().whenComplete { result in
            self.flushInFlight = false
            guard case .success = result else { return }
            self.scheduleWaitingFlush()
        }
    }

    private func scheduleWaitingFlush() {
        guard !flushInFlight, !flushScheduled, !burstOpen, !closing, !waitingPackets.isEmpty,
            let context = self.context
        else { return }
        flushScheduled = true
        let flushWaiting = {
            self.flushScheduled = false
            guard !self.flushInFlight, !self.closing, !self.waitingPackets.isEmpty, let context = self.context else { return }
            let batch = self.waitingPackets
            self.waitingPackets = []
            self.waitingBytes = 0
            self.writeAndFlush(batch, context: context)
        }
        if minimumFlushGap <= .zero {
            context.eventLoop.assumeIsolated().execute(flushWaiting)
        } else {
            context.eventLoop.assumeIsolated().scheduleTask(in: minimumFlushGap, flushWaiting)
        }
    }

    private func frame(for packet: EnginePacket, context: ChannelHandlerContext) -> WebSocketFrame {
        let data = EnginePacketCodec.encodeFrame(packet, allocator: context.channel.allocator)
        return WebSocketFrame(fin: true, opcode: packet.isBinary ? .binary : .text, data: data)
    }

    /// Writes what is still waiting, then the close frame, then closes the socket.
    private func sendCloseAndClose(context: ChannelHandlerContext, code: WebSocketErrorCode) {
        guard !closing else { return }
        closing = true
        for packet in waitingPackets {
            context.write(wrapOutboundOut(frame(for: packet, context: context)), promise: nil)
        }
        waitingPackets = []
        waitingBytes = 0
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
