import Foundation
import Logging
import ServiceLifecycle
import SocketIONIO

/// The node's HTTP server (Engine.IO, the pages, health and metrics) as a service: on
/// graceful shutdown it stops accepting and closes its clients.
struct ChatHTTPService: Service {
    let http: EngineIOHTTPServer
    let logger: Logger

    func run() async throws {
        try await http.start()
        // Written unbuffered: scripts wait for this line to know the node accepts connections.
        let line = "listening on http://\(http.configuration.host):\(http.port ?? http.configuration.port)\n"
        FileHandle.standardOutput.write(Data(line.utf8))
        try? await gracefulShutdown()
        logger.info("shutting down: closing client connections so they reconnect elsewhere")
        await http.shutdown()
    }
}
