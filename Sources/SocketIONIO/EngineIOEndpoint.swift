import EngineIO
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Open Engine.IO connections of one endpoint, by the transport they use now.
public struct EngineConnectionCounts: Sendable, Hashable {
    public var polling: Int = 0
    public var websocket: Int = 0
    public var total: Int { polling + websocket }
}

/// One Engine.IO server mounted at a path prefix (e.g. `/socket.io/`): its options, the
/// upper layer that receives its connections, and the registry of live sessions.
public final class EngineIOEndpoint: Sendable {
    /// Requests whose path starts with this prefix belong to the endpoint.
    public let path: String
    public let configuration: EngineServerConfiguration
    public let delegate: any EngineServerDelegate
    let logger: Logger

    /// sid -> session. Polling requests arrive on any loop, so the registry is shared and
    /// locked; the session itself is then used only on its own loop.
    private let sessions = NIOLockedValueBox<[String: EngineSession]>([:])
    private let counts = NIOLockedValueBox(EngineConnectionCounts())
    /// One heartbeat timer per event loop for all of this endpoint's sessions there.
    private let heartbeats = NIOLockedValueBox<[ObjectIdentifier: HeartbeatTimers<EngineSession>]>([:])
    /// The serving server's node-wide caps, told about every session that opens and ends.
    private let admission = NIOLockedValueBox<EngineAdmissionControl?>(nil)
    /// Completed when the registry becomes empty (`sessionsEnded`): a shutdown waits for its
    /// close frames to be answered, not for a fixed time.
    private let emptyWaiters = NIOLockedValueBox<[EventLoopPromise<Void>]>([])

    public init(
        path: String,
        configuration: EngineServerConfiguration,
        delegate: any EngineServerDelegate,
        logger: Logger = Logger(label: "engine.io")
    ) {
        self.path = path.hasSuffix("/") ? path : path + "/"
        self.configuration = configuration
        self.delegate = delegate
        var logger = logger
        logger[metadataKey: "endpoint"] = "\(self.path)"
        self.logger = logger
    }

    /// Open connections by transport, for metrics.
    public var connectionCounts: EngineConnectionCounts { counts.withLockedValue { $0 } }

    /// Closes every session (e.g. on shutdown); each delegate is told `reason`.
    public func closeAllConnections(reason: EngineCloseReason) {
        let all = sessions.withLockedValue { Array($0.values) }
        for session in all { session.close(reason: reason) }
    }

    /// Succeeds once no session is left (at once if none is). Every waiter is completed
    /// exactly once: whoever takes the list from `emptyWaiters` completes what it took.
    public func sessionsEnded(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        emptyWaiters.withLockedValue { $0.append(promise) }
        if sessions.withLockedValue({ $0.isEmpty }) { completeEmptyWaiters() }
        return promise.futureResult
    }

    private func completeEmptyWaiters() {
        for waiter in emptyWaiters.withLockedValue({ waiters in defer { waiters.removeAll() }; return waiters }) { waiter.succeed() }
    }

    /// Whether `path` (without query) is served by this endpoint. Both `/engine.io/` and
    /// `/engine.io` match, and nothing below them: clients only ever request the endpoint
    /// itself, and an application may serve files under the same prefix (the chat serves
    /// `/socket.io/socket.io.min.js`, as socket.io's Node server does).
    func matches(_ requestPath: Substring) -> Bool {
        requestPath == path || requestPath == path.dropLast()
    }

    func attach(_ admission: EngineAdmissionControl) {
        self.admission.withLockedValue { $0 = admission }
    }

    func session(id: String) -> EngineSession? {
        sessions.withLockedValue { $0[id] }
    }

    func createSession(transport: EngineTransport, on eventLoop: any EventLoop, handshake: EngineHandshakeRequest) -> EngineSession {
        let session = EngineSession(
            id: EngineSessionID.generate(), transport: transport, eventLoop: eventLoop, handshake: handshake, endpoint: self,
            heartbeats: heartbeatTimers(for: eventLoop)
        )
        sessions.withLockedValue { $0[session.id] = session }
        counts.withLockedValue {
            if transport == .polling { $0.polling += 1 } else { $0.websocket += 1 }
        }
        admission.withLockedValue { $0 }?.sessionOpened(address: Self.admissionKey(of: handshake))
        return session
    }

    /// The loops of a server live as long as it does, so a loop's identity is a stable key.
    private func heartbeatTimers(for eventLoop: any EventLoop) -> HeartbeatTimers<EngineSession> {
        heartbeats.withLockedValue { table in
            let key = ObjectIdentifier(eventLoop)
            if let existing = table[key] { return existing }
            let made = HeartbeatTimers<EngineSession>(eventLoop: eventLoop)
            table[key] = made
            return made
        }
    }

    func unregister(_ session: EngineSession) {
        let empty = sessions.withLockedValue { table -> Bool in
            if table[session.id] === session { table[session.id] = nil }
            return table.isEmpty
        }
        if empty { completeEmptyWaiters() }
    }

    func sessionUpgraded() {
        counts.withLockedValue {
            $0.polling -= 1
            $0.websocket += 1
        }
    }

    func sessionClosed(wasWebSocket: Bool, handshake: EngineHandshakeRequest) {
        counts.withLockedValue {
            if wasWebSocket { $0.websocket -= 1 } else { $0.polling -= 1 }
        }
        admission.withLockedValue { $0 }?.sessionClosed(address: Self.admissionKey(of: handshake))
    }

    private static func admissionKey(of handshake: EngineHandshakeRequest) -> String? {
        handshake.clientAddress.flatMap { IPAddress(Substring($0))?.admissionKey }
    }
}
