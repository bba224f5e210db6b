import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

@testable import SocketIO

/// An Engine.IO connection without a transport: records what the server sends and lets
/// the test play the client, on a real event loop so threading is exercised too.
final class FakeEngineConnection: EngineConnection, @unchecked Sendable {
    // @unchecked Sendable: `delegateStorage` and `closed` are touched only on `eventLoop`;
    // the recorded output is behind a lock.
    let id: String
    let eventLoop: any EventLoop
    let handshake: EngineHandshakeRequest
    var transportName: String { "websocket" }
    /// What `isWritable` answers: a test sets it false to play a client that is not reading.
    let writable = NIOLockedValueBox(true)
    var isWritable: Bool { writable.withLockedValue { $0 } }

    private let output = NIOLockedValueBox<(messages: [EngineMessage], closeReason: EngineCloseReason?)>(([], nil))
    private var delegateStorage: (any EngineConnectionDelegate)?
    private var closed = false

    var delegate: (any EngineConnectionDelegate)? {
        get { delegateStorage }
        set { delegateStorage = newValue }
    }

    init(eventLoop: any EventLoop, id: String = UUIDString.make(), headers: [(name: String, value: String)] = [], query: [String: String] = [:]) {
        self.id = id
        self.eventLoop = eventLoop
        self.handshake = EngineHandshakeRequest(
            uri: "/socket.io/?EIO=4&transport=websocket", headers: headers, query: query,
            remoteAddress: "127.0.0.1", isSecure: false, issuedAt: 1_700_000_000)
    }

    func send(_ messages: [EngineMessage]) {
        output.withLockedValue { state in
            if state.closeReason == nil { state.messages.append(contentsOf: messages) }
        }
    }

    func close(reason: EngineCloseReason) {
        eventLoop.execute {
            guard !self.closed else { return }
            self.closed = true
            self.output.withLockedValue { $0.closeReason = reason }
            self.delegateStorage?.connectionDidClose(self, reason: reason)
            // As a real session does: the upper layer is not kept past the close.
            self.delegateStorage = nil
        }
    }

    // MARK: Test side

    /// Delivers messages from the "client" as Engine.IO would, on the loop, in order.
    func receive(_ messages: EngineMessage...) async throws {
        try await eventLoop.submit {
            for message in messages where !self.closed { self.delegateStorage?.connection(self, didReceive: message) }
        }.get()
    }

    func receive(_ text: String) async throws { try await receive(EngineMessage(text: text)) }

    var closeReason: EngineCloseReason? { output.withLockedValue { $0.closeReason } }

    /// Everything sent so far, text as is, binary as `<1,2,3>`.
    var sentTexts: [String] {
        output.withLockedValue { $0.messages }.map { message in
            message.isBinary ? "<" + message.payload.readableBytesView.map(String.init).joined(separator: ",") + ">" : message.text
        }
    }

    /// Waits (bounded) until at least `count` messages were sent, then removes and
    /// returns the first `count`.
    func next(_ count: Int = 1, timeout: TimeAmount = .seconds(3), file: StaticString = #filePath, line: UInt = #line) async throws -> [String] {
        let deadline = NIODeadline.now() + timeout
        while sentTexts.count < count, NIODeadline.now() < deadline { try await Task.sleep(nanoseconds: 2_000_000) }
        let texts = sentTexts
        guard texts.count >= count else {
            XCTFail("expected \(count) messages, got \(texts)", file: file, line: line)
            return texts
        }
        output.withLockedValue { $0.messages.removeFirst(count) }
        return Array(texts.prefix(count))
    }

    func nextText(file: StaticString = #filePath, line: UInt = #line) async throws -> String {
        try await next(1, file: file, line: line).first ?? ""
    }

    /// Waits (bounded) for the connection to be closed.
    func waitForClose(timeout: TimeAmount = .seconds(3)) async throws -> EngineCloseReason? {
        let deadline = NIODeadline.now() + timeout
        while closeReason == nil, NIODeadline.now() < deadline { try await Task.sleep(nanoseconds: 2_000_000) }
        return closeReason
    }

    /// Lets queued loop work and short Tasks finish, then returns what was sent meanwhile.
    func settle(milliseconds: UInt64 = 50) async throws -> [String] {
        try await Task.sleep(nanoseconds: milliseconds * 1_000_000)
        try await eventLoop.submit {}.get()
        let texts = sentTexts
        output.withLockedValue { $0.messages.removeAll() }
        return texts
    }
}

enum UUIDString {
    static func make() -> String { SocketIOSocket.makeId() }
}

/// Shared event loops for the tests: two, so that cross-loop broadcasts are covered.
let testEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 2)

extension SocketIOServer {
    func openFakeConnection(on loop: (any EventLoop)? = nil, headers: [(name: String, value: String)] = []) async throws -> FakeEngineConnection {
        let connection = FakeEngineConnection(eventLoop: loop ?? testEventLoopGroup.next(), headers: headers)
        try await connection.eventLoop.submit { self.engineDidOpen(connection) }.get()
        return connection
    }

    /// Opens a connection, joins `namespace` and returns it with the socket id.
    func connectedClient(_ namespace: String = "/", auth: String = "", on loop: (any EventLoop)? = nil) async throws -> (FakeEngineConnection, String) {
        let connection = try await openFakeConnection(on: loop)
        let prefix = namespace == "/" ? "" : namespace + ","
        try await connection.receive("0" + prefix + auth)
        let reply = try await connection.nextText()
        guard reply.hasPrefix("0" + prefix), let sid = try JSONValue(parsing: String(reply.dropFirst(1 + prefix.count)))["sid"]?.stringValue else {
            XCTFail("unexpected CONNECT reply \(reply)")
            return (connection, "")
        }
        return (connection, sid)
    }
}

// XCTAssert* take synchronous autoclosures; these take async ones.
func assertEqual<T: Equatable>(
    _ actual: @autoclosure () async throws -> T, _ expected: @autoclosure () async throws -> T, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) async throws {
    let (a, e) = (try await actual(), try await expected())
    XCTAssertEqual(a, e, message, file: file, line: line)
}

func assertTrue(_ value: @autoclosure () async throws -> Bool, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) async throws {
    let v = try await value()
    XCTAssertTrue(v, message, file: file, line: line)
}

func assertNil<T>(_ value: @autoclosure () async throws -> T?, file: StaticString = #filePath, line: UInt = #line) async throws {
    let v = try await value()
    XCTAssertNil(v, file: file, line: line)
}
