import NIOCore
import SocketIO
import SocketIORabbitMQ

/// The events the python cluster tests (pytests/cluster) drive a node with. Every answer goes
/// back as an ack so the tests can wait on it.
func installClusterTestHandlers(on io: SocketIOServer, nodeName: String, cluster: RabbitMQCluster) {
    let namespace = io.sockets

    namespace.onServerSideEmit("ping-node") { args, ack in
        // An object, not a string: answers of any shape must reach the asking node.
        ack?(["node": .string(nodeName), "payload": args.first ?? .null])
    }

    namespace.onConnection { socket in
        // A recovered socket keeps its data (tests check it came back); "node" says where it is now.
        var members = socket.recovered ? (socket.data.objectValue?.members ?? []) : []
        members.removeAll { $0.key == "node" }
        socket.data = .object(JSONObject([(key: "node", value: JSONValue.string(nodeName))] + members))

        // The ack promises the join is effective on every node (room-aware routing binds first).
        socket.onAsync("join") { args, ack in
            guard let room = args.first?.stringValue else { return }
            await socket.joinAndWait(room)
            ack?(.string(room))
        }
        socket.on("leave") { args, ack in
            guard let room = args.first?.stringValue else { return }
            socket.leave(room)
            ack?(.string(room))
        }
        socket.on("broadcast") { args, ack in
            let request = args.first ?? .null
            selection(request, in: namespace).emit("broadcast", [request["payload"] ?? .null])
            ack?(true)
        }
        socket.onAsync("broadcast-with-ack") { args, ack in
            let request = args.first ?? .null
            let timeout = TimeAmount.milliseconds(Int64(request["timeout_ms"]?.intValue ?? 2000))
            let result = await selection(request, in: namespace).timeout(timeout).emitWithAck("ack-request", [request["payload"] ?? .null])
            ack?(["responses": .array(result.responses), "complete": .bool(result.complete)])
        }
        socket.onAsync("server-side-emit") { args, ack in
            do {
                let answers = try await namespace.serverSideEmitWithAck("ping-node", [args.first?["payload"] ?? .null], timeout: .seconds(5))
                ack?(.array(answers))
            } catch {
                ack?(["error": .string("\(error)")])
            }
        }
        socket.onAsync("fetch-sockets") { args, ack in
            let room = args.first?["room"]?.stringValue ?? ""
            do {
                let sockets = try await (room.isEmpty ? namespace.fetchSockets() : namespace.in(room).fetchSockets())
                ack?(.array(sockets.sorted { $0.id < $1.id }.map { described in
                    [
                        "id": .string(described.id),
                        "rooms": .array(described.rooms.sorted().map(JSONValue.string)),
                        "data": described.data,
                        "node": described.data["node"] ?? .null,
                    ]
                }))
            } catch {
                ack?(["error": .string("\(error)")])
            }
        }
        socket.on("remote-join") { args, ack in
            guard let target = args.first?["target"]?.stringValue, let room = args.first?["room"]?.stringValue else { return }
            namespace.in(target).socketsJoin([room])
            ack?(true)
        }
        socket.on("remote-leave") { args, ack in
            guard let target = args.first?["target"]?.stringValue, let room = args.first?["room"]?.stringValue else { return }
            namespace.in(target).socketsLeave([room])
            ack?(true)
        }
        socket.on("remote-disconnect") { args, ack in
            guard let target = args.first?["target"]?.stringValue else { return }
            namespace.in(target).disconnectSockets(close: true)
            ack?(true)
        }
        socket.on("set-data") { args, ack in
            var members = socket.data.objectValue?.members ?? []
            for (key, value) in args.first?.objectValue?.members ?? [] where key != "node" {
                members.removeAll { $0.key == key }
                members.append((key, value))
            }
            socket.data = .object(JSONObject(members))
            ack?(true)
        }
        socket.onAsync("server-count") { _, ack in
            ack?(.number(await namespace.adapter.serverCount()))
        }
        socket.on("start-traffic") { args, ack in
            let count = max(0, min(args.first?["count"]?.intValue ?? 0, 100_000))
            let interval = UInt64(max(1, args.first?["interval_ms"]?.intValue ?? 50)) * 1_000_000
            Task {
                for sequence in 0..<count {
                    namespace.emit("traffic", ["node": .string(nodeName), "seq": .number(sequence)])
                    try? await Task.sleep(nanoseconds: interval)
                }
            }
            ack?(true)
        }
        socket.on("metrics") { _, ack in
            ack?(metricsJSON(cluster))
        }
    }
}

/// The cluster counters as one JSON object (the `metrics` event and GET /metrics).
func metricsJSON(_ cluster: RabbitMQCluster) -> JSONValue {
    let metrics = cluster.metrics
    return [
        "published": .number(Int(metrics.published)),
        "publishedBatches": .number(Int(metrics.publishedBatches)),
        "received": .number(Int(metrics.received)),
        "receivedBroadcasts": .number(Int(metrics.receivedBroadcasts)),
        "duplicatesDropped": .number(Int(metrics.duplicatesDropped)),
        "outboxSize": .number(metrics.outboxSize),
        "outboxOverflow": .number(Int(metrics.outboxOverflow)),
        "publishFailures": .number(Int(metrics.publishFailures)),
        "encodingFailures": .number(Int(clamping: metrics.encodingFailures)),
        "meanPublishLatencyMs": .number(metrics.meanPublishLatencyMilliseconds),
        "maxPublishLatencyMs": .number(Double(metrics.publishLatencyMaxNanoseconds) / 1e6),
        "ready": .bool(cluster.isReady),
    ]
}

/// `{room?, except?}` of a test request as a broadcast operator on the whole namespace.
private func selection(_ request: JSONValue, in namespace: SocketIONamespace) -> BroadcastOperator {
    var selected = namespace.except(Set<String>())
    if let room = request["room"]?.stringValue, !room.isEmpty { selected = selected.to(room) }
    if let except = request["except"]?.stringValue, !except.isEmpty { selected = selected.except(except) }
    return selected
}
