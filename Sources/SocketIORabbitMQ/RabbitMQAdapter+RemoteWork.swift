import EngineIO
import NIOCore
import SocketIO

/// What another node asked of this one (the machine decided it is new and ours): applied to
/// the local adapter or the namespace, answers sent to the asker's queue.
extension RabbitMQAdapter {
    func handleRemote(_ work: Machine.RemoteWork) {
        switch work {
        case .broadcastWithAck(let selection, let flags, let encoded, let request, let replyQueue):
            guard let packet = Self.decodePacket(encoded) else { return }
            let options = BroadcastOptions(rooms: Set(selection.rooms), except: Set(selection.exceptRooms), flags: BroadcastFlags(volatile: flags.isVolatile, local: true))
            local.broadcastWithAck(packet, options: options, clientCount: { [weak self] count in
                self?.send(.broadcastClientCount(request: request, clientCount: UInt32(clamping: count)), toQueue: replyQueue)
            }, ack: { [weak self] socketId, args in
                let reply = EncodedPacket(messages: SocketIOPacketEncoder.encode(.event(socketId, args)))
                self?.send(.broadcastAck(request: request, packet: reply), toQueue: replyQueue)
            })
        case .socketsJoin(let selection, let rooms):
            local.addSockets(Self.options(selection), rooms: Set(rooms))
        case .socketsLeave(let selection, let rooms):
            local.delSockets(Self.options(selection), rooms: Set(rooms))
        case .disconnectSockets(let selection, let close):
            local.disconnectSockets(Self.options(selection), close: close)
        case .fetchSockets(let request, let selection, let replyQueue):
            Task { [weak self] in
                guard let self else { return }
                let sockets = (try? await self.local.fetchSockets(Self.options(selection))) ?? []
                let records = sockets.map { socket in
                    RemoteSocketRecord(id: socket.id, handshake: Self.handshakeJSON(socket.handshake).jsonBuffer(), rooms: socket.rooms.sorted(),
                                       data: ClusterValueEncoding.encode(socket.data))
                }
                self.send(.fetchSocketsResponse(request: request, sockets: records), toQueue: replyQueue)
            }
        case .serverSideEmit(let request, let packet, let replyQueue):
            guard let args = Self.decodeArguments(packet) else { return }
            let ack = request.map { request in
                SocketIOAcknowledgement { [weak self] answer in
                    // An ACK packet: its arguments may start with anything (an EVENT must start
                    // with a string, so an answer like `{...}` would not decode on the asking node).
                    let reply = EncodedPacket(messages: SocketIOPacketEncoder.encode(.ack(answer, ackId: 0)))
                    self?.send(.serverSideEmitResponse(request: request, packet: reply), toQueue: replyQueue)
                }
            }
            namespace.handleServerSideEmit(args, ack: ack)
        }
    }

    private static func options(_ selection: ClusterSocketSelection) -> BroadcastOptions {
        BroadcastOptions(rooms: Set(selection.rooms), except: Set(selection.exceptRooms))
    }

    static func handshakeJSON(_ handshake: SocketIOHandshake) -> JSONValue {
        .object(JSONObject([
            ("headers", .object(JSONObject(handshake.headers.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))),
            ("query", .object(JSONObject(handshake.query.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.string($0.value)) }))),
            ("auth", handshake.auth),
            ("address", .string(handshake.address)),
            ("secure", .bool(handshake.secure)),
            ("url", .string(handshake.url)),
            ("issued", .number(String(handshake.issued))),
            ("time", .string(handshake.time)),
        ]))
    }

    static func handshake(from json: JSONValue) -> SocketIOHandshake {
        func strings(_ value: JSONValue?) -> [String: String] {
            var result: [String: String] = [:]
            for (key, value) in value?.objectValue?.members ?? [] { result[key] = value.stringValue ?? "" }
            return result
        }
        return SocketIOHandshake(
            headers: strings(json["headers"]), query: strings(json["query"]), auth: json["auth"] ?? .object(JSONObject()),
            address: json["address"]?.stringValue ?? "", secure: json["secure"]?.boolValue ?? false, url: json["url"]?.stringValue ?? "",
            issued: Int64(json["issued"]?.intValue ?? 0), time: json["time"]?.stringValue ?? "")
    }
}
