import ArgumentParser
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Kills the node holding many clients (SIGKILL: it never sees them go) and brings them all
/// back on the other nodes with connection state recovery, counting how many were recovered,
/// how many got the message sent while they were away, and how fast. Needs a cluster whose
/// nodes record sessions ahead (docs/CLUSTER.md, "A crashed node's clients").
struct CrashStormScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "crash-storm", abstract: "Kill the node holding many clients; count how many the other nodes recover, and how fast.")

    @OptionGroup var common: CommonOptions
    @Option(help: "Clients on the node to kill (--url).") var clients = 1000
    @Option(name: .customLong("kill-pid"), help: "The process of the node at --url, killed with SIGKILL.") var killPID: Int32
    @Option(name: .customLong("reconnect-url"), help: "Surviving nodes the clients come back to (repeatable); the sender sits on the first.")
    var reconnectURLs: [String] = []
    @Option(name: .customLong("gap-ms"), help: "Milliseconds between the kill and the reconnect storm.") var gapMilliseconds: Int64 = 1000

    func run() async throws {
        guard clients >= 1, !reconnectURLs.isEmpty else { throw ValidationError("need clients and at least one --reconnect-url") }
        let setup = try await ScenarioSetup(scenario: "crash-storm", common: common, connections: clients + 1)
        var report = setup.report
        let (targets, runtime, counters, stats) = (setup.targets, setup.runtime, setup.counters, setup.stats)
        var survivors: [ServerTarget] = []
        for url in reconnectURLs {
            do throws(BenchUsageError) { survivors.append(try ServerTarget(url: url)) } catch { throw ValidationError(error.description) }
        }
        let roomName = "bench-crash"

        say("crash-storm: \(clients) clients on the node to kill")
        let channels = await runtime.launch(
            count: clients, perSecond: common.connectRate, maxInFlight: common.maxInFlight, targets: targets,
            counters: counters, stats: stats
        ) { index in
            BenchClientOptions(index: index + 1, room: 0, roomName: roomName, wire: common.wire, recovery: nil, trackOffsets: true, connectTimeout: common.connectTimeout)
        }
        await runtime.waitUntilSettled(counters, expected: clients, timeout: common.rampTimeout(count: clients))
        let senderCounters = ConnectionCounters()
        let senderChannels = await runtime.launch(count: 1, perSecond: 0, maxInFlight: 1, targets: [survivors[0]], counters: senderCounters, stats: stats) { _ in
            BenchClientOptions(index: 0, room: 0, roomName: roomName, wire: common.wire, recovery: nil, trackOffsets: true, connectTimeout: common.connectTimeout)
        }
        await runtime.waitUntilSettled(senderCounters, expected: 1, timeout: common.connectTimeout)
        guard let sender = try? await senderChannels[0].get() else { throw ValidationError("the sending client could not connect") }
        try? await Task.sleep(nanoseconds: 500_000_000)

        // A first message gives every client an offset to resume from.
        sender.pipeline.fireUserInboundEventTriggered(BenchClientCommand.sendOne(sender: 0, sequence: 0))
        try? await Task.sleep(nanoseconds: 2_000_000_000)

        // Every client needs an offset (socket.io restores none without): wait for the first
        // message to reach them all, at most 30 s.
        var tokens: [Int: RecoveryToken] = [:]
        for round in 0..<30 {
            if round > 0 { try? await Task.sleep(nanoseconds: 1_000_000_000) }
            for index in 0..<clients where tokens[index]?.offset == nil {
                guard let channel = try? await channels[index].get(), channel.isActive else { continue }
                let promise = channel.eventLoop.makePromise(of: RecoveryToken?.self)
                channel.pipeline.fireUserInboundEventTriggered(BenchClientCommand.recoveryToken(promise))
                if let token = try? await promise.futureResult.get() { tokens[index] = token }
            }
            if tokens.values.allSatisfy({ $0.offset != nil }) { break }
        }
        let withOffset = tokens.values.filter { $0.offset != nil }.count
        say("killing pid \(killPID) under \(tokens.count) clients with a pid (\(withOffset) with an offset)")
        kill(killPID, SIGKILL)
        let killed = NIODeadline.now()
        try? await Task.sleep(nanoseconds: UInt64(gapMilliseconds / 2) * 1_000_000)
        // Sent while they are away: a recovered session must replay it.
        sender.pipeline.fireUserInboundEventTriggered(BenchClientCommand.sendOne(sender: 0, sequence: 1))
        try? await Task.sleep(nanoseconds: UInt64(gapMilliseconds / 2) * 1_000_000)

        let survivorPIDs = common.serverPIDs.filter { $0 != killPID }
        let before = ProcessSampler.sampleAll(survivorPIDs)
        let returning = tokens.keys.sorted()
        let reconnectCounters = ConnectionCounters()
        let reconnectStats = try await runtime.makeStats(rooms: 1)
        let storm = NIODeadline.now()
        let reconnected = await runtime.launch(
            count: returning.count, perSecond: 0, maxInFlight: common.maxInFlight, targets: survivors,
            counters: reconnectCounters, stats: reconnectStats
        ) { position in
            let index = returning[position]
            return BenchClientOptions(index: index + 1, room: 0, roomName: roomName, wire: common.wire, recovery: tokens[index], trackOffsets: true,
                                      connectTimeout: common.connectTimeout)
        }
        await runtime.waitUntilSettled(reconnectCounters, expected: returning.count, timeout: common.connectTimeout + .seconds(5))
        let stormNanos = (NIODeadline.now() - storm).nanoseconds
        let sinceKillNanos = (NIODeadline.now() - killed).nanoseconds
        try? await Task.sleep(nanoseconds: 1_000_000_000)
        let after = ProcessSampler.sampleAll(survivorPIDs)
        let snapshot = await runtime.snapshot(reconnectStats, rooms: 1)

        let back = reconnectCounters.connected.load(ordering: .relaxed)
        let recovered = reconnectCounters.recovered.load(ordering: .relaxed)
        report.set("clients", clients)
        report.set("initially_connected", counters.connected.load(ordering: .relaxed))
        report.set("had_pid", tokens.count)
        report.set("had_offset", withOffset)
        report.set("reconnected", back)
        report.set("reconnect_failed", reconnectCounters.failed.load(ordering: .relaxed))
        report.set("recovered", recovered)
        report.set("missed_message_replayed", snapshot.benchDeliveries)
        report.set("reconnect_seconds", Double(stormNanos) / 1e9)
        report.set("seconds_from_kill_to_all_back", Double(sinceKillNanos) / 1e9)
        report.set("reconnects_per_s", DeliveryMath.rate(back, overNanos: UInt64(max(stormNanos, 0))))
        report.setLatency("reconnect", LatencySummary(snapshot.connectLatency))
        if let before, let after {
            let usage = ServerUsage(before: before, after: after, clockTicksPerSecond: ProcessSampler.clockTicksPerSecond)
            report.set("survivors_cpu_ms", usage.cpuMilliseconds)
        }
        say("crash-storm: \(back) of \(returning.count) back in \(formatted(Double(stormNanos) / 1e9, digits: 2)) s, \(recovered) recovered, \(snapshot.benchDeliveries) got the missed message")
        await BenchRuntime.closeAll(senderChannels)
        await BenchRuntime.closeAll(reconnected)
        await runtime.shutdown()
        print(report.jsonLine)
    }
}
