import AMQPProtocol
import NIOCore

/// Publisher-confirm bookkeeping for one channel in confirm mode.
///
/// Sequence numbers are contiguous from 1, so the pending publishes live in an array indexed by
/// `sequenceNumber - firstPendingSequence`: registering, acking one and acking a `multiple` range are
/// all O(1) per message. Out-of-order single acks just leave a hole that is skipped when the head
/// moves past it.
///
/// Returns (basic.return) carry no sequence number, so they are matched by what RabbitMQ's channel
/// does: it handles one channel's publishes strictly in order, sends the return while handling the
/// unroutable publish, and right after that flushes every confirm it has collected, that publish's
/// ack last. Hence, when a return arrives, the publish it belongs to is newer than every publish
/// acked, nacked or returned before it. Ordering alone cannot say which newer one (the acks that
/// follow may mix that flush with the next one), so among those newer pending mandatory publishes
/// the return takes the oldest whose exchange, routing key, properties and body are the returned
/// ones. Only byte-identical messages in flight together could be confused, and those differ in
/// routability only if the bindings changed between them.
struct ConfirmTracker<Waiter> {
    enum Outcome: Equatable {
        case confirmed
        case nacked
        case returned(AMQPCloseReason)
    }

    private struct Entry {
        var waiter: Waiter?
        var mandatory: PublishedContent?
        var returnedReason: AMQPCloseReason?
    }

    /// What a basic.return hands back, kept for mandatory publishes until their ack (the body is
    /// a reference to the caller's buffer, not a copy).
    struct PublishedContent: Equatable {
        var exchange: String
        var routingKey: String
        var properties: AMQPBasicProperties
        var body: ByteBuffer
    }

    private var entries: [Entry] = []
    private var head = 0
    /// Sequence number of `entries[head]`.
    private var firstPendingSequence: UInt64 = 1
    private(set) var nextSequenceNumber: UInt64 = 1
    private(set) var pendingCount = 0
    /// Every publish up to here was acked, nacked or returned: a later return is for a newer one.
    private var returnLowerBound: UInt64 = 0

    init() {}

    /// Registers the next publish; returns its sequence number (the delivery tag the broker will ack).
    mutating func register(_ waiter: Waiter, mandatory: PublishedContent? = nil) -> UInt64 {
        let sequence = nextSequenceNumber
        nextSequenceNumber += 1
        entries.append(Entry(waiter: waiter, mandatory: mandatory))
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
    mutating func markReturned(_ returned: PublishedContent, reason: AMQPCloseReason) -> Bool {
        var index = head
        if returnLowerBound >= firstPendingSequence {
            index += Int(returnLowerBound - firstPendingSequence) + 1
        }
        while index < entries.count {
            if entries[index].waiter != nil, entries[index].returnedReason == nil, entries[index].mandatory == returned {
                entries[index].returnedReason = reason
                entries[index].mandatory = nil
                returnLowerBound = firstPendingSequence + UInt64(index - head)
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
        returnLowerBound = nextSequenceNumber - 1
        pendingCount = 0
        return waiters
    }

    private mutating func resolve(deliveryTag: UInt64, multiple: Bool, isAck: Bool) -> [(Waiter, Outcome)] {
        guard deliveryTag >= firstPendingSequence, deliveryTag < nextSequenceNumber else { return [] }
        returnLowerBound = max(returnLowerBound, deliveryTag)
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
            entries[index].mandatory = nil
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
