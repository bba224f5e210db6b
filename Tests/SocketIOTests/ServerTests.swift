import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import SocketIO

/// The conformance handlers, rebuilt here in small: echo, ack echo, whoami.
private func makeEchoServer(_ configuration: SocketIOServerConfiguration = SocketIOServerConfiguration()) -> SocketIOServer {
    let io = SocketIOServer(configuration)
    for name in ["/", "/custom"] {
        io.of(name).onConnection { socket in
            socket.emit("auth", socket.handshake.auth)
            socket.on("message") { args, _ in socket.emit("message-back", args) }
            socket.on("message-with-ack") { args, ack in ack?(args) }
            socket.on("server-disconnect") { _, _ in socket.disconnect() }
        }
    }
    return io
}

final class ServerTests: XCTestCase {
    func testConnectRepliesWithSidThenAuthEvent() async throws {
        let io = makeEchoServer()
        let connection = try await io.openFakeConnection()
        try await connection.receive(#"0{"token":"123"}"#)
        let (reply, auth) = try await (connection.nextText(), connection.nextText())
        let payload = try JSONValue(parsing: String(reply.dropFirst()))
        XCTAssertEqual(payload.objectValue?.keys, ["sid"])
        XCTAssertNotEqual(payload["sid"]?.stringValue, connection.id)
        XCTAssertEqual(auth, #"2["auth",{"token":"123"}]"#)

        try await connection.receive("0/custom,")
        let customReply = try await connection.nextText()
        XCTAssertTrue(customReply.hasPrefix("0/custom,{\"sid\":"), customReply)
        try await assertEqual(try await connection.nextText(), #"2/custom,["auth",{}]"#)
    }

    func testUnknownNamespaceIsRefusedButConnectionStays() async throws {
        let io = makeEchoServer()
        let connection = try await io.openFakeConnection()
        try await connection.receive("0/random")
        try await assertEqual(try await connection.nextText(), #"4/random,{"message":"Invalid namespace"}"#)
        try await connection.receive("0")
        try await assertTrue(try await connection.nextText().hasPrefix("0{\"sid\""))
        XCTAssertNil(connection.closeReason)
    }

    func testEventsAndAcksAreRoutedByNamespace() async throws {
        let io = makeEchoServer()
        let (connection, _) = try await io.connectedClient()
        _ = try await connection.nextText()  // auth
        try await connection.receive("0/custom,")
        _ = try await connection.next(2)
        try await connection.receive(#"2["message",1,"2",{"3":[true]}]"#)
        try await assertEqual(try await connection.nextText(), #"2["message-back",1,"2",{"3":[true]}]"#)
        try await connection.receive(#"2/custom,["message",{"b":1,"a":9007199254740991}]"#)
        try await assertEqual(try await connection.nextText(), #"2/custom,["message-back",{"b":1,"a":9007199254740991}]"#)
        try await connection.receive(#"2456["message-with-ack",1,"2",{"3":[false]}]"#)
        try await assertEqual(try await connection.nextText(), #"3456[1,"2",{"3":[false]}]"#)
        try await connection.receive(#"20["message-with-ack"]"#)
        try await assertEqual(try await connection.nextText(), "30[]")
        try await connection.receive(#"2/custom,123456789["message-with-ack","x"]"#)
        try await assertEqual(try await connection.nextText(), #"3/custom,123456789["x"]"#)
    }

    func testBinaryEventsAndAcksKeepAttachments() async throws {
        let io = makeEchoServer()
        let (connection, _) = try await io.connectedClient()
        _ = try await connection.nextText()
        try await connection.receive(
            EngineMessage(text: #"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#),
            EngineMessage(binary: ByteBuffer(bytes: [1, 2, 3])), EngineMessage(binary: ByteBuffer(bytes: [4, 5, 6])))
        try await assertEqual(try await connection.next(3), [
            #"52-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#, "<1,2,3>", "<4,5,6>",
        ])
        try await connection.receive(
            EngineMessage(text: #"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#),
            EngineMessage(binary: ByteBuffer(bytes: [1, 2, 3])), EngineMessage(binary: ByteBuffer(bytes: [4, 5, 6])))
        try await assertEqual(try await connection.next(3), [
            #"62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#, "<1,2,3>", "<4,5,6>",
        ])
    }

    func testMiddlewareRefusalSendsConnectErrorWithData() async throws {
        let io = SocketIOServer()
        let admitted = NIOLockedValueBox(0)
        io.of("/private").use { socket in
            guard socket.handshake.auth["token"] == "secret" else {
                throw ConnectError(message: "not authorized", data: ["reason": "invalid token"])
            }
        }
        io.of("/private").onConnection { _ in admitted.withLockedValue { $0 += 1 } }
        io.of("/plain").use { _ in struct Nope: Error {}; throw Nope() }
        let connection = try await io.openFakeConnection()
        try await connection.receive(#"0/private,{"token":"wrong"}"#)
        try await assertEqual(try await connection.nextText(), #"4/private,{"message":"not authorized","data":{"reason":"invalid token"}}"#)
        try await connection.receive("0/plain,")
        try await assertEqual(try await connection.nextText(), #"4/plain,{"message":"Nope()"}"#)
        try await connection.receive(#"0/private,{"token":"secret"}"#)
        try await assertTrue(try await connection.nextText().hasPrefix(#"0/private,{"sid":"#))
        XCTAssertEqual(admitted.withLockedValue { $0 }, 1)
        XCTAssertNil(connection.closeReason)
    }

    func testServerToClientAckAndTimeout() async throws {
        let io = SocketIOServer()
        let socketBox = NIOLockedValueBox<SocketIOSocket?>(nil)
        io.onConnection { socket in socketBox.withLockedValue { $0 = socket } }
        let (connection, _) = try await io.connectedClient()
        let socket = try XCTUnwrap(socketBox.withLockedValue { $0 })

        async let answer = socket.emitWithAck("question", "q", timeout: .seconds(3))
        let sent = try await connection.nextText()
        let idText = sent.dropFirst().prefix { $0.isNumber }
        XCTAssertEqual(String(sent.dropFirst(1 + idText.count)), #"["question","q"]"#)
        try await connection.receive(EngineMessage(text: "61-\(idText)[{\"_placeholder\":true,\"num\":0}]"), EngineMessage(binary: ByteBuffer(bytes: [7])))
        let args = try await answer
        XCTAssertEqual(args, [.binary(ByteBuffer(bytes: [7]))])

        do {
            _ = try await socket.emitWithAck("ignored", [], timeout: .milliseconds(50))
            XCTFail("expected a timeout")
        } catch {
            XCTAssertEqual(error, .timedOut)
        }
        // A late answer to a timed-out ack is ignored, not a violation.
        let late = try await connection.nextText()
        try await connection.receive("3\(late.dropFirst().prefix { $0.isNumber })[1]")
        XCTAssertNil(connection.closeReason)
    }

    func testDisconnectReasons() async throws {
        let io = makeEchoServer()
        let reasons = NIOLockedValueBox<[String]>([])
        io.onConnection { socket in
            socket.onDisconnecting { reason in reasons.withLockedValue { $0.append("disconnecting:\(reason.rawValue):\(socket.rooms.contains(socket.id))") } }
            socket.onDisconnect { reason in reasons.withLockedValue { $0.append("disconnect:\(reason.rawValue):\(socket.rooms.count)") } }
        }
        // Client leaves "/": no reply, connection and "/custom" stay.
        let (connection, _) = try await io.connectedClient()
        try await connection.receive("0/custom")
        try await connection.receive("1")
        try await connection.receive(#"2/custom,["message","still here"]"#)
        let afterLeave = try await connection.settle()
        XCTAssertEqual(afterLeave.filter { !$0.contains("auth") && !$0.hasPrefix("0") }, [#"2/custom,["message-back","still here"]"#])
        XCTAssertEqual(reasons.withLockedValue { $0 }, ["disconnecting:client namespace disconnect:true", "disconnect:client namespace disconnect:0"])

        // Server-side disconnect sends "1" for the namespace only.
        reasons.withLockedValue { $0 = [] }
        try await connection.receive("0")
        _ = try await connection.next(2)
        try await connection.receive(#"2["server-disconnect"]"#)
        try await assertEqual(try await connection.nextText(), "1")
        XCTAssertEqual(reasons.withLockedValue { $0 }.last, "disconnect:server namespace disconnect:0")
        XCTAssertNil(connection.closeReason)

        // Transport close reaches every socket with the engine's reason.
        reasons.withLockedValue { $0 = [] }
        try await connection.receive("0")
        _ = try await connection.next(2)
        connection.close(reason: .pingTimeout)
        _ = try await connection.waitForClose()
        _ = try await connection.settle(milliseconds: 10)
        XCTAssertEqual(reasons.withLockedValue { $0 }, ["disconnecting:ping timeout:true", "disconnect:ping timeout:0"])
        XCTAssertTrue(io.sockets.localSockets().isEmpty)
    }

    func testProtocolViolationsCloseOnlyThatConnection() async throws {
        let violations = [
            "abc", #"2["message",1"#, #"2abc["message"]"#, "2{}", "2[]", #"2[{"a":1}]"#, #"2["disconnect"]"#,
            "0[1]", "1{}", #"599999999999999999999-["e"]"#, #"2/notjoined,["message"]"#, "0", "4{}",
        ]
        let io = makeEchoServer()
        let (bystander, _) = try await io.connectedClient()
        _ = try await bystander.nextText()
        for violation in violations {
            let (connection, _) = try await io.connectedClient()
            try await connection.receive(violation)
            let reason = try await connection.waitForClose()
            XCTAssertEqual(reason, .parseError, "not closed by \(violation)")
        }
        let (binaryFirst, _) = try await io.connectedClient()
        try await binaryFirst.receive(EngineMessage(binary: ByteBuffer(bytes: [1])))
        try await assertEqual(try await binaryFirst.waitForClose(), .parseError)
        let (textWhileWaiting, _) = try await io.connectedClient()
        try await textWhileWaiting.receive(#"51-["message",{"_placeholder":true,"num":0}]"#)
        try await textWhileWaiting.receive(#"2["message"]"#)
        try await assertEqual(try await textWhileWaiting.waitForClose(), .parseError)

        try await bystander.receive(#"2["message","ok"]"#)
        try await assertEqual(try await bystander.nextText(), #"2["message-back","ok"]"#)
        XCTAssertNil(bystander.closeReason)
    }

    func testConnectTimeoutClosesIdleConnectionsOnly() async throws {
        var configuration = SocketIOServerConfiguration(connectTimeout: .milliseconds(100))
        configuration.logger.logLevel = .critical
        let io = makeEchoServer(configuration)
        let idle = try await io.openFakeConnection()
        let (joined, _) = try await io.connectedClient()
        try await assertEqual(try await idle.waitForClose(), .forcedClose)
        try await Task.sleep(nanoseconds: 150_000_000)
        XCTAssertNil(joined.closeReason)
    }

    /// A server freed while a client had joined no namespace: its connect timer still fires,
    /// and must close the connection without reaching the freed server (it crashed the test
    /// process once, 45 s after such a test).
    func testConnectTimeoutOfAFreedServerClosesTheConnectionWithoutTouchingIt() async throws {
        var configuration = SocketIOServerConfiguration(connectTimeout: .milliseconds(500))
        configuration.logger.logLevel = .critical
        var io: SocketIOServer? = SocketIOServer(configuration)
        weak let freed = io
        let idle = try await io!.openFakeConnection()
        io = nil
        for _ in 0..<40 where freed != nil { try await Task.sleep(nanoseconds: 5_000_000) }
        XCTAssertNil(freed, "the test must free the server before the timer fires")
        try await assertEqual(try await idle.waitForClose(), .forcedClose)
    }

    func testHandshakeCarriesHeadersQueryAndAuth() async throws {
        let io = SocketIOServer()
        let handshake = NIOLockedValueBox<SocketIOHandshake?>(nil)
        io.onConnection { socket in handshake.withLockedValue { $0 = socket.handshake } }
        let connection = try await io.openFakeConnection(headers: [("User-Agent", "test"), ("X-A", "1"), ("x-a", "2")])
        try await connection.receive(#"0{"k":[1]}"#)
        _ = try await connection.nextText()
        let value = try XCTUnwrap(handshake.withLockedValue { $0 })
        XCTAssertEqual(value.headers["user-agent"], "test")
        XCTAssertEqual(value.headers["x-a"], "1, 2")
        XCTAssertEqual(value.auth, ["k": [1]])
        XCTAssertEqual(value.address, "127.0.0.1")
        XCTAssertEqual(value.issued, 1_700_000_000_000)
        XCTAssertEqual(value.time, "Tue, 14 Nov 2023 22:13:20 GMT")
        XCTAssertEqual(SocketIOHandshake(jsonValue: value.jsonValue), value)
    }

    /// The socket's handshake keeps the Engine.IO request's header list and builds the
    /// dictionary and date when read: it must still compare, hash and assign like the
    /// stored values it replaced.
    func testHandshakeBuiltFromTheRequestEqualsOneBuiltFromValues() async throws {
        let io = SocketIOServer()
        let handshake = NIOLockedValueBox<SocketIOHandshake?>(nil)
        io.onConnection { socket in handshake.withLockedValue { $0 = socket.handshake } }
        let connection = try await io.openFakeConnection(headers: [("User-Agent", "test"), ("X-A", "1"), ("x-a", "2")])
        try await connection.receive("0")
        _ = try await connection.nextText()
        var fromRequest = try XCTUnwrap(handshake.withLockedValue { $0 })
        let fromValues = SocketIOHandshake(
            headers: ["user-agent": "test", "x-a": "1, 2"], query: fromRequest.query, auth: fromRequest.auth,
            address: fromRequest.address, secure: fromRequest.secure, url: fromRequest.url, issued: fromRequest.issued,
            time: "Tue, 14 Nov 2023 22:13:20 GMT"
        )
        XCTAssertEqual(fromRequest, fromValues)
        XCTAssertEqual(Set([fromRequest, fromValues]).count, 1)
        fromRequest.headers["x-b"] = "3"
        XCTAssertEqual(fromRequest.headers, ["user-agent": "test", "x-a": "1, 2", "x-b": "3"])
        XCTAssertNotEqual(fromRequest, fromValues)
        fromRequest.time = "then"
        XCTAssertEqual(fromRequest.time, "then")
    }

    func testTypedHandlersAndData() async throws {
        struct Move: Codable, Sendable { var x: Int; var y: Int }
        let io = SocketIOServer()
        io.onConnection { socket in
            try? socket.setData(["role": "admin"] as [String: String])
            socket.on("move", as: Move.self) { move, ack in
                try? ack?(encoding: Move(x: move.x + 1, y: move.y + 1))
            }
        }
        let (connection, _) = try await io.connectedClient()
        try await connection.receive(#"27["move",{"x":1,"y":2}]"#)
        let reply = try await connection.nextText()
        let args = try JSONValue(parsing: String(reply.dropFirst(2)))
        XCTAssertEqual(args.arrayValue?.first?["x"], 2)
        XCTAssertEqual(args.arrayValue?.first?["y"], 3)
        let socket = try XCTUnwrap(io.sockets.localSockets().first)
        XCTAssertEqual(try socket.data(as: [String: String].self), ["role": "admin"])
    }

    func testOnAnySeesEveryEventFirst() async throws {
        let io = SocketIOServer()
        let seen = NIOLockedValueBox<[String]>([])
        io.onConnection { socket in
            socket.onAny { event, args in seen.withLockedValue { $0.append("any:\(event):\(args.count)") } }
            socket.on("a") { _, _ in seen.withLockedValue { $0.append("a") } }
        }
        let (connection, _) = try await io.connectedClient()
        try await connection.receive(#"2["a",1,2]"#)
        try await connection.receive(#"2["b"]"#)
        XCTAssertEqual(seen.withLockedValue { $0 }, ["any:a:2", "a", "any:b:0"])
    }

    func testShutdownAndCloseDuringMiddleware() async throws {
        let io = SocketIOServer()
        let reasons = NIOLockedValueBox<[String]>([])
        io.onConnection { socket in socket.onDisconnect { reason in reasons.withLockedValue { $0.append(reason.rawValue) } } }
        io.of("/slow").use { _ in try await Task.sleep(nanoseconds: 100_000_000) }
        let (connection, _) = try await io.connectedClient()
        await io.close()
        try await assertEqual(try await connection.waitForClose(), .serverShuttingDown)
        _ = try await connection.settle(milliseconds: 10)
        XCTAssertEqual(reasons.withLockedValue { $0 }, ["server shutting down"])

        // The connection goes away while middleware runs: the socket is never admitted.
        let leaving = try await io.openFakeConnection()
        try await leaving.receive("0/slow,")
        leaving.close(reason: .transportClose)
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertTrue(io.of("/slow").localSockets().isEmpty)
        try await assertEqual(try await leaving.settle(), [])
    }
}
