import AMQPProtocol
import NIOCore
import NIOEmbedded
import XCTest
@testable import AMQPClient

final class ChannelStateMachineTests: XCTestCase {
    private let loop = EmbeddedEventLoop()

    private func openChannel() -> ChannelStateMachine {
        let promise = loop.makePromise(of: AMQPMethod.self)
        var machine = ChannelStateMachine(openPromise: promise)
        guard case .succeedRPC(let opened, _) = machine.received(.channelOpenOk(ChannelOpenOk())) else {
            XCTFail("open-ok not accepted")
            return machine
        }
        opened.succeed(.channelOpenOk(ChannelOpenOk()))
        XCTAssertEqual(machine.state, .open)
        return machine
    }

    func testRequestsGoOutOneAtATimeInOrder() throws {
        var machine = openChannel()
        let first = loop.makePromise(of: AMQPMethod.self)
        let second = loop.makePromise(of: AMQPMethod.self)
        let declare = AMQPMethod.queueDeclare(QueueDeclare(queue: "q"))
        let bind = AMQPMethod.queueBind(QueueBind(queue: "q", exchange: "x", routingKey: "k"))
        guard case .send(declare) = machine.request(declare, promise: first) else { return XCTFail() }
        guard case .none = machine.request(bind, promise: second) else { return XCTFail("second must wait") }

        let ok = AMQPMethod.queueDeclareOk(QueueDeclareOk(queue: "q", messageCount: 0, consumerCount: 0))
        guard case .succeedRPC(let promise, ok) = machine.received(ok) else { return XCTFail() }
        promise.succeed(ok)
        XCTAssertEqual(machine.nextRequestToSend(), bind)
        XCTAssertEqual(try first.futureResult.wait(), ok)
        second.succeed(.queueBindOk(QueueBindOk()))
    }

    func testWrongResponseIsProtocolViolation() {
        var machine = openChannel()
        let promise = loop.makePromise(of: AMQPMethod.self)
        _ = machine.request(.queueDeclare(QueueDeclare(queue: "q")), promise: promise)
        guard case .protocolViolation = machine.received(.exchangeDeclareOk(ExchangeDeclareOk())) else { return XCTFail() }
        promise.fail(AMQPError.channelClosed)
    }

    func testBrokerCloseFailsPendingWorkWithItsReason() {
        var machine = openChannel()
        let pending = loop.makePromise(of: AMQPMethod.self)
        _ = machine.request(.queueDeclare(QueueDeclare(queue: "q", durable: true)), promise: pending)
        let close = AMQPMethod.channelClose(ChannelClose(
            replyCode: 406, replyText: "PRECONDITION_FAILED - inequivalent arg 'durable'", classID: 50, methodID: 10))
        guard case .closed(let error, let replyCloseOk, let failedRPCs, _, _) = machine.received(close) else { return XCTFail() }
        XCTAssertTrue(replyCloseOk)
        XCTAssertEqual(error?.closeReason?.kind, .preconditionFailed)
        XCTAssertEqual(error?.closeReason?.classID, 50)
        XCTAssertEqual(failedRPCs.count, 1)
        failedRPCs.forEach { $0.fail(error!) }
        XCTAssertEqual(machine.state, .closed)
        let late = loop.makePromise(of: AMQPMethod.self)
        _ = machine.request(.basicQos(BasicQos(prefetchSize: 0, prefetchCount: 1, global: false)), promise: late)
        XCTAssertThrowsError(try late.futureResult.wait())
    }

    func testDeliveryIsAssembledFromSeveralBodyFrames() {
        var machine = openChannel()
        let deliver = BasicDeliver(consumerTag: "c", deliveryTag: 7, redelivered: false, exchange: "x", routingKey: "k")
        guard case .none = machine.received(.basicDeliver(deliver)) else { return XCTFail() }
        guard case .none = machine.received(header: AMQPContentHeader(bodySize: 6, properties: .init(contentType: "text/plain"))) else {
            return XCTFail()
        }
        guard case .none = machine.received(body: ByteBuffer(string: "hel")) else { return XCTFail() }
        guard case .deliver(let tag, let content) = machine.received(body: ByteBuffer(string: "lo!")) else { return XCTFail() }
        XCTAssertEqual(tag, "c")
        XCTAssertEqual(String(buffer: content.body), "hello!")
        XCTAssertEqual(content.properties.contentType, "text/plain")
    }

