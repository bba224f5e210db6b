import DequeModule

/// Which queued cluster messages the publisher sends together as one AMQP message.
///
/// It takes, in order, the jobs for the destination of the first one. Jobs marked
/// `mayBeReordered` (recovery-stream records: nothing reads them in order with node traffic)
/// may be passed over or taken past other jobs, though never past each other (they share one
/// destination); all other jobs keep their relative order, because a receiving node's
/// duplicate filter relies on each origin's order. Without the exception, stream records
/// interleaved with node traffic (heartbeats, requests, volatile broadcasts) would make
/// batches of one.
enum PublishBatching {
    static func takeBatch<Job>(
        from jobs: inout Deque<Job>, maxMessages: Int, maxBytes: Int,
        destination: (Job) -> String, size: (Job) -> Int, mayBeReordered: (Job) -> Bool
    ) -> [Job] {
        guard let first = jobs.first else { return [] }
        let target = destination(first)
        let firstMayBeReordered = mayBeReordered(first)
        var batch: [Job] = []
        var kept = Deque<Job>()
        var bytes = 0
        var closed = false
        while let job = jobs.popFirst() {
            if !closed, batch.count < maxMessages, destination(job) == target,
               batch.isEmpty || bytes + size(job) <= maxBytes {
                bytes += size(job)
                batch.append(job)
                continue
            }
            // An ordered job left behind may not be overtaken by a later ordered one.
            if !firstMayBeReordered && !mayBeReordered(job) { closed = true }
            kept.append(job)
        }
        jobs = kept
        return batch
    }
}
