// swift-tools-version: 6.1
// The benchmarks are a package of their own, so the main package's `swift build`/`swift test` never build them.
// Run everything: Benchmarks/run.sh  (writes Benchmarks/RESULTS.md)
import PackageDescription

let package = Package(
    name: "peon-benchmarks",
    dependencies: [
        .package(name: "peon-wasm", path: ".."),
        .package(url: "https://github.com/swiftwasm/WasmKit", exact: "0.4.2"),
    ],
    targets: [
        // SQLite itself, for the native twin of db.query / db.execute.
        .systemLibrary(name: "CSQLiteBench", path: "Sources/CSQLiteBench"),
        // glibc's malloc statistics, for memory per live instance.
        .systemLibrary(name: "CMallocInfo", path: "Sources/CMallocInfo"),
        .executableTarget(
            name: "PeonBench",
            dependencies: [
                .product(name: "PeonRuntime", package: "peon-wasm"),
                .product(name: "PeonPolicy", package: "peon-wasm"),
                .product(name: "PeonAudit", package: "peon-wasm"),
                .product(name: "PeonMediator", package: "peon-wasm"),
                .product(name: "PeonInterface", package: "peon-wasm"),
                .product(name: "PeonEngine", package: "peon-wasm"),
                .product(name: "PeonEngineWasmKit", package: "peon-wasm"),
                .product(name: "PeonEngineWasmtime", package: "peon-wasm"),
                .product(name: "PeonABI", package: "peon-wasm"),
                .product(name: "WAT", package: "WasmKit"),
                "CSQLiteBench",
                "CMallocInfo",
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("InternalImportsByDefault")]),
    ],
    swiftLanguageModes: [.v6])
