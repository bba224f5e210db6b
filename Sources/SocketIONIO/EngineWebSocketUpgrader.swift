import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The WebSocket upgrade of an Engine.IO connection. NIO's `NIOWebSocketServerUpgrader`
/// checks the request and answers it (the 101 and its `Sec-WebSocket-Accept`); the pipeline
/// it would then build (frame decoder, encoder, protocol-error handler, and our aggregator)
/// is replaced by one `EngineWebSocketHandler` reading and writing raw bytes: five handler
/// contexts and their buffers fewer on every WebSocket connection, and no futures chained
/// between them at upgrade time.
final class EngineWebSocketUpgrader: HTTPServerProtocolUpgrader, Sendable {
    let supportedProtocol = "websocket"
    /// As NIO's upgrader: RFC 6455 does not make clients list these in `Connection`.
    let requiredUpgradeHeaders: [String] = []

    private let responder: NIOWebSocketServerUpgrader
    /// The handler for an accepted upgrade, or nil to close the connection.
    private let makeHandler: @Sendable (any Channel, HTTPRequestHead) -> EngineWebSocketHandler?

    /// `shouldUpgrade` as NIO's: nil refuses the upgrade (the request then goes on as HTTP).
    init(
        shouldUpgrade: @escaping @Sendable (any Channel, HTTPRequestHead) -> EventLoopFuture<HTTPHeaders?>,
        makeHandler: @escaping @Sendable (any Channel, HTTPRequestHead) -> EngineWebSocketHandler?
    ) {
        self.makeHandler = makeHandler
        // Only its request checks and its answer are used: its frame size limit never applies.
        self.responder = NIOWebSocketServerUpgrader(
            maxFrameSize: 1 << 10, automaticErrorHandling: false, shouldUpgrade: shouldUpgrade,
            upgradePipelineHandler: { channel, _ in channel.eventLoop.makeSucceededVoidFuture() }
        )
    }

    func buildUpgradeResponse(
        channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders
    ) -> EventLoopFuture<HTTPHeaders> {
        responder.buildUpgradeResponse(channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders)
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        guard let handler = makeHandler(channel, upgradeRequest) else { return channel.close() }
        return channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            // The HTTP handler answered nothing (the upgrade took the request) and has no
            // place next to WebSocket bytes.
            if (try? sync.handler(type: EngineHTTPHandler.self)) != nil {
                sync.removeHandler(name: EngineHTTPHandler.name, promise: nil)
            }
            try sync.addHandler(handler)
        }
    }
}
