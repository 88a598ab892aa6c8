// swift-tools-version: 6.1
// A standalone benchmark package, so the main package's build and tests never include it.
// Run: cd Benchmarks/casbin && swift run -c release PolicyBench /tmp/policy-bench && python3 bench.py /tmp/policy-bench
import PackageDescription

let package = Package(
    name: "casbin-bench",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../..")],
    targets: [
        .executableTarget(
            name: "PolicyBench",
            dependencies: [.product(name: "PeonPolicy", package: "peon-wasm")],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("InternalImportsByDefault")]),
    ],
    swiftLanguageModes: [.v6])
