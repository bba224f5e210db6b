import ChatCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import SocketIO

/// This node's part of the admin page: what it is, how it is doing and what it saw. Each
/// node answers the admin namespace's `admin:node` server-side emit with `report()`, so the
/// node that serves an admin page can show the whole cluster.
final class AdminNodeReport: Sendable {
    /// Socket ids a report carries at most, to say which node holds which client.
    static let maxSocketIds = 500

    let nodeName: String
    let nodeID: String
    let startedAt = Date()
    let readiness: @Sendable () -> (ready: Bool, detail: String)
    let brokerState: @Sendable () -> String
    let packetTotals: @Sendable () -> (received: Double, sent: Double)
    let clients: @Sendable () -> [SocketIOSocket]
    let activity = NIOLockedValueBox(AdminActivity())

    init(
        nodeName: String, nodeID: String, readiness: @escaping @Sendable () -> (ready: Bool, detail: String),
        brokerState: @escaping @Sendable () -> String, packetTotals: @escaping @Sendable () -> (received: Double, sent: Double),
        clients: @escaping @Sendable () -> [SocketIOSocket]
    ) {
        self.nodeName = nodeName
        self.nodeID = nodeID
        self.readiness = readiness
        self.brokerState = brokerState
        self.packetTotals = packetTotals
        self.clients = clients
    }

    func record(_ kind: String, _ detail: String) {
        let now = Date().timeIntervalSince1970
        activity.withLockedValue { $0.record(time: now, kind: kind, detail: detail) }
    }

    /// Samples the packet counters once a second for the rate chart, on `eventLoop`'s timer,
    /// until the returned task is cancelled.
    func startSampling(on eventLoop: any EventLoop) -> RepeatedTask {
        eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(1)) { [weak self] _ in
            guard let self else { return }
            let totals = self.packetTotals()
            let now = Date().timeIntervalSince1970
            self.activity.withLockedValue { $0.sample(time: now, packetsIn: totals.received, packetsOut: totals.sent) }
        }
    }

    func report() -> JSONValue {
        let (ready, detail) = readiness()
        let sockets = clients()
        let snapshot = activity.withLockedValue { $0 }
        let rates: [JSONValue] = snapshot.rates.map { [.number($0.time), .number(Self.rounded($0.packetsIn)), .number(Self.rounded($0.packetsOut))] }
        let events: [JSONValue] = snapshot.events.map { [.number($0.time), .string($0.kind), .string($0.detail)] }
        return [
            "node": .string(nodeName),
            "nodeID": .string(nodeID),
            "uptime": .number(Int(Date().timeIntervalSince(startedAt))),
            "ready": .bool(ready),
            "readiness": .string(detail),
            "broker": .string(brokerState()),
            "clients": .number(sockets.count),
            "socketIds": .array(sockets.prefix(Self.maxSocketIds).map { .string($0.id) }),
            "rates": .array(rates),
            "events": .array(events),
        ]
    }

    private static func rounded(_ value: Double) -> Double { (value * 10).rounded() / 10 }
}

/// Reads counter totals out of the Prometheus text the node already renders for /metrics.
enum PrometheusText {
    /// The value of the first sample line of `name` (unlabelled), or 0.
    static func value(of name: String, in text: [UInt8]) -> Double {
        let prefix = Array((name + " ").utf8)
        var lineStart = 0
        while lineStart < text.count {
            let lineEnd = text[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? text.count
            if lineEnd - lineStart > prefix.count, text[lineStart..<(lineStart + prefix.count)].elementsEqual(prefix) {
                let digits = String(decoding: text[(lineStart + prefix.count)..<lineEnd], as: UTF8.self)
                return Double(digits.trimmingCharacters(in: .whitespaces)) ?? 0
            }
            lineStart = lineEnd + 1
        }
        return 0
    }
}
