import ArgumentParser
import EngineIO
import NIOCore

/// Throughput of the polling payload codec for binary messages (`b<base64>`), the only place
/// the server does base64: measured in-process, no server involved. Used to choose between a
/// hand-written base64 and swift-extras-base64 (docs/BENCHMARKS.md, "Base64").
struct PollingCodecScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "polling-codec",
        abstract: "Encode and decode polling payloads of binary messages in-process; MB/s each way.")

    @Option(help: "Binary message sizes in bytes.") var sizes: [Int] = [64, 1024, 65_536, 1_048_576]
    @Option(help: "Bytes to push through each direction per size.") var volume = 256 * 1_048_576
    @Option(help: "Runs per size; the best is reported.") var runs = 5
    @Option(help: "Name of the build under test, copied into the JSON line.") var label: String?

    func run() async throws {
        var report = BenchReport(scenario: "polling-codec", label: label)
        for size in sizes where size > 0 {
            var message = ByteBuffer()
            for index in 0..<size { message.writeInteger(UInt8(truncatingIfNeeded: index &* 31 &+ 7)) }
            let packets = [EnginePacket.binaryMessage(message)]
            let iterations = max(1, volume / size)
            let allocator = ByteBufferAllocator()
            var encodeBest = Double.infinity
            var decodeBest = Double.infinity
            var checksum = 0
            let encodedOnce = EnginePacketCodec.encodePayload(packets, allocator: allocator)
            for _ in 0..<max(1, runs) {
                let encodeStart = NIODeadline.now()
                for _ in 0..<iterations {
                    checksum &+= EnginePacketCodec.encodePayload(packets, allocator: allocator).readableBytes
                }
                encodeBest = min(encodeBest, Double((NIODeadline.now() - encodeStart).nanoseconds))
                let decodeStart = NIODeadline.now()
                for _ in 0..<iterations {
                    checksum &+= try EnginePacketCodec.decodePayload(encodedOnce).first?.payload.readableBytes ?? 0
                }
                decodeBest = min(decodeBest, Double((NIODeadline.now() - decodeStart).nanoseconds))
            }
            let megabytes = Double(size * iterations) / 1e6
            let encodeRate = megabytes / (encodeBest / 1e9)
            let decodeRate = megabytes / (decodeBest / 1e9)
            say("\(size) B messages: encode \(formatted(encodeRate, digits: 0)) MB/s, decode \(formatted(decodeRate, digits: 0)) MB/s (checksum \(checksum))")
            report.set("encode_mb_per_s_\(size)", encodeRate)
            report.set("decode_mb_per_s_\(size)", decodeRate)
        }
        print(report.jsonLine)
    }
}
