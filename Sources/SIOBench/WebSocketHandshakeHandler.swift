import NIOCore
import NIOWebSocket

/// Opens a WebSocket the cheapest way a load generator can: one fixed HTTP/1.1 upgrade
/// request, then checks for `101` and swaps itself for the frame codec. A full HTTP client
/// pipeline per connection would cost memory and CPU we want to leave to the server.
final class WebSocketHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum HandshakeError: Error { case rejected(statusLine: String), responseTooLarge }

    private let request: String
    private var response: ByteBuffer?
    /// A server answering with more than this before the blank line is not upgrading.
    private static let maxResponseHeadBytes = 8192
    private static let headEnd: [UInt8] = Array("\r\n\r\n".utf8)

    init(host: String, path: String, query: String) {
        // The key only has to be well-formed base64 of 16 bytes; the server echoes its hash,
        // which we do not check (we are testing the server, not guarding against it).
        request = "GET \(path)?\(query) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: c2lvLWJlbmNoLWtleS0wMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if response == nil { response = incoming } else { response!.writeBuffer(&incoming) }
        guard let buffer = response else { return }
        let bytes = buffer.readableBytesView
        guard let headEndIndex = Self.indexAfterHead(bytes) else {
            if bytes.count > Self.maxResponseHeadBytes { context.fireErrorCaught(HandshakeError.responseTooLarge) }
            return
        }
        let statusLineEnd = bytes.firstIndex(of: UInt8(ascii: "\r")) ?? headEndIndex
        let statusLine = String(decoding: bytes[bytes.startIndex..<statusLineEnd], as: UTF8.self)
        guard statusLine.hasPrefix("HTTP/1.1 101") else {
            context.fireErrorCaught(HandshakeError.rejected(statusLine: statusLine))
            return
        }
        let leftover = buffer.getSlice(at: headEndIndex, length: bytes.endIndex - headEndIndex)
        response = nil
        do {
            try context.pipeline.syncOperations.addHandlers(
                [WebSocketFrameEncoder(), ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20))],
                position: .after(self)
            )
        } catch {
            context.fireErrorCaught(error)
            return
        }
        if let leftover, leftover.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(leftover)) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private static func indexAfterHead(_ bytes: ByteBufferView) -> Int? {
        guard bytes.count >= headEnd.count else { return nil }
        var index = bytes.startIndex
        while index <= bytes.endIndex - headEnd.count {
            if bytes[index] == headEnd[0], bytes[index..<(index + 4)].elementsEqual(headEnd) { return index + 4 }
            index += 1
        }
        return nil
    }
}
