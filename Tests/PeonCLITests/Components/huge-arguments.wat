;; run(input) calls peon:host/fs write with a 20 MiB argument at 1 MiB in memory, and answers ok(""),
;; or err(the host's message):
;; - input "list": write("out.txt", 20 MiB list<u8>). wasmtime itself refuses to lift it: its hostcall
;;   fuel (128 MiB per call, 48 bytes per list element) traps the call before the host sees it.
;; - any other input: write(20 MiB string, []), twice. wasmtime lifts the string (1 fuel per byte); the
;;   host must then refuse it by the component's 16 MiB per-call byte limit, before copying or deciding
;;   it, and count each refused call against the host-call quota.
(module
  (import "peon:host/fs@0.1.0" "write" (func $write (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "out.txt")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.const 1048576)) (then unreachable))
    (local.get $p))
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    ;; 1 MiB + 20 MiB + 1 MiB of pages.
    (if (i32.eq (memory.grow (i32.const 351)) (i32.const -1)) (then unreachable))
    (if (i32.eq (local.get $len) (i32.const 4))
      (then (call $write (i32.const 64) (i32.const 7) (i32.const 1048576) (i32.const 20971520) (i32.const 16)))
      (else (call $write (i32.const 1048576) (i32.const 20971520) (i32.const 0) (i32.const 0) (i32.const 16))
            (call $write (i32.const 1048576) (i32.const 20971520) (i32.const 0) (i32.const 0) (i32.const 16))))
    (i32.store8 (i32.const 32) (i32.load8_u (i32.const 16)))
    (if (i32.eqz (i32.load8_u (i32.const 16)))
      (then (i32.store (i32.const 36) (i32.const 0))
            (i32.store (i32.const 40) (i32.const 0)))
      (else (i32.store (i32.const 36) (i32.load (i32.const 24)))
            (i32.store (i32.const 40) (i32.load (i32.const 28)))))
    (i32.const 32)))
