// The WasmKit engine: see issue 2.