    func testEmptyBodyDeliveryCompletesOnHeader() {
        var machine = openChannel()
        _ = machine.received(.basicDeliver(BasicDeliver(consumerTag: "c", deliveryTag: 1, redelivered: false, exchange: "", routingKey: "q")))
        guard case .deliver(_, let content) = machine.received(header: AMQPContentHeader(bodySize: 0)) else { return XCTFail() }
        XCTAssertEqual(content.body.readableBytes, 0)
    }

    func testConfirmsResolveMultipleAcksNacksAndReturns() throws {
        var machine = openChannel()
        let select = loop.makePromise(of: AMQPMethod.self)
        _ = machine.request(.confirmSelect(ConfirmSelect()), promise: select)
        guard case .succeedRPC(let selected, _) = machine.received(.confirmSelectOk(ConfirmSelectOk())) else { return XCTFail() }
        selected.succeed(.confirmSelectOk(ConfirmSelectOk()))
        XCTAssertTrue(machine.isInConfirmMode)

        let promises = (0..<4).map { _ in loop.makePromise(of: Void.self) }
        for (index, promise) in promises.enumerated() {
            let sequence = try machine.publish(exchange: "x", routingKey: index == 2 ? "nowhere" : "k",
                                               mandatory: index == 2, body: ByteBuffer(string: "z"),
                                               confirmPromise: promise)
            XCTAssertEqual(sequence, UInt64(index + 1))
        }
        // Broker: return for #3, then ack 1...3 in one multiple ack, nack #4.
        _ = machine.received(.basicReturn(BasicReturn(replyCode: 312, replyText: "NO_ROUTE", exchange: "x", routingKey: "nowhere")))
        guard case .none = machine.received(header: AMQPContentHeader(bodySize: 1)) else { return XCTFail() }
        guard case .none = machine.received(body: ByteBuffer(string: "z")) else { return XCTFail("a claimed return is not surfaced twice") }

        guard case .resolveConfirms(let acked) = machine.received(.basicAck(BasicAck(deliveryTag: 3, multiple: true))) else { return XCTFail() }
        XCTAssertEqual(acked.map(\.1), [.confirmed, .confirmed, .returned(AMQPCloseReason(replyCode: 312, replyText: "NO_ROUTE",
                                                                                          classID: 60, methodID: 40))])
        guard case .resolveConfirms(let nacked) = machine.received(.basicNack(BasicNack(deliveryTag: 4, multiple: false, requeue: false))) else {
            return XCTFail()
        }
        XCTAssertEqual(nacked.map(\.1), [.nacked])
        for (promise, _) in acked + nacked { promise.succeed(()) }
    }

