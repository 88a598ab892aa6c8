import PeonEngine
import PeonEngineWasmtime
import PeonTestSupport
import Testing

@Suite struct WasmtimeSmokeTests {
    @Test func addWorks() throws {
        let engine = try WasmtimeEngine.load(cacheDirectory: nil)
        let module = try engine.compile(try wasm("(module (func (export \"add\") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))"))
        let instance = try module.instantiate([], limits: ResourceLimits())
        #expect(try instance.call("add", [.i32(2), .i32(3)]) == [.i32(5)])
    }
}
