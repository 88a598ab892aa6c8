// The sandboxed WASI preview1: see issue 2.
