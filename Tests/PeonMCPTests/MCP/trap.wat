;; Test tool: traps at once (unreachable).
(module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i32) unreachable)
  (func (export "cabi_post_run") (param i32)))
