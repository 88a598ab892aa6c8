;; hello: the smallest WASI command. It prints "hello, NAME" for its first argument (or "world"),
;; using only what the sandbox gives every module: its arguments and its stdout.
;;
;;   peon-wasm run modules/hello/hello.wat            -> hello, world
;;   peon-wasm run modules/hello/hello.wat -- peon    -> hello, peon
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)

  ;; 0..8: argc, argv_buf_size; 16..: iovecs; 64..: "hello, "; 80..: "world"; 96..: "\n"
  ;; 1024..: argv pointers; 2048..: argv strings
  (data (i32.const 64) "hello, ")
  (data (i32.const 80) "world")
  (data (i32.const 96) "\n")

  ;; strlen of the NUL-terminated string at $p
  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (if (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 8))
      (then (call $proc_exit (i32.const 1)))))

  (func (export "_start") (local $name i32)
    (if (call $args_sizes_get (i32.const 0) (i32.const 4)) (then (call $proc_exit (i32.const 2))))
    ;; Refuse argument lists that would not fit in the page we set aside for them.
    (if (i32.gt_u (i32.load (i32.const 4)) (i32.const 60000)) (then (call $proc_exit (i32.const 2))))
    (if (i32.gt_u (i32.load (i32.const 0)) (i32.const 250)) (then (call $proc_exit (i32.const 2))))
    (if (call $args_get (i32.const 1024) (i32.const 2048)) (then (call $proc_exit (i32.const 2))))
    (call $write (i32.const 64) (i32.const 7))
    (if (i32.ge_u (i32.load (i32.const 0)) (i32.const 2))
      (then
        (local.set $name (i32.load (i32.const 1028)))
        (call $write (local.get $name) (call $strlen (local.get $name))))
      (else (call $write (i32.const 80) (i32.const 5))))
    (call $write (i32.const 96) (i32.const 1))))
