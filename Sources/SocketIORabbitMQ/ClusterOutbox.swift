import DequeModule

/// The ordered, bounded buffer of cluster messages that are not yet confirmed by the broker.
///
/// A message stays here from `enqueue` until the broker confirms it, so a connection lost
/// between publish and confirm costs nothing: every unconfirmed message is published again,
/// in the original order, once the connection is back, and receivers drop the copies that had
/// already arrived (by origin and sequence, see `ClusterDuplicateFilter`).
///
/// A pure state machine: it never does I/O and never reads a clock. Publish numbers are the
/// 1-based count of publishes on the current channel, which is what a confirm-mode channel
/// uses as delivery tags.
struct ClusterOutbox<Item: Sendable>: Sendable {
    struct Entry: Sendable {
        let item: Item
        /// When it was enqueued (caller's monotonic nanoseconds), for publish latency.
        let enqueuedAtNanoseconds: UInt64
    }

    enum EnqueueOutcome: Sendable {
        /// Connected: publish it now with this publish number.
        case publish(Item, publishNumber: UInt64)
        /// Not connected: held until `connectionRestored`.
        case held
        /// Held, and the oldest message was thrown away to make room.
        case heldDroppingOldest(dropped: Item)
        /// The outbox was full and the policy refuses new messages; nothing was queued.
        case rejected
    }

    let capacity: Int
    let overflowPolicy: OutboxOverflowPolicy

    /// Published on the current channel, oldest first, waiting for a confirm.
    private var unconfirmed: Deque<(publishNumber: UInt64, entry: Entry)> = []
    /// Not published on the current channel yet, oldest first.
    private var waiting: Deque<Entry> = []
    private var lastPublishNumber: UInt64 = 0
    private(set) var isConnected: Bool = false
    /// Messages thrown away or refused because the outbox was full, since creation.
    private(set) var overflowCount: UInt64 = 0

    init(capacity: Int, overflowPolicy: OutboxOverflowPolicy) {
        // `RabbitMQAdapterOptions.validate` refuses 0 at start; here it counts as 1, not a trap.
        self.capacity = max(capacity, 1)
        self.overflowPolicy = overflowPolicy
    }

    /// Everything not yet confirmed: what a broker outage would have to carry over.
    var count: Int { unconfirmed.count + waiting.count }
    var unconfirmedCount: Int { unconfirmed.count }

    /// When the oldest message not yet confirmed was enqueued (nil: the outbox is empty).
    /// Each deque is oldest first; a nacked message sits behind `waiting` until the adapter
    /// republishes (which puts it in front again), and meanwhile is not counted here.
    var oldestEnqueuedAtNanoseconds: UInt64? {
        [unconfirmed.first?.entry.enqueuedAtNanoseconds, waiting.first?.enqueuedAtNanoseconds].compactMap { $0 }.min()
    }

    mutating func enqueue(_ item: Item, nowNanoseconds: UInt64) -> EnqueueOutcome {
        let entry = Entry(item: item, enqueuedAtNanoseconds: nowNanoseconds)
        var dropped: Item?
        if count >= capacity {
            switch overflowPolicy {
            case .rejectNew:
                overflowCount += 1
                return .rejected
            case .dropOldest:
                overflowCount += 1
                // The oldest is on the wire already if anything is unconfirmed; forgetting it
                // only gives up the chance to re-send it.
                dropped = unconfirmed.popFirst()?.entry.item ?? waiting.popFirst()?.item
            }
        }
        if isConnected && waiting.isEmpty {
            lastPublishNumber += 1
            unconfirmed.append((lastPublishNumber, entry))
            return .publish(item, publishNumber: lastPublishNumber)
        }
        waiting.append(entry)
        if let dropped { return .heldDroppingOldest(dropped: dropped) }
        return .held
    }

    /// The broker confirmed `publishNumber` (and, if `multiple`, every earlier one).
    /// Returns the confirmed entries, oldest first.
    mutating func confirm(publishNumber: UInt64, multiple: Bool) -> [Entry] {
        var confirmed: [Entry] = []
        if multiple {
            while let first = unconfirmed.first, first.publishNumber <= publishNumber {
                confirmed.append(unconfirmed.removeFirst().entry)
            }
        } else if let index = unconfirmed.firstIndex(where: { $0.publishNumber == publishNumber }) {
            confirmed.append(unconfirmed.remove(at: index).entry)
        }
        return confirmed
    }

    /// The broker refused a message (basic.nack): it is published again at the next
    /// `connectionRestored`. Ordering with later messages is lost for it, which a nack
    /// (an internal broker error) makes acceptable.
    mutating func reject(publishNumber: UInt64, multiple: Bool) {
        var rejected: [Entry] = []
        if multiple {
            while let first = unconfirmed.first, first.publishNumber <= publishNumber {
                rejected.append(unconfirmed.removeFirst().entry)
            }
        } else if let index = unconfirmed.firstIndex(where: { $0.publishNumber == publishNumber }) {
            rejected.append(unconfirmed.remove(at: index).entry)
        }
        waiting.append(contentsOf: rejected)
    }

    /// The channel is gone: nothing more will be confirmed on it. Unconfirmed messages go
    /// back in front of the waiting ones, keeping their order.
    mutating func connectionLost() {
        isConnected = false
        lastPublishNumber = 0
        let requeued = unconfirmed.map(\.entry)
        unconfirmed.removeAll()
        waiting.insert(contentsOf: requeued, at: 0)
    }

    /// A new confirm-mode channel is ready. Returns every held message, oldest first, with
    /// its publish number on the new channel; the caller publishes them in this order
    /// before anything newer (`enqueue` keeps new ones behind while any are waiting).
    mutating func connectionRestored() -> [(item: Item, publishNumber: UInt64)] {
        isConnected = true
        lastPublishNumber = 0
        var toPublish: [(item: Item, publishNumber: UInt64)] = []
        toPublish.reserveCapacity(waiting.count)
        while let entry = waiting.popFirst() {
            lastPublishNumber += 1
            unconfirmed.append((lastPublishNumber, entry))
            toPublish.append((entry.item, lastPublishNumber))
        }
        return toPublish
    }
}
