import AMQPProtocol
import NIOCore
import XCTest

/// Bytes written out by hand from the spec, so encoder and decoder cannot agree on a shared mistake.
final class WireFormatTests: XCTestCase {
    func testProtocolHeader() {
        XCTAssertEqual(AMQPProtocolHeader.bytes, [0x41, 0x4D, 0x51, 0x50, 0, 0, 9, 1])
    }

    func testQueueDeclarePacksBitsLowestFirst() throws {
        let frame = AMQPFrame.method(
            channel: 1,
            .queueDeclare(QueueDeclare(queue: "q", durable: true, autoDelete: true))
        )
        let expected = bytes(fromHex: """
            01 0001 0000000D
            0032 000A  0000  01 71  0A  00000000
            CE
            """)
        XCTAssertEqual(Array(encoded(frame).readableBytesView), expected)
        XCTAssertEqual(try decodeAll(buffer(expected)), [frame])
    }

    func testBasicPublish() throws {
        let frame = AMQPFrame.method(
            channel: 1,
            .basicPublish(BasicPublish(exchange: "ex", routingKey: "rk", mandatory: true))
        )
        let expected = bytes(fromHex: "01 0001 0000000D  003C 0028 0000 02 6578 02 726B 01  CE")
        XCTAssertEqual(Array(encoded(frame).readableBytesView), expected)
    }

    func testConnectionOpenWritesReservedFieldsAsEmpty() {
        let frame = AMQPFrame.method(channel: 0, .connectionOpen(ConnectionOpen(virtualHost: "/")))
        let expected = bytes(fromHex: "01 0000 00000008  000A 0028 01 2F 00 00  CE")
        XCTAssertEqual(Array(encoded(frame).readableBytesView), expected)
    }

    func testBasicDeliverFromBytes() throws {
        let input = bytes(fromHex: """
            01 0002 00000015
            003C 003C  04 63746167  0000000000000101  01  00  01 71
            CE
            """)
        let expected = AMQPFrame.method(
            channel: 2,
            .basicDeliver(BasicDeliver(consumerTag: "ctag", deliveryTag: 257, redelivered: true, exchange: "", routingKey: "q"))
        )
        XCTAssertEqual(try decodeAll(buffer(input)), [expected])
    }

    func testContentHeaderWithTwoProperties() throws {
        let frame = AMQPFrame.header(
            channel: 1,
            AMQPContentHeader(bodySize: 5, properties: AMQPBasicProperties(contentType: "text/plain", deliveryMode: 2))
        )
        let expected = bytes(fromHex: """
            02 0001 0000001A
            003C 0000 0000000000000005 9000 0A 746578742F706C61696E 02
            CE
            """)
        XCTAssertEqual(Array(encoded(frame).readableBytesView), expected)
        XCTAssertEqual(try decodeAll(buffer(expected)), [frame])
    }

    func testHeartbeat() throws {
        XCTAssertEqual(Array(encoded(.heartbeat).readableBytesView), [8, 0, 0, 0, 0, 0, 0, 0xCE])
    }

    func testBodyFrame() throws {
        let frame = AMQPFrame.body(channel: 3, ByteBuffer(string: "hi"))
        XCTAssertEqual(Array(encoded(frame).readableBytesView), bytes(fromHex: "03 0003 00000002 6869 CE"))
    }

    func testFieldValueTagsFollowRabbitMQ() {
        let table: AMQPFieldTable = [
            "s": .int16(-2), "u": .uint16(2), "l": .int64(-1), "x": .bytes([0xAB]), "D": .decimal(scale: 2, value: 314),
        ]
        let method = AMQPMethod.queueDeclare(QueueDeclare(queue: "", arguments: table))
        var payload = ByteBuffer()
        method.encode(into: &payload)
        // class, method, reserved short, empty queue name, bits -> the table starts at offset 8.
        payload.moveReaderIndex(forwardBy: 8)
        let expected = bytes(fromHex: """
            00000025
            01 73 73 FFFE
            01 75 75 0002
            01 6C 6C FFFFFFFFFFFFFFFF
            01 78 78 00000001 AB
            01 44 44 02 0000013A
            """)
        XCTAssertEqual(Array(payload.readableBytesView), expected)
    }

    /// connection.start exactly as RabbitMQ 3.10.8 sent it to a client's protocol header.
    func testDecodesRabbitMQConnectionStart() throws {
        let frames = try decodeAll(buffer(bytes(fromHex: rabbitMQ3_10_8ConnectionStartHex)))
        guard frames.count == 1, case .method(let channel, .connectionStart(let start)) = frames[0] else {
            return XCTFail("expected one connection.start, got \(frames)")
        }
        XCTAssertEqual(channel, 0)
        XCTAssertEqual(start.versionMajor, 0)
        XCTAssertEqual(start.versionMinor, 9)
        XCTAssertEqual(start.mechanisms, "AMQPLAIN PLAIN")
        XCTAssertEqual(start.locales, "en_US")
        XCTAssertEqual(start.serverProperties["product"], .longString("RabbitMQ"))
        XCTAssertEqual(start.serverProperties["version"], .longString("3.10.8"))
        XCTAssertEqual(
            start.serverProperties.keys,
            ["capabilities", "cluster_name", "copyright", "information", "platform", "product", "version"]
        )
        let capabilities = try XCTUnwrap(start.serverProperties["capabilities"]?.tableValue)
        for capability in [
            "publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
            "connection.blocked", "authentication_failure_close", "per_consumer_qos", "direct_reply_to",
        ] {
            XCTAssertEqual(capabilities[capability], .bool(true), capability)
        }
        // Re-encoding must give back the broker's bytes exactly (table order is kept).
        XCTAssertEqual(
            Array(encoded(frames[0]).readableBytesView),
            bytes(fromHex: rabbitMQ3_10_8ConnectionStartHex)
        )
    }
}
