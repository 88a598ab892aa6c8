;; Calls the forged fs.remove(path) with no result on its input path.
(module
  (import "peon:host/fs@0.1.0" "remove" (func $remove (param i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get 3)))
    (local.get $p))
  (func (export "run") (param i32 i32) (result i32)
    (call $remove (local.get 0) (local.get 1)) (i32.const 0)))
