import NIOCore
import NIOHTTP1

/// Hands the next request to the server only while the client takes our answers (the
/// channel is writable). NIO's pipelining handler passes on the next queued request as
/// soon as an answer's end is written, not sent: without this, a client that pipelines
/// requests and never reads makes us answer all of them into memory.
///
/// Holds at most one request (the pipelining handler waits for its answer before passing
/// on another). While it waits, the keep-alive timeout runs (`HTTPConnectionTimeoutHandler`
/// sits after this one), so a client that never reads is closed after it.
final class HTTPWritabilityGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    static let name = "http-writability-gate"

    private var held: [NIOAny] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if held.isEmpty && context.channel.isWritable {
            context.fireChannelRead(data)
        } else {
            held.append(data)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && !held.isEmpty {
            let parts = held
            held = []
            for part in parts { context.fireChannelRead(part) }
            context.fireChannelReadComplete()
        }
        context.fireChannelWritabilityChanged()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Removed by an upgrade: nothing is held then (an upgrade request is the last one).
        held = []
    }
}
