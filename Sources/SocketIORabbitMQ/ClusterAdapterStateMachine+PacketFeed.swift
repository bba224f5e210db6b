/// The namespace's recoverable packets for an observer outside the adapter (the chat's
/// history): live ones as the stream consumer reads them, after the start-up replay.
extension ClusterAdapterStateMachine {
    /// A recoverable packet the live consumer accepted: what the observer gets now.
    mutating func observeLive(_ packet: StreamedPacket) -> [Action] {
        guard var feed = packetFeed else { return [] }
        let now = feed.liveRead(packet)
        packetFeed = feed
        return now.isEmpty ? [] : [.observeRecoverable(now)]
    }

    /// The start-up replay read the stream up to `lastPosition` (nil: nothing): the live
    /// packets that waited for it and come after that position, in order, behind the
    /// deliveries already decided.
    mutating func packetReplayFinished(lastPosition: StreamPosition?) -> [Action] {
        guard var feed = packetFeed else { return [] }
        let waiting = feed.replayFinished(lastPosition: lastPosition)
        packetFeed = feed
        var actions: [Action] = waiting.isEmpty ? [] : [.observeRecoverable(waiting)]
        if feed.droppedWhileReplaying > 0 { actions.insert(.log(.observerBacklogDropped(feed.droppedWhileReplaying)), at: 0) }
        return inOrder(actions)
    }
}
