import ArgumentParser
import NIOCore

@main
struct SIOBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sio-bench",
        abstract: "Load generator for Socket.IO v5 servers speaking the chat protocol (emit `message` with a string, receive `message` {text, date}).",
        discussion: "Every scenario prints a human summary and, as its last line, one JSON object with only measured values.",
        subcommands: [IdleScenario.self, FanoutScenario.self, ClusterScenario.self, ConnectStormScenario.self, RecoverStormScenario.self, CrashStormScenario.self, ChurnScenario.self, PollingCodecScenario.self]
    )
}

/// Options every scenario shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("url"), help: "Server URL, http://host:port[/path/]. Repeat to spread clients over several nodes.")
    var urls: [String] = ["http://127.0.0.1:3000"]

    @Option(name: .customLong("server-pid"), help: "Server process to sample CPU and RSS of (/proc). Repeatable.")
    var serverPIDs: [Int32] = []

    @Option(help: "Name of the server under test, copied into the JSON line.")
    var label: String?

    @Option(help: "Event loop threads of the bench (default: one per core).")
    var threads: Int = System.coreCount

    @Option(name: .customLong("connect-rate"), help: "Connections opened per second while ramping up (0 = no pacing).")
    var connectRate: Double = 2000

    @Option(name: .customLong("max-in-flight"), help: "Most handshakes pending at once while ramping up.")
    var maxInFlight: Int = 500

    @Option(name: .customLong("connect-timeout-ms"), help: "A connection not joined to / within this time counts as failed.")
    var connectTimeoutMs: Int64 = 10_000

    @Option(name: .customLong("protocol"), help: "Server events to use: chat (message -> message {text,date}) or conformance (join + broadcast of the sio-conformance fixture).")
    var wire: BenchProtocol = .chat

    func targets() throws -> [ServerTarget] {
        var targets: [ServerTarget] = []
        for url in urls {
            do throws(BenchUsageError) {
                targets.append(try ServerTarget(url: url))
            } catch {
                throw ValidationError(error.description)
            }
        }
        return targets
    }

    var connectTimeout: TimeAmount { .milliseconds(connectTimeoutMs) }

    /// How long a ramp of `count` connections may take before we stop waiting.
    func rampTimeout(count: Int) -> TimeAmount {
        let pacing = connectRate > 0 ? Double(count) / connectRate : 0
        return .milliseconds(Int64(pacing * 1000) + connectTimeoutMs + 5_000)
    }
}

/// What every scenario starts with: its report (the descriptor budget checked and noted),
/// the servers to load, the client event loops, connection counters and per-loop stats.
struct ScenarioSetup {
    var report: BenchReport
    let targets: [ServerTarget]
    let runtime: BenchRuntime
    let counters: ConnectionCounters
    let stats: [NIOLoopBound<LoopStats>]

    init(scenario: String, common: CommonOptions, connections: Int, rooms: Int = 1) async throws {
        var report = BenchReport(scenario: scenario, label: common.label)
        try checkDescriptorBudget(connections: connections, report: &report)
        self.report = report
        self.targets = try common.targets()
        self.runtime = BenchRuntime(threads: common.threads)
        self.counters = ConnectionCounters()
        self.stats = try await runtime.makeStats(rooms: rooms)
    }
}

/// Reports what the file-descriptor limit allows, and refuses a run it cannot hold.
func checkDescriptorBudget(connections: Int, report: inout BenchReport) throws {
    let limit = FileDescriptorLimit.raiseToHardLimit()
    let allowed = FileDescriptorLimit.maxConnections(limit: limit)
    report.set("fd_limit", limit)
    report.set("max_connections_by_fd_limit", allowed)
    say("file descriptors: limit \(limit), so at most \(allowed) connections from this process")
    if connections > allowed {
        throw ValidationError("\(connections) connections need more descriptors than the limit (\(limit)) allows; use at most \(allowed) or several bench processes")
    }
}

extension BenchProtocol: ExpressibleByArgument {}
