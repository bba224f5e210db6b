import ChatCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SocketIO

/// The chat's Socket.IO behaviour on the default namespace.
///
/// Events from clients: `message` (text, ack?), `join` ({room}, ack), `set-name` (name, ack),
/// `typing` (bool, volatile). Events to clients: `welcome`, `message`, `presence`, `rooms`,
/// `typing`, `chat-error`. A client that only emits `message` with a string (the original
/// demo) lands in the default room and receives every `message` of it as `{text, date, ...}`.
final class ChatService: Sendable {
    let io: SocketIOServer
    let limits: ChatLimits
    let history: any ChatHistoryStore
    let presence: PresencePublisher
    let rateLimits: ChatRateLimiter
    let metrics: ChatMetrics
    let logger: Logger
    /// Sign-in is on: the auth middleware put the token's name in `socket.data`, and
    /// `set-name` is refused.
    let namesFromTokens: Bool
    let welcomes: WelcomeEncoder

    init(
        io: SocketIOServer, limits: ChatLimits, history: any ChatHistoryStore, presence: PresencePublisher,
        rateLimits: ChatRateLimiter, metrics: ChatMetrics, logger: Logger, namesFromTokens: Bool = false
    ) {
        self.namesFromTokens = namesFromTokens
        self.io = io
        self.limits = limits
        self.history = history
        self.presence = presence
        self.rateLimits = rateLimits
        self.metrics = metrics
        self.logger = logger
        self.welcomes = WelcomeEncoder(history: history)
    }

    func install() {
        io.onConnection { [self] socket in accept(socket) }
    }

    /// Per-socket state lives in `socket.data` (so other nodes see it through fetchSockets).
    /// Message limits follow the client address and name across connections
    /// (`ChatRateLimiter`); `typing`, `join` and `set-name` have buckets of this connection,
    /// in its `ChatConnection`, the one object every handler below captures.
    private func accept(_ socket: SocketIOSocket) {
        var profile = ChatProfile(socket.data)
        if !socket.recovered || profile == nil {
            let auth = socket.handshake.auth
            var generator = SystemRandomNumberGenerator()
            let signedName = namesFromTokens ? socket.data["name"]?.stringValue : nil
            let name = signedName ?? auth["name"]?.stringValue.flatMap { try? ChatRules.validateName($0, limits: limits).get() }
                ?? ChatRules.guestName(using: &generator)
            let room = auth["room"]?.stringValue.flatMap { try? ChatRules.validateRoom($0, limits: limits).get() }
                ?? ChatRules.defaultRoom
            let chosen = ChatProfile(name: name, room: room)
            profile = chosen
            socket.data = chosen.json
            socket.join(room)
        }
        let connection = ChatConnection(service: self, socket: socket, now: Self.now())
        // Each closure captures `connection` alone: one reference in its context (32 bytes).
        socket.on("message") { [connection] args, ack in
            connection.service.receiveMessage(from: connection.socket, address: connection.address, args: args, ack: ack)
        }
        socket.on("join") { [connection] args, ack in connection.service.join(connection, args: args, ack: ack) }
        socket.on("set-name") { [connection] args, ack in connection.service.setName(connection, args: args, ack: ack) }
        socket.on("typing") { [connection] args, _ in connection.service.typing(connection, args: args) }
        socket.onAny { [metrics] _, _ in metrics.eventsReceived.increment() }
        socket.onDisconnect { [connection] reason in connection.service.disconnected(connection.socket, reason: reason) }

        if !socket.recovered, let profile {
            // On this loop, right after the CONNECT reply, when presence needs no other node.
            if let members = presence.presenceNow(of: profile.room) {
                sendWelcome(socket, profile: profile, members: members)
            } else {
                Task { await self.welcome(socket, profile: profile) }
            }
        }
    }

    private func join(_ connection: ChatConnection, args: [JSONValue], ack: SocketIOAcknowledgement?) {
        let socket = connection.socket
        guard connection.takeRoomChange(now: Self.now()) else {
            metrics.eventsRateLimited.increment()
            return refuse(socket, .tooManyChanges, ack: ack)
        }
        let requested = args.first?["room"]?.stringValue ?? args.first?.stringValue ?? ""
        switch ChatRules.validateRoom(requested, limits: limits) {
        case .failure(let error): refuse(socket, error, ack: ack)
        case .success(let room): Task { await self.move(socket, to: room, ack: ack) }
        }
    }

    private func setName(_ connection: ChatConnection, args: [JSONValue], ack: SocketIOAcknowledgement?) {
        let socket = connection.socket
        if namesFromTokens { return refuse(socket, .nameFromToken, ack: ack) }
        guard connection.takeRoomChange(now: Self.now()) else {
            metrics.eventsRateLimited.increment()
            return refuse(socket, .tooManyChanges, ack: ack)
        }
        switch ChatRules.validateName(args.first?.stringValue ?? "", limits: limits) {
        case .failure(let error): refuse(socket, error, ack: ack)
        case .success(let name):
            guard var current = ChatProfile(socket.data) else { return }
            current.name = name
            socket.data = current.json
            ack?(["ok": true, "name": .string(name)])
            presence.roomChanged(current.room, on: socket.eventLoop)
        }
    }

    private func typing(_ connection: ChatConnection, args: [JSONValue]) {
        // Dropped silently past the limit: typing indicators are volatile anyway.
        guard connection.takeTyping(now: Self.now()) else {
            metrics.eventsRateLimited.increment()
            return
        }
        guard let current = ChatProfile(connection.socket.data) else { return }
        let typing = args.first?.boolValue ?? false
        connection.socket.to(current.room).volatile.emit(
            "typing", ["name": .string(current.name), "room": .string(current.room), "typing": .bool(typing)]
        )
    }

