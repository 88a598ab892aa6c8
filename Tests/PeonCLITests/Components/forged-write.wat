;; Calls the forged fs.write(path, data) -> u32 with the input as the path and "forged" as the data.
;; A host that ran the call before noticing the result type would create the file.
(module
  (import "peon:host/fs@0.1.0" "write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "forged")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.add (local.get 3) (i32.const 8))))
    (local.get $p))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (drop (call $write (local.get $ptr) (local.get $len) (i32.const 64) (i32.const 6)))
    (i32.store8 (i32.const 32) (i32.const 0))
    (i32.store (i32.const 36) (i32.const 0))
    (i32.store (i32.const 40) (i32.const 0))
    (i32.const 32)))
