import ChatCore
import Testing

/// Byte limits beside character limits: what a character counts and what it weighs differ.
@Suite struct ByteLimitTests {
    let limits = ChatLimits()

    @Test func oneCharacterOfSixHundredKilobytesIsRefused() {
        let accented = "e" + String(repeating: "\u{0301}", count: 300_000)
        #expect(accented.count == 1)
        #expect(ChatRules.validateMessage(accented, limits: limits) == .failure(.messageTooLarge(bytes: 8 * 1024)))
    }

    @Test func messagesAtTheByteLimitPassAndOneByteMoreIsRefused() {
        let atLimit = String(repeating: "a", count: 2_000) // 2,000 bytes: both limits hold
        #expect((try? ChatRules.validateMessage(atLimit, limits: limits).get()) == atLimit)
        var small = ChatLimits()
        small.maxMessageBytes = 10
        #expect((try? ChatRules.validateMessage("0123456789", limits: small).get()) == "0123456789")
        #expect(ChatRules.validateMessage("0123456789x", limits: small) == .failure(.messageTooLarge(bytes: 10)))
        // Within bytes, over characters: still the character error, as before.
        #expect(ChatRules.validateMessage(String(repeating: "a", count: 2_001), limits: limits) == .failure(.messageTooLong(limit: 2_000)))
    }

    @Test func aRoomOfOneCharacterButSixtySixKilobytesIsRefused() {
        let room = String(repeating: "\u{1100}", count: 22_000)
        #expect(room.count == 1)
        #expect(ChatRules.validateRoom(room, limits: limits) == .failure(.invalidRoom(limits)))
        #expect(ChatRules.validateName(room, limits: limits) == .failure(.invalidName(limits)))
    }

    @Test func roomAndNameByteLimitsAreConfigurable() {
        var limits = ChatLimits()
        limits.maxRoomBytes = 6
        limits.maxNameBytes = 4
        #expect((try? ChatRules.validateRoom("ééé", limits: limits).get()) == "ééé")   // 6 bytes
        #expect(ChatRules.validateRoom("éééé", limits: limits) == .failure(.invalidRoom(limits)))
        #expect((try? ChatRules.validateName("abcd", limits: limits).get()) == "abcd")
        #expect(ChatRules.validateName("abcde", limits: limits) == .failure(.invalidName(limits)))
        #expect(ChatError.invalidRoom(limits).message.contains("6 bytes"))
    }

    @Test func historyEntriesOverTheLimitsAreNotReplayed() {
        let fine = ChatMessage(id: "1", text: "hi", date: "2026-12-03T07:00:00.000Z", name: "ada", room: "general")
        #expect(ChatRules.fitsLimits(fine, limits: limits))
        var huge = fine
        huge.text = "e" + String(repeating: "\u{0301}", count: 300_000)
        #expect(!ChatRules.fitsLimits(huge, limits: limits))
    }
}

@Suite struct HistoryByteBudgetTests {
    func message(_ id: Int, bytes: Int, room: String = "r") -> ChatMessage {
        ChatMessage(id: "\(id)", text: String(repeating: "x", count: bytes), date: "", name: "", room: room)
    }

    @Test func aRoomKeepsAtMostItsBytesDroppingTheOldest() {
        var histories = RoomHistories(historyLength: 100, maxRooms: 10, maxBytesPerRoom: 1_000)
        for id in 0..<10 { histories.append(message(id, bytes: 299)) }  // 300 bytes each with the 1-byte id
        #expect(histories.messages(in: "r").map(\.id) == ["7", "8", "9"])
        #expect(histories.bytes(in: "r") <= 1_000)
    }

    @Test func aMessageLargerThanTheBudgetIsNotKept() {
        var histories = RoomHistories(historyLength: 100, maxRooms: 10, maxBytesPerRoom: 100)
        histories.append(message(1, bytes: 10))
        let added = histories.append(message(2, bytes: 500))
        #expect(!added)
        #expect(histories.messages(in: "r").map(\.id) == ["1"])
    }

