/// Publisher-confirm bookkeeping for one channel in confirm mode.
///
/// Sequence numbers are contiguous from 1, so the pending publishes live in an array indexed by
/// `sequenceNumber - firstPendingSequence`: registering, acking one and acking a `multiple` range are
/// all O(1) per message. Out-of-order single acks just leave a hole that is skipped when the head
/// moves past it.
///
/// Returns (basic.return) carry no sequence number. RabbitMQ sends the return of an unroutable
/// mandatory message before its ack, and handles one channel's publishes in order, so we attach a
/// return to the oldest unconfirmed, not-yet-returned mandatory publish with the same exchange and
/// routing key; its later ack then fails it as unroutable.
struct ConfirmTracker<Waiter> {
    enum Outcome: Equatable {
        case confirmed
        case nacked
        case returned(AMQPCloseReason)
    }

    private struct Entry {
        var waiter: Waiter?
        var returnKey: ReturnKey?
        var returnedReason: AMQPCloseReason?
    }

    struct ReturnKey: Hashable {
        var exchange: String
        var routingKey: String
    }

    private var entries: [Entry] = []
    private var head = 0
    /// Sequence number of `entries[head]`.
    private var firstPendingSequence: UInt64 = 1
    private(set) var nextSequenceNumber: UInt64 = 1
    private(set) var pendingCount = 0

    init() {}

    /// Registers the next publish; returns its sequence number (the delivery tag the broker will ack).
    mutating func register(_ waiter: Waiter, mandatoryKey: ReturnKey? = nil) -> UInt64 {
        let sequence = nextSequenceNumber
        nextSequenceNumber += 1
        entries.append(Entry(waiter: waiter, returnKey: mandatoryKey))
        pendingCount += 1
        return sequence
    }

    mutating func ack(deliveryTag: UInt64, multiple: Bool) -> [(Waiter, Outcome)] {
        resolve(deliveryTag: deliveryTag, multiple: multiple, isAck: true)
    }

    mutating func nack(deliveryTag: UInt64, multiple: Bool) -> [(Waiter, Outcome)] {
        resolve(deliveryTag: deliveryTag, multiple: multiple, isAck: false)
    }

    /// Marks the publish a basic.return refers to; it fails once its ack arrives. Returns false when
    /// no pending mandatory publish matches (a return for a publish made without confirms).
    mutating func markReturned(exchange: String, routingKey: String, reason: AMQPCloseReason) -> Bool {
        let key = ReturnKey(exchange: exchange, routingKey: routingKey)
        var index = head
        while index < entries.count {
            if entries[index].waiter != nil, entries[index].returnedReason == nil, entries[index].returnKey == key {
                entries[index].returnedReason = reason
                return true
            }
            index += 1
        }
        return false
    }

    /// The connection or channel died: every pending publish has an unknown outcome.
    mutating func failAll() -> [Waiter] {
        let waiters = entries[head...].compactMap(\.waiter)
        entries.removeAll()
        head = 0
        firstPendingSequence = nextSequenceNumber
        pendingCount = 0
        return waiters
    }

    private mutating func resolve(deliveryTag: UInt64, multiple: Bool, isAck: Bool) -> [(Waiter, Outcome)] {
        guard deliveryTag >= firstPendingSequence, deliveryTag < nextSequenceNumber else { return [] }
        let lastIndex = head + Int(deliveryTag - firstPendingSequence)
        let firstIndex = multiple ? head : lastIndex
        var resolved: [(Waiter, Outcome)] = []
        resolved.reserveCapacity(lastIndex - firstIndex + 1)
        for index in firstIndex...lastIndex {
            guard let waiter = entries[index].waiter else { continue }
            let outcome: Outcome
            if !isAck {
                outcome = .nacked
            } else if let reason = entries[index].returnedReason {
                outcome = .returned(reason)
            } else {
                outcome = .confirmed
            }
            resolved.append((waiter, outcome))
            entries[index].waiter = nil
            pendingCount -= 1
        }
        advanceHead()
        return resolved
    }

    private mutating func advanceHead() {
        while head < entries.count, entries[head].waiter == nil {
            head += 1
            firstPendingSequence += 1
        }
        // Compact once the consumed prefix dominates, so memory stays proportional to what is in flight.
        if head > 1024, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }
}
