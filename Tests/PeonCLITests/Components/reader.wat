;; A component agent in WAT: run(path) reads the file through peon:host/fs read and answers its
;; contents (ok) or the host's error message (err). Built into a component at test time with
;; wasm-tools component embed/new against wit/ (world agent).
(module
  (import "peon:host/fs@0.1.0" "read" (func $read (param i32 i32 i32)))
  (import "peon:host/log@0.1.0" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 64) "reading")
  ;; A bump allocator that grows memory when it must.
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (local.set $end (i32.add (local.get $p) (local.get 3)))
    (block $fits
      (br_if $fits (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
      (br_if $fits (i32.ne (memory.grow (i32.add (i32.shr_u (local.get $end) (i32.const 16)) (i32.const 1))) (i32.const -1)))
      unreachable)
    (global.set $heap (local.get $end))
    (local.get $p))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (call $log (i32.const 1) (i32.const 64) (i32.const 7))
    ;; fs.read's return area at 16 (16 bytes); run's result at 32 (12 bytes).
    (call $read (local.get $ptr) (local.get $len) (i32.const 16))
    (i32.store8 (i32.const 32) (i32.load8_u (i32.const 16)))
    (if (i32.eqz (i32.load8_u (i32.const 16)))
      (then (i32.store (i32.const 36) (i32.load (i32.const 20)))
            (i32.store (i32.const 40) (i32.load (i32.const 24))))
      (else (i32.store (i32.const 36) (i32.load (i32.const 24)))
            (i32.store (i32.const 40) (i32.load (i32.const 28)))))
    (i32.const 32))
)
