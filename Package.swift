// swift-tools-version: 6.1
//
// The targets draw the pipeline, and dependencies point one way:
//
//   guest module -> PeonEngine (protocol) <- PeonEngineWasmKit / PeonEngineWasmtime
//                -> PeonWASI (the sandboxed WASI preview1, written against PeonEngine)
//                -> PeonABI (canonical ABI lifting/lowering, written against PeonEngine)
//                -> PeonMediator (resource -> PeonPolicy -> rate -> approval -> PeonAudit -> capability)
//                -> PeonRuntime (binds `peon:host` imports to the mediator, runs a module, supervises it)
//                -> peon-wasm (the command-line tool)
//
// No engine type leaves its engine target. The capabilities (fs, http, db, exec) live inside PeonMediator
// with internal access, so nothing but the mediator can construct or call one: that is enforced by the
// compiler, not by convention. PeonInterface holds the guest interface and the typed resources (paths,
// URLs, programs, tables) that policy, audit and capabilities share.
//
// Linux only: the capabilities use Linux system calls (openat with O_PATH, pidfd, namespaces, xattr)
// whose constants come from C headers through CPeonSupport, so no platform list claims macOS.

import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "peon-wasm",
    products: [
        .executable(name: "peon-wasm", targets: ["PeonCLI"]),
        .library(name: "PeonRuntime", targets: ["PeonRuntime"]),
        .library(name: "PeonPolicy", targets: ["PeonPolicy"]),
        .library(name: "PeonAudit", targets: ["PeonAudit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/swiftwasm/WasmKit", exact: "0.4.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", exact: "0.12.1"),
        // Named so PeonMCP can use its Logger type (the MCP Transport protocol requires one); the MCP SDK
        // depends on it already.
        .package(url: "https://github.com/apple/swift-log.git", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        // Named because our targets import their modules directly (HTTP types, event loops, TLS), not only
        // through async-http-client and postgres-nio.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // MARK: Engine
        .target(
            name: "PeonEngine",
            // WasmParser (no engine) reads the memories and tables a module declares, so both engines
            // charge them against one memory budget.
            dependencies: [.product(name: "WasmParser", package: "WasmKit")],
            swiftSettings: strict),
        .target(
            name: "PeonEngineWasmKit",
            dependencies: [
                "PeonEngine",
                .product(name: "WasmKit", package: "WasmKit"),
                .product(name: "WasmParser", package: "WasmKit"),
            ],
            swiftSettings: strict),
        .target(
            name: "CWasmtime",
            linkerSettings: [.linkedLibrary("dl")]),
        .target(
            name: "PeonEngineWasmtime",
            dependencies: ["PeonEngine", "CWasmtime", "PeonSystem", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .target(
            name: "PeonWASI",
            dependencies: ["PeonEngine", "PeonSystem"],
            swiftSettings: strict),

        // MARK: Guest interface
        .target(
            name: "PeonABI",
            dependencies: ["PeonEngine"],
            swiftSettings: strict),

        // MARK: Decisions and records (pure libraries)
        .target(
            name: "PeonPolicy",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .target(
            name: "PeonAudit",
            dependencies: ["PeonSystem", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),

        // MARK: Doors to the world
        .target(
            name: "PeonInterface",
            swiftSettings: strict),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        .target(
            name: "PeonMediator",
            dependencies: [
                "PeonInterface", "PeonPolicy", "PeonAudit", "CSQLite", "CPeonSupport", "PeonSystem",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict),

        // MARK: The fleet store (PostgreSQL): policy rows and the central audit table. Only this target
        // sees NIO and PostgresNIO; it plugs into the mediator's and the runtime's store protocols.
        .target(
            name: "PeonPostgres",
            dependencies: [
                "PeonMediator", "PeonPolicy", "PeonAudit", "PeonRuntime", "PeonInterface",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // MARK: Running modules
        .target(name: "CPeonSupport"),
        // The system-call loops (EINTR, write-all) and hex encoding every layer uses, once, with package access.
        .target(name: "PeonSystem", swiftSettings: strict),
        .target(
            name: "PeonRuntime",
            dependencies: [
                "PeonEngine", "PeonEngineWasmKit", "PeonEngineWasmtime", "PeonWASI", "PeonABI", "PeonInterface",
                "PeonMediator", "PeonAudit", "CPeonSupport", "PeonSystem",
                .product(name: "WAT", package: "WasmKit"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .target(
            name: "PeonMCP",
            dependencies: [
                "PeonRuntime", "PeonMediator", "PeonInterface", "PeonAudit", "PeonSystem",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "PeonCLI",
            dependencies: [
                "PeonRuntime", "PeonMCP", "PeonPolicy", "PeonAudit", "PeonMediator", "PeonInterface", "PeonEngine", "PeonEngineWasmKit", "PeonEngineWasmtime",
                "PeonPostgres", "PeonSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),

        // MARK: Benchmarks (Benchmarks/run.sh builds PeonBench in release mode). A target of this package, so it
        // measures the internals one by one through `package` access.
        // SQLite itself, for the native twin of db.query / db.execute.
        .systemLibrary(name: "CSQLiteBench", path: "Benchmarks/Sources/CSQLiteBench"),
        // glibc's malloc statistics, for memory per live instance.
        .systemLibrary(name: "CMallocInfo", path: "Benchmarks/Sources/CMallocInfo"),
        .executableTarget(
            name: "PeonBench",
            dependencies: [
                "PeonRuntime", "PeonPolicy", "PeonAudit", "PeonMediator", "PeonInterface", "PeonEngine",
                "PeonEngineWasmKit", "PeonEngineWasmtime", "PeonABI", "CSQLiteBench", "CMallocInfo",
                .product(name: "WAT", package: "WasmKit"),
            ],
            path: "Benchmarks/Sources/PeonBench",
            swiftSettings: strict),

        // MARK: Fuzzing (Fuzz/run.sh builds each target with libFuzzer and AddressSanitizer, which supply `main`;
        // in the ordinary build each target's own `main` replays the input files named on its command line).
        .target(name: "FuzzReplay", path: "Fuzz/Replay", swiftSettings: strict),
        .executableTarget(
            name: "FuzzGrants", dependencies: ["PeonMediator", "PeonPolicy", "FuzzReplay"],
            path: "Fuzz/Sources/FuzzGrants", swiftSettings: strict),
        .executableTarget(
            name: "FuzzPolicy", dependencies: ["PeonMediator", "PeonPolicy", "FuzzReplay"],
            path: "Fuzz/Sources/FuzzPolicy", swiftSettings: strict),
        .executableTarget(
            name: "FuzzAudit", dependencies: ["PeonAudit", "FuzzReplay"],
            path: "Fuzz/Sources/FuzzAudit", swiftSettings: strict),
        .executableTarget(
            name: "FuzzLift", dependencies: ["PeonABI", "PeonEngine", "FuzzReplay"],
            path: "Fuzz/Sources/FuzzLift", swiftSettings: strict),
        .executableTarget(
            name: "FuzzResource", dependencies: ["PeonInterface", "FuzzReplay"],
            path: "Fuzz/Sources/FuzzResource", swiftSettings: strict),

        // MARK: Tests (one test target per source target that has tests, named after it)
        .target(
            name: "PeonTestSupport",
            dependencies: [
                "PeonEngine", "PeonEngineWasmKit", "PeonEngineWasmtime", .product(name: "WAT", package: "WasmKit"),
            ],
            path: "Tests/PeonTestSupport",
            swiftSettings: strict),
        .testTarget(
            name: "PeonEngineTests",
            dependencies: ["PeonEngine", "PeonTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "PeonEngineWasmtimeTests",
            dependencies: ["PeonEngine", "PeonEngineWasmtime", "PeonTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "PeonWASITests",
            dependencies: ["PeonEngine", "PeonWASI", "PeonTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "PeonABITests",
            dependencies: ["PeonABI", "PeonEngine", "PeonTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "PeonPolicyTests",
            dependencies: ["PeonPolicy"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict),
        .testTarget(
            name: "PeonAuditTests",
            dependencies: ["PeonAudit", "PeonSystem", .product(name: "Crypto", package: "swift-crypto")],
            resources: [.copy("Vectors")],
            swiftSettings: strict),
        .testTarget(
            name: "PeonMediatorTests",
            dependencies: ["PeonMediator", "PeonInterface", "PeonAudit", "PeonPolicy", "CSQLite", "CPeonSupport", "PeonTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "PeonRuntimeTests",
            dependencies: [
                "PeonRuntime", "PeonABI", "PeonEngine", "PeonEngineWasmKit", "PeonInterface", "PeonMediator", "PeonAudit",
                "PeonTestSupport", "CPeonSupport",
            ],
            exclude: ["Guests"],
            swiftSettings: strict),
        // The suites below run the built `peon-wasm` (PeonTestSupport finds it beside the test bundle), hence PeonCLI.
        .testTarget(
            name: "PeonMCPTests",
            dependencies: ["PeonTestSupport", "PeonCLI", "PeonMCP"],
            exclude: ["MCP"],
            swiftSettings: strict),
        .testTarget(
            name: "PeonPostgresTests",
            dependencies: ["PeonTestSupport", "PeonCLI", "PeonPostgres"],
            swiftSettings: strict),
        .testTarget(
            name: "PeonCLITests",
            dependencies: ["PeonTestSupport", "PeonCLI"],
            exclude: ["Components"],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
