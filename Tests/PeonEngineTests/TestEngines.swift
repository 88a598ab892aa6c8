import PeonEngine
import PeonEngineWasmKit

/// An engine under test, made fresh per test with or without fuel metering.
struct EngineUnderTest: CustomTestStringConvertible, Sendable {
    let name: String
    let make: @Sendable (_ fuelMetering: Bool) throws -> any WasmEngine

    var testDescription: String { name }
}

/// Every engine the conformance suite runs against. An engine whose library is absent on this
/// machine is left out here and reported by its own suite.
enum TestEngines {
    static var all: [EngineUnderTest] {
        [EngineUnderTest(name: "wasmkit") { WasmKitEngine(fuelMetering: $0) }]
    }
}

import Testing
