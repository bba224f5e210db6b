import ChatCore
import Foundation
import Logging
import NIOCore
import SocketIO
import SocketIORabbitMQ

/// The `/admin` namespace behind the admin page (Public/admin.*). An admin client asks for
/// `admin:overview` (every node's report, rooms and sockets cluster-wide) and may act:
/// `admin:send` (a message to a room as the operator), `admin:disconnect`, `admin:join` and
/// `admin:leave` (a socket by id). Actions go through the adapter, so they reach a socket on
/// any node; in read-only mode they are refused.
final class AdminService: Sendable {
    static let namespace = "/admin"
    static let operatorName = "operator"
    /// Rooms and sockets an overview lists at most (the counts stay exact).
    static let maxListed = 500

    let io: SocketIOServer
    let access: ChatAccess
    let limits: ChatLimits
    let history: any ChatHistoryStore
    let report: AdminNodeReport
    let logger: Logger

    init(io: SocketIOServer, access: ChatAccess, limits: ChatLimits, history: any ChatHistoryStore, report: AdminNodeReport, logger: Logger) {
        self.io = io
        self.access = access
        self.limits = limits
        self.history = history
        self.report = report
        self.logger = logger
    }

    func install() {
        let admin = io.of(Self.namespace)
        admin.use { [access] socket in
            if case .failure(let failure) = await access.admitAdmin(socket.handshake.auth["token"]) { throw failure.connectError }
        }
        admin.onServerSideEmit("admin:node") { [report] _, ack in ack?(report.report()) }
        admin.onConnection { [self] socket in serve(socket) }
        io.onConnection { [report] socket in
            let profile = ChatProfile(socket.data)
            report.record(socket.recovered ? "recover" : "connect", "\(profile?.name ?? "?") in #\(profile?.room ?? "?") (\(socket.id))")
            socket.onAny { event, args in
                guard event == "join", let room = args.first?["room"]?.stringValue ?? args.first?.stringValue else { return }
                report.record("join", "\(ChatProfile(socket.data)?.name ?? "?") asks for #\(room)")
            }
            socket.onDisconnect { reason in
                report.record("disconnect", "\(ChatProfile(socket.data)?.name ?? "?") (\(socket.id)): \(reason)")
            }
        }
    }

    private func serve(_ socket: SocketIOSocket) {
        report.record("admin", "admin page connected (\(socket.id))")
        socket.onAsync("admin:overview") { [self] _, ack in
            ack?(await overview())
        }
        socket.on("admin:send") { [self] args, ack in
            guard allowed(ack) else { return }
            switch (ChatRules.validateRoom(args.first?["room"]?.stringValue ?? "", limits: limits),
                    ChatRules.validateMessage(args.first?["text"]?.stringValue ?? "", limits: limits)) {
            case (.failure(let error), _), (_, .failure(let error)):
                ack?(["ok": false, "error": .string(error.message)])
            case (.success(let room), .success(let text)):
                let message = ChatMessage(
                    id: UUID().uuidString.lowercased(), text: text, date: ChatClock.isoString(Date()), name: Self.operatorName, room: room
                )
                history.messageSent(message)
                io.to(room).emit("message", message.json)
                report.record("admin", "operator wrote to #\(room)")
                ack?(["ok": true, "id": .string(message.id)])
            }
        }
        socket.on("admin:disconnect") { [self] args, ack in
            guard allowed(ack), let id = socketId(args, ack) else { return }
            io.to(id).disconnectSockets()
            report.record("admin", "operator disconnected \(id)")
            ack?(["ok": true])
        }
        for (event, joining) in [("admin:join", true), ("admin:leave", false)] {
            socket.on(event) { [self] args, ack in
                guard allowed(ack), let id = socketId(args, ack) else { return }
                guard case .success(let room) = ChatRules.validateRoom(args.first?["room"]?.stringValue ?? "", limits: limits) else {
                    ack?(["ok": false, "error": .string(ChatError.invalidRoom(limits).message)])
                    return
                }
                if joining { io.to(id).socketsJoin(room) } else { io.to(id).socketsLeave(room) }
                report.record("admin", "operator made \(id) \(joining ? "join" : "leave") #\(room)")
                ack?(["ok": true])
            }
        }
    }

    private func allowed(_ ack: SocketIOAcknowledgement?) -> Bool {
        guard access.adminReadOnly else { return true }
        ack?(["ok": false, "error": "The admin page is read-only on this cluster (ADMIN_READ_ONLY)."])
        return false
    }

    /// A socket id as socket.io makes them (20 URL-safe characters; 64 at most accepted).
    private func socketId(_ args: [JSONValue], _ ack: SocketIOAcknowledgement?) -> String? {
        guard let id = args.first?["id"]?.stringValue, (1...64).contains(id.utf8.count),
              id.utf8.allSatisfy({ $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") })
        else {
            ack?(["ok": false, "error": "No such socket id."])
            return nil
        }
        return id
    }

    /// Every node's report (this one first), then rooms and sockets cluster-wide. A node the
    /// adapter counts as alive but that sent no report is listed as silent. The adapter's
    /// ack wait is all-or-nothing: when one node does not answer in 2 s, the reports that
    /// did arrive are lost too, and the page shows the other nodes as silent for that second.
    func overview() async -> JSONValue {
        let admin = io.of(Self.namespace)
        // Both cluster-wide requests at once: a node that died a moment ago (still a member
        // until its heartbeats expire) costs one time-out, not the sum of two.
        async let described = try? io.fetchSockets()
        async let answers = try? admin.serverSideEmitWithAck("admin:node", [], timeout: .seconds(2))
        var nodes: [JSONValue] = [report.report()]
        let reports = await answers
        let answered = reports != nil
        nodes += (reports ?? []).filter { $0.objectValue != nil }
        let seen = Set(nodes.compactMap { $0["nodeID"]?.stringValue })
        let members = (admin.adapter as? RabbitMQAdapter)?.liveNodes ?? []
        for member in members.sorted() where !seen.contains(member) {
            nodes.append(["node": .string(member), "nodeID": .string(member), "silent": true])
        }

        var holder: [String: String] = [:]
        for node in nodes {
            let name = node["node"]?.stringValue ?? "?"
            for id in node["socketIds"]?.arrayValue ?? [] { if let id = id.stringValue { holder[id] = name } }
        }
        var roomCounts: [String: Int] = [:]
        var sockets: [JSONValue] = []
        var total = 0
        if let described = await described {
            total = described.count
            for socket in described {
                for room in socket.rooms where room != socket.id { roomCounts[room, default: 0] += 1 }
                guard sockets.count < Self.maxListed else { continue }
                let profile = ChatProfile(socket.data)
                sockets.append([
                    "id": .string(socket.id),
                    "name": .string(profile?.name ?? ""),
                    "room": .string(profile?.room ?? ""),
                    "rooms": .array(socket.rooms.subtracting([socket.id]).sorted().map(JSONValue.string)),
                    "node": .string(holder[socket.id] ?? ""),
                    "address": .string(socket.handshake.address),
                ])
            }
        }
        let rooms: [JSONValue] = roomCounts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(Self.maxListed)
            .map { ["room": .string($0.key), "members": .number($0.value)] }
        return [
            "self": .string(report.nodeName),
            "readOnly": .bool(access.adminReadOnly),
            "complete": .bool(answered),
            "nodes": .array(nodes),
            "rooms": .array(rooms),
            "roomCount": .number(roomCounts.count),
            "sockets": .array(sockets),
            "socketCount": .number(total),
            "time": .number(Date().timeIntervalSince1970),
        ]
    }
}

extension UInt8 {
    fileprivate var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}
