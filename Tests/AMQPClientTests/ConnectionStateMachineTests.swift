import AMQPProtocol
import XCTest
@testable import AMQPClient

final class ConnectionStateMachineTests: XCTestCase {
    private func makeMachine(heartbeat: UInt16 = 60, frameMax: UInt32 = 131_072, channelMax: UInt16 = 2047) -> ConnectionStateMachine {
        ConnectionStateMachine(credentials: .init(
            username: "guest", password: "secret", virtualHost: "/",
            clientProperties: AMQPConnection.clientProperties(connectionName: "test"),
            desired: ConnectionTuneOk(channelMax: channelMax, frameMax: frameMax, heartbeat: heartbeat)))
    }

    private let start = AMQPMethod.connectionStart(ConnectionStart(
        versionMajor: 0, versionMinor: 9, serverProperties: [:], mechanisms: "AMQPLAIN PLAIN", locales: "en_US"))

    func testHandshakeSendsPlainCredentialsTunesAndOpens() throws {
        var machine = makeMachine(heartbeat: 30)
        XCTAssertEqual(machine.channelActive(), .sendProtocolHeader)

        guard case .send(.connectionStartOk(let startOk)) = machine.received(start) else { return XCTFail() }
        XCTAssertEqual(startOk.mechanism, "PLAIN")
        XCTAssertEqual(startOk.response, "\u{0}guest\u{0}secret")
        let capabilities = try XCTUnwrap(startOk.clientProperties["capabilities"]?.tableValue)
        for capability in ["publisher_confirms", "consumer_cancel_notify", "connection.blocked", "basic.nack",
                           "authentication_failure_close", "exchange_exchange_bindings"] {
            XCTAssertEqual(capabilities[capability], .bool(true), capability)
        }
        XCTAssertEqual(startOk.clientProperties["connection_name"], .longString("test"))
        XCTAssertNotNil(startOk.clientProperties["product"])

        let tune = AMQPMethod.connectionTune(ConnectionTune(channelMax: 0, frameMax: 131_072, heartbeat: 60))
        guard case .sendTuneOkAndOpen(let tuneOk, let open, let negotiated) = machine.received(tune) else { return XCTFail() }
        XCTAssertEqual(tuneOk, ConnectionTuneOk(channelMax: 2047, frameMax: 131_072, heartbeat: 30))
        XCTAssertEqual(open.virtualHost, "/")
        XCTAssertEqual(machine.received(.connectionOpenOk(ConnectionOpenOk())), .connectionEstablished(negotiated))
        XCTAssertEqual(machine.state, .open(negotiated))
    }

    func testTuneNegotiationTakesLowerNonZero() {
        func negotiate(_ client: (UInt16, UInt32, UInt16), _ server: (UInt16, UInt32, UInt16)) -> AMQPNegotiatedParameters {
            AMQPNegotiatedParameters.negotiate(
                client: ConnectionTuneOk(channelMax: client.0, frameMax: client.1, heartbeat: client.2),
                server: ConnectionTune(channelMax: server.0, frameMax: server.1, heartbeat: server.2))
        }
        XCTAssertEqual(negotiate((2047, 131_072, 60), (100, 4096, 10)), .init(channelMax: 100, frameMax: 4096, heartbeat: 10))
        XCTAssertEqual(negotiate((10, 8192, 0), (0, 0, 60)), .init(channelMax: 10, frameMax: 8192, heartbeat: 60))
        XCTAssertEqual(negotiate((0, 0, 5), (0, 0, 0)), .init(channelMax: 65535, frameMax: 131_072, heartbeat: 5))
        XCTAssertEqual(negotiate((0, 0, 0), (0, 0, 0)).heartbeat, 0)
    }

