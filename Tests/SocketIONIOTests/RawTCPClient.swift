import Atomics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP client that sends exactly the bytes a test gives it and records what comes back
/// and when the server closes.
final class RawTCPClient: Sendable {
    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox(ByteBuffer())
        let closed = ManagedAtomic(false)

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            received.withLockedValue { $0.writeBuffer(&bytes) }
        }

        func channelInactive(context: ChannelHandlerContext) { closed.store(true, ordering: .relaxed) }

        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    let channel: any Channel
    private let recorder: Recorder

    private init(channel: any Channel, recorder: Recorder) {
        self.channel = channel
        self.recorder = recorder
    }

    /// `autoRead: false` makes a client that never reads (the kernel still acknowledges
    /// up to its small receive buffer).
    static func connect(port: Int, autoRead: Bool = true, receiveBuffer: Int? = nil) async throws -> RawTCPClient {
        let recorder = Recorder()
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: autoRead)
        if let receiveBuffer { bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer)) }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(recorder) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawTCPClient(channel: channel, recorder: recorder)
    }

    func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    var received: String { recorder.received.withLockedValue { String(buffer: $0) } }
    var isClosed: Bool { recorder.closed.load(ordering: .relaxed) }

    /// Waits (bounded) until the server has closed the connection; false if it did not.
    func closes(within seconds: Double) async -> Bool {
        let deadline = NIODeadline.now() + .milliseconds(Int64(seconds * 1000))
        while NIODeadline.now() < deadline {
            if isClosed { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return isClosed
    }

    func close() async { try? await channel.close() }
}
