import AMQPProtocol
import XCTest
@testable import AMQPClient

final class TopologyRecorderTests: XCTestCase {
    func testServerNamedQueueRenameMovesBindingsAndConsumers() {
        var topology = TopologyRecorder()
        topology.exchangeDeclared(ExchangeDeclare(exchange: "events", type: "fanout"))
        topology.queueDeclared(QueueDeclare(queue: "", exclusive: true), assignedName: "amq.gen-old")
        topology.queueDeclared(QueueDeclare(queue: "named", durable: true), assignedName: "named")
        topology.queueBound(QueueBind(queue: "amq.gen-old", exchange: "events", routingKey: ""))
        topology.queueBound(QueueBind(queue: "named", exchange: "events", routingKey: ""))
        topology.consumerStarted(.init(consumerTag: "c1", queue: "amq.gen-old", channelID: 1, noAck: false, exclusive: false, arguments: [:]))

        // Recovery asks for a fresh name only for the server-named queue.
        XCTAssertEqual(topology.queues.map { TopologyRecorder.redeclaration(of: $0).queue }, ["", "named"])
        topology.queueRenamed(from: "amq.gen-old", to: "amq.gen-new")
        XCTAssertEqual(topology.queues.map(\.name), ["amq.gen-new", "named"])
        XCTAssertEqual(topology.queueBindings.map(\.queue), ["amq.gen-new", "named"])
        XCTAssertEqual(topology.consumers.map(\.queue), ["amq.gen-new"])
        XCTAssertEqual(topology.exchanges.map(\.exchange), ["events"])
    }

    func testDeletesCascadeAndPassiveDeclaresAreNotRecorded() {
        var topology = TopologyRecorder()
        topology.exchangeDeclared(ExchangeDeclare(exchange: "a", type: "topic"))
        topology.exchangeDeclared(ExchangeDeclare(exchange: "b", type: "topic"))
        topology.exchangeDeclared(ExchangeDeclare(exchange: "c", type: "topic", passive: true))
        topology.queueDeclared(QueueDeclare(queue: "q"), assignedName: "q")
        topology.queueBound(QueueBind(queue: "q", exchange: "a", routingKey: "k"))
        topology.exchangeBound(ExchangeBind(destination: "b", source: "a", routingKey: "#"))
        topology.consumerStarted(.init(consumerTag: "t", queue: "q", channelID: 1, noAck: true, exclusive: false, arguments: [:]))
        XCTAssertEqual(topology.exchanges.map(\.exchange), ["a", "b"])

        topology.exchangeDeleted("a")
        XCTAssertTrue(topology.queueBindings.isEmpty)
        XCTAssertTrue(topology.exchangeBindings.isEmpty)
        topology.queueDeleted("q")
        XCTAssertTrue(topology.queues.isEmpty)
        XCTAssertTrue(topology.consumers.isEmpty)
    }

    func testAutoDeleteQueueIsForgottenWithItsLastConsumer() {
        var topology = TopologyRecorder()
        topology.queueDeclared(QueueDeclare(queue: "tmp", autoDelete: true), assignedName: "tmp")
        topology.consumerStarted(.init(consumerTag: "1", queue: "tmp", channelID: 1, noAck: false, exclusive: false, arguments: [:]))
        topology.consumerStarted(.init(consumerTag: "2", queue: "tmp", channelID: 2, noAck: false, exclusive: false, arguments: [:]))
        topology.consumerCancelled(tag: "1")
        XCTAssertEqual(topology.queues.count, 1)
        topology.channelClosed(2)
        XCTAssertTrue(topology.queues.isEmpty)
        XCTAssertTrue(topology.consumers.isEmpty)
    }

    func testUnbindRemovesOnlyThatBinding() {
        var topology = TopologyRecorder()
        topology.queueBound(QueueBind(queue: "q", exchange: "x", routingKey: "a"))
        topology.queueBound(QueueBind(queue: "q", exchange: "x", routingKey: "b"))
        topology.queueBound(QueueBind(queue: "q", exchange: "x", routingKey: "b"))
        XCTAssertEqual(topology.queueBindings.count, 2, "duplicate binds are recorded once")
        topology.queueUnbound(queue: "q", exchange: "x", routingKey: "a", arguments: [:])
        XCTAssertEqual(topology.queueBindings.map(\.routingKey), ["b"])
    }
}
