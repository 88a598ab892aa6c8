;; A whole component in WAT (built with `wasm-tools parse`): two core modules, each defining its own
;; memory. run grows the main module's memory 16 pages at a time until a grow fails, then has the
;; other module do the same with its memory, and adds up the pages both hold. It traps with
;; `unreachable` when the sum stayed within 64 MiB (1024 pages: the cap covered both memories), and
;; divides by zero when it got past it (each memory capped on its own).
(component
  (core module $other
    (memory (export "memory") 1)
    (func (export "fill") (result i32)
      (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
      (memory.size)))
  (core module $main
    (import "other" "fill" (func $fill (result i32)))
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run") (param i32 i32) (result i32)
      (local $pages i32)
      (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
      (local.set $pages (i32.add (memory.size) (call $fill)))
      (if (i32.le_u (local.get $pages) (i32.const 1024)) (then unreachable))
      (i32.div_u (i32.const 1) (i32.const 0))))
  (core instance $other (instantiate $other))
  (core instance $main (instantiate $main (with "other" (instance $other))))
  (type $run (func (param "input" string) (result (result string (error string)))))
  (func (export "run") (type $run)
    (canon lift (core func $main "run") (memory (core memory $main "memory")) (realloc (core func $main "cabi_realloc")))))
