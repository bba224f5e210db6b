import Atomics
import EngineIO
import NIOCore
import NIOWebSocket

/// The Engine.IO WebSocket transport on one upgraded channel: one packet per frame in,
/// one packet per frame out. It either opens a new session (a plain `transport=websocket`
/// handshake) or serves as the upgrade probe of an existing polling session.
///
/// Writes: a reply (a send made while this channel is reading) on an idle connection is
/// written and flushed at once; any other send on an idle connection is flushed at the end
/// of the current loop tick, together with everything else the tick sends to this client.
/// After a reply, everything else sent before the read completes waits;
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
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Boxed (`indirect`): the handshake is needed only until the handler is added, and
    /// inline it made every WebSocket's handler larger for the connection's whole life.
    indirect enum Role {
        case handshake(EngineIOEndpoint, EngineHandshakeRequest)
        case probe(EngineSession)
    }

    /// Until the handler is added.
    private var role: Role?
    private let channelLoop: any EventLoop
    private var context: ChannelHandlerContext?
    /// The client's frames: this handler is the whole WebSocket pipeline (see
    /// `EngineWebSocketUpgrader`), reading raw bytes and writing finished frames.
    private var reader: WebSocketMessageReader
    private var session: EngineSession?
    private var closing = false
    private var flushInFlight = false {
        didSet { backedUp.store(flushInFlight, ordering: .relaxed) }
    }
    /// `flushInFlight`, readable from the session's loop: true only while the kernel has not
    /// taken everything written (a flush completes inside the flush call otherwise).
    private let backedUp = ManagedAtomic(false)
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
    /// Pongs written but not yet taken by the client. They share `outboundBudget` with the
    /// waiting packets: a client that floods pings and never reads would otherwise grow
    /// the server's write queue without bound.
    private var controlBytesInFlight = 0
    init(role: Role, channelLoop: any EventLoop, outboundBudget: Int, minimumFlushGap: TimeAmount, maxPayload: Int) {
        self.reader = WebSocketMessageReader(maxMessageBytes: maxPayload)
        self.role = role
        self.channelLoop = channelLoop
        self.outboundBudget = max(outboundBudget, 1)
        self.minimumFlushGap = minimumFlushGap
        LiveObjects.webSocketHandlers.created()
    }

    deinit {
        LiveObjects.webSocketHandlers.destroyed()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        guard let role else { return }
        self.role = nil
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
        guard !closing else { return }
        readInProgress = true
        reader.append(unwrapInboundIn(data))
        do {
            while !closing, let message = try reader.next() {
                receive(message, context: context)
            }
        } catch {
            let tooLarge = error == .tooLarge
            session?.endpoint.logger.info(
                "closing WebSocket: \(tooLarge ? "message over maxPayload" : "protocol error")")
            sendCloseAndClose(context: context, code: tooLarge ? .messageTooLarge : .protocolError)
        }
    }

    private func receive(_ message: WebSocketMessageReader.Message, context: ChannelHandlerContext) {
        switch message {
        case .text(let payload):
            do {
                let packet = try EnginePacketCodec.decodeTextFrame(payload)
                toSession { $0.webSocketReceived(packet, from: $1) }
            } catch {
                toSession { $0.webSocketReceivedUndecodableData(from: $1) }
            }
        case .binary(let payload):
            let packet = EnginePacketCodec.decodeBinaryFrame(payload)
            toSession { $0.webSocketReceived(packet, from: $1) }
        case .ping(let payload):
            sendPong(context: context, payload: payload)
        case .pong:
            break
        case .close:
            // Echo the close (RFC 6455 section 5.5.1), then let the peer go.
            sendCloseAndClose(context: context, code: .normalClosure)
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
        // Nothing reaches the session from a closed channel any more; dropping it here
        // means neither side has to outlive the other.
        session = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Frames are read here, so what reaches this point is the socket's own error.
        context.close(promise: nil)
    }

    // MARK: Called by the session, from any loop

    /// The client has not read what was last written to it (see `EngineConnection.isWritable`).
    var isBackedUp: Bool { backedUp.load(ordering: .relaxed) }

    func sendFromSession(_ packets: [EnginePacket]) {
        // Every delivery of a broadcast passes here, almost always already on the channel's
        // loop: no closure then.
        if channelLoop.inEventLoop {
            if let context { enqueue(packets, context: context) }
            return
        }
        channelLoop.execute {
            guard let context = self.context else { return }
            self.enqueue(packets, context: context)
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
        let idle = !flushInFlight && !flushScheduled && waitingPackets.isEmpty && !burstOpen
        if idle && readInProgress {
            // A reply to what this client just sent: out at once.
            writeAndFlush(packets, context: context)
            return
        }
        waitingPackets.append(contentsOf: packets)
        waitingBytes += packets.reduce(0) { $0 + $1.approximateWireSize }
        if waitingBytes + controlBytesInFlight > outboundBudget {
            waitingPackets = []
            waitingBytes = 0
            toSession { $0.webSocketOverflowed($1) }
            sendCloseAndClose(context: context, code: .policyViolation)
            return
        }
        if idle {
            // Anything else (broadcasts, emits from other channels' handlers) waits for the
            // end of this loop tick: every message the loop sends this client before then
            // leaves in the same flush. Under load one syscall then carries several frames;
            // when idle the only cost is one queued task.
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute { self.flushWaiting() }
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
            write(packet, context: context, promise: nil)
        }
        let lastWritten = context.eventLoop.makePromise(of: Void.self)
        write(packets.last!, context: context, promise: lastWritten)
        context.flush()
        // A client that stops reading keeps this write pending; then everything else
        // piles up in `waitingPackets`, which is bounded.
        lastWritten.futureResult.assumeIsolated().whenComplete { result in
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
        if minimumFlushGap <= .zero {
            context.eventLoop.assumeIsolated().execute { self.flushWaiting() }
        } else {
            context.eventLoop.assumeIsolated().scheduleTask(in: minimumFlushGap) { self.flushWaiting() }
        }
    }

    private func flushWaiting() {
        flushScheduled = false
        guard !flushInFlight, !closing, !waitingPackets.isEmpty, let context else { return }
        let batch = waitingPackets
        waitingPackets = []
        waitingBytes = 0
        writeAndFlush(batch, context: context)
    }

    private func write(_ packet: EnginePacket, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let frame = EngineWebSocketFraming.frame(for: packet, allocator: context.channel.allocator)
        if let tail = frame.tail {
            // Two buffers, one `writev`: the tail stays the one buffer every recipient shares.
            context.write(wrapOutboundOut(frame.head), promise: nil)
            context.write(wrapOutboundOut(tail), promise: promise)
        } else {
            context.write(wrapOutboundOut(frame.head), promise: promise)
        }
    }

    /// What one queued control frame costs against the budget: its bytes and NIO's
    /// bookkeeping for one pending write (a few hundred bytes), which dominates for the
    /// tiny frames a ping flood makes.
    static let controlFrameCost = 256

    /// Answers a ping (RFC 6455 section 5.5.3), within the outbound budget: a client whose
    /// pongs and waiting packets exceed it is closed as a slow client.
    private func sendPong(context: ChannelHandlerContext, payload: ByteBuffer) {
        guard !closing else { return }
        let cost = payload.readableBytes + Self.controlFrameCost
        if controlBytesInFlight + waitingBytes + cost > outboundBudget {
            waitingPackets = []
            waitingBytes = 0
            toSession { $0.webSocketOverflowed($1) }
            sendCloseAndClose(context: context, code: .policyViolation)
            return
        }
        controlBytesInFlight += cost
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in self.controlBytesInFlight -= cost }
        let pong = EngineWebSocketFraming.controlFrame(.pong, payload: payload, allocator: context.channel.allocator)
        context.writeAndFlush(wrapOutboundOut(pong), promise: written)
    }

    /// Writes what is still waiting, then the close frame, then closes the socket.
    private func sendCloseAndClose(context: ChannelHandlerContext, code: WebSocketErrorCode) {
        guard !closing else { return }
        closing = true
        for packet in waitingPackets {
            write(packet, context: context, promise: nil)
        }
        waitingPackets = []
        waitingBytes = 0
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        let frame = EngineWebSocketFraming.controlFrame(.connectionClose, payload: data, allocator: context.channel.allocator)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
            channel.close(promise: nil)
        }
        // A client that stopped reading (the slow-client close, a ping timeout) never lets
        // that write complete: without a deadline its socket, handler and session would
        // stay open for good.
        let grace = channel.eventLoop.scheduleTask(in: Self.closeFrameGracePeriod) { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in grace.cancel() }
    }

    /// How long a close frame may take to leave before the socket is closed without it.
    static let closeFrameGracePeriod: TimeAmount = .seconds(2)

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
