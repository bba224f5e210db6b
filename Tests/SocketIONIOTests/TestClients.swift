import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
@testable import SocketIONIO

struct TestTimeout: Error {}

/// Runs `body` but gives up after `seconds` (tests never hang on a broken server).
func withTimeout<T: Sendable>(_ seconds: Double = 5, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            throw TestTimeout()
        }
        let result = try await group.next()!
        group.cancelAll()
        return result
    }
}

struct TestResponse: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: String
}

/// One HTTP/1.1 request on a fresh connection, collected completely.
enum TestHTTP {
    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<TestResponse>
        var response = TestResponse(status: 0, headers: [:], body: "")
        init(promise: EventLoopPromise<TestResponse>) { self.promise = promise }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                response.status = Int(head.status.code)
                response.headers = head.headers
            case .body(let buffer):
                response.body += String(buffer: buffer)
            case .end:
                promise.succeed(response)
                context.close(promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ChannelError.eof)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
            context.close(promise: nil)
        }
    }

    static func request(
        port: Int, method: HTTPMethod = .GET, uri: String, body: String? = nil, headers: HTTPHeaders = [:]
    ) async throws -> TestResponse {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.any().makePromise(of: TestResponse.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(Collector(promise: promise))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
        } catch {
            promise.fail(error)  // NIO insists every promise is completed
            throw error
        }
        var allHeaders = headers
        allHeaders.add(name: "Host", value: "127.0.0.1:\(port)")
        allHeaders.add(name: "Connection", value: "close")
        allHeaders.add(name: "Content-Length", value: String(body?.utf8.count ?? 0))
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: allHeaders)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil) }
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
        return try await promise.futureResult.get()
    }
}

/// A minimal WebSocket client: frames in arrive on `events`; sending masks as RFC 6455 asks.
final class TestWebSocket: Sendable {
    enum Event: Sendable, Equatable {
        case text(String)
        case binary([UInt8])
        case close(code: UInt16?)
        case disconnected
    }

    /// Reads the 101 response and then the server's frames from ONE byte stream. A server may
    /// send the 101, a frame and its FIN in a single segment (a refused second WebSocket does);
    /// a pipeline swapped from HTTP to WebSocket handlers can lose what arrives mid-swap.
    private final class RawClientHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let events: NIOLockedValueBox<[Event]>
        let upgraded: EventLoopPromise<Void>
        private var buffered = ByteBuffer()
        private var handshakeDone = false

        init(events: NIOLockedValueBox<[Event]>, upgraded: EventLoopPromise<Void>) {
            self.events = events
            self.upgraded = upgraded
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            buffered.writeBuffer(&bytes)
            if !handshakeDone {
                let text = String(buffer: buffered)
                guard let end = text.utf8.indices.first(where: { text.utf8[$0...].starts(with: "\r\n\r\n".utf8) }) else { return }
                let headLength = text.utf8.distance(from: text.utf8.startIndex, to: end) + 4
                let head = buffered.readString(length: headLength) ?? ""
                guard head.hasPrefix("HTTP/1.1 101") else {
                    upgraded.fail(TestWebSocketRefused(response: head))
                    context.close(promise: nil)
                    return
                }
                handshakeDone = true
                upgraded.succeed()
            }
            while let event = nextFrame() { events.withLockedValue { $0.append(event) } }
        }

        /// One whole unmasked server frame off `buffered`, or nil until more bytes arrive.
        private func nextFrame() -> Event? {
            while true {
                var probe = buffered
                guard let first = probe.readInteger(as: UInt8.self), let second = probe.readInteger(as: UInt8.self) else { return nil }
                var length = Int(second & 0x7F)
                if length == 126 {
                    guard let extended = probe.readInteger(as: UInt16.self) else { return nil }
                    length = Int(extended)
                } else if length == 127 {
                    guard let extended = probe.readInteger(as: UInt64.self) else { return nil }
                    length = Int(extended)
                }
                guard var payload = probe.readSlice(length: length) else { return nil }
                buffered = probe
                switch first & 0x0F {
                case 0x1: return .text(String(buffer: payload))
                case 0x2: return .binary(Array(payload.readableBytesView))
                case 0x8: return .close(code: payload.readInteger(as: UInt16.self))
                default: continue  // ping/pong: nothing a test waits for
                }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if !handshakeDone { upgraded.fail(TestWebSocketRefused(response: "connection closed before 101")) }
            events.withLockedValue { $0.append(.disconnected) }
        }
    }

    struct TestWebSocketRefused: Error { var response: String }

    let channel: any Channel
    /// Events not yet taken by `next()`.
    private let events: NIOLockedValueBox<[Event]>

    private init(channel: any Channel, events: NIOLockedValueBox<[Event]>) {
        self.channel = channel
        self.events = events
    }

