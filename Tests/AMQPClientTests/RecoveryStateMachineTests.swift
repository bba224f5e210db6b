import XCTest
@testable import AMQPClient

final class RecoveryStateMachineTests: XCTestCase {
    private func openMachine(maximumAttempts: Int? = nil) -> (RecoveryStateMachine, RecoveryStateMachine.SocketID) {
        var machine = RecoveryStateMachine(recoveryEnabled: true, maximumAttempts: maximumAttempts)
        guard case .opened(let id) = machine.socketAttached() else {
            XCTFail("the first socket opens the connection")
            return (machine, .init(raw: 0))
        }
        return (machine, id)
    }

    func testFirstSocketOpensForTheApplication() {
        var machine = RecoveryStateMachine(recoveryEnabled: true, maximumAttempts: nil)
        XCTAssertFalse(machine.acceptsApplicationWork)
        XCTAssertFalse(machine.acceptsRecoveryWork)
        guard case .opened(let id) = machine.socketAttached() else { return XCTFail() }
        XCTAssertEqual(machine.state, .open(id))
        XCTAssertTrue(machine.acceptsApplicationWork)
        XCTAssertTrue(machine.acceptsRecoveryWork)
    }

    func testLossStartsRecoveryAndAttemptsCount() {
        var (machine, _) = openMachine()
        XCTAssertEqual(machine.socketClosed(error: .heartbeatTimeout), .reportLostAndRecover(.heartbeatTimeout))
        XCTAssertEqual(machine.state, .recovering(attempt: 0))
        XCTAssertFalse(machine.acceptsApplicationWork)
        XCTAssertEqual(machine.nextAttempt(), .reconnect(attempt: 1))
        XCTAssertEqual(machine.nextAttempt(), .reconnect(attempt: 2))
        XCTAssertEqual(machine.state, .recovering(attempt: 2))
    }

    func testACleanCloseWithoutRequestIsALoss() {
        var (machine, _) = openMachine()
        XCTAssertEqual(machine.socketClosed(error: nil), .reportLostAndRecover(.connectionLost("socket closed")))
    }

    func testRestoringSocketTakesRecoveryRequestsOnlyThenOpens() {
        var (machine, _) = openMachine()
        _ = machine.socketClosed(error: .connectionLost("x"))
        XCTAssertEqual(machine.nextAttempt(), .reconnect(attempt: 1))
        guard case .restore(let id) = machine.socketAttached() else { return XCTFail() }
        XCTAssertTrue(machine.isRestoring)
        XCTAssertTrue(machine.acceptsRecoveryWork)
        XCTAssertFalse(machine.acceptsApplicationWork, "the application waits until the topology is back")
        XCTAssertEqual(machine.restoreFinished(on: id), .announceRecovered(attempt: 1))
        XCTAssertEqual(machine.state, .open(id))
        XCTAssertTrue(machine.acceptsApplicationWork)
    }

    func testLossDuringRestoreKeepsBackingOffFromWhereItWas() {
        var (machine, _) = openMachine()
        _ = machine.socketClosed(error: .connectionLost("x"))
        _ = machine.nextAttempt()
        _ = machine.nextAttempt()
        guard case .restore(let stale) = machine.socketAttached() else { return XCTFail() }
        XCTAssertEqual(machine.socketClosed(error: .connectionLost("again")), .reportLostAndRecover(.connectionLost("again")))
        XCTAssertEqual(machine.state, .recovering(attempt: 2))
        XCTAssertEqual(machine.nextAttempt(), .reconnect(attempt: 3), "the back-off does not start over")
        guard case .restore(let current) = machine.socketAttached() else { return XCTFail() }
        XCTAssertNotEqual(stale, current)
        // The restore of the dead socket ends late: it must not announce a recovery.
        XCTAssertEqual(machine.restoreFinished(on: stale), .closeSocket)
        XCTAssertTrue(machine.isRestoring)
        XCTAssertEqual(machine.restoreFinished(on: current), .announceRecovered(attempt: 3))
    }

