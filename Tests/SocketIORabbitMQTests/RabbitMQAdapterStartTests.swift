import Foundation
import SocketIO
import XCTest

@testable import SocketIORabbitMQ

/// Against a real RabbitMQ (`AMQP_URL`, by default the shared broker on 127.0.0.1:5672);
/// skipped when none answers.
final class RabbitMQAdapterStartTests: XCTestCase {
    func testAnAdapterThatCannotDeclareItsTopologyFailsTheServersStart() async throws {
        let url = ProcessInfo.processInfo.environment["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672"
        var options = RabbitMQAdapterOptions()
        options.exchangePrefix = "sio-start-test-\(UInt32.random(in: 0...UInt32.max))"
        let cluster: RabbitMQCluster
        do {
            cluster = try await RabbitMQCluster.connect(urls: [url], nodeName: "start-test", options: options)
        } catch {
            throw XCTSkip("no broker at \(url): \(error)")
        }
        // The namespace's exchange exists already with another type, so the adapter's
        // declare is refused (406): the server's start must say so, not swallow it.
        let exchange = "\(options.exchangePrefix)#/"
        let setup = try await cluster.connection.openChannel()
        try await setup.exchangeDeclare(exchange, type: "fanout")
        var configuration = SocketIOServerConfiguration()
        configuration.adapterFactory = cluster.adapterFactory
        let io = SocketIOServer(configuration)
        do {
            try await io.start()
            XCTFail("the server started although its adapter could not declare the exchange")
        } catch {
            XCTAssertTrue("\(error)".contains("406") || "\(error)".lowercased().contains("precondition"), "\(error)")
        }
        XCTAssertFalse(cluster.isReady)
        let cleanup = try await cluster.connection.openChannel()
        try await cleanup.exchangeDelete(exchange)
        await cluster.close()
    }
}
