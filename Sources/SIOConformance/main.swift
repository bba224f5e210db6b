import ArgumentParser
import Dispatch
import EngineIO
import Logging
import NIOCore
import SocketIO
import SocketIONIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bare Engine.IO echo server of the official engine.io suite (contract section 2):
/// every message goes back unchanged on the same session, text or binary.
final class EngineEchoDelegate: EngineServerDelegate, EngineConnectionDelegate, Sendable {
    func engineDidOpen(_ connection: any EngineConnection) {
        connection.delegate = self
    }

    func connection(_ connection: any EngineConnection, didReceive message: EngineMessage) {
        connection.send(message)
    }

    func connectionDidClose(_ connection: any EngineConnection, reason: EngineCloseReason) {}
}

struct SIOConformance: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sio-conformance",
        abstract: "The Socket.IO / Engine.IO conformance fixture (see SERVER-CONTRACT.md)."
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 4100
    @Option(help: "pingInterval in milliseconds.") var pingInterval: Int64 = 300
    @Option(help: "pingTimeout in milliseconds.") var pingTimeout: Int64 = 200
    @Option(help: "maxPayload (maxHttpBufferSize) in bytes.") var maxPayload = 1_000_000
    @Option(help: "Socket.IO connectTimeout in milliseconds.") var connectTimeout: Int64 = 1000
    @Option(help: "Minimum gap between two WebSocket flushes of one connection, in milliseconds. The official suite's node `ws` client needs consecutive messages in separate TCP reads; a few ms keeps that true on a busy machine.")
    var webSocketFlushGap: Int64 = 10
    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical).") var logLevel = "notice"
    // Hostile-client limits, for tests; the defaults (library defaults, any origin) keep the
    // official suites passing.
    @Option(help: "Allowed origins, comma-separated (* = any).") var allowedOrigins = "*"
    @Option(help: "Trusted proxies (IPs or CIDR ranges), comma-separated.") var trustedProxies = ""
    @Option(help: "HTTP headers timeout in milliseconds (0 = off).") var headersTimeout: Int64 = 60_000
    @Option(help: "HTTP keep-alive idle timeout in milliseconds (0 = off).") var keepAliveTimeout: Int64 = 5_000
    @Option(help: "HTTP request timeout in milliseconds (0 = off).") var requestTimeout: Int64 = 300_000
    @Option(help: "Open TCP connections at most (0 = no cap).") var maxConnections = 0
    @Option(help: "Open Engine.IO sessions at most (0 = no cap).") var maxSessions = 0
    @Option(help: "Open sessions per client address (0 = no cap).") var maxSessionsPerAddress = 0
    @Option(help: "Handshakes per second per client address (0 = no cap).") var handshakeRate: Double = 0
    @Option(help: "Handshake burst per client address.") var handshakeBurst: Double = 20

    func serve() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var engine = EngineServerConfiguration(
            pingInterval: .milliseconds(pingInterval),
            pingTimeout: .milliseconds(pingTimeout),
            maxPayload: maxPayload
        )
        engine.cors = EngineCORSConfiguration(allowedOrigins: .any)
        engine.webSocketMinimumFlushGap = .milliseconds(webSocketFlushGap)
        engine.allowedOrigins = EngineOriginPolicy(allowing: allowedOrigins.split(separator: ",").map(String.init))
        var http = EngineIOHTTPServerConfiguration(host: host, port: port)
        http.trustedProxies = trustedProxies.split(separator: ",").map(String.init)
        http.timeouts = HTTPConnectionTimeouts(
            headers: .milliseconds(headersTimeout), keepAlive: .milliseconds(keepAliveTimeout), request: .milliseconds(requestTimeout)
        )
        http.admission.maxConnections = maxConnections > 0 ? maxConnections : nil
        http.admission.maxSessions = maxSessions > 0 ? maxSessions : nil
        http.admission.maxSessionsPerAddress = maxSessionsPerAddress > 0 ? maxSessionsPerAddress : nil
        http.admission.handshakesPerSecondPerAddress = handshakeRate > 0 ? handshakeRate : nil
        http.admission.handshakeBurstPerAddress = handshakeBurst

        let socketIO = makeSocketIOConformanceDelegate(connectTimeout: .milliseconds(connectTimeout))
        let server = EngineIOHTTPServer(
            configuration: http,
            endpoints: [
                EngineIOEndpoint(path: "/socket.io/", configuration: engine, delegate: socketIO),
                EngineIOEndpoint(path: "/engine.io/", configuration: engine, delegate: EngineEchoDelegate()),
            ],
            fallback: { request in
                switch request.path {
                case "/health", "/healthz", "/readyz":
                    HTTPFallbackResponse(status: .ok, contentType: "text/plain; charset=UTF-8", body: "ok")
                case "/metrics":
                    // What the churn tests read: objects still allocated per connection kind.
                    HTTPFallbackResponse(status: .ok, contentType: "text/plain; version=0.0.4", body: LiveObjects.prometheusText)
                default:
                    .notFound
                }
            }
        )
        try await server.start()
        print("listening on http://\(host):\(server.port ?? port)")
        // Scripts wait for exactly that line, so it must not sit in a pipe buffer.
        fflush(nil)

        await waitForTerminationSignal()
        await server.shutdown()
    }
}

// Top-level code (this is main.swift), so the command is parsed here and served async.
let options = SIOConformance.parseOrExit()
do {
    try await options.serve()
} catch {
    SIOConformance.exit(withError: error)
}

/// Suspends until SIGTERM or SIGINT arrives.
func waitForTerminationSignal() async {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    let queue = DispatchQueue(label: "signals")
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let resumed = SignalOnce(continuation)
        for number in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { resumed.resume() }
            source.resume()
            resumed.keep(source)
        }
    }
}

/// Resumes the continuation on the first signal only; touched only on the signal queue.
final class SignalOnce: @unchecked Sendable {
    private var continuation: CheckedContinuation<Void, Never>?
    private var sources: [any DispatchSourceSignal] = []

    init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = continuation }

    func keep(_ source: any DispatchSourceSignal) { sources.append(source) }

    func resume() {
        continuation?.resume()
        continuation = nil
    }
}
