;; Imports test:extra/net, which the host does not serve.
(module
  (import "test:extra/net@0.1.0" "connect" (func $connect (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i32)
    (drop (call $connect (local.get 0) (local.get 1))) (i32.const 0)))
