import NIOCore
import SocketIO

/// The Socket.IO side of the conformance fixture (SERVER-CONTRACT section 3): the
/// reference handlers of the socket.io-protocol README plus our extra ones, in `/`,
/// `/custom` and `/private`. Mount the returned server at `/socket.io/`.
func makeSocketIOConformanceDelegate(connectTimeout: TimeAmount = .milliseconds(1000)) -> SocketIOServer {
    var configuration = SocketIOServerConfiguration(connectTimeout: connectTimeout)
    configuration.logger.logLevel = .info
    let io = SocketIOServer(configuration)

    for name in ["/", "/custom", "/private"] {
        let namespace = io.of(name)
        if name == "/private" {
            namespace.use { socket in
                guard socket.handshake.auth["token"] == "secret" else {
                    throw ConnectError(message: "not authorized", data: ["reason": "invalid token"])
                }
            }
        }
        namespace.onConnection { socket in
            socket.emit("auth", socket.handshake.auth)
            installConformanceHandlers(on: socket)
        }
    }
    return io
}

private func installConformanceHandlers(on socket: SocketIOSocket) {
    let namespace = socket.namespace

    socket.on("message") { args, _ in
        socket.emit("message-back", args)
    }
    socket.on("message-with-ack") { args, ack in
        ack?(args)
    }
    socket.on("whoami") { _, ack in
        ack?(["sid": .string(socket.id), "nsp": .string(namespace.name)])
    }
    socket.on("request-client-ack") { args, _ in
        socket.emit("server-ack-request", args) { result in
            if case .success(let answer) = result { socket.emit("client-ack-received", answer) }
        }
    }
    socket.on("server-disconnect") { _, _ in
        socket.disconnect()
    }
    socket.on("join") { args, ack in
        guard let room = args.first?.stringValue else { return }
        socket.join(room)
        ack?(.string(room))
    }
    socket.on("leave") { args, ack in
        guard let room = args.first?.stringValue else { return }
        socket.leave(room)
        ack?(.string(room))
    }
    socket.on("broadcast") { args, ack in
        guard let room = args.first?.stringValue else { return }
        namespace.to(room).emit("broadcast", Array(args.dropFirst()))
        ack?(true)
    }
    socket.onAsync("broadcast-with-ack") { args, ack in
        guard let room = args.first?.stringValue else { return }
        let result = await namespace.to(room).timeout(.seconds(1)).emitWithAck("broadcast-ack-request", Array(args.dropFirst()))
        ack?(.array(result.responses))
    }
}
