import Atomics
import NIOCore
import NIOWebSocket
import SocketIO

/// Lifecycle counts shared by every connection of a run. Connections change state rarely
/// compared with deliveries, so atomics here cost nothing measurable.
final class ConnectionCounters: Sendable {
    let attempted = ManagedAtomic(0)
    let connected = ManagedAtomic(0)
    let failed = ManagedAtomic(0)
    /// Connections that were up and then closed without the bench asking.
    let droppedAfterConnect = ManagedAtomic(0)
    let recovered = ManagedAtomic(0)

    var settled: Int { connected.load(ordering: .relaxed) + failed.load(ordering: .relaxed) }
}

/// What the client remembers for connection state recovery (socket.io's `pid` + last offset).
struct RecoveryToken: Sendable, Hashable {
    var pid: String
    var offset: String?
}

struct BenchClientOptions: Sendable {
    var index: Int
    var room: Int
    var roomName: String?
    var wire: BenchProtocol
    var recovery: RecoveryToken?
    var trackOffsets: Bool
    var connectTimeout: TimeAmount
}

/// Commands sent to a connection from the scenario, as user events (the handler lives on
/// its event loop; this is how other threads talk to it without locks).
enum BenchClientCommand: Sendable {
    case startSending(interval: TimeAmount, until: NIODeadline, sender: Int)
    case sendOne(sender: Int, sequence: Int)
    /// Emit one chat message with this text (not a timed bench payload).
    case sendText(String)
    /// Close the TCP connection abruptly and hand back what recovery needs.
    case dropForRecovery(EventLoopPromise<RecoveryToken?>)
    /// Hand back what recovery needs, staying connected (the server is about to be killed).
    case recoveryToken(EventLoopPromise<RecoveryToken?>)
}

