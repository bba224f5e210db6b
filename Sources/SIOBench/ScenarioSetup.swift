import ArgumentParser
import NIOCore

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
