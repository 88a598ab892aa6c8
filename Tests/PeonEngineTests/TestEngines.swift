import PeonEngine
import PeonEngineWasmKit
import PeonEngineWasmtime

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
        var engines = [EngineUnderTest(name: "wasmkit") { WasmKitEngine(fuelMetering: $0) }]
        // wasmtime meters fuel in every engine it loads, so the flag does not matter. When wasmtime 50 is
        // not installed it is left out; WasmtimeEngineTests.swift reports the skip with how to install it.
        if let wasmtime = wasmtimeForTests {
            engines.append(EngineUnderTest(name: "wasmtime") { _ in wasmtime })
        }
        return engines
    }
}

import Testing
