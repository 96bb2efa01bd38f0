// swift-tools-version:6.0
import PackageDescription

/// swift-log: every tool and library logs through `Logger` (Platform's `QlustarLogHandler`).
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")

/// Vector kernels are worthless unoptimised: the C targets are always built with -O2, also in debug.
let optimisedC: [CSetting] = [.unsafeFlags(["-O2", "-fno-strict-aliasing"])]

let package = Package(
    name: "ql-mcast",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Transport", targets: ["Transport"]),
        .library(name: "ImageService", targets: ["ImageService"]),
        .executable(name: "ql-mcast", targets: ["ql-mcast"]),
        .executable(name: "ql-mcastd", targets: ["ql-mcastd"]),
        .executable(name: "ql-mcast-client", targets: ["ql-mcast-client"]),
        .executable(name: "qlustar-image", targets: ["qlustar-image"]),
        .executable(name: "qluman", targets: ["qluman"]),
        .executable(name: "qlustar-image-edit", targets: ["qlustar-image-edit"]),
        .executable(name: "qlustar-image-reconfigure", targets: ["qlustar-image-reconfigure"]),
        .executable(name: "qlumand", targets: ["qlumand"]),
        .executable(name: "ql-mcast-capture", targets: ["ql-mcast-capture"]),
        .executable(name: "qluman-execd", targets: ["qluman-execd"]),
        .executable(name: "qlustar-tools", targets: ["qlustar-tools"]),
        .executable(name: "ql-bench", targets: ["ql-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C: GF(2^8) kernels (GFNI / AVX2 / scalar, chosen at run time).
        .target(name: "CQLFEC", path: "Sources/CQLFEC", cSettings: optimisedC),
        // C: what Glibc's overlay lacks (mmsghdr, CMSG_*, UDP GSO/GRO).
        .target(name: "CQLSys", path: "Sources/CQLSys", cSettings: optimisedC),
        // System libraries.
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CNuma", path: "Sources/CNuma", providers: [.apt(["libnuma-dev"])]),
        .systemLibrary(name: "CISAL", path: "Sources/CISAL", providers: [.apt(["libisal-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt", providers: [.apt(["libcrypt-dev"])]),
        .systemLibrary(name: "CPcap", path: "Sources/CPcap", providers: [.apt(["libpcap-dev"])]),

        // The foundation floor, under everything: the POSIX fence, the error type, the --root
        // prefix, files (one atomic publish), SHA-256, the clock, logs, programs run, image names,
        // admission. Imports nothing of ours but the C shims.
        .target(
            name: "Platform",
            dependencies: [
                "CQLSys", "CCrypto", .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Platform"
        ),

        // The engine.
        .target(
            name: "Transport",
            dependencies: [
                "Platform", "CQLFEC", "CQLSys", "CCrypto", "CNuma",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Sources/Transport",
            // Per-packet paths touch class state; the engine is single-threaded per session, so
            // dynamic exclusivity checks cost time (seen in perf) and buy nothing in release.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),

        // Image streaming on the engine: ql-mcastd's catalog and sessions, ql-mcast-client's fetch.
        .target(
            name: "ImageService",
            dependencies: [
                "Platform", logging,
                "Transport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Sources/ImageService"
        ),

        // Image tooling: archives (gzip, newc cpio) and reproducible squashfs, for images built from modules.
        .target(
            name: "ImageTools", dependencies: ["Platform", logging, "Transport", "CZlib", "CZstd", "CCrypt"],
            path: "Sources/ImageTools"),

        // Node configuration: config classes, the files they become (preview = execd), writing them
        // confined to a root, Root FS Customization archives, execd's configure and init.d runs.
        .target(
            name: "NodeConfig",
            dependencies: [
                "Platform", logging,
                "ImageTools", "Transport", .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Sources/NodeConfig"),

        // qlumand's node registry (SQLite through GRDB, or PostgreSQL through PostgresNIO for two
        // head nodes; node tables in CSV and YAML through Yams).
        .target(
            name: "NodeRegistry",
            dependencies: [
                "Platform", "NodeConfig", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Yams", package: "Yams"),
                logging,
            ],
            path: "Sources/NodeRegistry"
        ),

        // Administering many nodes from the head node: power through the BMCs (ipmitool), fan-out.
        .target(
            name: "ClusterAdmin", dependencies: ["Platform", "NodeConfig", "NodeRegistry", "Transport"],
            path: "Sources/ClusterAdmin"),

        // qlumand: the registry served to the nodes' execd over TLS.
        .target(
            name: "QlumanServer",
            dependencies: [
                "Platform", logging,
                "NodeRegistry", "NodeConfig", "ImageService", "Transport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Sources/QlumanServer"
        ),

        // Provisioning: registry → dnsmasq, TFTP tree, pxelinux.cfg.
        .target(
            name: "Provisioning", dependencies: ["Platform", logging, "NodeRegistry"], path: "Sources/Provisioning"),

        // Packet capture diagnostics: libpcap in, sessions decoded and counted.
        .target(name: "Capture", dependencies: ["Platform", "CPcap", "Transport"], path: "Sources/Capture"),

        // Test hosts (network namespaces) for the multi-host tests and the benchmarks.
        .target(name: "LabSupport", path: "Sources/LabSupport"),

        // Tools (thin clients of Transport).
        .target(
            name: "QLMcastTool",
            dependencies: [
                "Platform", "Transport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Sources/Tools/ql-mcast"
        ),
        .executableTarget(name: "ql-mcast", dependencies: ["QLMcastTool"], path: "Sources/Programs/ql-mcast"),

        .target(
            name: "QLMcastdTool",
            dependencies: [
                "Platform",
                "ImageService", "NodeRegistry", "Transport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Tools/ql-mcastd"
        ),
        .executableTarget(name: "ql-mcastd", dependencies: ["QLMcastdTool"], path: "Sources/Programs/ql-mcastd"),
        .executableTarget(
            name: "ql-mcast-client",
            dependencies: [
                "Platform", logging,
                "ImageService", "Transport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Tools/ql-mcast-client",
            // It goes into every node's initrd, fetched by TFTP: one static program, with no Swift
            // runtime, Foundation or ICU beside it (docs/PROVISIONING.md, "The initrd's size").
            linkerSettings: [
                .unsafeFlags([
                    "-static-executable", "-lFoundationEssentials", "-l_FoundationCollections", "-l_FoundationCShims",
                    "-lswiftSynchronization",
                ])
            ]
        ),

        .target(
            name: "QlustarImageTool",
            dependencies: [
                "Platform", logging, "ImageTools", "ImageService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Tools/qlustar-image"
        ),
        .executableTarget(
            name: "qlustar-image", dependencies: ["QlustarImageTool"], path: "Sources/Programs/qlustar-image"),
        .target(
            name: "QlumanTool",
            dependencies: [
                "Platform", logging,
                "NodeRegistry", "Provisioning", "NodeConfig", "QlumanServer", "ClusterAdmin",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Tools/qluman"
        ),
        .executableTarget(name: "qluman", dependencies: ["QlumanTool"], path: "Sources/Programs/qluman"),
        .target(
            name: "QlumandTool",
            dependencies: [
                "Platform",
                "QlumanServer", "NodeConfig", "ImageService", "Transport", "Provisioning",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Tools/qlumand"
        ),
        .executableTarget(name: "qlumand", dependencies: ["QlumandTool"], path: "Sources/Programs/qlumand"),
        .target(
            name: "QLMcastCaptureTool",
            dependencies: ["Platform", "Capture", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/Tools/ql-mcast-capture"
        ),
        .executableTarget(
            name: "ql-mcast-capture", dependencies: ["QLMcastCaptureTool"], path: "Sources/Programs/ql-mcast-capture"),
        .executableTarget(
            name: "qluman-execd",
            dependencies: [
                "Platform", logging, "NodeConfig", "ImageService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Tools/qluman-execd"
        ),
        .target(
            name: "QlustarImageEditTool",
            dependencies: [
                "Platform", logging, "ImageTools", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Tools/qlustar-image-edit"
        ),
        .executableTarget(
            name: "qlustar-image-edit", dependencies: ["QlustarImageEditTool"],
            path: "Sources/Programs/qlustar-image-edit"),
        .target(
            name: "QlustarImageReconfigureTool",
            dependencies: [
                "Platform", logging, "ImageTools", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Tools/qlustar-image-reconfigure"
        ),
        .executableTarget(
            name: "qlustar-image-reconfigure", dependencies: ["QlustarImageReconfigureTool"],
            path: "Sources/Programs/qlustar-image-reconfigure"),

        // The head node's tools as one program (the packages link each tool's name to it).
        .executableTarget(
            name: "qlustar-tools",
            dependencies: [
                "QLMcastTool", "QLMcastdTool", "QlustarImageTool", "QlustarImageEditTool",
                "QlustarImageReconfigureTool", "QlumanTool", "QlumandTool", "QLMcastCaptureTool", "Platform",
            ],
            path: "Sources/Programs/qlustar-tools"),

        // Benchmarks.
        .executableTarget(
            name: "ql-bench",
            dependencies: [
                "Platform", logging,
                "Transport", "ImageService", "ImageTools", "CISAL", "CQLFEC", "LabSupport", "NodeConfig",
                "NodeRegistry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Benchmarks/ql-bench"
        ),

        // What the multi-host tests share (imports XCTest: only test targets depend on it).
        .target(name: "LabTestSupport", dependencies: ["LabSupport"], path: "Tests/LabTestSupport"),
        .testTarget(
            name: "PlatformTests",
            dependencies: ["Platform", "LabTestSupport", .product(name: "Logging", package: "swift-log")],
            path: "Tests/PlatformTests"),
        .testTarget(
            name: "TransportTests",
            dependencies: [
                "Platform", "Transport", "CQLFEC", "LabSupport", "LabTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Tests/TransportTests"
        ),
        .testTarget(
            name: "NodeRegistryTests",
            dependencies: [
                "Platform", logging, "NodeRegistry", "Provisioning", "ImageService", "LabSupport", "LabTestSupport",
            ],
            path: "Tests/NodeRegistryTests"
        ),
        .testTarget(
            name: "NodeConfigTests",
            dependencies: [
                "Platform", logging,
                "NodeConfig", "NodeRegistry", "QlumanServer", "Provisioning", "ImageService", "ImageTools", "Transport",
                "LabSupport",
                "LabTestSupport", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/NodeConfigTests"
        ),
        .testTarget(
            name: "ClusterAdminTests",
            dependencies: ["Platform", "ClusterAdmin", "NodeRegistry", "NodeConfig", "LabSupport", "LabTestSupport"],
            path: "Tests/ClusterAdminTests"),
        .testTarget(
            name: "CaptureTests", dependencies: ["Platform", "Capture", "Transport", "LabSupport", "LabTestSupport"],
            path: "Tests/CaptureTests"),
        .testTarget(
            name: "ImageToolsTests",
            dependencies: ["Platform", logging, "ImageTools", "ImageService", "LabSupport", "LabTestSupport"],
            path: "Tests/ImageToolsTests"
        ),
        .testTarget(
            name: "ImageServiceTests",
            dependencies: [
                "Platform", logging,
                "ImageService", "Transport", "LabSupport", "LabTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/ImageServiceTests"
        ),
    ]
)
