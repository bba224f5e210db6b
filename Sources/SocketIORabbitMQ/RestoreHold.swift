/// The live side of a cross-node restore, for one restoring socket: which broadcasts this
/// node must hold back for it until it is connected, and which it must skip because the
/// stream replay already has them. A plain value, tested without a broker.
///
/// Every node answers the restore's marker request in one step: a marker appended to the
/// stream and one sent to this node's queue. A node's records before its stream marker are in
/// the replay (`RecoveryStreamScan` reads up to it); its broadcasts reach this node's queue in
/// the same order as its records reach the stream, so the broadcasts this node handles before
/// that node's queue marker are exactly the replayed ones (or older than the client's offset)
/// and the ones after it are exactly those the replay lacks. This node's own broadcasts are
/// cut the same way, under the adapter lock where its own marker is enqueued.
///
/// While a hold exists the socket gets no live broadcast directly (the adapter leaves it out
/// of the recipients), so nothing reaches it twice or ahead of its replay; `release` hands
/// the held packets over on the socket's loop, in the task that connects it.
public struct RestoreHold: Sendable {
    public let socketId: String
    /// The session's rooms and its own id.
    public let rooms: Set<String>
    public let capacity: Int
    /// When the hold began (an abandoned hold is dropped after a while).
    public let startedAtNanoseconds: UInt64
    /// Offsets of the replayed packets, set once the stream was read up to the markers.
    public var replayedOffsets: Set<String> = []
    /// Nil until the markers were requested: before that, every broadcast is in the replay.
    public private(set) var awaitedNodes: Set<String>?
    private var ownMarkerEnqueued = false
    public private(set) var held: [EncodedPacket] = []
    /// Held packets dropped because `capacity` was reached (reported when released).
    public private(set) var overflow = 0

    public init(socketId: String, rooms: Set<String>, capacity: Int, startedAtNanoseconds: UInt64 = 0) {
        self.socketId = socketId
        self.rooms = rooms.union([socketId])
        self.capacity = capacity
        self.startedAtNanoseconds = startedAtNanoseconds
    }

    /// The markers were requested from `nodes` (the live peers) and this node's own marker
    /// was enqueued, in the same critical section as its later broadcasts.
    public mutating func markersRequested(from nodes: Set<String>) {
        awaitedNodes = nodes
        ownMarkerEnqueued = true
    }

    /// `origin`'s queue marker was handled. Returns true when no marker is awaited any more.
    public mutating func markerArrived(from origin: String) -> Bool {
        awaitedNodes?.remove(origin)
        return markersComplete
    }

    public var markersComplete: Bool { awaitedNodes?.isEmpty ?? false }

    /// Gives up on the markers still awaited (a node died or is cut off): its broadcasts pass
    /// from now on, and `release` drops copies of replayed ones by offset.
    public mutating func stopAwaitingMarkers() {
        if awaitedNodes != nil { awaitedNodes = [] }
    }

    /// A recoverable broadcast from `origin` (this node when `isOwn`) is being delivered on
    /// this node now.
    public mutating func broadcastDelivered(from origin: String, isOwn: Bool, selection: ClusterSocketSelection, packet: EncodedPacket) {
        guard let awaitedNodes else { return }
        let pastMarker = isOwn ? ownMarkerEnqueued : !awaitedNodes.contains(origin)
        guard pastMarker, Self.reaches(selection, rooms: rooms) else { return }
        guard held.count < capacity else {
            overflow += 1
            return
        }
        held.append(packet)
    }

    /// The held packets in arrival order, without those already in the replay (possible only
    /// for nodes whose marker never came).
    public func release(offsetOf: (EncodedPacket) -> String?) -> [EncodedPacket] {
        held.filter { packet in offsetOf(packet).map { !replayedOffsets.contains($0) } ?? true }
    }

    static func reaches(_ selection: ClusterSocketSelection, rooms: Set<String>) -> Bool {
        if !rooms.isDisjoint(with: selection.exceptRooms) { return false }
        return selection.rooms.isEmpty || !rooms.isDisjoint(with: selection.rooms)
    }
}
