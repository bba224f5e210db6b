#if canImport(Glibc)
import Glibc
#endif

/// File descriptors this process may hold after raising the soft limit to the hard one.
enum FileDescriptorLimit {
    /// Descriptors kept back for the event loops, /proc reads and stdio.
    static let reserved = 64

    static func raiseToHardLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(clamping: limit.rlim_cur)
    }

    static func maxConnections(limit: Int) -> Int { max(limit - reserved, 0) }
}
