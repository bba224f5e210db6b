import NIOPosix
import SocketIO
import SocketIORabbitMQ

extension ChatNode {
    /// The admin namespace and this node's report for it; called once the server exists.
    func installAdmin(io: SocketIOServer, history: any ChatHistoryStore, brokerState: @escaping @Sendable () -> String) {
        let nodeID = (io.of(AdminService.namespace).adapter as? RabbitMQAdapter)?.nodeID ?? settings.nodeName
        let report = AdminNodeReport(
            nodeName: settings.nodeName, nodeID: nodeID,
            readiness: { [weak self] in (self?.isReady ?? false, self?.readinessDetail ?? "stopped") },
            brokerState: brokerState,
            packetTotals: { [metrics] in
                let text = metrics.render()
                return (PrometheusText.value(of: "engineio_messages_received_total", in: text),
                        PrometheusText.value(of: "engineio_messages_sent_total", in: text))
            },
            clients: { [weak io] in io?.sockets.localSockets() ?? [] }
        )
        let sampler = report.startSampling(on: MultiThreadedEventLoopGroup.singleton.any())
        parts.withLockedValue { $0.adminSampler = sampler }
        AdminService(io: io, access: settings.access, limits: settings.limits, history: history, report: report, logger: logger).install()
    }
}
