;; A whole component (built with `wasm-tools parse`) whose `run` is declared
;; `func(input: string) -> list<u8>` instead of the WIT's `result<string, string>`, and returns a
;; list<u8> of 2 700 000 bytes: just under wasmtime's hostcall fuel (128 MiB at 48 bytes per
;; element), so wasmtime would lift it into one 48-byte value per byte, then the C API copy it into
;; one 32-byte value per byte (~210 MB of host memory for 2.7 MB of guest memory) before the host
;; could refuse it. The host must refuse the export's type before calling it.
(component
  (core module $main
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "run") (param i32 i32) (result i32)
      ;; 1 + 42 pages: the list at 64 KiB fits.
      (if (i32.eq (memory.grow (i32.const 42)) (i32.const -1)) (then unreachable))
      (i32.store (i32.const 16) (i32.const 65536))
      (i32.store (i32.const 20) (i32.const 2700000))
      (i32.const 16)))
  (core instance $main (instantiate $main))
  (type $run (func (param "input" string) (result (list u8))))
  (func (export "run") (type $run)
    (canon lift (core func $main "run") (memory (core memory $main "memory")) (realloc (core func $main "cabi_realloc")))))
