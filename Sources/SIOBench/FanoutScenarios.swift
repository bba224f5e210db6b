#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NIOCore

/// Options of a fan-out run; `cluster` is the same run spread over several nodes.
struct FanoutOptions: ParsableArguments {
    @Option(help: "Clients (the senders are the first of them).") var clients = 200
    @Option(help: "Clients that send.") var senders = 1
    @Option(name: .customLong("rate"), help: "Messages per second, all senders together.") var messagesPerSecond: Double = 10
    @Option(name: .customLong("duration"), help: "Seconds of sending.") var durationSeconds = 10
    @Option(help: "Rooms the clients are spread over round-robin (1 = everyone in one room).") var rooms = 1
    @Option(name: .customLong("drain"), help: "Most seconds to wait for late deliveries after sending stops (the wait ends early after a quiet second).") var drainSeconds = 20
}

struct FanoutScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fanout", abstract: "N clients in rooms, K senders at R msgs/s total; deliveries/s, delivery ratio, latency.")

    @OptionGroup var common: CommonOptions
    @OptionGroup var fanout: FanoutOptions

    func run() async throws {
        try await runFanout(scenario: "fanout", common: common, fanout: fanout)
    }
}

struct ClusterScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cluster", abstract: "Fan-out with clients spread over several node URLs (broadcasts cross nodes through the broker).")

    @OptionGroup var common: CommonOptions
    @OptionGroup var fanout: FanoutOptions

    func validate() throws {
        if common.urls.count < 2 { throw ValidationError("cluster needs at least two --url, one per node") }
    }

    func run() async throws {
        try await runFanout(scenario: "cluster", common: common, fanout: fanout)
    }
}