    @Test func theCountLimitStillApplies() {
        var histories = RoomHistories(historyLength: 3, maxRooms: 10, maxBytesPerRoom: 1 << 20)
        for id in 0..<1_000 { histories.append(message(id, bytes: 1)) }
        #expect(histories.messages(in: "r").map(\.id) == ["997", "998", "999"])
        #expect(histories.bytes(in: "r") == 3 * 5)  // id (3) + text (1) + room (1)
        let duplicate = histories.append(message(999, bytes: 1))
        #expect(!duplicate, "a duplicate id is still refused")
    }

    @Test func outOfRangeLimitsDoNotTrap() {
        var histories = RoomHistories(historyLength: 0, maxRooms: -1, maxBytesPerRoom: 0)
        histories.append(message(1, bytes: 0))
        #expect(histories.historyLength == 1 && histories.maxRooms == 1)
    }
}

@Suite struct ConfigurationValidationTests {
    @Test func theDefaultsAreValid() throws {
        try ChatLimits().validate()
    }

    @Test func aZeroRateLimitNamesTheOption() {
        var limits = ChatLimits()
        limits.messagesPerSecond = 0
        #expect(throws: ChatConfigurationError.self) { try limits.validate() }
        do {
            try limits.validate()
        } catch {
            #expect(error.option == .rateLimit)
            #expect(error.description.hasPrefix("RATE_LIMIT (--rate-limit) is '0.0'"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func everyNumericLimitIsRangeChecked() {
        let broken: [(ChatLimits.Option, (inout ChatLimits) -> Void)] = [
            (.maxMessageLength, { $0.maxMessageLength = 0 }), (.maxMessageBytes, { $0.maxMessageBytes = -1 }),
            (.maxNameLength, { $0.maxNameLength = 0 }), (.maxNameBytes, { $0.maxNameBytes = 70_000 }),
            (.maxRoomLength, { $0.maxRoomLength = 0 }), (.maxRoomBytes, { $0.maxRoomBytes = 70_000 }),
            (.rateLimit, { $0.messagesPerSecond = .nan }), (.rateBurst, { $0.messageBurst = 0.5 }),
            (.addressRateFactor, { $0.addressMessageFactor = 0 }),
            (.typingRateLimit, { $0.typingPerSecond = -1 }), (.typingBurst, { $0.typingBurst = .infinity }),
            (.roomChangeRateLimit, { $0.roomChangesPerSecond = 0 }), (.roomChangeBurst, { $0.roomChangeBurst = 0 }),
            (.connectRateLimit, { $0.connectsPerSecond = 0 }), (.connectBurst, { $0.connectBurst = 0 }),
            (.maxTrackedAddresses, { $0.maxTrackedAddresses = 0 }), (.historyLength, { $0.historyLength = 0 }),
            (.historyBytes, { $0.historyBytesPerRoom = 100 }), (.maxRooms, { $0.maxRooms = 0 }),
        ]
        for (option, breakIt) in broken {
            var limits = ChatLimits()
            breakIt(&limits)
            do {
                try limits.validate()
                Issue.record("\(option) accepted")
            } catch {
                #expect(error.option == option)
            }
        }
    }

    @Test func environmentNamesFollowTheOptions() {
        #expect(ChatLimits.Option.maxMessageBytes.environmentVariable == "MAX_MESSAGE_BYTES")
        #expect(ChatLimits.Option.port.environmentVariable == "NODE_PORT")
        #expect(ChatLimits.Option.presenceInterval.environmentVariable == "PRESENCE_INTERVAL_MS")
    }

    @Test func aBucketGivenImpossibleValuesDoesNotTrap() {
        var bucket = TokenBucket(ratePerSecond: 0, burst: 0, now: 0)
        let answers = [bucket.tryTake(now: 0), bucket.tryTake(now: 1)]
        #expect(answers == [true, false])
    }
}

@Suite struct KeyedRateLimiterTests {
    @Test func aReconnectDoesNotResetTheLimit() {
        var limits = ChatLimits()
        limits.messagesPerSecond = 1
        limits.messageBurst = 3
        var table = ChatRateLimits(limits: limits)
        // Three "connections" of one user from one address share one bucket.
        let accepted = (0..<9).filter { _ in table.allowMessage(address: "10.0.0.1", name: "ada", now: 5) }.count
        #expect(accepted == 3)
        let elsewhere = table.allowMessage(address: "10.0.0.2", name: "ada", now: 5)
        #expect(elsewhere, "another address has its own bucket")
    }

