import AMQPProtocol

/// What the application declared through this connection, so recovery can declare it again, in the
/// Java client's order: exchanges, queues, bindings, then consumers.
///
/// Only successful operations are recorded (the channel calls us after the -ok). A server-named queue
/// (declared with an empty name) gets a new name when redeclared; `queueRenamed` rewrites the bindings
/// and consumers that refer to it, which is why recovery asks for bindings only after the queues are done.
struct TopologyRecorder: Sendable {
    struct RecordedQueue: Sendable, Hashable {
        /// The name the broker gave us last time (for server-named queues, the generated one).
        var name: String
        var declaration: QueueDeclare
        var isServerNamed: Bool
    }

    struct RecordedConsumer: Sendable, Hashable {
        var consumerTag: String
        var queue: String
        var channelID: UInt16
        var noAck: Bool
        var exclusive: Bool
        var arguments: AMQPFieldTable
        /// Asked at recovery for the arguments of the new `basic.consume` (a stream consumer resumes
        /// after the last offset it handled, not at its original `x-stream-offset`).
        var argumentsOnRecovery: ArgumentsProvider? = nil

        /// The arguments to consume with now.
        var currentArguments: AMQPFieldTable { argumentsOnRecovery?.make() ?? arguments }
    }

    /// A closure with identity, so a recorded consumer stays comparable.
    struct ArgumentsProvider: Sendable, Hashable {
        let id = UInt64.random(in: 0...UInt64.max)
        let make: @Sendable () -> AMQPFieldTable

        static func == (lhs: Self, rhs: Self) -> Bool { lhs.id == rhs.id }
        func hash(into hasher: inout Hasher) { hasher.combine(id) }
    }

    private(set) var exchanges: [ExchangeDeclare] = []
    private(set) var queues: [RecordedQueue] = []
    private(set) var queueBindings: [QueueBind] = []
    private(set) var exchangeBindings: [ExchangeBind] = []
    private(set) var consumers: [RecordedConsumer] = []

    // MARK: Recording

    mutating func exchangeDeclared(_ declaration: ExchangeDeclare) {
        // Passive declares only check; they create nothing to restore.
        guard !declaration.passive else { return }
        var declaration = declaration
        declaration.noWait = false
        if let index = exchanges.firstIndex(where: { $0.exchange == declaration.exchange }) {
            exchanges[index] = declaration
        } else {
            exchanges.append(declaration)
        }
    }

    mutating func exchangeDeleted(_ name: String) {
        exchanges.removeAll { $0.exchange == name }
        queueBindings.removeAll { $0.exchange == name }
        exchangeBindings.removeAll { $0.source == name || $0.destination == name }
    }

    mutating func queueDeclared(_ declaration: QueueDeclare, assignedName: String) {
        guard !declaration.passive else { return }
        var declaration = declaration
        declaration.noWait = false
        let record = RecordedQueue(name: assignedName, declaration: declaration, isServerNamed: declaration.queue.isEmpty)
        if let index = queues.firstIndex(where: { $0.name == assignedName }) {
            queues[index] = record
        } else {
            queues.append(record)
        }
    }

    mutating func queueDeleted(_ name: String) {
        queues.removeAll { $0.name == name }
        queueBindings.removeAll { $0.queue == name }
        consumers.removeAll { $0.queue == name }
    }

    mutating func queueBound(_ binding: QueueBind) {
        var binding = binding
        binding.noWait = false
        if !queueBindings.contains(binding) { queueBindings.append(binding) }
    }

    mutating func queueUnbound(queue: String, exchange: String, routingKey: String, arguments: AMQPFieldTable) {
        queueBindings.removeAll {
            $0.queue == queue && $0.exchange == exchange && $0.routingKey == routingKey && $0.arguments == arguments
        }
    }

    mutating func exchangeBound(_ binding: ExchangeBind) {
        var binding = binding
        binding.noWait = false
        if !exchangeBindings.contains(binding) { exchangeBindings.append(binding) }
    }

    mutating func exchangeUnbound(destination: String, source: String, routingKey: String, arguments: AMQPFieldTable) {
        exchangeBindings.removeAll {
            $0.destination == destination && $0.source == source && $0.routingKey == routingKey && $0.arguments == arguments
        }
    }

    mutating func consumerStarted(_ consumer: RecordedConsumer) {
        consumers.removeAll { $0.consumerTag == consumer.consumerTag }
        consumers.append(consumer)
    }

    /// Also forgets an auto-delete queue whose last consumer went: the broker deletes it then.
    mutating func consumerCancelled(tag: String) {
        guard let index = consumers.firstIndex(where: { $0.consumerTag == tag }) else { return }
        let queue = consumers.remove(at: index).queue
        if let recorded = queues.first(where: { $0.name == queue }), recorded.declaration.autoDelete,
           !consumers.contains(where: { $0.queue == queue }) {
            queueDeleted(queue)
        }
    }

    /// The channel is gone for good (closed by the application): its consumers are not recovered.
    mutating func channelClosed(_ channelID: UInt16) {
        for consumer in consumers where consumer.channelID == channelID {
            consumerCancelled(tag: consumer.consumerTag)
        }
    }

    // MARK: Recovery

    /// A redeclared server-named queue got `newName`: every reference to `oldName` follows it.
    mutating func queueRenamed(from oldName: String, to newName: String) {
        guard oldName != newName else { return }
        for index in queues.indices where queues[index].name == oldName {
            queues[index].name = newName
        }
        for index in queueBindings.indices where queueBindings[index].queue == oldName {
            queueBindings[index].queue = newName
        }
        for index in consumers.indices where consumers[index].queue == oldName {
            consumers[index].queue = newName
        }
    }

    /// The declaration to send for a recorded queue: server-named ones ask for a fresh name.
    static func redeclaration(of queue: RecordedQueue) -> QueueDeclare {
        var declaration = queue.declaration
        declaration.queue = queue.isServerNamed ? "" : queue.name
        return declaration
    }
}
