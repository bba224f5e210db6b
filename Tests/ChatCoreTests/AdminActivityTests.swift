import ChatCore
import Testing

@Suite struct AdminActivityTests {
    @Test func firstSampleIsOnlyABaseline() {
        var activity = AdminActivity()
        activity.sample(time: 10, packetsIn: 100, packetsOut: 500)
        #expect(activity.rates.isEmpty)
        activity.sample(time: 12, packetsIn: 110, packetsOut: 540)
        #expect(activity.rates == [AdminActivity.Rate(time: 12, packetsIn: 5, packetsOut: 20)])
    }

    @Test func keepsOnlyTheLastWindowOfRates() {
        var activity = AdminActivity(rateWindow: 3)
        for second in 0...10 { activity.sample(time: Double(second), packetsIn: Double(second * 2), packetsOut: 0) }
        #expect(activity.rates.map(\.time) == [8, 9, 10])
        #expect(activity.rates.allSatisfy { $0.packetsIn == 2 })
    }

    @Test func countersThatGoBackwardsGiveZeroNotNegative() {
        var activity = AdminActivity()
        activity.sample(time: 1, packetsIn: 1_000, packetsOut: 1_000)
        activity.sample(time: 2, packetsIn: 10, packetsOut: 10)
        #expect(activity.rates.first?.packetsIn == 0)
        #expect(activity.rates.first?.packetsOut == 0)
    }

    @Test func ignoresReadingsWithoutElapsedTime() {
        var activity = AdminActivity()
        activity.sample(time: 5, packetsIn: 0, packetsOut: 0)
        activity.sample(time: 5, packetsIn: 100, packetsOut: 100)
        activity.sample(time: .nan, packetsIn: 100, packetsOut: 100)
        #expect(activity.rates.isEmpty)
    }

    @Test func keepsTheLastEventsAndTrimsLongDetails() {
        var activity = AdminActivity(eventCapacity: 100)
        for index in 0..<250 { activity.record(time: Double(index), kind: "connect", detail: "socket \(index)") }
        #expect(activity.events.count == 100)
        #expect(activity.events.first?.detail == "socket 150")
        #expect(activity.events.last?.detail == "socket 249")
        activity.record(time: 1, kind: String(repeating: "k", count: 500), detail: String(repeating: "x", count: 10_000))
        #expect(activity.events.last?.detail.count == AdminActivity.maxDetailLength + 1)
        #expect(activity.events.last?.kind.count == 32)
    }
}