    @Test func newNamesFromOneAddressShareTheAddressBucket() {
        var limits = ChatLimits()
        limits.messagesPerSecond = 1
        limits.messageBurst = 2
        limits.addressMessageFactor = 4
        var table = ChatRateLimits(limits: limits)
        let accepted = (0..<100).filter { table.allowMessage(address: "10.0.0.1", name: "guest-\($0)", now: 0) }.count
        #expect(accepted == 8)
    }

    @Test func connectsArePerAddress() {
        var limits = ChatLimits()
        limits.connectsPerSecond = 1
        limits.connectBurst = 2
        var table = ChatRateLimits(limits: limits)
        let answers = [table.allowConnect(address: "a", now: 0), table.allowConnect(address: "a", now: 0),
                       table.allowConnect(address: "a", now: 0), table.allowConnect(address: "a", now: 1.01),
                       table.allowConnect(address: "b", now: 0)]
        #expect(answers == [true, true, false, true, true])
    }

    @Test func theTableStaysBoundedUnderChurn() {
        var limiter = KeyedRateLimiter(limit: RateLimit(perSecond: 1, burst: 2), capacity: 1_000)
        for key in 0..<100_000 {
            _ = limiter.tryTake("addr-\(key)", now: Double(key) / 1_000_000)
            #expect(limiter.count <= 1_000)
        }
    }

    @Test func refilledBucketsAreSweptOnceAMinuteEvenBelowCapacity() {
        var limiter = KeyedRateLimiter(limit: RateLimit(perSecond: 1, burst: 1), capacity: 1_000)
        for key in 0..<100 { _ = limiter.tryTake("addr-\(key)", now: 0) }
        #expect(limiter.count == 100)
        _ = limiter.tryTake("late", now: 30)
        #expect(limiter.count == 101, "no sweep before a minute")
        _ = limiter.tryTake("later", now: 61)
        #expect(limiter.count == 1, "every refilled bucket was forgotten; only the new key remains")
    }

    @Test func refilledBucketsAreForgottenFirst() {
        var limiter = KeyedRateLimiter(limit: RateLimit(perSecond: 1, burst: 1), capacity: 4)
        for key in ["a", "b", "c", "d"] { _ = limiter.tryTake(key, now: 0) }
        // At 10 s every bucket has refilled: a new key makes room without forgetting anyone in debt.
        let first = limiter.tryTake("e", now: 10)
        #expect(first)
        #expect(limiter.count == 1)
        let second = limiter.tryTake("e", now: 10)
        #expect(!second)
    }
}

@Suite struct PresenceSaturationTests {
    @Test func hugeCountsFromTheBrokerSaturate() {
        let hostile = RoomPresence(room: "r", names: ["x"], count: Int.max)
        #expect(hostile.count == RoomPresence.maxCount)
        let merged = RoomPresence(room: "r", parts: [hostile, hostile, RoomPresence(room: "r", names: ["y"])])
        #expect(merged.count == RoomPresence.maxCount)
        #expect(merged.including("z").count == RoomPresence.maxCount)
    }

    @Test func negativeCountsCountAsTheirNames() {
        let hostile = RoomPresence(room: "r", names: ["a", "b"], count: Int.min)
        #expect(hostile.count == 2)
        #expect(RoomPresence(room: "r", parts: [hostile, hostile]).count == 4)
    }
}
