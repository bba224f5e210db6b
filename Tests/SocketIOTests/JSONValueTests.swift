import NIOCore
import XCTest

@testable import SocketIO

final class JSONValueTests: XCTestCase {
    private func roundTrip(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let value = try JSONValue(parsing: text)
        XCTAssertEqual(value.jsonText, text, file: file, line: line)
    }

    func testKeyOrderAndNumberTextSurviveRoundTrip() throws {
        try roundTrip(#"{"b":1,"a":2}"#)
        try roundTrip("9007199254740991")
        try roundTrip("12345678901234567890123")
        try roundTrip("-0.5e-10")
        try roundTrip("1E400")
        try roundTrip(#"[1,"2",{"3":[true]},null,false]"#)
        try roundTrip(#"{}"#)
        try roundTrip(#"[]"#)
    }

    func testWhitespaceIsDroppedAndSlashNotEscaped() throws {
        let value = try JSONValue(parsing: " { \"url\" : \"a\\/b/c\" , \"n\" : [ 1 , 2 ] } ")
        XCTAssertEqual(value.jsonText, #"{"url":"a/b/c","n":[1,2]}"#)
    }

    func testStringEscapes() throws {
        let value = try JSONValue(parsing: #""q\"b\\n\n t\t u\u00e9 \ud83d\ude00 c\u0001""#)
        XCTAssertEqual(value.stringValue, "q\"b\\n\n t\t u\u{e9} \u{1F600} c\u{01}")
        XCTAssertEqual(value.jsonText, #""q\"b\\n\n t\t ué 😀 c\u0001""#)
        XCTAssertEqual(JSONValue.string("é/日本").jsonText, "\"é/日本\"")
    }

    func testInvalidJSONIsRejectedWithOffset() {
        let invalid = [
            #"["message",1"#, "{", "[1,]", "{\"a\"}", "01", "1.", "-", "tru", "\"abc", "[1] x", "{'a':1}",
            "\"a\u{01}\"", #""\x""#, "", "   ", "+1", ".5", "1e", "[1 2]", "{\"a\":1,}",
        ]
        for text in invalid {
            XCTAssertThrowsError(try JSONValue(parsing: text), "accepted \(text)") { error in
                XCTAssertTrue(error is JSONParseError)
            }
        }
        do {
            _ = try JSONValue(parsing: "[1,x]")
            XCTFail("accepted")
        } catch {
            XCTAssertEqual(error.offset, 3)
            XCTAssertEqual(error.kind, .unexpectedCharacter(UInt8(ascii: "x")))
        }
    }

    func testDeepNestingIsRefused() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        XCTAssertThrowsError(try JSONValue(parsing: deep)) { error in
            XCTAssertEqual((error as? JSONParseError)?.kind, .tooDeep)
        }
    }

    func testDuplicateKeysKeepFirstPositionLastValue() throws {
        XCTAssertEqual(try JSONValue(parsing: #"{"a":1,"b":2,"a":3}"#).jsonText, #"{"a":3,"b":2}"#)
    }

    func testAccessorsAndLiterals() throws {
        let value: JSONValue = ["name": "x", "n": 3, "f": 1.5, "ok": true, "list": [1, nil]]
        XCTAssertEqual(value.jsonText, #"{"name":"x","n":3,"f":1.5,"ok":true,"list":[1,null]}"#)
        XCTAssertEqual(value["name"]?.stringValue, "x")
        XCTAssertEqual(value["n"]?.intValue, 3)
        XCTAssertEqual(value["f"]?.doubleValue, 1.5)
        XCTAssertEqual(value["ok"]?.boolValue, true)
        XCTAssertNil(value["missing"])
        XCTAssertEqual(JSONValue.number(2.0).jsonText, "2")
    }

    struct Person: Codable, Equatable {
        var name: String
        var age: Int
        var tags: [String]
        var homepage: String?
    }

    func testCodableBridging() throws {
        let person = Person(name: "Ada", age: 36, tags: ["math"], homepage: "https://x.org/a")
        let value = try JSONValue(encoding: person)
        XCTAssertEqual(value["name"], "Ada")
        XCTAssertEqual(value["age"], 36)
        XCTAssertEqual(value["homepage"], "https://x.org/a")
        XCTAssertEqual(try value.decode(as: Person.self), person)
        let parsed = try JSONValue(parsing: #"{"tags":[],"age":1,"name":"B"}"#)
        XCTAssertEqual(try parsed.decode(as: Person.self), Person(name: "B", age: 1, tags: [], homepage: nil))
        XCTAssertThrowsError(try JSONValue.string("x").decode(as: Person.self))
    }
}
