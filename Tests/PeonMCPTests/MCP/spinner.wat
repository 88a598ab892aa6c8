;; Test tool: loops forever without a host call, so under wasmkit without fuel neither its deadline
;; nor a cancellation can stop it: only the server's end (SIGTERM) cuts it off.
(module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
  (func (export "run") (param i32 i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0))
  (func (export "cabi_post_run") (param i32)))
