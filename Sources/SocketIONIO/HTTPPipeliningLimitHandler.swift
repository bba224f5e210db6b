import NIOCore
import NIOHTTP1

/// Closes a connection that has more than `limit` requests waiting for their answers.
///
/// NIO's HTTP decoder parses everything a read brought in, and its pipelining handler
/// queues the parsed requests until their turn: a client that pipelines thousands of tiny
/// requests in one write would have them all parsed into memory, however fast we stop
/// reading. Browsers do not pipeline at all, and no client needs more than a handful of
/// requests in flight, so beyond `limit` the client is treated as hostile.
///
/// Sits between the decoder and the pipelining handler, where requests are counted as
/// they are parsed and answers as their ends go out.
final class HTTPPipeliningLimitHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    static let name = "http-pipelining-limit"

    private let limit: Int
    private var unanswered = 0
    private var closing = false

    init(limit: Int) {
        self.limit = max(limit, 1)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        if case .head = unwrapInboundIn(data) {
            unanswered += 1
            if unanswered > limit {
                closing = true
                EngineMetrics.admissionRefused(.pipelining).increment()
                context.close(promise: nil)
                return
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { unanswered = max(unanswered - 1, 0) }
        context.write(data, promise: promise)
    }
}
