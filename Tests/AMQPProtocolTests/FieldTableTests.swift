import AMQPProtocol
import NIOCore
import XCTest

final class FieldTableTests: XCTestCase {
    /// Round-trips a table as the arguments of queue.declare, the simplest carrier of a table.
    private func roundTrip(_ table: AMQPFieldTable, file: StaticString = #filePath, line: UInt = #line) throws -> AMQPFieldTable {
        let method = AMQPMethod.queueDeclare(QueueDeclare(queue: "", arguments: table))
        let frames = try decodeAll(encoded(.method(channel: 1, method)), maxFrameSize: 0, file: file, line: line)
        guard case .method(_, .queueDeclare(let declare)) = frames.first else {
            XCTFail("expected queue.declare", file: file, line: line)
            return [:]
        }
        return declare.arguments
    }

    func testEveryValueType() throws {
        let table: AMQPFieldTable = [
            "bool-true": .bool(true), "bool-false": .bool(false),
            "int8": .int8(-128), "uint8": .uint8(255),
            "int16": .int16(-32768), "uint16": .uint16(65535),
            "int32": .int32(Int32.min), "uint32": .uint32(UInt32.max),
            "int64": .int64(Int64.min), "float": .float(-1.5), "double": .double(.pi),
            "decimal": .decimal(scale: 3, value: 123_456), "string": .longString("hello"),
            "bytes": .bytes([0, 1, 0xFF]), "array": .array([.int32(1), .longString("two"), .void]),
            "timestamp": .timestamp(1_700_000_000), "table": .table(["inner": .bool(true)]), "void": .void,
        ]
        XCTAssertEqual(try self.roundTrip(table), table)
    }

    func testEmptyTableIsFourZeroBytes() throws {
        XCTAssertEqual(try self.roundTrip([:]), [:])
        var payload = ByteBuffer()
        AMQPMethod.queueDeclare(QueueDeclare(queue: "")).encode(into: &payload)
        XCTAssertEqual(Array(payload.readableBytesView.suffix(4)), [0, 0, 0, 0])
    }

    func testEmptyValuesAndNesting() throws {
        let table: AMQPFieldTable = [
            "empty-string": .longString(""), "empty-bytes": .bytes([]), "empty-array": .array([]),
            "empty-table": .table([:]),
            "deep": .table(["a": .array([.table(["b": .array([.array([.int8(1)])])])])]),
        ]
        XCTAssertEqual(try self.roundTrip(table), table)
    }

    func testLongStringsAndUTF8Keys() throws {
        let long = String(repeating: "0123456789", count: 20_000)
        let table: AMQPFieldTable = [
            "ключ": .longString("значение"), "键": .longString("值 ✓"), "emoji 🐇": .longString(long),
            String(repeating: "k", count: 255): .bool(true),
        ]
        XCTAssertEqual(try self.roundTrip(table), table)
    }

    func testOrderIsKeptAndDuplicateKeysSurvive() throws {
        let table = AMQPFieldTable([
            .init(key: "z", value: .int8(1)), .init(key: "a", value: .int8(2)), .init(key: "z", value: .int8(3)),
        ])
        let decoded = try self.roundTrip(table)
        XCTAssertEqual(decoded.keys, ["z", "a", "z"])
        XCTAssertEqual(decoded["z"], .int8(1), "lookup returns the first")
    }

    func testSubscriptSetReplaceAndRemove() {
        var table: AMQPFieldTable = ["a": .int8(1), "b": .int8(2)]
        table["a"] = .int8(10)
        table["c"] = .int8(3)
        table["b"] = nil
        XCTAssertEqual(table, AMQPFieldTable([.init(key: "a", value: .int8(10)), .init(key: "c", value: .int8(3))]))
        XCTAssertNil(table["missing"])
        XCTAssertEqual(table.count, 2)
    }

    func testInvalidUTF8LongStringDecodesAsBytes() throws {
        // Table with one entry "k" -> 'S' of two bytes that are not UTF-8.
        var payload = buffer(bytes(fromHex: "0032 000A 0000 00 00 00000009 016B 53 00000002 FFFE"))
        let method = try AMQPMethod.decode(from: &payload)
        guard case .queueDeclare(let declare) = method else { return XCTFail("expected queue.declare") }
        XCTAssertEqual(declare.arguments["k"], .bytes([0xFF, 0xFE]))
    }

    func testUnknownValueTypeIsATypedError() {
        var payload = buffer(bytes(fromHex: "0032 000A 0000 00 00 00000004 016B 5A 00"))
        assertThrows(.unknownFieldValueType(UInt8(ascii: "Z"))) { () throws(AMQPProtocolError) in
            _ = try AMQPMethod.decode(from: &payload)
        }
    }

    func testTableLengthPastTheFrameIsATypedError() {
        var payload = buffer(bytes(fromHex: "0032 000A 0000 00 00 000000FF 016B"))
        assertThrows(.truncated(neededBytes: 255, availableBytes: 2)) { () throws(AMQPProtocolError) in
            _ = try AMQPMethod.decode(from: &payload)
        }
    }

    func testHostileNestingIsRefused() throws {
        var value = AMQPFieldValue.void
        for _ in 0..<(AMQPFieldTable.maxNestingDepth + 1) {
            value = .table(["n": value])
        }
        let method = AMQPMethod.queueDeclare(QueueDeclare(queue: "", arguments: ["n": value]))
        var payload = ByteBuffer()
        method.encode(into: &payload)
        assertThrows(.fieldTableNestedTooDeep(limit: AMQPFieldTable.maxNestingDepth)) { () throws(AMQPProtocolError) in
            _ = try AMQPMethod.decode(from: &payload)
        }

        var allowed = AMQPFieldValue.void
        for _ in 0..<(AMQPFieldTable.maxNestingDepth - 1) {
            allowed = .array([allowed])
        }
        XCTAssertEqual(try self.roundTrip(["n": allowed]), ["n": allowed])
    }

    func testConvenienceAccessors() {
        XCTAssertEqual(AMQPFieldValue.uint16(7).integerValue, 7)
        XCTAssertNil(AMQPFieldValue.longString("7").integerValue)
        XCTAssertEqual(AMQPFieldValue.longString("x").stringValue, "x")
        XCTAssertEqual(AMQPFieldValue.bool(true).boolValue, true)
        let literal: AMQPFieldValue = "text"
        XCTAssertEqual(literal, .longString("text"))
    }
}
