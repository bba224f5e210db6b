import ArgumentParser
import NIOCore

/// Opens connections as fast as asked and counts how many the server takes per second.
struct ConnectStormScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "connect-storm", abstract: "Open many connections at a target rate; connections per second and failures.")

    @OptionGroup var common: CommonOptions
    @Option(help: "Connections to open.") var connections = 2000
    @Option(name: .customLong("rate"), help: "Target connection attempts per second (0 = all at once).") var attemptsPerSecond: Double = 1000
    @Flag(help: "Put every connection in one room. By default each has its own, so join announcements do not grow with the crowd.")
    var sharedRoom = false

    func run() async throws {
        let setup = try await ScenarioSetup(scenario: "connect-storm", common: common, connections: connections)
        var report = setup.report
        let (targets, runtime, counters, stats) = (setup.targets, setup.runtime, setup.counters, setup.stats)
        let before = ProcessSampler.sampleAll(common.serverPIDs)

        say("connect-storm: \(connections) connections at \(formatted(attemptsPerSecond, digits: 0))/s")
        let start = NIODeadline.now()
        let channels = await runtime.launch(
            count: connections, perSecond: attemptsPerSecond, maxInFlight: connections, targets: targets,
            counters: counters, stats: stats
        ) { index in
            BenchClientOptions(index: index, room: 0, roomName: sharedRoom ? "storm" : "storm-\(index)", wire: common.wire, recovery: nil, trackOffsets: false, connectTimeout: common.connectTimeout)
        }
        let attemptsDone = NIODeadline.now()
        await runtime.waitUntilSettled(counters, expected: connections, timeout: common.connectTimeout + .seconds(5))
        let settled = NIODeadline.now()
        let after = ProcessSampler.sampleAll(common.serverPIDs)
        let snapshot = await runtime.snapshot(stats, rooms: 1)
        let connected = counters.connected.load(ordering: .relaxed)
        let failed = counters.failed.load(ordering: .relaxed)
        let elapsed = (settled - start).nanoseconds
        let achieved = DeliveryMath.rate(connected, overNanos: UInt64(max(elapsed, 0)))

        report.set("requested", connections)
        report.set("target_rate_per_s", attemptsPerSecond)
        report.set("attempt_seconds", Double((attemptsDone - start).nanoseconds) / 1e9)
        report.set("connected", connected)
        report.set("failed", failed)
        report.set("unsettled", max(connections - connected - failed, 0))
        report.set("elapsed_seconds", Double(elapsed) / 1e9)
        report.set("connections_per_s", achieved)
        report.setLatency("connect", LatencySummary(snapshot.connectLatency))
        if let before, let after {
            let usage = ServerUsage(before: before, after: after, clockTicksPerSecond: ProcessSampler.clockTicksPerSecond)
            report.set("server_cpu_ms", usage.cpuMilliseconds)
            report.set("server_cpu_ms_per_connection", connected > 0 ? usage.cpuMilliseconds / Double(connected) : nil)
        }
        let summary = LatencySummary(snapshot.connectLatency)
        say("connect-storm: \(connected) connected, \(failed) failed in \(formatted(Double(elapsed) / 1e9, digits: 2)) s = \(formatted(achieved, digits: 0)) connections/s; connect p50 \(formatted(summary.p50Ms)) ms p99 \(formatted(summary.p99Ms)) ms")
        await BenchRuntime.closeAll(channels)
        await runtime.shutdown()
        print(report.jsonLine)
    }
}
