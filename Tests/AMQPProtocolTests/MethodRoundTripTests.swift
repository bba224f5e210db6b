import AMQPProtocol
import NIOCore
import XCTest

final class MethodRoundTripTests: XCTestCase {
    func testEveryMethodRoundTripsThroughAFrame() throws {
        for method in sampleMethodsOfEveryKind {
            let frame = AMQPFrame.method(channel: 7, method)
            let decoded = try decodeAll(encoded(frame))
            XCTAssertEqual(decoded, [frame], "round trip of \(method.name)")
        }
    }

    func testEveryMethodRoundTripsWithoutFraming() throws {
        for method in sampleMethodsOfEveryKind {
            var payload = ByteBuffer()
            method.encode(into: &payload)
            XCTAssertEqual(payload.getInteger(at: 0, as: UInt16.self), method.classID, method.name)
            XCTAssertEqual(payload.getInteger(at: 2, as: UInt16.self), method.methodID, method.name)
            let decoded = try AMQPMethod.decode(from: &payload)
            XCTAssertEqual(decoded, method)
            XCTAssertEqual(payload.readableBytes, 0, "\(method.name) left bytes unread")
        }
    }

    func testSamplesCoverEveryMethodOfTheSpecWithItsIDs() {
        XCTAssertEqual(specMethodIDs.count, 64)
        for spec in specMethodIDs {
            let matching = sampleMethodsOfEveryKind.filter { $0.classID == spec.classID && $0.methodID == spec.methodID }
            XCTAssertFalse(matching.isEmpty, "no sample for \(spec.name)")
            XCTAssertTrue(matching.allSatisfy { $0.name == spec.name }, "wrong name for \(spec.name)")
        }
    }

    func testRabbitMQExtensionsHaveRabbitMQsIDs() {
        XCTAssertEqual(AMQPMethod.confirmSelect(ConfirmSelect()).classID, 85)
        XCTAssertEqual(AMQPMethod.basicNack(BasicNack(deliveryTag: 1)).methodID, 120)
        XCTAssertEqual(AMQPMethod.exchangeBind(ExchangeBind(destination: "d", source: "s")).methodID, 30)
        XCTAssertEqual(AMQPMethod.exchangeUnbindOk(ExchangeUnbindOk()).methodID, 51)
        XCTAssertEqual(AMQPMethod.connectionBlocked(ConnectionBlocked(reason: "low memory")).methodID, 60)
        XCTAssertEqual(AMQPMethod.connectionUnblocked(ConnectionUnblocked()).methodID, 61)
        XCTAssertEqual(AMQPMethod.connectionUpdateSecret(ConnectionUpdateSecret(newSecret: "t")).methodID, 70)
        XCTAssertEqual(AMQPMethod.connectionUpdateSecretOk(ConnectionUpdateSecretOk()).methodID, 71)
    }

    func testOnlyContentMethodsHaveContent() {
        let withContent = Set(sampleMethodsOfEveryKind.filter(\.hasContent).map(\.name))
        XCTAssertEqual(withContent, ["basic.publish", "basic.return", "basic.deliver", "basic.get-ok"])
    }

    func testUnknownMethodIsATypedError() {
        var payload = buffer([0, 99, 0, 1])
        assertThrows(.unknownMethod(classID: 99, methodID: 1)) { () throws(AMQPProtocolError) in
            _ = try AMQPMethod.decode(from: &payload)
        }
        var unknownInKnownClass = buffer([0, 60, 0, 200])
        assertThrows(.unknownMethod(classID: 60, methodID: 200)) { () throws(AMQPProtocolError) in
            _ = try AMQPMethod.decode(from: &unknownInKnownClass)
        }
    }

    func testTruncatedArgumentsAreATypedError() {
        // connection.tune needs 8 bytes of arguments; give it 3.
        var payload = buffer([0, 10, 0, 30, 0, 1, 0])
        assertThrows(.truncated(neededBytes: 4, availableBytes: 1)) { () throws(AMQPProtocolError) in
            _ = try AMQPMethod.decode(from: &payload)
        }
    }

    func testValidateRejectsShortStringsOver255Bytes() throws {
        let fits = AMQPMethod.queueDeclare(QueueDeclare(queue: String(repeating: "q", count: 255)))
        XCTAssertNoThrow(try fits.validate())
        let tooLong = AMQPMethod.queueDeclare(QueueDeclare(queue: String(repeating: "é", count: 128)))
        assertThrows(.shortStringTooLong(field: "queue.declare.queue", byteCount: 256)) { () throws(AMQPProtocolError) in
            try tooLong.validate()
        }
        let badArgumentKey = AMQPMethod.queueDeclare(QueueDeclare(arguments: [String(repeating: "k", count: 300): .void]))
        XCTAssertThrowsError(try badArgumentKey.validate())
    }

    func testOverlongShortStringIsCutSoTheFrameStaysWellFormed() throws {
        let method = AMQPMethod.basicPublish(BasicPublish(routingKey: String(repeating: "r", count: 300)))
        let decoded = try decodeAll(encoded(.method(channel: 1, method)))
        guard case .method(_, .basicPublish(let publish)) = decoded.first else {
            return XCTFail("expected basic.publish, got \(decoded)")
        }
        XCTAssertEqual(publish.routingKey, String(repeating: "r", count: 255))
    }
}
