import Atomics
import Foundation
import NIOCore
import Testing
@testable import SocketIONIO

@Suite(.serialized) struct BackPressureTests {
    /// A client pipelines requests and never reads: the server must stop reading them once
    /// its answers back up, instead of answering all of them into memory.
    @Test func pipelinedRequestsAreNotReadWhileAnswersPileUp() async throws {
        let served = ManagedAtomic(0)
        let bigBody = String(repeating: "x", count: 64 * 1024)
        let fallback: HTTPFallbackHandler = { _ in
            served.wrappingIncrement(ordering: .relaxed)
            return HTTPFallbackResponse(status: .ok, contentType: "text/plain", body: bigBody)
        }
        // The pipelining limit is lifted: this is about answers not taken.
        try await withTestServer(fallback: fallback, http: { $0.maxPipelinedRequests = 100_000 }) { _, port, _ in
            let client = try await RawTCPClient.connect(port: port, autoRead: false, receiveBuffer: 16 * 1024)
            let requests = String(repeating: "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", count: 4_000)  // 256 MB of answers
            client.channel.writeAndFlush(ByteBuffer(string: requests), promise: nil)
            try await Task.sleep(nanoseconds: 1_500_000_000)
            let count = served.load(ordering: .relaxed)
            // Kernel buffers on loopback hold a few MB of answers; the rest waits unread.
            #expect(count > 0)
            #expect(count < 400, "served \(count) of 4000 pipelined requests to a client that reads nothing")
            await client.close()
        }
    }

    @Test func aClientWithTooManyPipelinedRequestsIsClosed() async throws {
        let served = ManagedAtomic(0)
        let fallback: HTTPFallbackHandler = { _ in
            served.wrappingIncrement(ordering: .relaxed)
            return HTTPFallbackResponse(status: .ok, contentType: "text/plain", body: "ok")
        }
        try await withTestServer(fallback: fallback) { _, port, _ in
            let client = try await RawTCPClient.connect(port: port, autoRead: false)
            client.channel.writeAndFlush(ByteBuffer(string: String(repeating: "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", count: 100_000)), promise: nil)
            #expect(await client.closes(within: 3))
            #expect(served.load(ordering: .relaxed) <= 17)
            // A client within the limit is served in order.
            let polite = try await RawTCPClient.connect(port: port)
            try await polite.send(String(repeating: "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", count: 8))
            try await Task.sleep(nanoseconds: 300_000_000)
            #expect(polite.received.components(separatedBy: "HTTP/1.1 200").count == 9)
            await polite.close()
        }
    }
}
