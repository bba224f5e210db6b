import AMQPClient
import ChatCore
import Foundation

extension ChatCommand {
    /// Every option checked before anything starts, so a mistake stops the node at once with
    /// one line (`RATE_LIMIT (--rate-limit) is '0.0'; expected a number above 0`) instead of
    /// a trap later or a silent default.
    func validatedLimits(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ChatConfigurationError) -> ChatLimits {
        try Self.checkNumericEnvironment(environment)
        var limits = ChatLimits()
        limits.maxMessageLength = maxMessageLength
        limits.maxMessageBytes = maxMessageBytes
        limits.maxNameLength = maxNameLength
        limits.maxNameBytes = maxNameBytes
        limits.maxRoomLength = maxRoomLength
        limits.maxRoomBytes = maxRoomBytes
        limits.messagesPerSecond = rateLimit
        limits.messageBurst = rateBurst
        limits.addressMessageFactor = addressRateFactor
        limits.typingPerSecond = typingRateLimit
        limits.typingBurst = typingBurst
        limits.roomChangesPerSecond = roomChangeRateLimit
        limits.roomChangeBurst = roomChangeBurst
        limits.connectsPerSecond = connectRateLimit
        limits.connectBurst = connectBurst
        limits.maxTrackedAddresses = maxTrackedAddresses
        limits.historyLength = historyLength
        limits.historyBytesPerRoom = historyBytes
        limits.maxRooms = maxRooms
        try limits.validate()

        guard (0...65_535).contains(port) else { throw ChatConfigurationError(option: .port, value: "\(port)", expected: "a TCP port, 0 to 65535") }
        // Milliseconds and seconds that become timers: positive and far from overflowing.
        let day: Int64 = 86_400_000
        guard (1...day).contains(pingInterval) else { throw ChatConfigurationError(option: .pingInterval, value: "\(pingInterval)", expected: "1 to \(day) milliseconds") }
        guard (1...day).contains(pingTimeout) else { throw ChatConfigurationError(option: .pingTimeout, value: "\(pingTimeout)", expected: "1 to \(day) milliseconds") }
        guard (1...day).contains(presenceInterval) else {
            throw ChatConfigurationError(option: .presenceInterval, value: "\(presenceInterval)", expected: "1 to \(day) milliseconds")
        }
        guard (1...86_400).contains(recoveryWindow) else {
            throw ChatConfigurationError(option: .recoveryWindow, value: "\(recoveryWindow)", expected: "1 to 86400 seconds")
        }
        // The node name is part of every recovery offset and cluster message.
        guard nodeName.utf8.count <= 100, nodeName.utf8.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) else {
            throw ChatConfigurationError(option: .nodeName, value: String(nodeName.prefix(40)), expected: "at most 100 printable ASCII characters without spaces or quotes")
        }
        if adapter == .rabbitmq {
            let urls = amqpURL.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            do {
                _ = try AMQPConnectionConfiguration(urls: urls)
            } catch {
                // AMQPError's text shows the URL with its password redacted.
                throw ChatConfigurationError(option: .amqpURL, value: AMQPURLRedaction.redact(urls), expected: "a valid amqp:// or amqps:// URL (\(error))")
            }
        }
        return limits
    }

    /// A numeric variable that does not parse would otherwise fall back to its default silently.
    static func checkNumericEnvironment(_ environment: [String: String]) throws(ChatConfigurationError) {
        let integers: [ChatLimits.Option] = [.port, .maxMessageLength, .maxMessageBytes, .maxNameLength, .maxNameBytes, .maxRoomLength,
                                             .maxRoomBytes, .maxTrackedAddresses, .historyLength, .historyBytes, .maxRooms,
                                             .pingInterval, .pingTimeout, .presenceInterval, .recoveryWindow]
        let decimals: [ChatLimits.Option] = [.rateLimit, .rateBurst, .addressRateFactor, .typingRateLimit, .typingBurst,
                                             .roomChangeRateLimit, .roomChangeBurst, .connectRateLimit, .connectBurst]
        for option in integers {
            if let text = environment[option.environmentVariable], !text.isEmpty, Int64(text) == nil {
                throw ChatConfigurationError(option: option, value: text, expected: "a whole number")
            }
        }
        for option in decimals {
            if let text = environment[option.environmentVariable], !text.isEmpty, Double(text) == nil {
                throw ChatConfigurationError(option: option, value: text, expected: "a number")
            }
        }
    }
}
