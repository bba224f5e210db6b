import Foundation

/// Reads the environment for option defaults.
enum Env {
    static func string(_ name: String) -> String? {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
        return value
    }
    static func int(_ name: String) -> Int? { string(name).flatMap { Int($0) } }
    static func int64(_ name: String) -> Int64? { string(name).flatMap { Int64($0) } }
    static func double(_ name: String) -> Double? { string(name).flatMap { Double($0) } }
}

extension ChatCommand {
    /// A comma-separated option as its non-empty entries.
    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