    /// RabbitMQ's wire pattern for one channel: while handling publish N it sends N's return (if
    /// unroutable), then flushes all confirms collected so far as one `multiple` ack below the oldest
    /// still-unconfirmed publish plus single acks above it, N's last. Queue confirms of routable
    /// publishes arrive late and out of order. Every publish here is mandatory with the same exchange
    /// and routing key (a headers exchange routes on properties), so only the exact match works.
    func testReturnsMatchTheirPublishUnderRabbitMQsAckFlushPattern() throws {
        var machine = openChannel()
        let select = loop.makePromise(of: AMQPMethod.self)
        _ = machine.request(.confirmSelect(ConfirmSelect()), promise: select)
        guard case .succeedRPC(let selected, _) = machine.received(.confirmSelectOk(ConfirmSelectOk())) else { return XCTFail() }
        selected.succeed(.confirmSelectOk(ConfirmSelectOk()))

        let count = 200
        let unroutable: Set<Int> = [3, 4, 50, 51, 52, 120, 199, 200]
        var promises: [Int: EventLoopPromise<Void>] = [:]
        func properties(_ sequence: Int) -> AMQPBasicProperties {
            .init(headers: ["route": .longString(unroutable.contains(sequence) ? "none" : "q")])
        }
        for sequence in 1...count {
            let promise = loop.makePromise(of: Void.self)
            promises[sequence] = promise
            // Bodies repeat (sequence % 3), so only properties + ordering tell the publishes apart.
            let body = ByteBuffer(string: "body-\(sequence % 3)")
            XCTAssertEqual(try machine.publish(exchange: "hx", routingKey: "", mandatory: true, properties: properties(sequence),
                                               body: body, confirmPromise: promise), UInt64(sequence))
        }

        // Simulate the broker: routable publishes get their queue confirm a few publishes later.
        var outcomes: [Int: ConfirmTracker<ChannelStateMachine.PublishPromise>.Outcome] = [:]
        var collected: [Int] = []      // confirms not yet flushed
        var unconfirmed = Set<Int>()   // routed, waiting for the queue
        var queueConfirmsDue: [(due: Int, sequence: Int)] = []
        func flush() {
            guard !collected.isEmpty else { return }
            let sorted = collected.sorted()
            collected.removeAll()
            let cutoff = unconfirmed.min() ?? (sorted.last! + 1)
            let below = sorted.filter { $0 < cutoff }
            var frames: [AMQPMethod] = []
            if let last = below.last { frames.append(.basicAck(BasicAck(deliveryTag: UInt64(last), multiple: sorted.count > 1))) }
            frames += sorted.filter { $0 >= cutoff }.map { .basicAck(BasicAck(deliveryTag: UInt64($0), multiple: false)) }
            for frame in frames {
                guard case .resolveConfirms(let resolved) = machine.received(frame) else { return XCTFail("\(frame)") }
                for (promise, outcome) in resolved {
                    let sequence = promises.first { $0.value.futureResult === promise.futureResult }!.key
                    XCTAssertNil(outcomes[sequence])
                    outcomes[sequence] = outcome
                    promise.succeed(())
                }
            }
        }
        for sequence in 1...count {
            // Queue confirms that came in before this publish is handled.
            for confirm in queueConfirmsDue where confirm.due == sequence {
                unconfirmed.remove(confirm.sequence)
                collected.append(confirm.sequence)
            }
            if unroutable.contains(sequence) {
                guard case .none = machine.received(.basicReturn(BasicReturn(replyCode: 312, replyText: "NO_ROUTE",
                                                                             exchange: "hx", routingKey: ""))),
                      case .none = machine.received(header: AMQPContentHeader(bodySize: 6, properties: properties(sequence))),
                      case .none = machine.received(body: ByteBuffer(string: "body-\(sequence % 3)"))
                else { return XCTFail("return for \(sequence) was not claimed") }
                collected.append(sequence)
            } else {
                unconfirmed.insert(sequence)
                // Out of order on purpose: some queue confirms lag far behind.
                queueConfirmsDue.append((due: min(count + 1, sequence + 1 + (sequence * 7) % 13), sequence: sequence))
            }
            flush()
        }
        for confirm in queueConfirmsDue where confirm.due > count {
            unconfirmed.remove(confirm.sequence)
            collected.append(confirm.sequence)
        }
        flush()

        XCTAssertEqual(outcomes.count, count)
        for sequence in 1...count {
            if unroutable.contains(sequence) {
                guard case .returned(let reason) = outcomes[sequence] else { return XCTFail("\(sequence): \(String(describing: outcomes[sequence]))") }
                XCTAssertEqual(reason.replyCode, 312)
            } else {
                XCTAssertEqual(outcomes[sequence], .confirmed, "publish \(sequence)")
            }
        }
    }

    func testConnectionLossFailsUnconfirmedPublishes() throws {
        var machine = openChannel()
        let select = loop.makePromise(of: AMQPMethod.self)
        _ = machine.request(.confirmSelect(ConfirmSelect()), promise: select)
        _ = machine.received(.confirmSelectOk(ConfirmSelectOk()))
        select.succeed(.confirmSelectOk(ConfirmSelectOk()))
        let publish = loop.makePromise(of: Void.self)
        _ = try machine.publish(exchange: "", routingKey: "q", mandatory: false, confirmPromise: publish)
        guard case .closed(let error, false, _, let failedPublishes, _) = machine.connectionLost(.connectionLost("reset")) else {
            return XCTFail()
        }
        XCTAssertEqual(error, .connectionLost("reset"))
        XCTAssertEqual(failedPublishes.count, 1)
        failedPublishes.forEach { $0.fail(error!) }
        XCTAssertThrowsError(try machine.publish(exchange: "", routingKey: "q", mandatory: false, confirmPromise: nil))
    }

    func testClientCloseCompletesOnCloseOk() throws {
        var machine = openChannel()
        let close = loop.makePromise(of: AMQPMethod.self)
        guard case .send(.channelClose) = machine.closeRequested(promise: close) else { return XCTFail() }
        // Deliveries racing the close are dropped.
        guard case .none = machine.received(.basicDeliver(BasicDeliver(consumerTag: "c", deliveryTag: 1, redelivered: false,
                                                                       exchange: "", routingKey: "q"))) else { return XCTFail() }
        guard case .closed(nil, false, _, _, let closePromise?) = machine.received(.channelCloseOk(ChannelCloseOk())) else {
            return XCTFail()
        }
        closePromise.succeed(.channelCloseOk(ChannelCloseOk()))
        XCTAssertNoThrow(try close.futureResult.wait())
    }
}
