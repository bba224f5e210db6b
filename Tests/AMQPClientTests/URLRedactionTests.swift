import XCTest
@testable import AMQPClient

/// No password in any error text or description, whatever the URL looks like.
final class URLRedactionTests: XCTestCase {
    func testRedactionReplacesOnlyThePassword() {
        XCTAssertEqual(AMQPURLRedaction.redact("amqp://chat:s3cret@host:5672/vh"), "amqp://chat:***@host:5672/vh")
        XCTAssertEqual(AMQPURLRedaction.redact("amqp://chat:s3cr%zt@host"), "amqp://chat:***@host")
        XCTAssertEqual(AMQPURLRedaction.redact("amqps://u:p@a@b/x?y=1"), "amqps://u:***@b/x?y=1")
        XCTAssertEqual(AMQPURLRedaction.redact("amqp://host:5672/vh"), "amqp://host:5672/vh")
        XCTAssertEqual(AMQPURLRedaction.redact("amqp://user@host"), "amqp://user@host")
        XCTAssertEqual(AMQPURLRedaction.redact("chat:secret@host"), "chat:***@host")
        XCTAssertEqual(AMQPURLRedaction.redact(["amqp://a:x@h1", "amqp://b:y@h2"]), "amqp://a:***@h1,amqp://b:***@h2")
    }

    func testAnInvalidPercentEscapeInThePasswordIsNotEchoed() {
        XCTAssertThrowsError(try AMQPConnectionConfiguration(url: "amqp://chat:s3cr%zt@host")) { error in
            let text = "\(error)"
            XCTAssertFalse(text.contains("s3cr"), text)
            XCTAssertTrue(text.contains("password"), text)
        }
    }

    func testEveryURLErrorRedactsThePassword() {
        for url in ["http://chat:s3cret@host", "amqp://chat:s3cret@host:99999", "amqp://chat:s3cret@[::1", "amqp://chat:s3cret@host/a/b",
                    "amqp://chat:s3cret@host:x", "amqp://chat:s3cret@ho%zst"] {
            XCTAssertThrowsError(try AMQPConnectionConfiguration(url: url), url) { error in
                XCTAssertFalse("\(error)".contains("s3cret"), "\(error)")
            }
        }
    }

    func testDescriptionsOfConfigurationAndCredentialsHideThePassword() throws {
        let configuration = try AMQPConnectionConfiguration(url: "amqp://chat:s3cret@host")
        XCTAssertEqual(configuration.password, "s3cret")
        XCTAssertFalse("\(configuration)".contains("s3cret"))
        XCTAssertFalse(String(reflecting: configuration).contains("s3cret"))
        var dumped = ""
        dump(configuration, to: &dumped)
        XCTAssertFalse(dumped.contains("s3cret"), dumped)
    }

    func testSeveralURLsTakeCredentialsFromTheFirstWithoutForceUnwrapping() throws {
        let configuration = try AMQPConnectionConfiguration(urls: ["amqp://a:b@h1:1", "amqp://c:d@h2:2"])
        XCTAssertEqual(configuration.endpoints.map(\.host), ["h1", "h2"])
        XCTAssertEqual(configuration.username, "a")
        XCTAssertThrowsError(try AMQPConnectionConfiguration(urls: []))
    }
}
