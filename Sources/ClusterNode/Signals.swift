import Dispatch
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Suspends until SIGTERM or SIGINT, so the node can say goodbye to the cluster
/// (adapter close) instead of leaving peers to wait for a heartbeat timeout.
func waitForTerminationSignal() async {
    let pending = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
    var sources: [any DispatchSourceSignal] = []
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        pending.withLockedValue { $0 = continuation }
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                // Whichever signal comes first resumes; later ones find nothing to resume.
                pending.withLockedValue { waiting in
                    waiting?.resume()
                    waiting = nil
                }
            }
            source.resume()
            sources.append(source)
        }
    }
    for source in sources { source.cancel() }
}
