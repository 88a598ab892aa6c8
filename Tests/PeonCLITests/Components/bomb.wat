;; run grows memory 16 pages at a time until a grow fails. It then traps with `unreachable` if the
;; memory stayed within 64 MiB (1024 pages: the cap held), and divides by zero if it got past it.
(module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "run") (param i32 i32) (result i32)
    (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (if (i32.le_u (memory.size) (i32.const 1024)) (then unreachable))
    (i32.div_u (i32.const 1) (i32.const 0))))
