import ArgumentParser

@main
struct SIOBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sio-bench",
        abstract: "Load generator for Socket.IO v5 servers speaking the chat protocol (emit `message` with a string, receive `message` {text, date}).",
        discussion: "Every scenario prints a human summary and, as its last line, one JSON object with only measured values.",
        subcommands: [IdleScenario.self, FanoutScenario.self, ClusterScenario.self, ConnectStormScenario.self, RecoverStormScenario.self, CrashStormScenario.self, ChurnScenario.self, PollingCodecScenario.self]
    )
}
