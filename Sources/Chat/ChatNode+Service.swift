import ServiceLifecycle

/// The Socket.IO side of a node as a service: it starts (waiting for the broker as long as it
/// takes), runs until graceful shutdown, then closes. A start that fails for good (an adapter
/// could not declare its queues) is thrown, which ends the whole group instead of leaving a
/// node that looks up and never gets ready.
extension ChatNode: Service {
    func run() async throws {
        // A shutdown while the broker is still away ends the wait for it.
        try await cancelWhenGracefulShutdown { try await self.start() }
        try? await gracefulShutdown()
        await close()
    }
}
