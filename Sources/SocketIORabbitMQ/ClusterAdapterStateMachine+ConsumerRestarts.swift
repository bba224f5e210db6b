/// The node-queue consumer's restart (the recovery-stream consumer's is in +RecoveryStream).
extension ClusterAdapterStateMachine {
    /// The node queue is declared and consumed again after its consumer ended (in a RabbitMQ
    /// cluster: on whichever broker node the connection is on now). The queue may be a new
    /// one, without the room bindings: every room with members is bound again.
    mutating func nodeConsumerRestarted() -> [Action] {
        guard !isClosed else { return [] }
        nodeConsumerLost = false
        var actions: [Action] = []
        if configuration.roomAwareRouting {
            pendingBindings.append(contentsOf: roomBindings.rebindAll())
            actions.append(.wakeBindingRunner)
        }
        actions.append(.readinessMayHaveChanged)
        return actions
    }
}
