import ArgumentParser
import NIOCore

/// Options every scenario shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("url"), help: "Server URL, http://host:port[/path/]. Repeat to spread clients over several nodes.")
    var urls: [String] = ["http://127.0.0.1:3000"]

    @Option(name: .customLong("server-pid"), help: "Server process to sample CPU and RSS of (/proc). Repeatable.")
    var serverPIDs: [Int32] = []

    @Option(help: "Name of the server under test, copied into the JSON line.")
    var label: String?

    @Option(help: "Event loop threads of the bench (default: one per core).")
    var threads: Int = System.coreCount

    @Option(name: .customLong("connect-rate"), help: "Connections opened per second while ramping up (0 = no pacing).")
    var connectRate: Double = 2000

    @Option(name: .customLong("max-in-flight"), help: "Most handshakes pending at once while ramping up.")
    var maxInFlight: Int = 500

    @Option(name: .customLong("connect-timeout-ms"), help: "A connection not joined to / within this time counts as failed.")
    var connectTimeoutMs: Int64 = 10_000

    @Option(name: .customLong("protocol"), help: "Server events to use: chat (message -> message {text,date}) or conformance (join + broadcast of the sio-conformance fixture).")
    var wire: BenchProtocol = .chat

    func targets() throws -> [ServerTarget] {
        var targets: [ServerTarget] = []
        for url in urls {
            do throws(BenchUsageError) {
                targets.append(try ServerTarget(url: url))
            } catch {
                throw ValidationError(error.description)
            }
        }
        return targets
    }

    var connectTimeout: TimeAmount { .milliseconds(connectTimeoutMs) }

    /// How long a ramp of `count` connections may take before we stop waiting.
    func rampTimeout(count: Int) -> TimeAmount {
        let pacing = connectRate > 0 ? Double(count) / connectRate : 0
        return .milliseconds(Int64(pacing * 1000) + connectTimeoutMs + 5_000)
    }
}

extension BenchProtocol: ExpressibleByArgument {}