/// Engine.IO v4 + Socket.IO v5 client over an open WebSocket, doing only what the bench
/// needs: handshake, CONNECT to `/`, answering pings, emitting `message` and timing the
/// `message` events that come back.
final class BenchClientHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private enum Phase { case awaitingOpen, awaitingConnect, connected, closed }

    private let options: BenchClientOptions
    private let stats: LoopStats
    private let counters: ConnectionCounters
    private let maskKey = WebSocketMaskingKey.random()
    private var phase = Phase.awaitingOpen
    private var startedNanos: UInt64 = 0
    private var connectTimeoutTask: Scheduled<Void>?
    private var sendTask: RepeatedTask?
    private var sequence = 0
    private var pid: String?
    private var lastOffset: String?
    private var closingOnPurpose = false

    init(options: BenchClientOptions, stats: LoopStats, counters: ConnectionCounters) {
        self.options = options
        self.stats = stats
        self.counters = counters
    }

    func handlerAdded(context: ChannelHandlerContext) {
        startedNanos = NIODeadline.now().uptimeNanoseconds
        let channel = context.channel
        connectTimeoutTask = context.eventLoop.scheduleTask(in: options.connectTimeout) {
            channel.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectTimeoutTask?.cancel()
        sendTask?.cancel()
        switch phase {
        case .awaitingOpen, .awaitingConnect:
            counters.failed.wrappingIncrement(ordering: .relaxed)
        case .connected:
            if !closingOnPurpose { counters.droppedAfterConnect.wrappingIncrement(ordering: .relaxed) }
        case .closed:
            break
        }
        phase = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            handleEngineText(context: context, frame.unmaskedData)
        case .ping:
            write(context: context, WebSocketFrame(fin: true, opcode: .pong, maskKey: maskKey, data: frame.unmaskedData))
        case .connectionClose:
            context.close(promise: nil)
        default:
            break  // binary and continuation frames carry nothing the chat protocol sends
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let command = event as? BenchClientCommand else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch command {
        case .startSending(let interval, let deadline, let sender):
            guard phase == .connected else { return }
            // The task runs on this handler's loop, which is what the loop-bound box checks.
            let handlerAndContext = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            sendTask = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: interval) { task in
                let (handler, context) = handlerAndContext.value
                guard NIODeadline.now() < deadline, handler.phase == .connected else { task.cancel(); return }
                handler.emitBenchMessage(context: context, sender: sender)
            }
        case .sendOne(let sender, let sequence):
            guard phase == .connected else { return }
            self.sequence = sequence
            emitBenchMessage(context: context, sender: sender)
        case .sendText(let text):
            guard phase == .connected else { return }
            sendText(context: context, options.wire.sendFrame(room: options.roomName ?? "", text: text))
        case .recoveryToken(let promise):
            promise.succeed(pid.map { RecoveryToken(pid: $0, offset: lastOffset) })
            // Its server is killed next: that close is expected.
            closingOnPurpose = true
        case .dropForRecovery(let promise):
            promise.succeed(pid.map { RecoveryToken(pid: $0, offset: lastOffset) })
            closingOnPurpose = true
            context.close(promise: nil)
        }
    }

    // MARK: Engine.IO

    private func handleEngineText(context: ChannelHandlerContext, _ data: ByteBuffer) {
        guard let type = data.getInteger(at: data.readerIndex, as: UInt8.self) else { return }
        switch type {
        case UInt8(ascii: "4"):
            handleSocketIO(context: context, data)
        case UInt8(ascii: "2"):
            stats.pingsAnswered += 1
            sendText(context: context, "3")
        case UInt8(ascii: "0"):
            guard phase == .awaitingOpen else { return }
            phase = .awaitingConnect
            sendText(context: context, "40" + connectAuthJSON())
        case UInt8(ascii: "1"):
            context.close(promise: nil)
        default:
            break  // noop, or upgrade packets we never asked for
        }
    }

    private func connectAuthJSON() -> String {
        var auth = JSONObject()
        if let roomName = options.roomName { auth["room"] = .string(roomName) }
        if let recovery = options.recovery {
            auth["pid"] = .string(recovery.pid)
            if let offset = recovery.offset { auth["offset"] = .string(offset) }
        }
        return auth.isEmpty ? "" : JSONValue.object(auth).jsonText
    }

    // MARK: Socket.IO

    private func handleSocketIO(context: ChannelHandlerContext, _ data: ByteBuffer) {
        guard let type = data.getInteger(at: data.readerIndex + 1, as: UInt8.self) else { return }
        switch type {
        case UInt8(ascii: "2"):
            guard BenchFrameScanner.isMessageEvent(data, protocol: options.wire) else { return }
            stats.messageEvents += 1
            if let payload = BenchFrameScanner.benchPayload(in: data, protocol: options.wire) {
                stats.recordDelivery(payload, now: NIODeadline.now().uptimeNanoseconds)
            }
            if options.trackOffsets, let offset = BenchFrameScanner.trailingStringArgument(in: data) {
                lastOffset = offset
            }
        case UInt8(ascii: "0"):
            guard phase == .awaitingConnect else { return }
            phase = .connected
            connectTimeoutTask?.cancel()
            var body = data
            body.moveReaderIndex(forwardBy: 2)
            let reply = try? JSONValue(parsing: body)
            pid = reply?["pid"]?.stringValue
            if let sent = options.recovery?.pid, sent == pid {
                counters.recovered.wrappingIncrement(ordering: .relaxed)
            }
            stats.recordConnected(afterNanos: NIODeadline.now().uptimeNanoseconds - startedNanos)
            counters.connected.wrappingIncrement(ordering: .relaxed)
            if let roomName = options.roomName, let join = options.wire.joinFrame(room: roomName) {
                sendText(context: context, join)
            }
        case UInt8(ascii: "4"), UInt8(ascii: "1"):
            context.close(promise: nil)  // CONNECT_ERROR or server-side disconnect
        default:
            break
        }
    }

    private func emitBenchMessage(context: ChannelHandlerContext, sender: Int) {
        let now = NIODeadline.now().uptimeNanoseconds
        let payload = BenchPayload(sender: sender, sequence: sequence, sentNanos: now)
        sequence += 1
        sendText(context: context, options.wire.sendFrame(room: options.roomName ?? "", text: payload.text))
        stats.recordSend(room: options.room, now: now)
    }

    private func sendText(context: ChannelHandlerContext, _ text: String) {
        write(context: context, WebSocketFrame(fin: true, opcode: .text, maskKey: maskKey, data: context.channel.allocator.buffer(string: text)))
    }

    private func write(context: ChannelHandlerContext, _ frame: WebSocketFrame) {
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }
}