    private func disconnected(_ socket: SocketIOSocket, reason: SocketDisconnectReason) {
        if reason == .slowClient { metrics.slowClientDisconnects.increment() }
        guard let current = ChatProfile(socket.data) else { return }
        presence.roomChanged(current.room, on: socket.eventLoop)
    }

    private func receiveMessage(
        from socket: SocketIOSocket, address: String, args: [JSONValue], ack: SocketIOAcknowledgement?
    ) {
        metrics.messagesReceived.increment()
        guard let raw = args.first?.stringValue else { return refuse(socket, .notText, ack: ack) }
        guard let profile = ChatProfile(socket.data) else { return }
        guard rateLimits.allowMessage(address: address, name: profile.name) else {
            metrics.messagesRejected.increment()
            return refuse(socket, .rateLimited(perSecond: limits.messagesPerSecond), ack: ack)
        }
        let text: String
        switch ChatRules.validateMessage(raw, limits: limits) {
        case .failure(let error):
            metrics.messagesRejected.increment()
            return refuse(socket, error, ack: ack)
        case .success(let valid): text = valid
        }
        let message = ChatMessage(
            id: Self.makeMessageId(), text: text, date: ChatClock.isoString(Date()), name: profile.name, room: profile.room
        )
        history.messageSent(message)
        // Built as a JSONValue directly and encoded once by the broadcast: no Codable round
        // trip (JSONEncoder, then parsing its text) per message.
        io.to(profile.room).emit("message", [message.json])
        metrics.messagesBroadcast.increment()
        ack?(["ok": true, "id": .string(message.id), "date": .string(message.date)])
    }

    /// Tells the sender why, both in the ack (for clients that asked for one) and as a
    /// `chat-error` event (for clients that did not): never a silent drop.
    private func refuse(_ socket: SocketIOSocket, _ error: ChatError, ack: SocketIOAcknowledgement?) {
        let payload: JSONValue = ["code": .string(error.code), "message": .string(error.message)]
        socket.emit("chat-error", payload)
        ack?(["ok": false, "error": payload])
    }

    private func move(_ socket: SocketIOSocket, to room: String, ack: SocketIOAcknowledgement?) async {
        guard var profile = ChatProfile(socket.data) else { return }
        let previous = profile.room
        if previous != room {
            socket.leave(previous)
            // The ack below tells the client it is in the room: make that true on every node.
            await socket.joinAndWait(room)
            profile.room = room
            socket.data = profile.json
        }
        let members = await presence.presence(of: room).including(profile.name)
        ack?(snapshot(for: profile, presence: members, acknowledging: true))
        if previous != room { presence.roomChanged(previous, on: socket.eventLoop) }
        presence.roomChanged(room, on: socket.eventLoop)
    }

    private func welcome(_ socket: SocketIOSocket, profile: ChatProfile) async {
        sendWelcome(socket, profile: profile, members: await presence.presence(of: profile.room))
    }

    private func sendWelcome(_ socket: SocketIOSocket, profile: ChatProfile, members: RoomPresence) {
        let members = members.including(profile.name)
        // The same fields as `snapshot`, the client's own first; the room's history and the
        // rooms list are encoded once per change of the room and shared by every newcomer
        // (`WelcomeEncoder`). Not logged for recovery: a welcome carries up to a room's whole
        // history (256 KB), and a client reconnecting in a loop would otherwise fill every
        // node's recovery log.
        let own: JSONObject = [
            "name": .string(profile.name),
            "room": .string(profile.room),
            "members": .array(members.names.map(JSONValue.string)),
            "memberCount": .number(String(members.count)),
        ]
        socket.emitWithoutRecovery("welcome", own, sharing: welcomes.sharedFields(room: profile.room, rooms: roomList(for: profile)))
        presence.roomChanged(profile.room, on: socket.eventLoop)
    }

    /// Every room a client may switch to: the active ones, the default room and its own.
    private func roomList(for profile: ChatProfile) -> [String] {
        var rooms = history.activeRooms
        if !rooms.contains(ChatRules.defaultRoom) { rooms.append(ChatRules.defaultRoom) }
        if !rooms.contains(profile.room) { rooms.append(profile.room) }
        return rooms.sorted()
    }

    /// What a client needs to show a room: sent as `welcome`, and as the answer to `join`
    /// (then with `ok: true` first, like every other answer).
    private func snapshot(for profile: ChatProfile, presence: RoomPresence, acknowledging: Bool = false) -> JSONValue {
        let messages = history.messages(in: profile.room)
        let rooms = roomList(for: profile)
        var fields: [(key: String, value: JSONValue)] = acknowledging ? [("ok", true)] : []
        fields += [
            ("name", .string(profile.name)),
            ("room", .string(profile.room)),
            ("rooms", .array(rooms.map(JSONValue.string))),
            ("history", .array(messages.map(\.json))),
            ("members", .array(presence.names.map(JSONValue.string))),
            ("memberCount", .number(String(presence.count))),
        ]
        return .object(JSONObject(fields))
    }

    static func now() -> Double {
        let uptime = ContinuousClock.now - ContinuousClock.Instant.zeroReference
        return Double(uptime.components.seconds) + Double(uptime.components.attoseconds) / 1e18
    }

    private static func makeMessageId() -> String {
        UUID().uuidString.lowercased()
    }
}

extension ContinuousClock.Instant {
    /// A fixed reading taken once, so differences give a monotonic number of seconds.
    static let zeroReference = ContinuousClock.now
}
