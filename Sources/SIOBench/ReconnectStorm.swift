import NIOCore

/// What recover-storm and crash-storm share once their clients are gone (dropped, or their
/// node killed): the message sent while they are away, and all of them coming back at once with
/// their recovery tokens (`pid` + `offset`), measured on the clients and on the servers.
struct ReconnectStorm {
    let reconnected: [EventLoopFuture<any Channel>]
    let counters: ConnectionCounters
    let snapshot: LoopStatsSnapshot
    /// From the first reconnect to all of them connected or failed (or the wait's end).
    let stormNanos: Int64
    /// When the wait for the reconnects ended.
    let settled: NIODeadline
    let usage: ServerUsage?

    /// Waits half of `gapMilliseconds`, sends the message a recovered session must replay,
    /// waits the other half.
    static func sendWhileAway(from sender: any Channel, gapMilliseconds: Int64) async {
        try? await Task.sleep(nanoseconds: UInt64(gapMilliseconds / 2) * 1_000_000)
        sender.pipeline.fireUserInboundEventTriggered(BenchClientCommand.sendOne(sender: 0, sequence: 1))
        try? await Task.sleep(nanoseconds: UInt64(gapMilliseconds / 2) * 1_000_000)
    }

    /// Brings back the clients `returning` (keys of `tokens`; client `i` is bench client
    /// `i + indexOffset`) on `targets` all at once, waits until they have settled and one
    /// second more for the replayed message, and samples `serverPIDs` around it all.
    init(
        runtime: BenchRuntime, common: CommonOptions, targets: [ServerTarget], serverPIDs: [Int32],
        returning: [Int], tokens: [Int: RecoveryToken], indexOffset: Int, roomName: String
    ) async throws {
        let before = ProcessSampler.sampleAll(serverPIDs)
        let counters = ConnectionCounters()
        let stats = try await runtime.makeStats(rooms: 1)
        let storm = NIODeadline.now()
        reconnected = await runtime.launch(
            count: returning.count, perSecond: 0, maxInFlight: common.maxInFlight, targets: targets,
            counters: counters, stats: stats
        ) { position in
            let index = returning[position]
            return BenchClientOptions(index: index + indexOffset, room: 0, roomName: roomName, wire: common.wire, recovery: tokens[index],
                                      trackOffsets: true, connectTimeout: common.connectTimeout)
        }
        await runtime.waitUntilSettled(counters, expected: returning.count, timeout: common.connectTimeout + .seconds(5))
        settled = NIODeadline.now()
        stormNanos = (settled - storm).nanoseconds
        try? await Task.sleep(nanoseconds: 1_000_000_000)
        let after = ProcessSampler.sampleAll(serverPIDs)
        snapshot = await runtime.snapshot(stats, rooms: 1)
        self.counters = counters
        if let before, let after {
            usage = ServerUsage(before: before, after: after, clockTicksPerSecond: ProcessSampler.clockTicksPerSecond)
        } else {
            usage = nil
        }
    }

    var back: Int { counters.connected.load(ordering: .relaxed) }
    var recovered: Int { counters.recovered.load(ordering: .relaxed) }
    var seconds: Double { Double(stormNanos) / 1e9 }

    /// The storm's fields of the JSON line; `sinceEvent` (e.g. the kill) is reported right
    /// after `reconnect_seconds`, the servers' CPU time under `cpuKey`.
    func record(into report: inout BenchReport, sinceEvent: (key: String, at: NIODeadline)? = nil, cpuKey: String) {
        report.set("reconnected", back)
        report.set("reconnect_failed", counters.failed.load(ordering: .relaxed))
        report.set("recovered", recovered)
        report.set("missed_message_replayed", snapshot.benchDeliveries)
        report.set("reconnect_seconds", seconds)
        if let sinceEvent { report.set(sinceEvent.key, Double((settled - sinceEvent.at).nanoseconds) / 1e9) }
        report.set("reconnects_per_s", DeliveryMath.rate(back, overNanos: UInt64(max(stormNanos, 0))))
        report.setLatency("reconnect", LatencySummary(snapshot.connectLatency))
        if let usage { report.set(cpuKey, usage.cpuMilliseconds) }
    }
}
