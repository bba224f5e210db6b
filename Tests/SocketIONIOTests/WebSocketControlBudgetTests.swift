import EngineIO
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing
@testable import SocketIONIO

/// Keeps every write pending, as a peer that never reads leaves them: nothing is passed on
/// and no promise completes.
private final class StalledPeer: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = NIOAny
    var pending: [EventLoopPromise<Void>?] = []
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) { pending.append(promise) }
    func flush(context: ChannelHandlerContext) {}
}

@Suite(.serialized) struct WebSocketControlBudgetTests {
    private static func handshake() -> EngineHandshakeRequest {
        EngineHandshakeRequest(uri: "/engine.io/", headers: [], query: [:], remoteAddress: "127.0.0.1", isSecure: false, issuedAt: 0)
    }

    /// An upgraded WebSocket on an EmbeddedChannel, budget 64 KB, behind `peer`.
    private static func webSocket(peer: (any ChannelOutboundHandler & Sendable)?) throws -> (EmbeddedChannel, RecordingDelegate) {
        let delegate = RecordingDelegate()
        var configuration = EngineServerConfiguration(pingInterval: .seconds(25), pingTimeout: .seconds(20))
        configuration.maxOutboundBufferBytes = 64 * 1024
        let endpoint = EngineIOEndpoint(path: "/engine.io/", configuration: configuration, delegate: delegate)
        let channel = EmbeddedChannel()
        if let peer { try channel.pipeline.syncOperations.addHandler(peer) }
        try channel.pipeline.syncOperations.addHandler(EngineWebSocketHandler(
            role: .handshake(endpoint, handshake()), channelLoop: channel.eventLoop, outboundBudget: 64 * 1024,
            minimumFlushGap: .zero, maxPayload: 1_000_000
        ))
        return (channel, delegate)
    }

    /// A client's ping with 125 bytes, on the wire (unmasked: the server reads both).
    private static func ping() -> ByteBuffer {
        // Masked with a zero key (the payload bytes as they are): clients must mask.
        ByteBuffer(bytes: [0x89, 0x80 | 125, 0, 0, 0, 0] + Array(repeating: 7, count: 125))
    }

    @Test func pongsToAPeerThatNeverReadsCountAgainstTheBudget() throws {
        let peer = StalledPeer()
        let (channel, delegate) = try Self.webSocket(peer: peer)
        var pings = 0
        while delegate.record.withLockedValue({ $0.closed.isEmpty }) && pings < 10_000 {
            try channel.writeInbound(Self.ping())
            pings += 1
        }
        #expect(delegate.closeReasons == [.slowClient])
        // 64 KB at 125 bytes plus the per-write cost: a couple of hundred pongs, not thousands.
        #expect(pings < 200, "\(pings) pings before the close")
        #expect(peer.pending.count < 200)
        for promise in peer.pending { promise?.fail(ChannelError.ioOnClosedChannel) }
        _ = try? channel.finish()
    }

    @Test func pongsThatAreTakenDoNotAddUp() throws {
        let (channel, delegate) = try Self.webSocket(peer: nil)
        for _ in 0..<5_000 {
            try channel.writeInbound(Self.ping())
            while let _ = try channel.readOutbound(as: ByteBuffer.self) {}
        }
        #expect(delegate.record.withLockedValue { $0.closed.isEmpty })
        _ = try? channel.finish()
    }
}
