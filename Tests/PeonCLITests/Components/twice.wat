;; A whole component in WAT (built with `wasm-tools parse`) that instantiates the same memory-defining
;; core module twice: its binary declares two memories, its instances would create three. The host
;; must refuse it at instantiation (counting modules, not instances, would otherwise undercount).
(component
  (core module $other
    (memory (export "memory") 1)
    (func (export "fill") (result i32)
      (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
      (memory.size)))
  (core module $main
    (import "first" "fill" (func $first (result i32)))
    (import "second" "fill" (func $second (result i32)))
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run") (param i32 i32) (result i32)
      (drop (i32.add (call $first) (call $second)))
      unreachable))
  (core instance $first (instantiate $other))
  (core instance $second (instantiate $other))
  (core instance $main (instantiate $main (with "first" (instance $first)) (with "second" (instance $second))))
  (type $run (func (param "input" string) (result (result string (error string)))))
  (func (export "run") (type $run)
    (canon lift (core func $main "run") (memory (core memory $main "memory")) (realloc (core func $main "cabi_realloc")))))
