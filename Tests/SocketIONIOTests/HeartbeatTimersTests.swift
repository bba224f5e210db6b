import NIOCore
import NIOEmbedded
import Testing
@testable import SocketIONIO

/// One NIO task per loop hands out the heartbeats that fell due.
@Suite struct HeartbeatTimersTests {
    final class Recorder: HeartbeatClient, @unchecked Sendable {
        var due: [UInt64] = []
        var onDue: ((UInt64) -> Void)?
        func heartbeatDue(token: UInt64) {
            due.append(token)
            onDue?(token)
        }
    }

    @Test func deadlinesFireOnceTheirTimeComesAndNotBefore() {
        let loop = EmbeddedEventLoop()
        let timers = HeartbeatTimers<Recorder>(eventLoop: loop)
        let a = Recorder(), b = Recorder()
        let tokenA = timers.schedule(a, at: loop.now, after: .seconds(5))
        let tokenB = timers.schedule(b, at: loop.now, after: .seconds(2))
        loop.advanceTime(by: .milliseconds(1_999))
        #expect(a.due.isEmpty && b.due.isEmpty)
        loop.advanceTime(by: HeartbeatTimers<Recorder>.granularity + .milliseconds(1))
        #expect(b.due == [tokenB])
        #expect(a.due.isEmpty)
        loop.advanceTime(by: .seconds(3))
        #expect(a.due == [tokenA])
        #expect(b.due == [tokenB])
    }

    @Test func aRemovedClientIsNeitherCalledNorKept() {
        let loop = EmbeddedEventLoop()
        let timers = HeartbeatTimers<Recorder>(eventLoop: loop)
        weak var released: Recorder?
        do {
            let client = Recorder()
            released = client
            _ = timers.schedule(client, at: loop.now, after: .seconds(1))
            #expect(timers.sessionCount == 1)
            timers.remove(client)
        }
        #expect(released == nil, "a deadline must not keep a closed session alive")
        loop.advanceTime(by: .seconds(2))
        #expect(timers.sessionCount == 0)
    }

    @Test func aClientMayScheduleAgainWhenCalled() {
        let loop = EmbeddedEventLoop()
        let timers = HeartbeatTimers<Recorder>(eventLoop: loop)
        let client = Recorder()
        client.onDue = { _ in
            if client.due.count < 3 { _ = timers.schedule(client, at: loop.now, after: .seconds(1)) }
        }
        _ = timers.schedule(client, at: loop.now, after: .seconds(1))
        for _ in 0..<10 { loop.advanceTime(by: .milliseconds(500)) }
        #expect(client.due.count == 3)
    }
}
