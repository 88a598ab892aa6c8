// swift-tools-version: 6.1
// libFuzzer targets for the parsers of untrusted input. A package of its own, so the main package's
// `swift build`/`swift test` never build them. Build and run: Fuzz/README.md, or Fuzz/run.sh SECONDS.
//
// Adding a target: write Sources/NAME/NAME.swift (one `@_cdecl("LLVMFuzzerTestOneInput")` function) and add one
// line to `fuzzTargets` below; seeds go in corpus/NAME/ (optional).
import PackageDescription

/// Each fuzz target: its name (= its folder under Sources/ and under corpus/) and the peon-wasm products it uses.
let fuzzTargets: [(name: String, products: [String])] = [
    ("FuzzGrants", ["PeonMediator", "PeonPolicy"]),
    ("FuzzPolicy", ["PeonMediator", "PeonPolicy"]),
    ("FuzzAudit", ["PeonAudit"]),
    ("FuzzLift", ["PeonABI", "PeonEngine"]),
    ("FuzzResource", ["PeonInterface"]),
]

let package = Package(
    name: "peon-fuzz",
    dependencies: [.package(name: "peon-wasm", path: "..")],
    targets: fuzzTargets.map { target in
        Target.executableTarget(
            name: target.name,
            dependencies: target.products.map { .product(name: $0, package: "peon-wasm") },
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), .enableUpcomingFeature("InternalImportsByDefault")])
    },
    swiftLanguageModes: [.v6])
