extension RabbitMQCluster {
    /// Has `observer` called with every recoverable event of `namespace`, cluster-wide, once
    /// each, in the recovery stream's order (the order every node delivers them in). First
    /// come the events the stream still holds from before this node started, replayed when
    /// the namespace's adapter starts (`SocketIOServer.start` returns after them), then each
    /// event as this node reads it. How far back the replay reaches is the stream's
    /// retention (`recoveryStreamMaxAge`, `recoveryStreamMaxLengthBytes`).
    ///
    /// Register before the namespace exists (before `SocketIOServer(configuration)` for
    /// "/"). Needs connection state recovery: without it nothing is streamed.
    public func observeRecoverableEvents(in namespace: String = "/", _ observer: @escaping RecoverableEventObserver) {
        eventObservers.withLockedValue { $0[namespace] = observer }
    }
}
