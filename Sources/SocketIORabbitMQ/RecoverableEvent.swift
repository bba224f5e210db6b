import SocketIO

/// A recoverable event of a namespace as the recovery stream holds it: what an observer
/// registered with `RabbitMQCluster.observeRecoverableEvents` gets, once per event, in the
/// stream's order (the order every node delivers them to its clients).
public struct RecoverableEvent: Sendable, Hashable {
    /// The rooms it was emitted to (empty: the whole namespace), and the rooms left out.
    public var rooms: [String]
    public var exceptRooms: [String]
    public var eventName: String
    /// The event's arguments, without the offset the adapter appends for recovery.
    public var arguments: [JSONValue]
    /// The node that emitted it.
    public var origin: String

    public init(rooms: [String], exceptRooms: [String], eventName: String, arguments: [JSONValue], origin: String) {
        self.rooms = rooms
        self.exceptRooms = exceptRooms
        self.eventName = eventName
        self.arguments = arguments
        self.origin = origin
    }

    /// The event a streamed packet carries; nil for one that is not an event (or does not
    /// decode: the stream is input too).
    init?(_ streamed: StreamedPacket) {
        guard let packet = RabbitMQAdapter.decodePacket(streamed.packet), let eventName = packet.eventName else { return nil }
        var arguments = packet.arguments
        if arguments.last?.stringValue == streamed.offset { arguments.removeLast() }
        self.init(rooms: streamed.selection.rooms, exceptRooms: streamed.selection.exceptRooms, eventName: eventName,
                  arguments: arguments, origin: streamed.origin)
    }
}

/// Called on whichever thread reads the stream; it must return quickly (no waiting).
public typealias RecoverableEventObserver = @Sendable (RecoverableEvent) -> Void
