import EngineIO
import NIOCore
import XCTest

@testable import SocketIORabbitMQ

/// The two inputs of issue #10 that stopped a node in the cluster encoder: a typed error now.
final class ClusterEncodingAttackTests: XCTestCase {
    func testARecoveryClaimWithA70000BytePidIsATypedError() {
        let claim = ClusterPayload.restoreClaim(id: "claim", privateId: String(repeating: "A", count: 70_000))
        XCTAssertThrowsError(try ClusterMessageCodec.encode(ClusterMessage(origin: "n", sequence: 1, namespace: "/", payload: claim))) {
            XCTAssertEqual($0 as? ClusterMessageEncodingError, .stringTooLong(bytes: 70_000))
        }
    }

    func testABroadcastToARoomOfOneCharacterAnd66KilobytesIsATypedError() {
        let room = String(repeating: "\u{1100}", count: 22_000)  // one grapheme cluster
        XCTAssertEqual(room.count, 1)
        let broadcast = ClusterPayload.broadcast(selection: ClusterSocketSelection(rooms: [room]), flags: ClusterBroadcastFlags(),
                                                 packet: EncodedPacket(messages: [EngineMessage(text: "2[\"x\"]")]), ackRequest: nil)
        XCTAssertThrowsError(try ClusterMessageCodec.encode(ClusterMessage(origin: "n", sequence: 1, namespace: "/", payload: broadcast))) {
            XCTAssertEqual($0 as? ClusterMessageEncodingError, .stringTooLong(bytes: 66_000))
        }
    }

    func testNodeNamesAreMadeWireSafeSoTheirOffsetsPassTheSocketIOCheck() {
        XCTAssertEqual(RabbitMQCluster.wireSafe("chat-3000"), "chat-3000")
        XCTAssertEqual(RabbitMQCluster.wireSafe("my node \"é\""), "my_node____")
        XCTAssertEqual(RabbitMQCluster.wireSafe(""), "node")
        XCTAssertEqual(RabbitMQCluster.wireSafe(String(repeating: "n", count: 500)).count, 100)
    }
}