    func testAccessRefusedDuringAuthIsAuthenticationFailure() {
        var machine = makeMachine()
        _ = machine.channelActive()
        _ = machine.received(start)
        let close = AMQPMethod.connectionClose(ConnectionClose(
            replyCode: 403, replyText: "ACCESS_REFUSED - Login was refused", classID: 0, methodID: 0))
        guard case .sendCloseOkAndClose(.authenticationFailed(let text)) = machine.received(close) else { return XCTFail() }
        XCTAssertTrue(text.contains("ACCESS_REFUSED"))
        XCTAssertEqual(machine.state, .closed)
    }

    func testSocketClosedDuringAuthIsAuthenticationFailure() {
        var machine = makeMachine()
        _ = machine.channelActive()
        _ = machine.received(start)
        guard case .authenticationFailed? = machine.socketClosed() else { return XCTFail() }
    }

    func testNoPlainMechanismFailsClearly() {
        var machine = makeMachine()
        _ = machine.channelActive()
        let startWithoutPlain = AMQPMethod.connectionStart(ConnectionStart(
            versionMajor: 0, versionMinor: 9, mechanisms: "EXTERNAL", locales: "en_US"))
        guard case .closeSocket(.authenticationFailed?) = machine.received(startWithoutPlain) else { return XCTFail() }
    }

    private func openMachine(heartbeat: UInt16 = 60) -> ConnectionStateMachine {
        var machine = makeMachine(heartbeat: heartbeat)
        _ = machine.channelActive()
        _ = machine.received(start)
        _ = machine.received(.connectionTune(ConnectionTune(channelMax: 0, frameMax: 131_072, heartbeat: heartbeat)))
        _ = machine.received(.connectionOpenOk(ConnectionOpenOk()))
        return machine
    }

    func testBrokerCloseWhileOpenCarriesCodeAndText() {
        var machine = openMachine()
        let close = AMQPMethod.connectionClose(ConnectionClose(
            replyCode: 320, replyText: "CONNECTION_FORCED - broker forced connection closure", classID: 0, methodID: 0))
        guard case .sendCloseOkAndClose(.connectionClosedByBroker(let reason)) = machine.received(close) else { return XCTFail() }
        XCTAssertEqual(reason.replyCode, 320)
        XCTAssertEqual(reason.kind, .connectionForced)
        XCTAssertNil(machine.socketClosed(), "close already handled")
    }

    func testClientCloseWaitsForCloseOk() {
        var machine = openMachine()
        guard case .send(.connectionClose(let close)) = machine.closeRequested() else { return XCTFail() }
        XCTAssertEqual(close.replyCode, 200)
        XCTAssertEqual(machine.closeRequested(), .none, "second close is a no-op")
        XCTAssertEqual(machine.received(.connectionCloseOk(ConnectionCloseOk())), .closeSocket(nil))
    }

    func testBlockedAndUnblocked() {
        var machine = openMachine()
        XCTAssertEqual(machine.received(.connectionBlocked(ConnectionBlocked(reason: "low on memory"))), .blocked(reason: "low on memory"))
        XCTAssertEqual(machine.received(.connectionUnblocked(ConnectionUnblocked())), .unblocked)
    }

    func testHeartbeatSendsEachTickAndDeclaresPeerDeadAfterTwoSilentIntervals() {
        var machine = openMachine(heartbeat: 1)
        machine.frameReceived()
        XCTAssertEqual(machine.heartbeatTick(), .sendHeartbeat)
        XCTAssertEqual(machine.heartbeatTick(), .sendHeartbeat, "one silent interval is tolerated")
        machine.frameReceived()
        XCTAssertEqual(machine.heartbeatTick(), .sendHeartbeat, "traffic resets the count")
        XCTAssertEqual(machine.heartbeatTick(), .sendHeartbeat)
        XCTAssertEqual(machine.heartbeatTick(), .closeSocket(.heartbeatTimeout))
    }

    func testUnexpectedMethodIsProtocolViolation() {
        var machine = openMachine()
        guard case .sendCloseAndFail(let close, .protocolViolation) = machine.received(start) else { return XCTFail() }
        XCTAssertEqual(close.replyCode, 505)
    }
}
