import NIOCore
import XCTest

@testable import SIOBench

final class BenchPayloadTests: XCTestCase {
    func testPayloadTextRoundTrips() {
        let payload = BenchPayload(sender: 12, sequence: 345, sentNanos: 987_654_321_000)
        XCTAssertEqual(payload.text, "bench:12:345:987654321000")
        XCTAssertEqual(BenchPayload(text: Substring(payload.text)), payload)
    }

    func testPayloadRejectsOtherChatLines() {
        XCTAssertNil(BenchPayload(text: "hello"))
        XCTAssertNil(BenchPayload(text: "bench:1:2"))
        XCTAssertNil(BenchPayload(text: "bench:1:2:3:4"))
        XCTAssertNil(BenchPayload(text: "bench:a:2:3"))
        XCTAssertNil(BenchPayload(text: "bench:-1:2:3"))
    }

    func testScannerFindsPayloadInsideChatMessageObject() {
        let frame = ByteBuffer(string: #"42["message",{"id":"x","text":"bench:3:7:123456","date":"2026-11-27T04:00:00.000Z","name":"a"}]"#)
        XCTAssertTrue(BenchFrameScanner.isMessageEvent(frame))
        XCTAssertEqual(BenchFrameScanner.benchPayload(in: frame), BenchPayload(sender: 3, sequence: 7, sentNanos: 123_456))
    }

    func testScannerIgnoresOtherEventsAndForeignText() {
        let presence = ByteBuffer(string: #"42["presence",{"text":"bench:3:7:123456"}]"#)
        XCTAssertFalse(BenchFrameScanner.isMessageEvent(presence))
        XCTAssertNil(BenchFrameScanner.benchPayload(in: presence))
        let human = ByteBuffer(string: #"42["message",{"text":"hi there","date":"d"}]"#)
        XCTAssertTrue(BenchFrameScanner.isMessageEvent(human))
        XCTAssertNil(BenchFrameScanner.benchPayload(in: human))
    }

    func testScannerReadsTrailingRecoveryOffset() {
        let withOffset = ByteBuffer(string: #"42["message",{"text":"bench:0:1:5"},"MzQ1Ng-12"]"#)
        XCTAssertEqual(BenchFrameScanner.trailingStringArgument(in: withOffset), "MzQ1Ng-12")
        let withoutOffset = ByteBuffer(string: #"42["message",{"text":"bench:0:1:5"}]"#)
        XCTAssertNil(BenchFrameScanner.trailingStringArgument(in: withoutOffset))
        // The event name alone is not an offset: there is no comma before it.
        XCTAssertNil(BenchFrameScanner.trailingStringArgument(in: ByteBuffer(string: #"42["message"]"#)))
    }
}

final class ProcParsingTests: XCTestCase {
    // A real line's shape, with a command name holding spaces and a parenthesis.
    let stat = "4242 (my (odd) server) S 1 4242 4242 0 -1 4194304 8515 0 6 0 1234 567 0 0 20 0 3 0 250929 52084736 10980 18446744073709551615"
    let status = "Name:\tchat\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t  900000 kB\nVmRSS:\t   44092 kB\nRssAnon:\t   30000 kB\nThreads:\t3\n"

    func testCPUTicksAreUserPlusSystemCountedFromTheLastParenthesis() throws {
        XCTAssertEqual(try ProcParser.cpuTicks(fromStat: stat), 1234 + 567)
    }

    func testResidentMemoryIsReadFromVmRSSWithTabs() throws {
        XCTAssertEqual(try ProcParser.residentKiB(fromStatus: status), 44092)
    }

    func testMalformedInputIsAnError() {
        XCTAssertThrowsError(try ProcParser.cpuTicks(fromStat: "4242 chat S 1"))
        XCTAssertThrowsError(try ProcParser.cpuTicks(fromStat: "4242 (chat) S 1 2 3"))
        XCTAssertThrowsError(try ProcParser.residentKiB(fromStatus: "Name:\tchat\n"))
    }

    func testSamplingThisProcessReadsPlausibleValues() throws {
        let sample = try XCTUnwrap(ProcessSampler.sample(pid: getpid()))
        XCTAssertGreaterThan(sample.residentKiB, 0)
        XCTAssertNil(ProcessSampler.sample(pid: Int32.max))
    }

    func testServerUsageSumsProcessesAndNormalises() throws {
        let before = [ProcessSample(pid: 1, cpuTicks: 100, residentKiB: 10_000), ProcessSample(pid: 2, cpuTicks: 50, residentKiB: 20_000)]
        let after = [ProcessSample(pid: 1, cpuTicks: 150, residentKiB: 30_000), ProcessSample(pid: 2, cpuTicks: 75, residentKiB: 40_000)]
        let usage = ServerUsage(before: before, after: after, clockTicksPerSecond: 100)
        XCTAssertEqual(usage.cpuMilliseconds, 750, accuracy: 1e-9)  // 75 ticks at 100 Hz
        XCTAssertEqual(try XCTUnwrap(usage.cpuMillisecondsPerThousand(deliveries: 30_000)), 25, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(usage.residentKiBPerConnection(connections: 1_000)), 40, accuracy: 1e-9)
        XCTAssertNil(usage.cpuMillisecondsPerThousand(deliveries: 0))
        XCTAssertNil(usage.residentKiBPerConnection(connections: 0))
    }
}

final class StatsMathTests: XCTestCase {
    func testExpectedDeliveriesWeighEachRoomBySize() {
        XCTAssertEqual(DeliveryMath.expectedDeliveries(sentPerRoom: [10, 4], membersPerRoom: [100, 3]), 1012)
        XCTAssertEqual(DeliveryMath.ratio(delivered: 506, expected: 1012), 0.5)
        XCTAssertNil(DeliveryMath.ratio(delivered: 3, expected: 0))
    }

    func testRoomsAreAssignedRoundRobin() {
        XCTAssertEqual(DeliveryMath.membersPerRoom(connectedClients: [0, 1, 2, 3, 4, 6], rooms: 3), [3, 2, 1])
        XCTAssertEqual(DeliveryMath.membersPerRoom(connectedClients: [0, 5, 9], rooms: 1), [3])
    }

    func testRateOverAWindow() throws {
        XCTAssertEqual(try XCTUnwrap(DeliveryMath.rate(500, overNanos: 250_000_000)), 2000, accuracy: 1e-9)
        XCTAssertNil(DeliveryMath.rate(5, overNanos: 0))
    }

    func testLatencySummaryOfNothingIsUnmeasured() {
        let summary = LatencySummary(makeLatencyHistogram())
        XCTAssertEqual(summary.count, 0)
        XCTAssertNil(summary.p50Ms)
        XCTAssertNil(summary.p99Ms)
    }

    func testLatencyPercentilesAndMergingPerLoopCounters() throws {
        let first = LoopStats(rooms: 2)
        let second = LoopStats(rooms: 2)
        // 99 fast deliveries at 1 ms and one slow at 100 ms, split over two loops.
        for index in 0..<99 {
            let stats = index.isMultiple(of: 2) ? first : second
            stats.recordDelivery(BenchPayload(sender: 0, sequence: index, sentNanos: 1_000_000), now: 2_000_000)
        }
        second.recordDelivery(BenchPayload(sender: 1, sequence: 0, sentNanos: 0), now: 100_000_000)
        first.recordSend(room: 0, now: 50)
        second.recordSend(room: 1, now: 40)
        second.recordSend(room: 1, now: 60)
        let merged = LoopStatsSnapshot.merged([first.snapshot, second.snapshot], rooms: 2)
        XCTAssertEqual(merged.benchDeliveries, 100)
        XCTAssertEqual(merged.sentPerRoom, [1, 2])
        XCTAssertEqual(merged.firstSendNanos, 40)
        XCTAssertEqual(merged.lastDeliveryNanos, 100_000_000)
        let summary = LatencySummary(merged.latency)
        XCTAssertEqual(summary.count, 100)
        XCTAssertEqual(try XCTUnwrap(summary.p50Ms), 1, accuracy: 0.01)
        XCTAssertEqual(try XCTUnwrap(summary.maxMs), 100, accuracy: 0.1)
    }

    func testServerURLsAreParsed() throws {
        let target = try ServerTarget(url: "http://127.0.0.1:3001")
        XCTAssertEqual(target.host, "127.0.0.1")
        XCTAssertEqual(target.port, 3001)
        XCTAssertEqual(target.path, "/socket.io/")
        XCTAssertEqual(try ServerTarget(url: "http://localhost:80/chat/io").path, "/chat/io/")
        XCTAssertThrowsError(try ServerTarget(url: "http://localhost"))
        XCTAssertThrowsError(try ServerTarget(url: "http://:80"))
    }

    func testDescriptorBudgetKeepsAReserve() {
        XCTAssertEqual(FileDescriptorLimit.maxConnections(limit: 20_000), 19_936)
        XCTAssertEqual(FileDescriptorLimit.maxConnections(limit: 10), 0)
    }
}

final class ChurnMathTests: XCTestCase {
    func testAFlatServerKeepsNothingPerCycle() throws {
        let flat: [UInt64] = [90_000, 95_000, 96_000, 96_000, 96_000, 96_000]
        let perCycle = try XCTUnwrap(ChurnMath.bytesKeptPerCycle(rssKiBAfterRound: flat, connectionsPerRound: 5000, warmUpRounds: 2))
        XCTAssertEqual(perCycle, 0, accuracy: 0.001)
    }

    func testALeakIsTheSlopePerConnection() throws {
        // 8.5 MB a round of 5,000 connections: about 1.7 KB each (the leak of issue #16).
        let leaking: [UInt64] = [79_000, 87_300, 95_600, 103_900, 112_200]
        let perCycle = try XCTUnwrap(ChurnMath.bytesKeptPerCycle(rssKiBAfterRound: leaking, connectionsPerRound: 5000, warmUpRounds: 1))
        XCTAssertEqual(perCycle, 8300 * 1024 / 5000, accuracy: 0.01)
    }

    func testTooFewRoundsGiveNoFigure() {
        XCTAssertNil(ChurnMath.bytesKeptPerCycle(rssKiBAfterRound: [1, 2, 3], connectionsPerRound: 10, warmUpRounds: 2))
        XCTAssertNil(ChurnMath.bytesKeptPerCycle(rssKiBAfterRound: [1, 2, 3], connectionsPerRound: 0, warmUpRounds: 0))
    }
}
