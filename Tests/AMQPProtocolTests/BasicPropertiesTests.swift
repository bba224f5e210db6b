import AMQPProtocol
import NIOCore
import XCTest

final class BasicPropertiesTests: XCTestCase {
    private static let full = AMQPBasicProperties(
        contentType: "application/json", contentEncoding: "gzip", headers: ["x-retry": .int32(3), "ünï": "côdé"],
        deliveryMode: 2, priority: 9, correlationID: "corr-1", replyTo: "amq.rabbitmq.reply-to",
        expiration: "60000", messageID: "msg-42", timestamp: 1_700_000_123, type: "chat.message",
        userID: "guest", appID: "sio-node-1", clusterID: "legacy"
    )

    /// The property at flag bit (15 - index) copied from `full`, or nil.
    private static func subset(mask: Int) -> AMQPBasicProperties {
        let f = full
        func has(_ index: Int) -> Bool { mask & (1 << (13 - index)) != 0 }
        return AMQPBasicProperties(
            contentType: has(0) ? f.contentType : nil, contentEncoding: has(1) ? f.contentEncoding : nil,
            headers: has(2) ? f.headers : nil, deliveryMode: has(3) ? f.deliveryMode : nil,
            priority: has(4) ? f.priority : nil, correlationID: has(5) ? f.correlationID : nil,
            replyTo: has(6) ? f.replyTo : nil, expiration: has(7) ? f.expiration : nil,
            messageID: has(8) ? f.messageID : nil, timestamp: has(9) ? f.timestamp : nil,
            type: has(10) ? f.type : nil, userID: has(11) ? f.userID : nil, appID: has(12) ? f.appID : nil,
            clusterID: has(13) ? f.clusterID : nil
        )
    }

    func testEverySubsetOfPropertiesRoundTripsWithTheRightFlags() throws {
        for mask in 0..<(1 << 14) {
            let properties = Self.subset(mask: mask)
            var out = ByteBuffer()
            properties.encode(into: &out)
            XCTAssertEqual(out.getInteger(at: 0, as: UInt16.self), UInt16(mask) << 2, "flags of mask \(mask)")
            let decoded = try AMQPBasicProperties.decode(from: &out)
            XCTAssertEqual(decoded, properties, "mask \(mask)")
            XCTAssertEqual(out.readableBytes, 0, "mask \(mask)")
        }
    }

    func testEmptyHeadersTableIsPresentNotAbsent() throws {
        let properties = AMQPBasicProperties(headers: [:])
        var out = ByteBuffer()
        properties.encode(into: &out)
        XCTAssertEqual(Array(out.readableBytesView), [0x20, 0x00, 0, 0, 0, 0])
        XCTAssertEqual(try AMQPBasicProperties.decode(from: &out), properties)
    }

    func testContinuationFlagWordsAreSkipped() throws {
        // deliveryMode flag + continuation bit, then a second (empty) flag word, then the octet.
        var input = buffer([0x10, 0x01, 0x00, 0x00, 0x02])
        XCTAssertEqual(try AMQPBasicProperties.decode(from: &input), AMQPBasicProperties(deliveryMode: 2))
        XCTAssertEqual(input.readableBytes, 0)
    }

    func testValidateNamesTheOverlongProperty() {
        let properties = AMQPBasicProperties(messageID: String(repeating: "m", count: 256))
        assertThrows(.shortStringTooLong(field: "basic property message-id", byteCount: 256)) { () throws(AMQPProtocolError) in
            try properties.validate()
        }
        XCTAssertNoThrow(try Self.full.validate())
    }
}
