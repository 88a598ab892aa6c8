;; peon:host test guest: calls every function of the world `agent` following the canonical ABI.
;; Generated layout: constant strings live in 32-byte slots from 0x100; each call has its own
;; return area from 0x800 so the host test can inspect every lowered result after `run`.
;; Check it against the WIT with Guests/check-components.sh.
(module
  (import "peon:host/log@0.1.0" "log" (func $log (param i32 i32 i32)))
  (import "peon:host/fs@0.1.0" "read" (func $read (param i32 i32 i32)))
  (import "peon:host/fs@0.1.0" "write" (func $write (param i32 i32 i32 i32 i32)))
  (import "peon:host/fs@0.1.0" "append" (func $append (param i32 i32 i32 i32 i32)))
  (import "peon:host/fs@0.1.0" "read-dir" (func $read_dir (param i32 i32 i32)))
  (import "peon:host/fs@0.1.0" "remove" (func $remove (param i32 i32 i32)))
  (import "peon:host/http@0.1.0" "send" (func $send (param i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "peon:host/db@0.1.0" "query" (func $query (param i32 i32 i32 i32 i32 i32 i32)))
  (import "peon:host/db@0.1.0" "execute" (func $execute (param i32 i32 i32 i32 i32 i32 i32)))
  (import "peon:host/exec@0.1.0" "run" (func $exec (param i32 i32 i32 i32 i32 i32 i32)))

  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 0x10000))
  (data (i32.const 0x100) "starting")
  (data (i32.const 0x120) "out.txt")
  (data (i32.const 0x140) "/srv")
  (data (i32.const 0x160) "old.txt")
  (data (i32.const 0x180) "POST")
  (data (i32.const 0x1a0) "https://api.example.com/v1/items")
  (data (i32.const 0x1c0) "accept")
  (data (i32.const 0x1e0) "text/plain")
  (data (i32.const 0x200) "x-peon")
  (data (i32.const 0x220) "1")
  (data (i32.const 0x240) "analytics")
  (data (i32.const 0x260) "select * from t where id = ?")
  (data (i32.const 0x280) "ada")
  (data (i32.const 0x2a0) "delete from t")
  (data (i32.const 0x2c0) "/usr/bin/wc")
  (data (i32.const 0x2e0) "-l")
  (data (i32.const 0x300) "x y")

  ;; A bump allocator that grows memory as needed; the host only ever asks for new blocks.
  (func $cabi_realloc (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (block $enough
      (loop $grow
        (br_if $enough (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (local.get $ptr))

  ;; Answers error(message) from an `error` record at $error (code at +0, message at +4): 0x980 is run's result area.
  (func $fail (param $error i32) (result i32)
    (i32.store8 (i32.const 0x980) (i32.const 1))
    (i32.store (i32.const 0x984) (i32.load (i32.add (local.get $error) (i32.const 4))))
    (i32.store (i32.const 0x988) (i32.load (i32.add (local.get $error) (i32.const 8))))
    (i32.const 0x980))

  ;; run(input): reads the file named by `input`, writes and appends its bytes to out.txt, lists /srv,
  ;; removes old.txt, POSTs the bytes, queries and updates a database, runs wc with the bytes as stdin,
  ;; and answers ok(wc's stdout). The first refusal is answered as error(its message).
  (func (export "run") (param $in i32) (param $in_len i32) (result i32)
    (local $data i32) (local $data_len i32)
    (call $log (i32.const 1) (i32.const 0x100) (i32.const 8))

    (call $read (local.get $in) (local.get $in_len) (i32.const 0x800))
    (if (i32.load8_u (i32.const 0x800)) (then (return (call $fail (i32.const 0x804)))))
    (local.set $data (i32.load (i32.const 0x804)))
    (local.set $data_len (i32.load (i32.const 0x808)))

    (call $write (i32.const 0x120) (i32.const 7) (local.get $data) (local.get $data_len) (i32.const 0x820))
    (if (i32.load8_u (i32.const 0x820)) (then (return (call $fail (i32.const 0x824)))))
    (call $append (i32.const 0x120) (i32.const 7) (local.get $data) (local.get $data_len) (i32.const 0x840))
    (if (i32.load8_u (i32.const 0x840)) (then (return (call $fail (i32.const 0x844)))))
    (call $read_dir (i32.const 0x140) (i32.const 4) (i32.const 0x860))
    (if (i32.load8_u (i32.const 0x860)) (then (return (call $fail (i32.const 0x864)))))
    (call $remove (i32.const 0x160) (i32.const 7) (i32.const 0x880))
    (if (i32.load8_u (i32.const 0x880)) (then (return (call $fail (i32.const 0x884)))))

    ;; Two headers at 0x400: (accept, text/plain), (x-peon, 1).
    (i32.store (i32.const 0x400) (i32.const 0x1c0)) (i32.store (i32.const 0x404) (i32.const 6))
    (i32.store (i32.const 0x408) (i32.const 0x1e0)) (i32.store (i32.const 0x40c) (i32.const 10))
    (i32.store (i32.const 0x410) (i32.const 0x200)) (i32.store (i32.const 0x414) (i32.const 6))
    (i32.store (i32.const 0x418) (i32.const 0x220)) (i32.store (i32.const 0x41c) (i32.const 1))
    (call $send (i32.const 0x180) (i32.const 4) (i32.const 0x1a0) (i32.const 32) (i32.const 0x400) (i32.const 2) (local.get $data) (local.get $data_len) (i32.const 0x8a0))
    (if (i32.load8_u (i32.const 0x8a0)) (then (return (call $fail (i32.const 0x8a4)))))

    ;; Two db values at 0x480 (16 bytes each, 8-aligned): integer(42), text("ada").
    (i32.store8 (i32.const 0x480) (i32.const 1)) (i64.store (i32.const 0x488) (i64.const 42))
    (i32.store8 (i32.const 0x490) (i32.const 3))
    (i32.store (i32.const 0x498) (i32.const 0x280)) (i32.store (i32.const 0x49c) (i32.const 3))
    (call $query (i32.const 0x240) (i32.const 9) (i32.const 0x260) (i32.const 28) (i32.const 0x480) (i32.const 2) (i32.const 0x8c0))
    (if (i32.load8_u (i32.const 0x8c0)) (then (return (call $fail (i32.const 0x8c4)))))
    (call $execute (i32.const 0x240) (i32.const 9) (i32.const 0x2a0) (i32.const 13) (i32.const 0) (i32.const 0) (i32.const 0x8e0))
    (if (i32.load8_u (i32.const 0x8e0)) (then (return (call $fail (i32.const 0x8e8)))))

    ;; Two arguments at 0x4c0: "-l", "x y".
    (i32.store (i32.const 0x4c0) (i32.const 0x2e0)) (i32.store (i32.const 0x4c4) (i32.const 2))
    (i32.store (i32.const 0x4c8) (i32.const 0x300)) (i32.store (i32.const 0x4cc) (i32.const 3))
    (call $exec (i32.const 0x2c0) (i32.const 11) (i32.const 0x4c0) (i32.const 2) (local.get $data) (local.get $data_len) (i32.const 0x900))
    (if (i32.load8_u (i32.const 0x900)) (then (return (call $fail (i32.const 0x904)))))

    ;; ok(stdout): output is { code @0x904, stdout @0x908, stderr @0x910 }.
    (i32.store8 (i32.const 0x980) (i32.const 0))
    (i32.store (i32.const 0x984) (i32.load (i32.const 0x908)))
    (i32.store (i32.const 0x988) (i32.load (i32.const 0x90c)))
    (i32.const 0x980))

  ;; Counts its calls at 0x9f0 so the host test can see it ran after `run`'s result was read.
  (func (export "cabi_post_run") (param i32)
    (i32.store (i32.const 0x9f0) (i32.add (i32.load (i32.const 0x9f0)) (i32.const 1))))
)