func runFanout(scenario: String, common: CommonOptions, fanout: FanoutOptions) async throws {
    guard fanout.senders >= 1, fanout.senders <= fanout.clients, fanout.rooms >= 1, fanout.messagesPerSecond > 0 else {
        throw ValidationError("need 1 <= senders <= clients, rooms >= 1 and rate > 0")
    }
    let rooms = fanout.rooms
    let setup = try await ScenarioSetup(scenario: scenario, common: common, connections: fanout.clients, rooms: rooms)
    var report = setup.report
    let (targets, runtime, counters, stats) = (setup.targets, setup.runtime, setup.counters, setup.stats)

    say("\(scenario): \(fanout.clients) clients in \(rooms) room(s) on \(targets.count) node(s), \(fanout.senders) sender(s), \(formatted(fanout.messagesPerSecond)) msgs/s for \(fanout.durationSeconds) s")
    let channels = await runtime.launch(
        count: fanout.clients, perSecond: common.connectRate, maxInFlight: common.maxInFlight, targets: targets,
        counters: counters, stats: stats
    ) { index in
        let room = DeliveryMath.room(ofClient: index, rooms: rooms)
        return BenchClientOptions(index: index, room: room, roomName: "bench-\(room)", wire: common.wire, recovery: nil, trackOffsets: false, connectTimeout: common.connectTimeout)
    }
    await runtime.waitUntilSettled(counters, expected: fanout.clients, timeout: common.rampTimeout(count: fanout.clients))
    // Joins make servers announce presence; let that settle so it is not timed as fan-out.
    try? await Task.sleep(nanoseconds: 1_000_000_000)

    var connectedIndexes: [Int] = []
    var connectedChannels: [Int: any Channel] = [:]
    for (index, future) in channels.enumerated() {
        if let channel = try? await future.get(), channel.isActive {
            connectedIndexes.append(index)
            connectedChannels[index] = channel
        }
    }
    let connected = counters.connected.load(ordering: .relaxed)
    let members = DeliveryMath.membersPerRoom(connectedClients: connectedIndexes, rooms: rooms)
    say("ramp: \(connected) connected, \(counters.failed.load(ordering: .relaxed)) failed; room sizes \(members)")

    let before = ProcessSampler.sampleAll(common.serverPIDs)
    let benchBefore = ProcessSampler.sample(pid: getpid())
    let perSenderInterval = TimeAmount.nanoseconds(Int64(Double(fanout.senders) / fanout.messagesPerSecond * 1e9))
    let sendDeadline = NIODeadline.now() + .seconds(Int64(fanout.durationSeconds))
    var activeSenders = 0
    for sender in 0..<fanout.senders {
        guard let channel = connectedChannels[sender] else { continue }
        activeSenders += 1
        channel.pipeline.fireUserInboundEventTriggered(
            BenchClientCommand.startSending(interval: perSenderInterval, until: sendDeadline, sender: sender)
        )
    }
    try? await Task.sleep(nanoseconds: UInt64(fanout.durationSeconds) * 1_000_000_000)

    // Drain: stop once a second passes with nothing new, or after the drain limit.
    var snapshot = await runtime.snapshot(stats, rooms: rooms)
    let drainDeadline = NIODeadline.now() + .seconds(Int64(fanout.drainSeconds))
    while NIODeadline.now() < drainDeadline {
        try? await Task.sleep(nanoseconds: 1_000_000_000)
        let next = await runtime.snapshot(stats, rooms: rooms)
        let quiet = next.benchDeliveries == snapshot.benchDeliveries
        snapshot = next
        if quiet { break }
    }
    let after = ProcessSampler.sampleAll(common.serverPIDs)
    let benchAfter = ProcessSampler.sample(pid: getpid())

    let sent = snapshot.sentPerRoom.reduce(0, +)
    let expected = DeliveryMath.expectedDeliveries(sentPerRoom: snapshot.sentPerRoom, membersPerRoom: members)
    let delivered = snapshot.benchDeliveries
    let window = snapshot.firstSendNanos.flatMap { first in snapshot.lastDeliveryNanos.map { $0 > first ? $0 - first : 0 } } ?? 0
    let deliveriesPerSecond = DeliveryMath.rate(delivered, overNanos: window)
    let ratio = DeliveryMath.ratio(delivered: delivered, expected: expected)
    let latency = LatencySummary(snapshot.latency)
    let targetDeliveries = fanout.messagesPerSecond * Double(connectedIndexes.count) / Double(rooms)

    report.set("nodes", targets.count)
    report.set("clients", fanout.clients)
    report.set("connected", connected)
    report.set("failed", counters.failed.load(ordering: .relaxed))
    report.set("dropped", counters.droppedAfterConnect.load(ordering: .relaxed))
    report.set("rooms", rooms)
    report.set("senders", activeSenders)
    report.set("target_msgs_per_s", fanout.messagesPerSecond)
    report.set("target_deliveries_per_s", targetDeliveries)
    report.set("duration_seconds", fanout.durationSeconds)
    report.set("sent", sent)
    report.set("expected_deliveries", expected)
    report.set("delivered", delivered)
    report.set("delivery_ratio", ratio)
    report.set("deliveries_per_s", deliveriesPerSecond)
    report.setLatency("latency", latency)
    if let before, let after {
        let usage = ServerUsage(before: before, after: after, clockTicksPerSecond: ProcessSampler.clockTicksPerSecond)
        report.set("server_cpu_ms", usage.cpuMilliseconds)
        report.set("server_cpu_ms_per_1000_deliveries", usage.cpuMillisecondsPerThousand(deliveries: delivered))
        report.set("server_rss_kib", Int(usage.residentKiBAfter))
        say("server CPU \(formatted(usage.cpuMilliseconds, digits: 0)) ms = \(formatted(usage.cpuMillisecondsPerThousand(deliveries: delivered), digits: 2)) ms per 1,000 deliveries; RSS \(usage.residentKiBAfter) KiB")
    }
    if let benchBefore, let benchAfter {
        let usage = ServerUsage(before: [benchBefore], after: [benchAfter], clockTicksPerSecond: ProcessSampler.clockTicksPerSecond)
        report.set("bench_cpu_ms_per_1000_deliveries", usage.cpuMillisecondsPerThousand(deliveries: delivered))
    }
    say("\(scenario): sent \(sent), delivered \(delivered) of \(expected) expected (ratio \(formatted(ratio, digits: 4))), \(formatted(deliveriesPerSecond, digits: 0)) deliveries/s (target \(formatted(targetDeliveries, digits: 0)))")
    say("latency ms: p50 \(formatted(latency.p50Ms, digits: 2)) p99 \(formatted(latency.p99Ms, digits: 2)) p99.9 \(formatted(latency.p999Ms, digits: 2)) max \(formatted(latency.maxMs, digits: 2))")
    await BenchRuntime.closeAll(channels)
    await runtime.shutdown()
    print(report.jsonLine)
}
