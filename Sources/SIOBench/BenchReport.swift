import SocketIO

/// A scenario's result: human lines as it goes, then one JSON object as the last line of
/// output (what scripts/bench reads). Only measured values go in; a value that could not
/// be measured is `null`, never a guess.
struct BenchReport {
    private(set) var fields = JSONObject()

    init(scenario: String, label: String?) {
        fields["scenario"] = .string(scenario)
        fields["label"] = label.map(JSONValue.string) ?? .null
    }

    mutating func set(_ key: String, _ value: Int) { fields[key] = .number(value) }
    mutating func set(_ key: String, _ value: Double?) {
        fields[key] = value.map { .number(($0 * 1000).rounded() / 1000) } ?? .null
    }
    mutating func set(_ key: String, _ value: String?) { fields[key] = value.map(JSONValue.string) ?? .null }
    mutating func set(_ key: String, _ value: Bool) { fields[key] = .bool(value) }
    mutating func set(_ key: String, _ value: JSONValue) { fields[key] = value }

    mutating func setLatency(_ prefix: String, _ summary: LatencySummary) {
        set("\(prefix)_count", Int(summary.count))
        set("\(prefix)_p50_ms", summary.p50Ms)
        set("\(prefix)_p99_ms", summary.p99Ms)
        set("\(prefix)_p999_ms", summary.p999Ms)
        set("\(prefix)_max_ms", summary.maxMs)
    }

    var jsonLine: String { JSONValue.object(fields).jsonText }
}

func say(_ line: String) {
    print(line)
}

func formatted(_ value: Double?, digits: Int = 1) -> String {
    guard let value else { return "n/a" }
    var text = String(value.rounded(toPlaces: digits))
    if text.hasSuffix(".0"), digits == 0 { text.removeLast(2) }
    return text
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<max(places, 0) { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}