    func testAttemptCountStartsOverAfterARecovery() {
        var (machine, _) = openMachine()
        _ = machine.socketClosed(error: .connectionLost("x"))
        _ = machine.nextAttempt()
        _ = machine.nextAttempt()
        guard case .restore(let id) = machine.socketAttached() else { return XCTFail() }
        _ = machine.restoreFinished(on: id)
        _ = machine.socketClosed(error: .connectionLost("later"))
        XCTAssertEqual(machine.nextAttempt(), .reconnect(attempt: 1))
    }

    func testGivesUpAfterTheMaximumAttempts() {
        var (machine, _) = openMachine(maximumAttempts: 2)
        _ = machine.socketClosed(error: .connectionLost("x"))
        XCTAssertEqual(machine.nextAttempt(), .reconnect(attempt: 1))
        XCTAssertEqual(machine.nextAttempt(), .reconnect(attempt: 2))
        XCTAssertEqual(machine.nextAttempt(), .giveUp(attempts: 2))
        XCTAssertTrue(machine.isClosed)
        XCTAssertEqual(machine.nextAttempt(), .stop)
        XCTAssertEqual(machine.socketAttached(), .closeSocket)
    }

    func testRefusedCredentialsAreNotRetried() {
        var (machine, _) = openMachine()
        let refused = AMQPError.authenticationFailed("ACCESS_REFUSED")
        XCTAssertEqual(machine.socketClosed(error: refused), .reportLostAndFinish(refused))
        XCTAssertTrue(machine.isClosed)
    }

    func testWithoutRecoveryALossIsTheEnd() {
        var machine = RecoveryStateMachine(recoveryEnabled: false, maximumAttempts: nil)
        _ = machine.socketAttached()
        XCTAssertFalse(machine.keepsChannelsForRecovery)
        XCTAssertEqual(machine.socketClosed(error: .heartbeatTimeout), .reportLostAndFinish(.heartbeatTimeout))
        XCTAssertTrue(machine.isClosed)
    }

    func testCloseOnAnOpenSocketWaitsForItsCloseThenFinishesQuietly() {
        var (machine, _) = openMachine()
        XCTAssertTrue(machine.keepsChannelsForRecovery)
        XCTAssertEqual(machine.closeRequested(), .closeSocket)
        XCTAssertFalse(machine.keepsChannelsForRecovery)
        XCTAssertEqual(machine.socketClosed(error: .connectionLost("reset")), .finish, "no recovery after close()")
        XCTAssertTrue(machine.isClosed)
        XCTAssertEqual(machine.closeRequested(), .none)
    }

    func testCloseBetweenAttemptsEndsAtOnceAndStopsTheRecoveryTask() {
        var (machine, _) = openMachine()
        _ = machine.socketClosed(error: .connectionLost("x"))
        _ = machine.nextAttempt()
        XCTAssertEqual(machine.closeRequested(), .finish)
        XCTAssertTrue(machine.isClosed)
        XCTAssertEqual(machine.nextAttempt(), .stop)
        XCTAssertEqual(machine.socketAttached(), .closeSocket, "a socket opened during the back-off is not kept")
    }

    func testCloseDuringRestoreRefusesToAnnounceRecovery() {
        var (machine, _) = openMachine()
        _ = machine.socketClosed(error: .connectionLost("x"))
        _ = machine.nextAttempt()
        guard case .restore(let id) = machine.socketAttached() else { return XCTFail() }
        XCTAssertEqual(machine.closeRequested(), .closeSocket)
        XCTAssertEqual(machine.restoreFinished(on: id), .closeSocket)
    }

    func testASecondSocketWhileOneIsCurrentIsClosed() {
        var (machine, id) = openMachine()
        XCTAssertEqual(machine.socketAttached(), .closeSocket)
        XCTAssertEqual(machine.state, .open(id))
    }
}
