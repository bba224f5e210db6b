import ArgumentParser
import NIOCore

/// Holds N connections answering pings for a while and reports how many stay up.
struct IdleScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "idle", abstract: "Hold N idle connections answering pings.")

    @OptionGroup var common: CommonOptions
    @Option(help: "Connections to open.") var connections = 1000
    @Option(name: .customLong("duration"), help: "Seconds to hold them once the ramp is done.") var durationSeconds = 30
    @Flag(help: "Put every connection in one room. By default each has its own, so the server's join announcements (the chat's presence) stay out of an idle test.")
    var sharedRoom = false
    @Option(help: "Before the ramp, one client sends this many messages to the shared room (--shared-room), so every connection is welcomed with that history.")
    var history = 0
    @Option(name: .customLong("history-bytes"), help: "Bytes of each --history message.")
    var historyBytes = 300

    func run() async throws {
        if history > 0 && !sharedRoom { throw ValidationError("--history needs --shared-room (history belongs to a room)") }
        let setup = try await ScenarioSetup(scenario: "idle", common: common, connections: connections)
        var report = setup.report
        let (targets, runtime, counters, stats) = (setup.targets, setup.runtime, setup.counters, setup.stats)
        if history > 0 {
            try await fillHistory(runtime: runtime, targets: targets, stats: stats)
            report.set("history_messages", history)
            report.set("history_message_bytes", historyBytes)
        }
        let before = ProcessSampler.sampleAll(common.serverPIDs)

        say("idle: opening \(connections) connections to \(targets.map(\.description).joined(separator: ", "))")
        let rampStart = NIODeadline.now()
        let channels = await runtime.launch(
            count: connections, perSecond: common.connectRate, maxInFlight: common.maxInFlight, targets: targets,
            counters: counters, stats: stats
        ) { index in
            BenchClientOptions(index: index, room: 0, roomName: sharedRoom ? "idle" : "idle-\(index)", wire: common.wire, recovery: nil, trackOffsets: false, connectTimeout: common.connectTimeout)
        }
        await runtime.waitUntilSettled(counters, expected: connections, timeout: common.rampTimeout(count: connections))
        let rampNanos = (NIODeadline.now() - rampStart).nanoseconds
        let connected = counters.connected.load(ordering: .relaxed)
        say("ramp: \(connected) connected, \(counters.failed.load(ordering: .relaxed)) failed in \(formatted(Double(rampNanos) / 1e9, digits: 2)) s")

        let holdStart = ProcessSampler.sampleAll(common.serverPIDs)
        for second in 1...max(durationSeconds, 1) {
            try? await Task.sleep(nanoseconds: 1_000_000_000)
            if second % 10 == 0 {
                let alive = counters.connected.load(ordering: .relaxed) - counters.droppedAfterConnect.load(ordering: .relaxed)
                say("  \(second) s: \(alive) up")
            }
        }
        let holdEnd = ProcessSampler.sampleAll(common.serverPIDs)
        let snapshot = await runtime.snapshot(stats, rooms: 1)
        let dropped = counters.droppedAfterConnect.load(ordering: .relaxed)
        let alive = connected - dropped

        report.set("requested", connections)
        report.set("connected", connected)
        report.set("failed", counters.failed.load(ordering: .relaxed))
        report.set("alive_at_end", alive)
        report.set("dropped_during_hold", dropped)
        report.set("hold_seconds", durationSeconds)
        report.set("pings_answered", snapshot.pingsAnswered)
        report.set("ramp_seconds", Double(rampNanos) / 1e9)
        report.setLatency("connect", LatencySummary(snapshot.connectLatency))
        if let before, let holdEnd {
            let usage = ServerUsage(before: before, after: holdEnd, clockTicksPerSecond: ProcessSampler.clockTicksPerSecond)
            report.set("server_rss_kib_before", Int(usage.residentKiBBefore))
            report.set("server_rss_kib_after", Int(usage.residentKiBAfter))
            report.set("server_kib_per_connection", usage.residentKiBPerConnection(connections: alive))
            say("server RSS \(usage.residentKiBBefore) KiB -> \(usage.residentKiBAfter) KiB: \(formatted(usage.residentKiBPerConnection(connections: alive))) KiB per connection")
        }
        if let holdStart, let holdEnd {
            let usage = ServerUsage(before: holdStart, after: holdEnd, clockTicksPerSecond: ProcessSampler.clockTicksPerSecond)
            report.set("server_cpu_ms_during_hold", usage.cpuMilliseconds)
        }
        say("idle: \(alive) of \(connections) up after \(durationSeconds) s, \(dropped) dropped, \(snapshot.pingsAnswered) pings answered")
        await BenchRuntime.closeAll(channels)
        await runtime.shutdown()
        print(report.jsonLine)
    }
}

extension IdleScenario {
    /// One client sends `history` messages of `historyBytes` to the room and leaves.
    private func fillHistory(runtime: BenchRuntime, targets: [ServerTarget], stats: [NIOLoopBound<LoopStats>]) async throws {
        let counters = ConnectionCounters()
        let options = BenchClientOptions(index: 0, room: 0, roomName: "idle", wire: common.wire, recovery: nil, trackOffsets: false, connectTimeout: common.connectTimeout)
        let future = runtime.connect(index: 0, totalConnections: 1, target: targets[0], options: options, stats: stats, counters: counters)
        await runtime.waitUntilSettled(counters, expected: 1, timeout: common.connectTimeout)
        guard counters.connected.load(ordering: .relaxed) == 1, let channel = try? await future.get() else {
            throw ValidationError("the client filling the history could not connect")
        }
        for index in 0..<history {
            // Letters and digits only: no JSON escaping needed (see BenchProtocol.sendFrame).
            let label = "h\(index)-"
            let text = label + String(repeating: "x", count: max(historyBytes - label.utf8.count, 0))
            channel.pipeline.fireUserInboundEventTriggered(BenchClientCommand.sendText(text))
        }
        try? await Task.sleep(nanoseconds: 1_000_000_000)
        try? await channel.close()
        try? await Task.sleep(nanoseconds: 1_000_000_000)
        say("history: \(history) messages of \(historyBytes) bytes sent to the room")
    }
}
