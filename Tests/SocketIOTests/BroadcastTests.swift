import EngineIO
import NIOConcurrencyHelpers
import NIOCore
import XCTest

@testable import SocketIO

private func makeRoomServer(_ configuration: SocketIOServerConfiguration = SocketIOServerConfiguration()) -> SocketIOServer {
    let io = SocketIOServer(configuration)
    io.onConnection { socket in
        socket.on("join") { args, ack in
            socket.join(args.first?.stringValue ?? "")
            ack?()
        }
        socket.on("leave") { args, ack in
            socket.leave(args.first?.stringValue ?? "")
            ack?()
        }
        socket.on("tell-others") { args, _ in socket.broadcast.emit("told", args) }
    }
    return io
}

final class BroadcastTests: XCTestCase {
    /// Three clients on two loops; a and b in "red", c not.
    private func threeClients(_ io: SocketIOServer) async throws -> [(FakeEngineConnection, String)] {
        let loops = [testEventLoopGroup.next(), testEventLoopGroup.next()]
        var clients: [(FakeEngineConnection, String)] = []
        for index in 0..<3 { clients.append(try await io.connectedClient(on: loops[index % 2])) }
        for (connection, _) in clients.prefix(2) {
            try await connection.receive(#"21["join","red"]"#)
            try await assertEqual(try await connection.nextText(), "31[]")
        }
        return clients
    }

    func testRoomsExceptAndSocketBroadcast() async throws {
        let io = makeRoomServer()
        let clients = try await threeClients(io)
        let (a, aId) = clients[0], (b, bId) = clients[1], (c, cId) = clients[2]

        io.to("red").emit("hello", 1)
        try await assertEqual(try await a.nextText(), #"2["hello",1]"#)
        try await assertEqual(try await b.nextText(), #"2["hello",1]"#)
        try await assertEqual(try await c.settle(), [])

        io.except("red").emit("outside")
        try await assertEqual(try await c.nextText(), #"2["outside"]"#)
        try await assertEqual(try await a.settle() + b.settle(), [])

        io.to("red").except(aId).emit("not-a")
        try await assertEqual(try await b.nextText(), #"2["not-a"]"#)
        try await assertEqual(try await a.settle() + c.settle(), [])

        io.to(cId).emit("direct")
        try await assertEqual(try await c.nextText(), #"2["direct"]"#)

        try await a.receive(#"2["tell-others","x"]"#)
        try await assertEqual(try await b.nextText(), #"2["told","x"]"#)
        try await assertEqual(try await c.nextText(), #"2["told","x"]"#)
        try await assertEqual(try await a.settle(), [])

        let socketB = try XCTUnwrap(io.sockets.localSocket(id: bId))
        XCTAssertEqual(socketB.rooms, [bId, "red"])
        try await b.receive(#"22["leave","red"]"#)
        try await assertEqual(try await b.nextText(), "32[]")
        XCTAssertEqual(socketB.rooms, [bId])
        io.emit("all", ["n": nil])
        for connection in [a, b, c] { try await assertEqual(try await connection.nextText(), #"2["all",{"n":null}]"#) }
        XCTAssertEqual(io.sockets.adapter.sockets(in: ["red"]), [aId])
    }

    func testVolatileSkipsOnlyConnectionsThatAreNotWritable() async throws {
        let io = makeRoomServer()
        let clients = try await threeClients(io)
        let (a, _) = clients[0], (b, _) = clients[1]
        b.writable.withLockedValue { $0 = false }  // b's client has stopped reading

        io.to("red").volatile.emit("typing", true)
        try await assertEqual(try await a.nextText(), #"2["typing",true]"#)
        try await assertEqual(try await b.settle(), [])

        // Only volatile packets are dropped: everything else still queues for b.
        io.to("red").emit("message", "kept")
        try await assertEqual(try await b.nextText(), #"2["message","kept"]"#)
        b.writable.withLockedValue { $0 = true }
        io.to("red").volatile.emit("typing", false)
        try await assertEqual(try await b.nextText(), #"2["typing",false]"#)
        try await assertEqual(try await a.nextText(), #"2["message","kept"]"#)
    }

    func testBroadcastEncodesBinaryOnceForAll() async throws {
        let io = makeRoomServer()
        let clients = try await threeClients(io)
        io.to("red").emit("bin", .binary(ByteBuffer(bytes: [9, 8])))
        for (connection, _) in clients.prefix(2) {
            try await assertEqual(try await connection.next(2), [#"51-["bin",{"_placeholder":true,"num":0}]"#, "<9,8>"])
        }
    }

    func testBroadcastWithAckAggregatesAnswers() async throws {
        let io = makeRoomServer()
        let clients = try await threeClients(io)
        let (a, _) = clients[0], (b, _) = clients[1]
        async let result = io.to("red").timeout(.seconds(3)).emitWithAck("poll", "q")
        var ids: [String] = []
        for (connection, answer) in [(a, "1"), (b, "2")] {
            let sent = try await connection.nextText()
            let id = String(sent.dropFirst().prefix { $0.isNumber })
            XCTAssertEqual(String(sent.dropFirst(1 + id.count)), #"["poll","q"]"#)
            ids.append(id)
            try await connection.receive("3\(id)[\(answer),\"ignored\"]")
        }
        XCTAssertEqual(ids[0], ids[1], "one packet, one id for every recipient")
        let answers = await result
        XCTAssertTrue(answers.complete)
        XCTAssertEqual(Set(answers.responses), [1, 2])

        // One recipient stays silent: the timeout returns what arrived.
        async let partial = io.to("red").timeout(.milliseconds(100)).emitWithAck("poll")
        let sent = try await a.nextText()
        try await a.receive("3\(sent.dropFirst().prefix { $0.isNumber })[\"only-a\"]")
        let partialResult = await partial
        XCTAssertFalse(partialResult.complete)
        XCTAssertEqual(partialResult.responses, ["only-a"])

        let empty = await io.to("nobody").emitWithAck("poll")
        XCTAssertTrue(empty.complete)
        XCTAssertEqual(empty.responses, [])
    }

    func testFetchSocketsJoinLeaveAndDisconnect() async throws {
        let io = makeRoomServer()
        let clients = try await threeClients(io)
        let (a, aId) = clients[0], (c, cId) = clients[2]
        io.sockets.localSocket(id: aId)?.data = ["name": "alice"]

        let red = try await io.to("red").fetchSockets()
        XCTAssertEqual(red.count, 2)
        XCTAssertEqual(red.first { $0.id == aId }?.data, ["name": "alice"])
        XCTAssertEqual(red.first { $0.id == aId }?.rooms, [aId, "red"])

        io.except("red").socketsJoin("blue")
        XCTAssertEqual(io.sockets.adapter.sockets(in: ["blue"]), [cId])
        io.to("blue").socketsLeave("blue")
        XCTAssertEqual(io.sockets.adapter.sockets(in: ["blue"]), [])

        io.to("red").disconnectSockets()
        try await assertEqual(try await a.nextText(), "1")
        XCTAssertNil(a.closeReason)
        // The other red socket may live on the other event loop: wait until it is gone too.
        try await assertEqual(try await clients[1].0.nextText(), "1")
        try await assertEqual(try await io.fetchSockets().map(\.id), [cId])

        io.disconnectSockets(close: true)
        try await assertEqual(try await c.waitForClose(), .forcedClose)
        try await assertEqual(try await c.nextText(), "1")
    }

    func testDynamicNamespaces() async throws {
        let io = SocketIOServer()
        let parent = io.of { name, _ in name.hasPrefix("/room-") }
        parent.use { socket in
            if socket.handshake.auth["deny"] == true { throw ConnectError(message: "denied") }
        }
        parent.onConnection { socket in socket.emit("welcome", .string(socket.namespace.name)) }
        let (one, _) = try await io.connectedClient("/room-1")
        try await assertEqual(try await one.nextText(), #"2/room-1,["welcome","/room-1"]"#)
        let (two, _) = try await io.connectedClient("/room-2")
        try await assertEqual(try await two.nextText(), #"2/room-2,["welcome","/room-2"]"#)
        let denied = try await io.openFakeConnection()
        try await denied.receive(#"0/room-3,{"deny":true}"#)
        try await assertEqual(try await denied.nextText(), #"4/room-3,{"message":"denied"}"#)
        try await denied.receive("0/other,")
        try await assertEqual(try await denied.nextText(), #"4/other,{"message":"Invalid namespace"}"#)
        parent.emit("to-all")
        try await assertEqual(try await one.nextText(), #"2/room-1,["to-all"]"#)
        try await assertEqual(try await two.nextText(), #"2/room-2,["to-all"]"#)
    }

    func testRegexDynamicNamespaceAndSocketToExcludesSelf() async throws {
        let io = SocketIOServer()
        let parent = io.of(/\/team-\d+/)
        parent.onConnection { socket in
            socket.join("all")
            socket.on("shout") { args, _ in socket.to("all").emit("shout", args) }
        }
        let (first, _) = try await io.connectedClient("/team-1")
        let (second, _) = try await io.connectedClient("/team-1")
        let refused = try await io.openFakeConnection()
        try await refused.receive("0/team-x,")
        try await assertEqual(try await refused.nextText(), #"4/team-x,{"message":"Invalid namespace"}"#)
        try await first.receive(#"2/team-1,["shout","hey"]"#)
        try await assertEqual(try await second.nextText(), #"2/team-1,["shout","hey"]"#)
        try await assertEqual(try await first.settle(), [])
    }
}
