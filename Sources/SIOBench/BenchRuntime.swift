import Atomics
import NIOCore
import NIOPosix

/// The event loops and per-loop counters of one bench process.
final class BenchRuntime: Sendable {
    /// Beyond this many connections to one server port, source ports of 127.0.0.1 run out
    /// (about 28k ephemeral ports), so connections are spread over 127.0.0.2, .3, ...
    static let connectionsPerSourceAddress = 25_000

    let group: MultiThreadedEventLoopGroup
    let loops: [any EventLoop]

    init(threads: Int) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(threads, 1))
        loops = Array(group.makeIterator())
    }

    func shutdown() async {
        try? await group.shutdownGracefully()
    }

    /// Fresh counters on every loop, for one phase of a scenario.
    func makeStats(rooms: Int) async throws -> [NIOLoopBound<LoopStats>] {
        var boxes: [NIOLoopBound<LoopStats>] = []
        for loop in loops {
            // Made on the loop itself: the box checks that only that loop touches the counters.
            boxes.append(try await loop.submit { NIOLoopBound(LoopStats(rooms: rooms), eventLoop: loop) }.get())
        }
        return boxes
    }

    func snapshot(_ stats: [NIOLoopBound<LoopStats>], rooms: Int) async -> LoopStatsSnapshot {
        var parts: [LoopStatsSnapshot] = []
        for (loop, box) in zip(loops, stats) {
            if let part = try? await loop.submit({ SendableSnapshot(box.value.snapshot) }).get() {
                parts.append(part.snapshot)
            }
        }
        return LoopStatsSnapshot.merged(parts, rooms: rooms)
    }

    /// Opens one connection on the loop chosen by `index`.
    func connect(
        index: Int, totalConnections: Int, target: ServerTarget, options: BenchClientOptions,
        stats: [NIOLoopBound<LoopStats>], counters: ConnectionCounters
    ) -> EventLoopFuture<any Channel> {
        let loopIndex = index % loops.count
        let loop = loops[loopIndex]
        let loopStats = stats[loopIndex]
        let hostHeader = "\(target.host):\(target.port)"
        var bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(options.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        WebSocketHandshakeHandler(host: hostHeader, path: target.path, query: "EIO=4&transport=websocket"),
                        BenchClientHandler(options: options, stats: loopStats.value, counters: counters),
                    ])
                }
            }
        if totalConnections > Self.connectionsPerSourceAddress {
            let sourceHost = 1 + index / Self.connectionsPerSourceAddress
            if let source = try? SocketAddress(ipAddress: "127.0.0.\(sourceHost)", port: 0) {
                bootstrap = bootstrap.bind(to: source)
            }
        }
        counters.attempted.wrappingIncrement(ordering: .relaxed)
        let future = bootstrap.connect(host: target.host, port: target.port)
        future.whenFailure { _ in counters.failed.wrappingIncrement(ordering: .relaxed) }
        return future
    }

    /// Opens `count` connections at about `perSecond` (0 = as fast as possible), with at most
    /// `maxInFlight` handshakes pending at once so a ramp measures the server, not the
    /// listen backlog.
    func launch(
        count: Int, perSecond: Double, maxInFlight: Int, targets: [ServerTarget], counters: ConnectionCounters,
        stats: [NIOLoopBound<LoopStats>], options: (Int) -> BenchClientOptions
    ) async -> [EventLoopFuture<any Channel>] {
        var channels: [EventLoopFuture<any Channel>] = []
        channels.reserveCapacity(count)
        let start = NIODeadline.now()
        for index in 0..<count {
            if perSecond > 0 {
                let due = start + .nanoseconds(Int64(Double(index) / perSecond * 1_000_000_000))
                let wait = due - NIODeadline.now()
                if wait > .milliseconds(1) { try? await Task.sleep(nanoseconds: UInt64(wait.nanoseconds)) }
            }
            // Bounded wait for in-flight handshakes; a stuck server cannot hold us forever
            // because every connection has its own connect timeout.
            while index - counters.settled >= maxInFlight {
                try? await Task.sleep(nanoseconds: 1_000_000)
            }
            let target = targets[index % targets.count]
            channels.append(connect(
                index: index, totalConnections: count, target: target, options: options(index),
                stats: stats, counters: counters
            ))
        }
        return channels
    }

    /// Waits until every attempted connection is connected or failed, or `timeout` passes.
    func waitUntilSettled(_ counters: ConnectionCounters, expected: Int, timeout: TimeAmount) async {
        let deadline = NIODeadline.now() + timeout
        while counters.settled < expected, NIODeadline.now() < deadline {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    static func closeAll(_ channels: [EventLoopFuture<any Channel>]) async {
        for future in channels {
            if let channel = try? await future.get() { channel.close(promise: nil) }
        }
    }
}

/// The histogram type carries no Sendable conformance, but a snapshot is a value copy
/// made on the loop and never touched there again, so handing it over is safe.
struct SendableSnapshot: @unchecked Sendable {
    var snapshot: LoopStatsSnapshot
    init(_ snapshot: LoopStatsSnapshot) { self.snapshot = snapshot }
}
