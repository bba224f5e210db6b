import NIOCore
import NIOHTTP1

/// Closes HTTP connections whose client is too slow to send a request, or silent too long
/// between requests (see `HTTPConnectionTimeoutStateMachine`). One timer per connection on
/// its own loop, re-armed as the state moves and cancelled when the connection goes.
///
/// Sits after NIO's pipelining handler (so it sees one request at a time, and a response's
/// end before the next queued request) and before the upgrade handler (so it sees the heads
/// of upgrade requests too). The WebSocket upgrade removes it.
final class HTTPConnectionTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    static let name = "http-timeouts"

    private let timeouts: HTTPConnectionTimeouts
    private var machine: HTTPConnectionTimeoutStateMachine?
    private var timer: Scheduled<Void>?
    private var armedDeadline: NIODeadline?
    /// A deadline passed: the connection is being closed.
    private var closing = false

    init(timeouts: HTTPConnectionTimeouts) {
        self.timeouts = timeouts
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Added while the connection is being set up: its clock starts now.
        var machine = HTTPConnectionTimeoutStateMachine(timeouts: timeouts, now: .now())
        let action = machine.initialAction
        self.machine = machine
        run(action, context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        machine = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        machine = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Whatever follows a timeout is not served: the connection is closing.
        if closing { return }
        guard var machine else {
            context.fireChannelRead(data)
            return
        }
        let action: HTTPConnectionTimeoutStateMachine.Action
        switch unwrapInboundIn(data) {
        case .head: action = machine.requestHeadArrived(now: .now())
        case .body: action = .none
        case .end: action = machine.requestEndArrived()
        }
        self.machine = machine
        run(action, context: context)
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if var machine {
            let action = machine.bytesArrived(now: .now())
            self.machine = machine
            run(action, context: context)
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if var machine {
            var action = HTTPConnectionTimeoutStateMachine.Action.none
            switch unwrapOutboundIn(data) {
            case .head(let head) where head.status == .switchingProtocols:
                action = machine.upgraded()
            case .end:
                action = machine.responseEnded(now: .now())
            case .head, .body:
                break
            }
            self.machine = machine
            run(action, context: context)
        }
        context.write(data, promise: promise)
    }

    // MARK: Running actions

    private func run(_ action: HTTPConnectionTimeoutStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .disarm:
            cancelTimer()
        case .arm(let deadline):
            // Re-armed only when the deadline moved (most events leave it where it was).
            guard deadline != armedDeadline else { return }
            cancelTimer()
            armedDeadline = deadline
            timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
                timer = nil
                armedDeadline = nil
                guard var machine else { return }
                let action = machine.timerFired(now: .now())
                self.machine = machine
                run(action, context: context)
            }
        case .close(let expiry, let answer408):
            cancelTimer()
            closing = true
            EngineMetrics.httpTimeouts(expiry).increment()
            guard answer408 else {
                context.close(promise: nil)
                return
            }
            // Node answers 408 to a request whose body did not arrive in time.
            var headers = HTTPHeaders()
            headers.add(name: "Connection", value: "close")
            headers.add(name: "Content-Length", value: "0")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .requestTimeout, headers: headers))), promise: nil)
            // Closed right away, not when the write completes: a client that does not read
            // would otherwise keep the connection.
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            context.close(promise: nil)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        armedDeadline = nil
    }
}
