import CMallocTuning
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// glibc gives every thread that allocates concurrently an arena of its own, up to eight per
/// core. The chat frees on one thread what another allocated (event loops, the Swift
/// concurrency pool, the broker's loop), and memory freed into many arenas is seldom returned:
/// measured with `sio-bench churn` (20 rounds of 2,000 connections, in-memory adapter), the
/// chat's RSS grew 169 bytes per connection cycle with the default and 49 with two arenas, with
/// no object left allocated either way. So the chat keeps one arena per core unless the
/// operator set `MALLOC_ARENA_MAX` (which glibc then reads itself).
enum MallocArenas {
    static func limitToCoreCount() {
        #if canImport(Glibc)
        guard getenv("MALLOC_ARENA_MAX") == nil else { return }
        _ = sio_limit_malloc_arenas(Int32(clamping: max(System.coreCount, 2)))
        #endif
    }
}
