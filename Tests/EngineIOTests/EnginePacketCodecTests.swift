import NIOCore
import Testing
@testable import EngineIO

@Suite struct EnginePacketCodecTests {
    @Test(arguments: EnginePacketType.allCases)
    func textFrameRoundTripsEveryType(_ type: EnginePacketType) throws {
        let packet = EnginePacket(type: type, text: "payload é")
        let frame = EnginePacketCodec.encodeFrame(packet)
        #expect(String(buffer: frame) == "\(type.rawValue)payload é")
        #expect(try EnginePacketCodec.decodeTextFrame(frame) == packet)
    }

    @Test func textFrameErrors() {
        #expect(throws: EngineDecodingError.emptyPacket) { try EnginePacketCodec.decodeTextFrame(ByteBuffer()) }
        #expect(throws: EngineDecodingError.unknownPacketType(UInt8(ascii: "a"))) {
            try EnginePacketCodec.decodeTextFrame(ByteBuffer(string: "abc"))
        }
        #expect(throws: EngineDecodingError.unknownPacketType(UInt8(ascii: "9"))) {
            try EnginePacketCodec.decodeTextFrame(ByteBuffer(string: "9hello"))
        }
    }

    @Test func binaryFrameIsABinaryMessageAsIs() {
        let bytes = ByteBuffer(bytes: [1, 2, 3, 4])
        let packet = EnginePacketCodec.decodeBinaryFrame(bytes)
        #expect(packet.type == .message && packet.isBinary)
        #expect(EnginePacketCodec.encodeFrame(packet) == bytes)
        #expect(packet.message == EngineMessage(binary: bytes))
    }

    @Test func payloadWithTextAndBinaryPacketsMatchesTheReferenceExample() throws {
        let body = ByteBuffer(string: "4hello\u{1e}bAQIDBA==")
        let packets = try EnginePacketCodec.decodePayload(body)
        #expect(packets == [EnginePacket(type: .message, text: "hello"), .binaryMessage(ByteBuffer(bytes: [1, 2, 3, 4]))])
        #expect(String(buffer: EnginePacketCodec.encodePayload(packets)) == "4hello\u{1e}bAQIDBA==")
    }

    @Test func payloadKeepsEmptyMessagesAndOrder() throws {
        let text = "4test1\u{1e}4\u{1e}2\u{1e}4test3"
        let packets = try EnginePacketCodec.decodePayload(ByteBuffer(string: text))
        #expect(packets.map(\.type) == [.message, .message, .ping, .message])
        #expect(packets.map(\.text) == ["test1", "", "", "test3"])
        #expect(String(buffer: EnginePacketCodec.encodePayload(packets)) == text)
    }

    @Test func payloadDecodingOfASliceWithAReaderOffset() throws {
        var body = ByteBuffer(string: "xx4a\u{1e}4b")
        body.moveReaderIndex(forwardBy: 2)
        #expect(try EnginePacketCodec.decodePayload(body).map(\.text) == ["a", "b"])
    }

    @Test func payloadErrors() {
        #expect(throws: EngineDecodingError.emptyPacket) { try EnginePacketCodec.decodePayload(ByteBuffer()) }
        #expect(throws: EngineDecodingError.emptyPacket) { try EnginePacketCodec.decodePayload(ByteBuffer(string: "4a\u{1e}")) }
        #expect(throws: EngineDecodingError.unknownPacketType(UInt8(ascii: "a"))) {
            try EnginePacketCodec.decodePayload(ByteBuffer(string: "abc"))
        }
        #expect(throws: EngineDecodingError.invalidBase64) { try EnginePacketCodec.decodePayload(ByteBuffer(string: "b!!!")) }
    }

    @Test(arguments: [0, 1, 2, 3, 4, 5, 255])
    func base64RoundTripsEveryLength(_ length: Int) throws {
        let bytes = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
        var encoded = ByteBuffer()
        Base64.encode(bytes.readableBytesView, into: &encoded)
        #expect(encoded.readableBytes == Base64.encodedLength(of: length))
        #expect(Base64.decode(encoded.readableBytesView) == bytes)
    }

    @Test func base64KnownVectors() {
        func encode(_ text: String) -> String {
            var out = ByteBuffer()
            Base64.encode(ByteBuffer(string: text).readableBytesView, into: &out)
            return String(buffer: out)
        }
        #expect(encode("f") == "Zg==")
        #expect(encode("fo") == "Zm8=")
        #expect(encode("foo") == "Zm9v")
        #expect(encode("foobar") == "Zm9vYmFy")
        #expect(Base64.decode(ByteBuffer(string: "Zm9vYg").readableBytesView) == ByteBuffer(string: "foob"))
        #expect(Base64.decode(ByteBuffer(string: "Z").readableBytesView) == nil)
    }
}

