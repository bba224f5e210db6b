#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as bytes (4 or 16). IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is
/// stored as IPv4, so both spellings of one client are one address.
struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    let bytes: [UInt8]

    init?(_ text: Substring) {
        // The longest IPv6 text is 45 characters; anything longer is not an address and is
        // not copied (a header can hold 80 KB).
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        let string = String(text)
        if string.utf8.contains(UInt8(ascii: ":")) {
            var address = in6_addr()
            guard inet_pton(AF_INET6, string, &address) == 1 else { return nil }
            let bytes = withUnsafeBytes(of: &address) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                self.bytes = Array(bytes[12..<16])
            } else {
                self.bytes = bytes
            }
        } else {
            var address = in_addr()
            guard inet_pton(AF_INET, string, &address) == 1 else { return nil }
            self.bytes = withUnsafeBytes(of: &address) { Array($0) }
        }
    }

    var isIPv4: Bool { bytes.count == 4 }

    /// What per-address limits count by: an IPv4 address, or an IPv6 /64 (one subscriber
    /// usually gets a whole /64, so counting single IPv6 addresses would be no limit).
    var admissionKey: String {
        isIPv4 ? description : bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: ".") + "/64"
    }

    var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for index in stride(from: 0, to: 16, by: 2) {
            groups.append(String(UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1]), radix: 16))
        }
        return groups.joined(separator: ":")
    }
}

/// An address range `address/prefix` (a plain address is a /32 or /128).
struct IPNetwork: Hashable, Sendable {
    let address: IPAddress
    let prefixLength: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0].trimmingSpaces) else { return nil }
        let bits = address.bytes.count * 8
        if parts.count == 2 {
            guard let prefix = Int(parts[1].trimmingSpaces), (0...bits).contains(prefix) else { return nil }
            // `::ffff:10.0.0.0/104` means the IPv4 /8 once the address is stored as IPv4.
            self.prefixLength = address.isIPv4 && parts[0].contains(":") ? max(prefix - 96, 0) : prefix
        } else {
            self.prefixLength = bits
        }
        self.address = address
    }

    func contains(_ candidate: IPAddress) -> Bool {
        guard candidate.bytes.count == address.bytes.count else { return false }
        var remaining = prefixLength
        for index in address.bytes.indices where remaining > 0 {
            let bits = min(remaining, 8)
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            if candidate.bytes[index] & mask != address.bytes[index] & mask { return false }
            remaining -= bits
        }
        return true
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Without any, the client address is
/// always the TCP peer's: anybody can send that header.
struct TrustedProxies: Sendable {
    /// Hops read from the right of `X-Forwarded-For`; a longer chain of trusted proxies
    /// is not a deployment anyone has, and the walk stays short whatever the header holds.
    static let maxHops = 16

    let networks: [IPNetwork]

    static let none = TrustedProxies(networks: [])

    private init(networks: [IPNetwork]) {
        self.networks = networks
    }

    /// Throws the entries that are neither an IP address nor a CIDR range.
    init(_ entries: [String]) throws(InvalidTrustedProxies) {
        var networks: [IPNetwork] = []
        var invalid: [String] = []
        for entry in entries {
            let trimmed = String(Substring(entry).trimmingSpaces)
            guard !trimmed.isEmpty else { continue }
            if let network = IPNetwork(trimmed) { networks.append(network) } else { invalid.append(entry) }
        }
        guard invalid.isEmpty else { throw InvalidTrustedProxies(entries: invalid) }
        self.networks = networks
    }

    func trusts(_ address: IPAddress) -> Bool {
        networks.contains { $0.contains(address) }
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For` values (in
    /// header order). From the right, every hop added by a trusted proxy is skipped; the
    /// first address a trusted proxy did not add is the client. An entry that is not an
    /// address stops the walk at the proxy that passed it on.
    func clientAddress(peer: String?, forwardedFor: [String]) -> IPAddress? {
        guard let peerText = peer, let peerAddress = IPAddress(Substring(peerText)) else { return nil }
        guard !networks.isEmpty, trusts(peerAddress), !forwardedFor.isEmpty else { return peerAddress }
        var client = peerAddress
        var hops = 0
        for value in forwardedFor.reversed() {
            for entry in value.split(separator: ",").reversed() {
                guard hops < Self.maxHops, let address = IPAddress(entry.trimmingSpaces) else { return client }
                hops += 1
                client = address
                if !trusts(address) { return client }
            }
        }
        return client
    }
}

struct InvalidTrustedProxies: Error, Sendable, CustomStringConvertible {
    var entries: [String]
    var description: String {
        "trusted proxies must be IP addresses or CIDR ranges (e.g. 10.0.0.0/8); not: \(entries.joined(separator: ", "))"
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}
