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
        // Sent while they are away: a recovered session must replay it.
        await ReconnectStorm.sendWhileAway(from: sender, gapMilliseconds: gapMilliseconds)

        let returning = tokens.keys.sorted()
        let storm = try await ReconnectStorm(
            runtime: runtime, common: common, targets: survivors, serverPIDs: common.serverPIDs.filter { $0 != killPID },
            returning: returning, tokens: tokens, indexOffset: 1, roomName: roomName
        )

        report.set("clients", clients)
        report.set("initially_connected", counters.connected.load(ordering: .relaxed))
        report.set("had_pid", tokens.count)
        report.set("had_offset", withOffset)
        storm.record(into: &report, sinceEvent: ("seconds_from_kill_to_all_back", killed), cpuKey: "survivors_cpu_ms")
        say("crash-storm: \(storm.back) of \(returning.count) back in \(formatted(storm.seconds, digits: 2)) s, \(storm.recovered) recovered, \(storm.snapshot.benchDeliveries) got the missed message")
        await BenchRuntime.closeAll(senderChannels)
        await BenchRuntime.closeAll(storm.reconnected)
        await runtime.shutdown()
        print(report.jsonLine)
    }
}