@Suite struct EngineHandshakeAndRequestTests {
    @Test func openPacketHasExactlyTheReferenceKeys() {
        var configuration = EngineServerConfiguration()
        configuration.pingInterval = .milliseconds(300)
        configuration.pingTimeout = .milliseconds(200)
        configuration.maxPayload = 1_000_000
        let polling = EngineHandshake(sid: "abc", transport: .polling, configuration: configuration)
        #expect(String(buffer: EnginePacketCodec.encodeFrame(polling.openPacket))
            == #"0{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#)
        let websocket = EngineHandshake(sid: "abc", transport: .websocket, configuration: configuration)
        #expect(websocket.json == #"{"sid":"abc","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#)
        configuration.allowUpgrades = false
        #expect(EngineHandshake(sid: "x", transport: .polling, configuration: configuration).upgrades == [])
    }

    @Test func sessionIDsAreDistinctAndURLSafe() {
        let ids = Set((0..<1000).map { _ in EngineSessionID.generate() })
        #expect(ids.count == 1000)
        #expect(ids.allSatisfy { $0.utf8.count == 20 && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" } })
    }

    @Test func everyPositionOfASessionIDUsesTheWholeAlphabet() {
        // 6 random bits per character: over 5,000 ids each position shows all 64 symbols
        // (a position fed by fewer or repeated bits would not).
        let ids = (0..<5000).map { _ in Array(EngineSessionID.generate().utf8) }
        for position in 0..<20 {
            #expect(Set(ids.map { $0[position] }).count == 64, "position \(position)")
        }
    }

    @Test(arguments: EngineRequestError.allCases)
    func errorTableRows(_ error: EngineRequestError) {
        let expected: [EngineRequestError: (Int, String)] = [
            .unknownTransport: (400, "Transport unknown"),
            .unknownSessionID: (400, "Session ID unknown"),
            .badHandshakeMethod: (400, "Bad handshake method"),
            .badRequest: (400, "Bad request"),
            .forbidden: (403, "Forbidden"),
            .unsupportedProtocolVersion: (400, "Unsupported protocol version"),
        ]
        let (status, message) = expected[error]!
        #expect(error.httpStatusCode == status)
        #expect(error.jsonBody == "{\"code\":\(error.rawValue),\"message\":\"\(message)\"}")
    }

    private func classify(_ uri: String, get: Bool = true, upgrade: Bool = false,
                          transports: Set<EngineTransport> = [.polling, .websocket]) -> Result<EngineRequestKind, EngineRequestError> {
        EngineRequestKind.classify(query: EngineURI.split(uri).query, isGET: get, isWebSocketUpgrade: upgrade,
                                   enabledTransports: transports)
    }

