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
        // Sent while they are away: a recovered session must replay it.
        await ReconnectStorm.sendWhileAway(from: sender, gapMilliseconds: gapMilliseconds)

        let storm = try await ReconnectStorm(
            runtime: runtime, common: common, targets: targets, serverPIDs: common.serverPIDs,
            returning: droppedIndexes, tokens: tokens, indexOffset: 0, roomName: roomName
        )

        report.set("clients", clients)
        report.set("initially_connected", counters.connected.load(ordering: .relaxed))
        report.set("dropped", dropped)
        report.set("had_pid", tokens.count)
        report.set("had_offset", withOffset)
        storm.record(into: &report, cpuKey: "server_cpu_ms")
        if tokens.isEmpty { say("the server sent no pid in CONNECT: it does not offer connection state recovery") }
        say("recover-storm: \(storm.back) of \(dropped) reconnected in \(formatted(storm.seconds, digits: 2)) s, \(storm.recovered) recovered, \(storm.snapshot.benchDeliveries) got the missed message")
        await BenchRuntime.closeAll(channels)
        await BenchRuntime.closeAll(storm.reconnected)
        await runtime.shutdown()
        print(report.jsonLine)
    }
}
