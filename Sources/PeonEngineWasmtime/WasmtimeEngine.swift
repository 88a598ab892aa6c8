// The wasmtime engine, loaded at run time: see issue 8.