    @Test func requestClassificationFollowsTheReferenceOrder() {
        #expect(classify("/e/?EIO=4&transport=polling") == .success(.handshake(.polling)))
        #expect(classify("/e/?EIO=4&transport=websocket", upgrade: true) == .success(.handshake(.websocket)))
        #expect(classify("/e/?EIO=4&transport=polling&sid=s1", get: false) == .success(.session(id: "s1", transport: .polling)))
        #expect(classify("/e/?EIO=4&transport=websocket&sid=s1", upgrade: true) == .success(.session(id: "s1", transport: .websocket)))
        // transport is checked first
        #expect(classify("/e/?EIO=3") == .failure(.unknownTransport))
        #expect(classify("/e/?EIO=4") == .failure(.unknownTransport))
        #expect(classify("/e/?EIO=4&transport=") == .failure(.unknownTransport))
        #expect(classify("/e/?EIO=4&transport=abc") == .failure(.unknownTransport))
        #expect(classify("/e/?EIO=4&transport=websocket", upgrade: true, transports: [.polling]) == .failure(.unknownTransport))
        #expect(classify("/e/?transport=polling") == .failure(.unsupportedProtocolVersion))
        #expect(classify("/e/?EIO=abc&transport=polling") == .failure(.unsupportedProtocolVersion))
        #expect(classify("/e/?EIO=3&transport=polling") == .failure(.unsupportedProtocolVersion))
        #expect(classify("/e/?EIO=4&transport=polling", get: false) == .failure(.badHandshakeMethod))
        #expect(classify("/e/?EIO=4&transport=websocket") == .failure(.badRequest))
        #expect(classify("/e/?EIO=4&transport=websocket&sid=s1") == .failure(.badRequest))
    }

    @Test func uriSplitting() {
        let (path, query) = EngineURI.split("/socket.io/?EIO=4&transport=polling&t=a%20b+c&t=ignored&flag")
        #expect(path == "/socket.io/")
        #expect(query == ["EIO": "4", "transport": "polling", "t": "a b c", "flag": ""])
        #expect(EngineURI.split("/health").query.isEmpty)
    }

    @Test func corsOrigins() {
        #expect(EngineCORSConfiguration().allowOriginHeader(forRequestOrigin: "http://a") == "*")
        #expect(EngineCORSConfiguration(allowCredentials: true).allowOriginHeader(forRequestOrigin: "http://a") == "http://a")
        let list = EngineCORSConfiguration(allowedOrigins: .list(["http://a"]))
        #expect(list.allowOriginHeader(forRequestOrigin: "http://a") == "http://a")
        #expect(list.allowOriginHeader(forRequestOrigin: "http://b") == nil)
        #expect(list.allowOriginHeader(forRequestOrigin: nil) == nil)
    }
}

/// A message with a shared tail is, on every transport, the message with head and tail joined.
@Suite struct SharedTailTests {
    private let head = ByteBuffer(string: #"2["welcome",{"name":"ada","#)
    private let tail = ByteBuffer(string: #""history":[]}]"#)

    @Test func pollingWritesHeadThenTail() {
        let shared = EnginePacket(message: EngineMessage(textUTF8: head, sharedTail: tail))
        let joined = EnginePacket(message: EngineMessage(text: #"2["welcome",{"name":"ada","history":[]}]"#))
        #expect(EnginePacketCodec.encodePayload([.ping, shared, shared]) == EnginePacketCodec.encodePayload([.ping, joined, joined]))
        #expect(EnginePacketCodec.encodeFrame(shared) == EnginePacketCodec.encodeFrame(joined))
        #expect(shared == joined)
        #expect(shared.approximateWireSize == joined.approximateWireSize)
        #expect(shared.text == joined.text)
    }

    @Test func theTailSurvivesTheWayBackToAMessage() {
        let message = EngineMessage(textUTF8: head, sharedTail: tail)
        let back = EnginePacket(message: message).message
        #expect(back?.sharedTail == tail)
        #expect(back?.payload == head)
        #expect(message.wholePayload == ByteBuffer(string: #"2["welcome",{"name":"ada","history":[]}]"#))
    }
}