    static func connect(port: Int, uri: String, autoRead: Bool = true) async throws -> TestWebSocket {
        let events = NIOLockedValueBox<[Event]>([])
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.any()
        let upgraded = loop.makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelOption(.autoRead, value: autoRead)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawClientHandler(events: events, upgraded: upgraded))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let request = "GET \(uri) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request))
        if !autoRead { channel.read() }
        try await withTimeout { try await upgraded.futureResult.get() }
        return TestWebSocket(channel: channel, events: events)
    }

    func send(text: String) async throws {
        try await channel.writeAndFlush(Self.maskedFrame(opcode: 0x1, payload: Array(text.utf8)))
    }

    /// A close frame with status 1000.
    func sendClose() async throws {
        try await channel.writeAndFlush(Self.maskedFrame(opcode: 0x8, payload: [0x03, 0xE8]))
    }

    func send(binary: [UInt8]) async throws {
        try await channel.writeAndFlush(Self.maskedFrame(opcode: 0x2, payload: binary))
    }

    /// A client frame: FIN, the opcode, and the payload masked as RFC 6455 requires.
    private static func maskedFrame(opcode: UInt8, payload: [UInt8]) -> ByteBuffer {
        var frame = ByteBuffer()
        frame.writeInteger(0x80 | opcode)
        if payload.count <= 125 {
            frame.writeInteger(0x80 | UInt8(payload.count))
        } else if payload.count <= Int(UInt16.max) {
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(payload.count))
        } else {
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(payload.count))
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame.writeBytes(mask)
        frame.writeBytes(payload.enumerated().map { $0.element ^ mask[$0.offset % 4] })
        return frame
    }

    /// The next event, or a `TestTimeout` error.
    func next(timeout: Double = 3) async throws -> Event {
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeout * 1000))
        while true {
            let event: Event? = events.withLockedValue { $0.isEmpty ? nil : $0.removeFirst() }
            if let event { return event }
            if NIODeadline.now() > deadline { throw TestTimeout() }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
    }

    /// The next event that is not an Engine.IO ping; pings met on the way are answered.
    func nextAnsweringPings(timeout: Double = 3) async throws -> Event {
        while true {
            let event = try await next(timeout: timeout)
            guard event == .text("2") else { return event }
            try await send(text: "3")
        }
    }

    func nextText(timeout: Double = 3) async throws -> String? {
        if case .text(let text) = try await next(timeout: timeout) { return text }
        return nil
    }

    func close() async {
        try? await channel.close()
    }
}

/// An Engine.IO delegate for tests: echoes messages (optionally) and records what happened.
final class RecordingDelegate: EngineServerDelegate, EngineConnectionDelegate, Sendable {
    struct Record: Sendable {
        var opened: [String] = []
        var received: [EngineMessage] = []
        var closed: [(id: String, reason: EngineCloseReason)] = []
        var connections: [any EngineConnection] = []
    }

    let record = NIOLockedValueBox(Record())
    let echo: Bool
    /// Sent to every new connection from `engineDidOpen`.
    let greeting: [EngineMessage]

    init(echo: Bool = true, greeting: [EngineMessage] = []) {
        self.echo = echo
        self.greeting = greeting
    }

    func engineDidOpen(_ connection: any EngineConnection) {
        connection.delegate = self
        record.withLockedValue {
            $0.opened.append(connection.id)
            $0.connections.append(connection)
        }
        if !greeting.isEmpty { connection.send(greeting) }
    }

    func connection(_ connection: any EngineConnection, didReceive message: EngineMessage) {
        record.withLockedValue { $0.received.append(message) }
        if echo { connection.send(message) }
    }

    func connectionDidClose(_ connection: any EngineConnection, reason: EngineCloseReason) {
        record.withLockedValue { $0.closed.append((connection.id, reason)) }
    }

    var closeReasons: [EngineCloseReason] { record.withLockedValue { $0.closed.map(\.reason) } }

    /// Polls (bounded) until `condition` holds.
    func waitUntil(timeout: Double = 3, _ condition: @escaping @Sendable (Record) -> Bool) async throws {
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeout * 1000))
        while !record.withLockedValue({ condition($0) }) {
            if NIODeadline.now() > deadline { throw TestTimeout() }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }
}

/// A server on a free loopback port with one `/engine.io/` endpoint, stopped by `body`'s end.
func withTestServer(
    configure: (inout EngineServerConfiguration) -> Void = { _ in },
    delegate: RecordingDelegate = RecordingDelegate(),
    fallback: HTTPFallbackHandler? = nil,
    http configureHTTP: (inout EngineIOHTTPServerConfiguration) -> Void = { _ in },
    _ body: (EngineIOHTTPServer, Int, RecordingDelegate) async throws -> Void
) async throws {
    var configuration = EngineServerConfiguration(pingInterval: .milliseconds(300), pingTimeout: .milliseconds(200))
    configuration.webSocketMinimumFlushGap = .zero
    configure(&configuration)
    var httpConfiguration = EngineIOHTTPServerConfiguration(host: "127.0.0.1", port: 0)
    configureHTTP(&httpConfiguration)
    let server = EngineIOHTTPServer(
        configuration: httpConfiguration,
        endpoints: [EngineIOEndpoint(path: "/engine.io/", configuration: configuration, delegate: delegate)],
        fallback: fallback
    )
    try await server.start()
    do {
        try await body(server, server.port!, delegate)
    } catch {
        await server.shutdown()
        throw error
    }
    await server.shutdown()
}

/// The sid of a fresh polling session.
func openPollingSession(port: Int) async throws -> String {
    let response = try await TestHTTP.request(port: port, uri: "/engine.io/?EIO=4&transport=polling")
    let prefix = "0{\"sid\":\""
    guard response.body.hasPrefix(prefix) else { throw TestTimeout() }
    return String(response.body.dropFirst(prefix.count).prefix { $0 != "\"" })
}
