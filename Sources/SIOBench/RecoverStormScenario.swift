import ArgumentParser
import NIOCore

/// Drops many clients at once and brings them back with connection state recovery
/// (socket.io's `pid` + `offset` in the CONNECT auth), counting how many the server
/// recovered and how many got the message sent while they were away.
struct RecoverStormScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recover-storm", abstract: "Drop and reconnect many clients at once with connection state recovery; count recovered.")

    @OptionGroup var common: CommonOptions
    @Option(help: "Clients; client 0 stays connected and sends, the others are dropped.") var clients = 500
    @Option(name: .customLong("gap-ms"), help: "Milliseconds between the drop and the reconnect storm.") var gapMilliseconds: Int64 = 1000

    func run() async throws {
        guard clients >= 2 else { throw ValidationError("need at least 2 clients") }
        let setup = try await ScenarioSetup(scenario: "recover-storm", common: common, connections: clients)
        var report = setup.report
        let (targets, runtime, counters, stats) = (setup.targets, setup.runtime, setup.counters, setup.stats)
        let roomName = "bench-recover"

        say("recover-storm: \(clients) clients")
        let channels = await runtime.launch(
            count: clients, perSecond: common.connectRate, maxInFlight: common.maxInFlight, targets: targets,
            counters: counters, stats: stats
        ) { index in
            BenchClientOptions(index: index, room: 0, roomName: roomName, wire: common.wire, recovery: nil, trackOffsets: true, connectTimeout: common.connectTimeout)
        }
        await runtime.waitUntilSettled(counters, expected: clients, timeout: common.rampTimeout(count: clients))
        guard let sender = try? await channels[0].get() else { throw ValidationError("the sending client could not connect") }
        try? await Task.sleep(nanoseconds: 500_000_000)

        // A first message gives every client an offset to resume from.
        sender.pipeline.fireUserInboundEventTriggered(BenchClientCommand.sendOne(sender: 0, sequence: 0))
        try? await Task.sleep(nanoseconds: 2_000_000_000)

        var tokens: [Int: RecoveryToken] = [:]
        var droppedIndexes: [Int] = []
        for index in 1..<clients {
            guard let channel = try? await channels[index].get(), channel.isActive else { continue }
            let promise = channel.eventLoop.makePromise(of: RecoveryToken?.self)
            channel.pipeline.fireUserInboundEventTriggered(BenchClientCommand.dropForRecovery(promise))
            droppedIndexes.append(index)
            if let token = try? await promise.futureResult.get() { tokens[index] = token }
        }
        let dropped = droppedIndexes.count
        let withOffset = tokens.values.filter { $0.offset != nil }.count
        say("dropped \(dropped) clients (\(tokens.count) had a pid, \(withOffset) an offset)")
        try? await Task.sleep(nanoseconds: UInt64(gapMilliseconds / 2) * 1_000_000)
        // Sent while they are away: a recovered session must replay it.
        sender.pipeline.fireUserInboundEventTriggered(BenchClientCommand.sendOne(sender: 0, sequence: 1))
        try? await Task.sleep(nanoseconds: UInt64(gapMilliseconds / 2) * 1_000_000)

        let before = ProcessSampler.sampleAll(common.serverPIDs)
        let returning = droppedIndexes
        let reconnectCounters = ConnectionCounters()
        let reconnectStats = try await runtime.makeStats(rooms: 1)
        let storm = NIODeadline.now()
        let reconnected = await runtime.launch(
            count: returning.count, perSecond: 0, maxInFlight: common.maxInFlight, targets: targets,
            counters: reconnectCounters, stats: reconnectStats
        ) { position in
            let index = returning[position]
            return BenchClientOptions(index: index, room: 0, roomName: roomName, wire: common.wire, recovery: tokens[index], trackOffsets: true, connectTimeout: common.connectTimeout)
        }
        await runtime.waitUntilSettled(reconnectCounters, expected: returning.count, timeout: common.connectTimeout + .seconds(5))
        let stormNanos = (NIODeadline.now() - storm).nanoseconds
        try? await Task.sleep(nanoseconds: 1_000_000_000)
        let after = ProcessSampler.sampleAll(common.serverPIDs)
        let snapshot = await runtime.snapshot(reconnectStats, rooms: 1)

        let back = reconnectCounters.connected.load(ordering: .relaxed)
        let recovered = reconnectCounters.recovered.load(ordering: .relaxed)
        report.set("clients", clients)
        report.set("initially_connected", counters.connected.load(ordering: .relaxed))
        report.set("dropped", dropped)
        report.set("had_pid", tokens.count)
        report.set("had_offset", withOffset)
        report.set("reconnected", back)
        report.set("reconnect_failed", reconnectCounters.failed.load(ordering: .relaxed))
        report.set("recovered", recovered)
        report.set("missed_message_replayed", snapshot.benchDeliveries)
        report.set("reconnect_seconds", Double(stormNanos) / 1e9)
        report.set("reconnects_per_s", DeliveryMath.rate(back, overNanos: UInt64(max(stormNanos, 0))))
        report.setLatency("reconnect", LatencySummary(snapshot.connectLatency))
        if let before, let after {
            let usage = ServerUsage(before: before, after: after, clockTicksPerSecond: ProcessSampler.clockTicksPerSecond)
            report.set("server_cpu_ms", usage.cpuMilliseconds)
        }
        if tokens.isEmpty { say("the server sent no pid in CONNECT: it does not offer connection state recovery") }
        say("recover-storm: \(back) of \(dropped) reconnected in \(formatted(Double(stormNanos) / 1e9, digits: 2)) s, \(recovered) recovered, \(snapshot.benchDeliveries) got the missed message")
        await BenchRuntime.closeAll(channels)
        await BenchRuntime.closeAll(reconnected)
        await runtime.shutdown()
        print(report.jsonLine)
    }
}
