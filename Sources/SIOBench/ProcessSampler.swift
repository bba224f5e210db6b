#if canImport(Glibc)
import Glibc
#endif

/// CPU time and resident memory of one process, read from `/proc/<pid>/stat` and
/// `/proc/<pid>/status`.
struct ProcessSample: Sendable, Hashable {
    var pid: Int32
    /// User + system CPU time, in clock ticks (`CLK_TCK`, 100 per second on Linux).
    var cpuTicks: UInt64
    var residentKiB: UInt64
}

enum ProcParseError: Error, Hashable {
    case malformedStat
    case missingVmRSS
}

enum ProcParser {
    /// `utime + stime` from a `/proc/<pid>/stat` line. The command name (field 2) sits in
    /// parentheses and may itself contain spaces or parentheses, so fields are counted from
    /// the last `)`.
    static func cpuTicks(fromStat stat: String) throws(ProcParseError) -> UInt64 {
        guard let closing = stat.lastIndex(of: ")") else { throw .malformedStat }
        let rest = stat[stat.index(after: closing)...].split(separator: " ", omittingEmptySubsequences: true)
        // rest[0] is field 3 (state); utime is field 14 and stime field 15.
        guard rest.count > 12, let user = UInt64(rest[11]), let system = UInt64(rest[12]) else { throw .malformedStat }
        return user + system
    }

    /// `VmRSS` in KiB from `/proc/<pid>/status`.
    static func residentKiB(fromStatus status: String) throws(ProcParseError) -> UInt64 {
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            if let first = fields.first, let value = UInt64(first) { return value }
        }
        throw .missingVmRSS
    }
}

enum ProcessSampler {
    static let clockTicksPerSecond: UInt64 = {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? UInt64(ticks) : 100
    }()

    /// `nil` when the process is gone or unreadable; callers report such a server as not measured.
    static func sample(pid: Int32) -> ProcessSample? {
        guard let stat = readFile("/proc/\(pid)/stat"), let status = readFile("/proc/\(pid)/status"),
              let ticks = try? ProcParser.cpuTicks(fromStat: stat),
              let rss = try? ProcParser.residentKiB(fromStatus: status)
        else { return nil }
        return ProcessSample(pid: pid, cpuTicks: ticks, residentKiB: rss)
    }

    static func sampleAll(_ pids: [Int32]) -> [ProcessSample]? {
        var samples: [ProcessSample] = []
        for pid in pids {
            guard let sample = sample(pid: pid) else { return nil }
            samples.append(sample)
        }
        return samples
    }

    private static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// What the servers used between two samples of the same processes.
struct ServerUsage: Sendable, Hashable {
    var cpuMilliseconds: Double
    var residentKiBBefore: UInt64
    var residentKiBAfter: UInt64

    init(before: [ProcessSample], after: [ProcessSample], clockTicksPerSecond: UInt64) {
        let ticks = zip(before, after).reduce(UInt64(0)) { $0 + ($1.1.cpuTicks &- $1.0.cpuTicks) }
        cpuMilliseconds = Double(ticks) * 1000 / Double(clockTicksPerSecond)
        residentKiBBefore = before.reduce(0) { $0 + $1.residentKiB }
        residentKiBAfter = after.reduce(0) { $0 + $1.residentKiB }
    }

    /// Server CPU per 1,000 deliveries; `nil` when nothing was delivered.
    func cpuMillisecondsPerThousand(deliveries: Int) -> Double? {
        deliveries > 0 ? cpuMilliseconds * 1000 / Double(deliveries) : nil
    }

    /// Growth of resident memory per connection, in KiB; `nil` without connections.
    func residentKiBPerConnection(connections: Int) -> Double? {
        guard connections > 0 else { return nil }
        return (Double(residentKiBAfter) - Double(residentKiBBefore)) / Double(connections)
    }
}
