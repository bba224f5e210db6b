import AMQPProtocol
import Logging
import NIOCore

/// What a channel's state machine decided, carried out on the socket, the promises and the
/// consumers' sequences.
extension ConnectionCore {
    func run(_ action: ChannelStateMachine.Action, on channel: ChannelCore) {
        switch action {
        case .none:
            break
        case .send(let method):
            handler?.write(.method(channel: channel.id, method))
        case .succeedRPC(let promise, let method):
            promise.succeed(method)
            sendNextRequest(on: channel)
        case .succeedGet(let promise, let content):
            guard case .basicGetOk(let getOk) = content.method else { return }
            getResults[ObjectIdentifier(promise.futureResult)] = content
            promise.succeed(.basicGetOk(getOk))
            sendNextRequest(on: channel)
        case .deliver(let tag, let content):
            guard let sink = channel.consumers[tag], case .basicDeliver(let deliver) = content.method,
                  let publicChannel = publicChannels[channel.id]?.value else { return }
            let message = AMQPMessage(
                body: content.body, properties: content.properties, deliveryTag: deliver.deliveryTag,
                redelivered: deliver.redelivered, exchange: deliver.exchange, routingKey: deliver.routingKey,
                consumerTag: tag, messageCount: nil, channel: publicChannel, channelGeneration: channel.generation)
            sink.onDelivery?(message)
            if sink.batch.isEmpty { sinksWithBatches.append(sink) }
            sink.batch.append(message)
        case .returned(let content):
            guard case .basicReturn(let returned) = content.method else { return }
            let message = AMQPReturnedMessage(
                reason: AMQPCloseReason(replyCode: returned.replyCode, replyText: returned.replyText),
                exchange: returned.exchange, routingKey: returned.routingKey,
                properties: content.properties, body: content.body)
            if channel.returnListeners.isEmpty {
                logger.warning("unroutable mandatory message returned and nobody listens for returns",
                               metadata: ["exchange": "\(returned.exchange)", "routingKey": "\(returned.routingKey)"])
            }
            for listener in channel.returnListeners { listener.yield(message) }
        case .resolveConfirms(let resolved):
            for (promise, outcome) in resolved {
                switch outcome {
                case .confirmed: promise.succeed(())
                case .nacked: promise.fail(AMQPError.publishNacked)
                case .returned(let reason): promise.fail(AMQPError.unroutable(reason))
                }
            }
        case .consumerCancelledByBroker(let tag):
            logger.warning("broker cancelled consumer", metadata: ["consumerTag": "\(tag)"])
            topology.consumerCancelled(tag: tag)
            if let sink = channel.consumers.removeValue(forKey: tag) {
                releaseReads(sink)
                flushBatch(of: sink)
                sink.source.finish(AMQPError.consumerCancelledByBroker(consumerTag: tag))
            }
        case .closed(let error, let replyCloseOk, let failedRPCs, let failedPublishes, let closePromise):
            if replyCloseOk {
                handler?.write(.method(channel: channel.id, .channelCloseOk(ChannelCloseOk())))
            }
            let failure = error ?? .channelClosed
            for promise in failedRPCs { promise.fail(failure) }
            for promise in failedPublishes { promise.fail(failure) }
            closePromise?.succeed(.channelCloseOk(ChannelCloseOk()))
            channel.machine = nil
            let isConnectionLevel: Bool
            switch failure {
            case .connectionLost, .heartbeatTimeout, .connectionClosedByBroker, .protocolViolation:
                isConnectionLevel = true
            default:
                isConnectionLevel = false
            }
            // The broker refused something recovery asked on an application channel (e.g. a consume on
            // a queue that is now exclusive elsewhere): keep the channel and its other consumers for
            // recovery to reopen, instead of ending them all.
            let closedDuringRestore = lifecycle.isRestoring && publicChannels[channel.id] != nil
                && { if case .channelClosedByBroker = failure { true } else { false } }()
            if (isConnectionLevel || closedDuringRestore) && lifecycle.keepsChannelsForRecovery {
                // The channel will be reopened by recovery; its consumers keep their sequences.
                for sink in channel.consumers.values { flushBatch(of: sink) }
                return
            }
            if let error {
                logger.info("channel closed", metadata: ["channel": "\(channel.id)", "error": "\(error)"])
            }
            channel.terminalError = failure
            for sink in channel.consumers.values {
                releaseReads(sink)
                flushBatch(of: sink)
                sink.source.finish(failure)
            }
            channel.consumers.removeAll()
            for listener in channel.returnListeners { listener.finish() }
            channel.returnListeners.removeAll()
            topology.channelClosed(channel.id)
            channels[channel.id] = nil
            publicChannels[channel.id] = nil
        case .protocolViolation(let text):
            logger.error("protocol violation on channel", metadata: ["channel": "\(channel.id)", "detail": "\(text)"])
            socket?.pipeline.fireErrorCaught(AMQPError.protocolViolation(text))
        }
    }

    /// Recovery could not restart this consumer: end its sequence with the broker's reason.
    func consumerLostInRecovery(channelID: UInt16, tag: String, error: AMQPError) {
        topology.consumerCancelled(tag: tag)
        guard let sink = channels[channelID]?.consumers.removeValue(forKey: tag) else { return }
        releaseReads(sink)
        flushBatch(of: sink)
        sink.source.finish(error)
    }

    func flushBatch(of sink: ConsumerSink) {
        guard !sink.batch.isEmpty else { return }
        _ = sink.source.yield(contentsOf: sink.batch)
        sink.batch.removeAll()
    }

    /// basic.get-ok content, parked until the awaiting caller picks it up (keyed by its future).
}
