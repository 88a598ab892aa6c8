;; peon:host test guest that misbehaves on purpose. Its imports and exports follow the canonical ABI
;; exactly (check-components.sh proves it), but what it passes at run time does not. The first byte
;; of `run`'s input picks the misbehaviour:
;;   p  fs.read with a path pointer that wraps past 4 GiB
;;   l  fs.write with a 2 GiB data list in a 2-page memory
;;   u  log with a message that is not UTF-8
;;   d  db.query with a value whose discriminant names no case
;;   r  db.execute with a return area that is 4- but not 8-byte aligned
;;   a  fs.read after arming cabi_realloc to return a block outside memory
;;   o  run returns a result pointer outside memory
;;   anything else: ok("fine")
(module
  (import "peon:host/log@0.1.0" "log" (func $log (param i32 i32 i32)))
  (import "peon:host/fs@0.1.0" "read" (func $read (param i32 i32 i32)))
  (import "peon:host/fs@0.1.0" "write" (func $write (param i32 i32 i32 i32 i32)))
  (import "peon:host/db@0.1.0" "query" (func $query (param i32 i32 i32 i32 i32 i32 i32)))
  (import "peon:host/db@0.1.0" "execute" (func $execute (param i32 i32 i32 i32 i32 i32 i32)))

  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 0x10000))
  (global $evil (mut i32) (i32.const 0))
  (data (i32.const 0x100) "fine")
  (data (i32.const 0x120) "db")
  (data (i32.const 0x140) "select ?")
  (data (i32.const 0x160) "\ff\fe broken")

  (func $cabi_realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (if (global.get $evil) (then (return (i32.const 0xfffffff0))))
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))

  (func (export "run") (param $in i32) (param $in_len i32) (result i32)
    (local $mode i32)
    (if (local.get $in_len) (then (local.set $mode (i32.load8_u (local.get $in)))))
    (block $done
      (br_if $done (i32.ne (local.get $mode) (i32.const 0x70)))  ;; p
      (call $read (i32.const 0xfffffff0) (i32.const 64) (i32.const 0x800)))
    (block $done
      (br_if $done (i32.ne (local.get $mode) (i32.const 0x6c)))  ;; l
      (call $write (i32.const 0x100) (i32.const 4) (i32.const 0) (i32.const 0x80000000) (i32.const 0x800)))
    (block $done
      (br_if $done (i32.ne (local.get $mode) (i32.const 0x75)))  ;; u
      (call $log (i32.const 1) (i32.const 0x160) (i32.const 9)))
    (block $done
      (br_if $done (i32.ne (local.get $mode) (i32.const 0x64)))  ;; d
      (i32.store8 (i32.const 0x480) (i32.const 9))
      (call $query (i32.const 0x120) (i32.const 2) (i32.const 0x140) (i32.const 8) (i32.const 0x480) (i32.const 1) (i32.const 0x800)))
    (block $done
      (br_if $done (i32.ne (local.get $mode) (i32.const 0x72)))  ;; r
      (call $execute (i32.const 0x120) (i32.const 2) (i32.const 0x140) (i32.const 8) (i32.const 0) (i32.const 0) (i32.const 0x804)))
    (block $done
      (br_if $done (i32.ne (local.get $mode) (i32.const 0x61)))  ;; a
      (global.set $evil (i32.const 1))
      (call $read (i32.const 0x100) (i32.const 4) (i32.const 0x800)))
    (if (i32.eq (local.get $mode) (i32.const 0x6f))  ;; o
      (then (return (i32.const 0xfffffff8))))
    (i32.store8 (i32.const 0x980) (i32.const 0))
    (i32.store (i32.const 0x984) (i32.const 0x100))
    (i32.store (i32.const 0x988) (i32.const 4))
    (i32.const 0x980))
)
