// swift-tools-version:6.0
import PackageDescription

// Module map (see docs/ARCHITECTURE.md):
//   EngineIO -> SocketIO -> SocketIONIO (HTTP + WebSocket binding on raw SwiftNIO)
//   AMQPProtocol -> AMQPClient
//   SocketIO + AMQPClient -> SocketIORabbitMQ
//   executables on top: sio-conformance, chat, amqp-bench, sio-bench
let package = Package(
    name: "swift-socketio-cluster",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SocketIO", targets: ["EngineIO", "SocketIO", "SocketIONIO"]),
        .library(name: "AMQPClient", targets: ["AMQPProtocol", "AMQPClient"]),
        .executable(name: "sio-conformance", targets: ["SIOConformance"]),
        .executable(name: "amqp-bench", targets: ["AMQPBench"]),
        .executable(name: "sio-bench", targets: ["SIOBench"]),
        .library(name: "SocketIORabbitMQ", targets: ["SocketIORabbitMQ"]),
        .executable(name: "sio-cluster-node", targets: ["ClusterNode"]),
        .executable(name: "chat", targets: ["Chat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/swift-extras/swift-extras-base64", from: "1.2.0"),
    ],
    targets: [
        // MARK: Socket.IO server
        .target(
            name: "EngineIO",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ExtrasBase64", package: "swift-extras-base64"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "SocketIO",
            dependencies: [
                "EngineIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "SocketIONIO",
            dependencies: [
                "EngineIO", "SocketIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .executableTarget(
            name: "SIOConformance",
            dependencies: [
                "EngineIO", "SocketIO", "SocketIONIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: AMQP 0-9-1 client
        .target(
            name: "AMQPProtocol",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "AMQPClient",
            dependencies: [
                "AMQPProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "AMQPBench",
            dependencies: [
                "AMQPClient", "AMQPProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        // MARK: Socket.IO load generator
        .executableTarget(
            name: "SIOBench",
            dependencies: [
                "EngineIO", "SocketIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Atomics", package: "swift-atomics"),
            ]
        ),

        // MARK: Cluster adapter
        .target(
            name: "SocketIORabbitMQ",
            dependencies: [
                "EngineIO", "SocketIO", "AMQPProtocol", "AMQPClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .executableTarget(
            name: "ClusterNode",
            dependencies: [
                "EngineIO", "SocketIO", "SocketIONIO", "SocketIORabbitMQ",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: Chat application
        .target(name: "ChatCore"),
        .target(name: "CMallocTuning"),
        .executableTarget(
            name: "Chat",
            dependencies: [
                "ChatCore", "CMallocTuning", "EngineIO", "SocketIO", "SocketIONIO", "SocketIORabbitMQ", "AMQPClient", "AMQPProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // MARK: Tests
        .testTarget(name: "EngineIOTests", dependencies: ["EngineIO"]),
        .testTarget(
            name: "SocketIOTests",
            dependencies: [
                "SocketIO", "EngineIO",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SocketIONIOTests",
            dependencies: [
                "SocketIONIO", "SocketIO", "EngineIO",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ChatCoreTests", dependencies: ["ChatCore"]),
        .testTarget(name: "AMQPProtocolTests", dependencies: ["AMQPProtocol"]),
        .testTarget(
            name: "SocketIORabbitMQTests",
            dependencies: ["SocketIORabbitMQ", "SocketIO", "EngineIO", .product(name: "DequeModule", package: "swift-collections")]
        ),
        .testTarget(
            name: "AMQPClientTests",
            dependencies: [
                "AMQPClient", "AMQPProtocol",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(name: "SIOBenchTests", dependencies: ["SIOBench"]),
    ]
)
