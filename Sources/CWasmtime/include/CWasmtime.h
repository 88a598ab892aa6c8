// Declarations of the subset of the wasmtime C API that peon-wasm uses, loaded with dlopen: see issue 8.
#ifndef PEON_CWASMTIME_H
#define PEON_CWASMTIME_H
#endif
