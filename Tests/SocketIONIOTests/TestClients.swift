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

    private final class FrameCollector: ChannelInboundHandler, Sendable {
        typealias InboundIn = WebSocketFrame
        let events: NIOLockedValueBox<[Event]>
        init(_ events: NIOLockedValueBox<[Event]>) { self.events = events }

        private func yield(_ event: Event) { events.withLockedValue { $0.append(event) } }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            var payload = frame.unmaskedData
            switch frame.opcode {
            case .text: yield(.text(String(buffer: payload)))
            case .binary: yield(.binary(Array(payload.readableBytesView)))
            case .connectionClose: yield(.close(code: payload.readInteger(as: UInt16.self)))
            default: break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            yield(.disconnected)
        }
    }

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
        let upgraded = group.any().makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.autoRead, value: autoRead)
            .channelInitializer { channel in
                let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 24, upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(FrameCollector(events))
                    }
                })
                // The open packet may arrive in the same read as the 101: keep those bytes.
                return channel.pipeline.addHTTPClientHandlers(leftOverBytesStrategy: .forwardBytes, withClientUpgrade: (
                    upgraders: [upgrader], completionHandler: { _ in upgraded.succeed() }
                ))
            }
            .connect(host: "127.0.0.1", port: port).get()
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: [
            "Host": "127.0.0.1:\(port)", "Content-Length": "0",
        ])
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
        if !autoRead { channel.read() }
        try await withTimeout { try await upgraded.futureResult.get() }
        return TestWebSocket(channel: channel, events: events)
    }

    func send(text: String) async throws {
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: text))
        try await channel.writeAndFlush(frame)
    }

    func send(binary: [UInt8]) async throws {
        let frame = WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: ByteBuffer(bytes: binary))
        try await channel.writeAndFlush(frame)
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
    _ body: (EngineIOHTTPServer, Int, RecordingDelegate) async throws -> Void
) async throws {
    var configuration = EngineServerConfiguration(pingInterval: .milliseconds(300), pingTimeout: .milliseconds(200))
    configuration.webSocketMinimumFlushGap = .zero
    configure(&configuration)
    let server = EngineIOHTTPServer(
        configuration: EngineIOHTTPServerConfiguration(host: "127.0.0.1", port: 0),
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
