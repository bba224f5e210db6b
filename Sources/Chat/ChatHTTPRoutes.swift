import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SocketIONIO

/// Everything the chat serves over plain HTTP: the page, the socket.io client, health,
/// readiness and metrics. Files are read once at start-up into memory: the set is small,
/// and no request path ever touches the file system (so no path traversal).
struct ChatHTTPRoutes: Sendable {
    struct StaticFile: Sendable {
        var contentType: String
        var body: ByteBuffer
    }

    let files: [String: StaticFile]
    let isReady: @Sendable () -> Bool
    let readinessDetail: @Sendable () -> String
    let metrics: @Sendable () -> [UInt8]

    /// Loads `publicDirectory` (flat) and, when present, the official client bundle.
    static func loadFiles(publicDirectory: String, clientBundle: String, logger: Logger) throws -> [String: StaticFile] {
        var files: [String: StaticFile] = [:]
        let names = try FileManager.default.contentsOfDirectory(atPath: publicDirectory)
        for name in names where !name.hasPrefix(".") {
            let path = (publicDirectory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            files["/" + name] = StaticFile(contentType: contentType(of: name), body: ByteBuffer(bytes: data))
        }
        if let index = files["/index.html"] { files["/"] = index }
        if let admin = files["/admin.html"] { files["/admin"] = admin }
        if let bundle = FileManager.default.contents(atPath: clientBundle) {
            files["/socket.io/socket.io.min.js"] = StaticFile(
                contentType: "application/javascript; charset=UTF-8", body: ByteBuffer(bytes: bundle)
            )
        } else {
            logger.warning(
                "the official socket.io client is missing: the page cannot connect until it is installed (run scripts/js-client)",
                metadata: ["expected": "\(clientBundle)"]
            )
        }
        return files
    }

    func handle(_ request: HTTPFallbackRequest) -> HTTPFallbackResponse {
        switch (request.method, request.path) {
        case (.GET, "/healthz"), (.HEAD, "/healthz"):
            return HTTPFallbackResponse(status: .ok, contentType: "text/plain; charset=UTF-8", body: "ok\n")
        case (.GET, "/readyz"), (.HEAD, "/readyz"):
            let ready = isReady()
            return HTTPFallbackResponse(
                status: ready ? .ok : .serviceUnavailable, contentType: "text/plain; charset=UTF-8",
                body: (ready ? "ready" : "not ready") + ": " + readinessDetail() + "\n"
            )
        case (.GET, "/metrics"):
            return HTTPFallbackResponse(
                status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=UTF-8"],
                body: ByteBuffer(bytes: metrics())
            )
        case (.GET, let path), (.HEAD, let path):
            guard let file = files[path] else { return .notFound }
            return HTTPFallbackResponse(
                status: .ok, headers: ["Content-Type": file.contentType, "Cache-Control": "no-cache"],
                body: request.method == .HEAD ? ByteBuffer() : file.body
            )
        default:
            return HTTPFallbackResponse(status: .methodNotAllowed, contentType: "text/plain; charset=UTF-8", body: "Method Not Allowed\n")
        }
    }

    private static func contentType(of name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "html": "text/html; charset=UTF-8"
        case "js": "application/javascript; charset=UTF-8"
        case "css": "text/css; charset=UTF-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }
}
