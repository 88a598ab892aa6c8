;; Test tool: sleeps 10 ms at a time (WASI poll_oneoff on the monotonic clock) forever, so only its
;; deadline or a cancellation ends it.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
  (func (export "run") (param i32 i32) (result i32)
    ;; subscription at 256: userdata @0 = 0, tag @8 = 0 (clock), clock id @16 = 1 (monotonic),
    ;; timeout @24 = 10 ms in ns, precision @32 = 0, flags @40 = 0 (relative)
    (i32.store8 (i32.const 264) (i32.const 0))
    (i32.store (i32.const 272) (i32.const 1))
    (i64.store (i32.const 280) (i64.const 10000000))
    (loop $forever
      (drop (call $poll (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 600)))
      (br $forever))
    (i32.const 0))
  (func (export "cabi_post_run") (param i32)))
