import EngineIO
import NIOCore
import NIOHTTP1
@testable import SocketIONIO

// What the hostile HTTP suites (timeouts, back-pressure, origins, admission) share.

func fastTimeouts(_ http: inout EngineIOHTTPServerConfiguration) {
    http.timeouts = HTTPConnectionTimeouts(headers: .milliseconds(300), keepAlive: .milliseconds(300), request: .milliseconds(600))
}

let pollHandshake = "/engine.io/?EIO=4&transport=polling"
let okFallback: HTTPFallbackHandler = { _ in HTTPFallbackResponse(status: .ok, contentType: "text/plain", body: "ok") }

func headers(_ pairs: [(String, String)]) -> HTTPHeaders { HTTPHeaders(pairs) }

/// The answer to a WebSocket upgrade request sent by hand, as raw text.
func upgradeAnswer(port: Int, uri: String = "/engine.io/?EIO=4&transport=websocket", extraHeaders: String = "") async throws -> String {
    let client = try await RawTCPClient.connect(port: port)
    try await client.send(
        "GET \(uri) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(extraHeaders)\r\n"
    )
    let deadline = NIODeadline.now() + .seconds(3)
    while NIODeadline.now() < deadline && !client.received.contains("\r\n\r\n") {
        try await Task.sleep(nanoseconds: 10_000_000)
    }
    try await Task.sleep(nanoseconds: 50_000_000)
    let text = client.received
    await client.close()
    return text
}
