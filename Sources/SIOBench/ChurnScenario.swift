import ArgumentParser
import NIOCore

/// Rounds of connect, hold, close: the server's RSS after each round, once every client of
/// that round has gone. A server that frees what each connection allocated stays flat after
/// its first rounds (allocator warm-up); one that leaks grows by the same amount each round.
struct ChurnScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "churn", abstract: "Rounds of connect-hold-close; server RSS after each round and bytes kept per connection cycle."
    )

    @OptionGroup var common: CommonOptions
    @Option(help: "Connections opened (and closed) per round.") var connections = 2000
    @Option(help: "Rounds.") var rounds = 20
    @Option(name: .customLong("hold-ms"), help: "How long each round's connections stay open.") var holdMilliseconds: Int64 = 2000
    @Option(name: .customLong("settle-ms"), help: "Wait after the close before RSS is read (the server's close handshakes and timers).")
    var settleMilliseconds: Int64 = 1500
    @Option(name: .customLong("warm-up-rounds"), help: "Rounds left out of the bytes-per-cycle slope.") var warmUpRounds = 3

    func run() async throws {
        let setup = try await ScenarioSetup(scenario: "churn", common: common, connections: connections)
        var report = setup.report
        let (targets, runtime, counters, stats) = (setup.targets, setup.runtime, setup.counters, setup.stats)
        guard !common.serverPIDs.isEmpty, let baseline = Self.residentKiB(common.serverPIDs) else {
            throw ValidationError("churn needs --server-pid to read the server's RSS")
        }
        say("churn: \(rounds) rounds of \(connections) connections, hold \(holdMilliseconds) ms; RSS at start \(baseline) KiB")
        var rssAfterRound: [UInt64] = []
        var failed = 0
        for round in 1...max(rounds, 1) {
            let expected = counters.connected.load(ordering: .relaxed) + counters.failed.load(ordering: .relaxed) + connections
            let channels = await runtime.launch(
                count: connections, perSecond: common.connectRate, maxInFlight: common.maxInFlight, targets: targets,
                counters: counters, stats: stats
            ) { index in
                BenchClientOptions(
                    index: index, room: 0, roomName: "churn-\(index)", wire: common.wire, recovery: nil, trackOffsets: false,
                    connectTimeout: common.connectTimeout
                )
            }
            await runtime.waitUntilSettled(counters, expected: expected, timeout: common.rampTimeout(count: connections))
            try? await Task.sleep(nanoseconds: UInt64(max(holdMilliseconds, 0)) * 1_000_000)
            await BenchRuntime.closeAll(channels)
            try? await Task.sleep(nanoseconds: UInt64(max(settleMilliseconds, 0)) * 1_000_000)
            let rss = Self.residentKiB(common.serverPIDs) ?? 0
            rssAfterRound.append(rss)
            failed = counters.failed.load(ordering: .relaxed)
            say("  round \(round): RSS \(rss) KiB, \(failed) failed so far")
        }
        let perCycle = ChurnMath.bytesKeptPerCycle(
            rssKiBAfterRound: rssAfterRound, connectionsPerRound: connections, warmUpRounds: warmUpRounds
        )
        report.set("connections_per_round", connections)
        report.set("rounds", rounds)
        report.set("warm_up_rounds", warmUpRounds)
        report.set("hold_ms", Int(holdMilliseconds))
        report.set("connected", counters.connected.load(ordering: .relaxed))
        report.set("failed", failed)
        report.set("server_rss_kib_start", Int(baseline))
        report.set("server_rss_kib_after_rounds", .array(rssAfterRound.map { .number(Int($0)) }))
        report.set("bytes_kept_per_connection_cycle", perCycle)
        say("churn: RSS \(baseline) -> \(rssAfterRound.last ?? 0) KiB; after \(warmUpRounds) warm-up rounds \(formatted(perCycle)) bytes kept per connection cycle")
        await runtime.shutdown()
        print(report.jsonLine)
    }

    private static func residentKiB(_ pids: [Int32]) -> UInt64? {
        ProcessSampler.sampleAll(pids)?.reduce(0) { $0 + $1.residentKiB }
    }
}

/// The arithmetic of the churn report, kept apart so it is tested without a server.
enum ChurnMath {
    /// The least-squares slope of RSS over the rounds after `warmUpRounds`, in bytes per
    /// connection made: what each connection cycle leaves behind. Nil with fewer than two
    /// rounds to fit.
    static func bytesKeptPerCycle(rssKiBAfterRound: [UInt64], connectionsPerRound: Int, warmUpRounds: Int) -> Double? {
        let points = Array(rssKiBAfterRound.dropFirst(max(warmUpRounds, 0)))
        guard points.count >= 2, connectionsPerRound > 0 else { return nil }
        let n = Double(points.count)
        let xs = (0..<points.count).map(Double.init)
        let ys = points.map { Double($0) * 1024 }
        let meanX = xs.reduce(0, +) / n
        let meanY = ys.reduce(0, +) / n
        var covariance = 0.0
        var variance = 0.0
        for (x, y) in zip(xs, ys) {
            covariance += (x - meanX) * (y - meanY)
            variance += (x - meanX) * (x - meanX)
        }
        return covariance / variance / Double(connectionsPerRound)
    }
}
