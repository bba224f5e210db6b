import AMQPProtocol
import Logging
import NIOCore
import NIOEmbedded
import XCTest
@testable import AMQPClient

/// Drives the real NIO handler over an EmbeddedChannel with encoded broker frames.
final class ConnectionHandlerTests: XCTestCase {
    private final class RecordingDelegate: AMQPConnectionHandlerDelegate {
        var frames: [(UInt16, AMQPFrame)] = []
        var closedWith: [AMQPError?] = []
        var blocked: [String] = []
        func handlerReceived(channel: UInt16, frame: AMQPFrame) { frames.append((channel, frame)) }
        func handlerBlocked(reason: String) { blocked.append(reason) }
        func handlerUnblocked() {}
        func handlerClosed(error: AMQPError?) { closedWith.append(error) }
        func handlerReadComplete() {}
    }

    private var channel: EmbeddedChannel!
    private var handler: AMQPConnectionHandler!
    private var established: EventLoopFuture<AMQPNegotiatedParameters>!
    private var decoder = AMQPFrameDecoder()

    override func setUp() {
        channel = EmbeddedChannel()
        let promise = channel.eventLoop.makePromise(of: AMQPNegotiatedParameters.self)
        established = promise.futureResult
        handler = AMQPConnectionHandler(
            credentials: .init(username: "u", password: "p", virtualHost: "vh",
                               clientProperties: AMQPConnection.clientProperties(connectionName: nil),
                               desired: ConnectionTuneOk(channelMax: 100, frameMax: 131_072, heartbeat: 1)),
            established: promise, logger: Logger(label: "test"))
        XCTAssertNoThrow(try channel.pipeline.syncOperations.addHandler(handler))
    }

    override func tearDown() {
        _ = try? channel.finish()
    }

    private func send(_ frame: AMQPFrame) throws {
        var buffer = ByteBuffer()
        frame.encode(into: &buffer)
        try channel.writeInbound(buffer)
    }

    private func readFrames() throws -> [AMQPFrame] {
        channel.embeddedEventLoop.run()
        var frames: [AMQPFrame] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            while let frame = try decoder.decode(buffer: &buffer) { frames.append(frame) }
        }
        return frames
    }

    private func handshake() throws {
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 5672)).wait()
        channel.embeddedEventLoop.run()
        let header = try XCTUnwrap(try channel.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(Array(header.readableBytesView), AMQPProtocolHeader.bytes)

        try send(.method(channel: 0, .connectionStart(ConnectionStart(
            versionMajor: 0, versionMinor: 9, mechanisms: "PLAIN AMQPLAIN", locales: "en_US"))))
        guard case .method(0, .connectionStartOk(let startOk)) = try readFrames().first else { return XCTFail("no start-ok") }
        XCTAssertEqual(startOk.response, "\u{0}u\u{0}p")

        try send(.method(channel: 0, .connectionTune(ConnectionTune(channelMax: 2047, frameMax: 4096, heartbeat: 60))))
        let frames = try readFrames()
        XCTAssertEqual(frames, [
            .method(channel: 0, .connectionTuneOk(ConnectionTuneOk(channelMax: 100, frameMax: 4096, heartbeat: 1))),
            .method(channel: 0, .connectionOpen(ConnectionOpen(virtualHost: "vh"))),
        ])
        try send(.method(channel: 0, .connectionOpenOk(ConnectionOpenOk())))
        XCTAssertEqual(try established.wait(), AMQPNegotiatedParameters(channelMax: 100, frameMax: 4096, heartbeat: 1))
    }

    func testHandshakeThenChannelFramesGoToTheDelegate() throws {
        try handshake()
        let delegate = RecordingDelegate()
        handler.delegate = delegate
        // Two frames in one read, split oddly across two reads, must both arrive whole.
        var bytes = ByteBuffer()
        AMQPFrame.method(channel: 3, .channelOpenOk(ChannelOpenOk())).encode(into: &bytes)
        AMQPFrame.body(channel: 3, ByteBuffer(string: "payload")).encode(into: &bytes)
        let first = bytes.readSlice(length: 5)!
        try channel.writeInbound(first)
        XCTAssertTrue(delegate.frames.isEmpty)
        try channel.writeInbound(bytes)
        XCTAssertEqual(delegate.frames.map(\.0), [3, 3])
        XCTAssertEqual(delegate.frames.last?.1, .body(channel: 3, ByteBuffer(string: "payload")))

        try send(.method(channel: 0, .connectionBlocked(ConnectionBlocked(reason: "low on memory"))))
        XCTAssertEqual(delegate.blocked, ["low on memory"])
    }

    func testWrongPasswordEndsWithAuthenticationFailedAndCloseOk() throws {
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 5672)).wait()
        channel.embeddedEventLoop.run()
        XCTAssertNotNil(try channel.readOutbound(as: ByteBuffer.self), "protocol header")
        try send(.method(channel: 0, .connectionStart(ConnectionStart(
            versionMajor: 0, versionMinor: 9, mechanisms: "PLAIN", locales: "en_US"))))
        _ = try readFrames()
        try send(.method(channel: 0, .connectionClose(ConnectionClose(
            replyCode: 403, replyText: "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN",
            classID: 0, methodID: 0))))
        XCTAssertEqual(try readFrames(), [.method(channel: 0, .connectionCloseOk(ConnectionCloseOk()))])
        XCTAssertThrowsError(try established.wait()) { error in
            guard case AMQPError.authenticationFailed(let text) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("403"))
        }
        XCTAssertFalse(channel.isActive)
    }

    func testHeartbeatsAreSentAndSilentPeerIsDeclaredDead() throws {
        try handshake()
        let delegate = RecordingDelegate()
        handler.delegate = delegate
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertEqual(try readFrames(), [.heartbeat])
        try send(.heartbeat)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertEqual(try readFrames(), [.heartbeat])
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        XCTAssertFalse(channel.isActive)
        XCTAssertEqual(delegate.closedWith, [.heartbeatTimeout])
    }

    func testGarbageFromPeerClosesWithProtocolViolation() throws {
        try handshake()
        let delegate = RecordingDelegate()
        handler.delegate = delegate
        try channel.writeInbound(ByteBuffer(bytes: [9, 0, 0, 0, 0, 0, 1, 0xCE]))
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
        guard case .protocolViolation? = delegate.closedWith.first ?? nil else { return XCTFail("\(delegate.closedWith)") }
    }
}
