import ChatCore
import Testing

@Suite struct RoomPresenceTests {
    @Test func smallRoomsListEveryoneSortedOnceAndCountConnections() {
        let presence = RoomPresence(room: "general", names: ["bob", "ada", "bob"])
        #expect(presence.names == ["ada", "bob"])
        #expect(presence.count == 3)  // bob has two tabs open
    }

    @Test func nodesPartsMergeIntoOneCappedList() {
        let a = RoomPresence(room: "r", names: ["c", "a"], limit: 2)
        let b = RoomPresence(room: "r", names: (0..<50).map { "b\($0)" }, limit: 2)
        let merged = RoomPresence(room: "r", parts: [a, b], limit: 3)
        #expect(merged.names == ["a", "b0", "b1"])
        #expect(merged.count == 52)
    }

    @Test func crowdsAreCappedButCountedInFull() {
        let names = (0..<9_000).map { "user\($0)" }
        let presence = RoomPresence(room: "big", names: names.reversed(), limit: 100)
        #expect(presence.count == 9_000)
        #expect(presence.names.count == 100)
        #expect(presence.names == Array(names.sorted().prefix(100)))
    }

    @Test func includingAddsANewcomerOnlyOnce() {
        let before = RoomPresence(room: "r", names: ["bob"])
        let after = before.including("ada")
        #expect(after.names == ["ada", "bob"])
        #expect(after.count == 2)
        #expect(after.including("ada") == after)
    }

    @Test func includingIntoAFullListKeepsTheCapAndRaisesTheCount() {
        let full = RoomPresence(room: "r", names: ["b", "c"], limit: 2)
        let after = full.including("a", limit: 2)
        #expect(after.names == ["a", "b"])
        #expect(after.count == 3)
        let late = full.including("z", limit: 2)
        #expect(late.names == ["b", "c"])
        #expect(late.count == 3)
    }

    @Test func oneUpdatePerRoomUntilItStarts() {
        var schedule = PresenceSchedule()
        let first = schedule.roomChanged("a")
        let again = schedule.roomChanged("a")  // rides on the pending update
        let other = schedule.roomChanged("b")  // other rooms are independent
        schedule.updateStarting("a")
        let afterRead = schedule.roomChanged("a")  // a change after the read needs a new update
        #expect(first && !again && other && afterRead)
    }
}
