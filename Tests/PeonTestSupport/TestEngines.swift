package import PeonEngine
import PeonEngineWasmKit
package import PeonEngineWasmtime
package import Testing

/// The wasmtime engine loaded the way the CLI loads it (explicit path, `PEON_WASMTIME_LIB`, system path,
/// Python package), without a compilation cache; `nil` when wasmtime 50 is not installed.
package let wasmtimeForTests: WasmtimeEngine? = try? WasmtimeEngine.load(cacheDirectory: nil)

/// Why wasmtime tests are skipped, shown in the test output.
package let wasmtimeSkipMessage: Comment = "wasmtime 50 is not installed (pip install wasmtime==50.0.1, or set PEON_WASMTIME_LIB)"

/// An engine under test, made fresh per test with or without fuel metering.
package struct EngineUnderTest: CustomTestStringConvertible, Sendable {
    package let name: String
    /// What the engine must answer for ``WasmEngine/interruptsRunningCode``: the runtime relies on it to decide
    /// whether a worker process has to enforce the deadline on a guest that never calls the host.
    package var interruptsRunningCode = false
    /// Why the engine cannot be made on this machine (its library is absent), or nil when it can.
    package var absence: Comment?
    package let make: @Sendable (_ fuelMetering: Bool) throws -> any WasmEngine

    package var testDescription: String { name }
}

/// Every engine the conformance suite runs against. An engine whose library is absent on this
/// machine is left out here and reported by its own suite.
package enum TestEngines {
    package static var all: [EngineUnderTest] {
        shipped.filter { $0.absence == nil }
    }

    /// Every engine peon-wasm ships, present on this machine or not, for tests that must record an absent engine
    /// as a skip (``EngineUnderTest/absence`` says why) rather than pass without it.
    package static var shipped: [EngineUnderTest] {
        // wasmtime meters fuel in every engine it loads, so the flag does not matter. When wasmtime 50 is not
        // installed it is left out of `all`; WasmtimeEngineTests.swift reports the skip with how to install it.
        [
            EngineUnderTest(name: "wasmkit") { WasmKitEngine(fuelMetering: $0) },
            EngineUnderTest(name: "wasmtime", interruptsRunningCode: true,
                            absence: wasmtimeForTests == nil ? wasmtimeSkipMessage : nil) { _ in
                try #require(wasmtimeForTests, wasmtimeSkipMessage)
            },
        ]
    }
}

