;; wat-minimal: the raw peon:host ABI by hand, for people writing their own bindings.
;;
;; Input: a file path. The agent reads that file (fs.read), appends "PATH: N bytes" to
;; modules/wat-minimal/out/ledger.txt (fs.append), logs a line (log.log) and answers
;; "PATH: N bytes". A refused or failed call becomes the run's error: the host's message.
;;
;; Every core signature below is what the canonical ABI gives for wit/peon.wit:
;;   - a string or list<u8> parameter is two i32: (pointer, length in bytes/elements);
;;   - a result that flattens to more than one value (all of ours) is written by the host to a
;;     return area whose pointer is the LAST parameter; the core function returns nothing;
;;   - result<list<u8>, error> in memory: @0 u8 tag (0 ok, 1 err), payload @4:
;;       ok:  @4 i32 ptr, @8 i32 len                         (list<u8>)
;;       err: @4 u8 error-code, @8 i32 msg ptr, @12 i32 len   (record error, size 12 align 4)
;;     total 16 bytes, align 4; result<_, error> has the same size and error position;
;;   - every list/string the host returns (the file's bytes, an error message) is placed in our
;;     memory by calling our export cabi_realloc(old_ptr, old_size, align, new_size) -> ptr;
;;   - the world export `run: func(input: string) -> result<string, string>` is core
;;     run(ptr, len) -> i32: the input was allocated with cabi_realloc too, and the i32 we return
;;     points at a 12-byte result<string, string>: @0 u8 tag, @4 ptr, @8 len. The host calls
;;     cabi_post_run(that pointer) when it has read the answer.
(module
  (import "peon:host/fs@0.1.0" "read"
    (func $fs_read (param $path i32) (param $path_len i32) (param $ret i32)))
  (import "peon:host/fs@0.1.0" "append"
    (func $fs_append (param $path i32) (param $path_len i32) (param $data i32) (param $data_len i32) (param $ret i32)))
  ;; log: func(level: level, message: string) -- an enum is one i32; nothing is returned
  (import "peon:host/log@0.1.0" "log"
    (func $log (param $level i32) (param $msg i32) (param $msg_len i32)))

  (memory (export "memory") 1)

  ;; Memory map: 16 run result area (12 bytes), 32 import return area (16 bytes),
  ;; 64 constant strings, 1024.. heap (a bump allocator, never freed: one run).
  (data (i32.const 64) "modules/wat-minimal/out/ledger.txt")   ;; 34 bytes
  (data (i32.const 128) "ledger updated")                      ;; 14 bytes
  (data (i32.const 144) ": ")
  (data (i32.const 148) " bytes\n")                            ;; 7 bytes
  (global $heap (mut i32) (i32.const 1024))

  ;; cabi_realloc(old_ptr, old_size, align, new_size) -> ptr: a bump allocator that copies on growth.
  (func $cabi_realloc (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $new_size i32) (result i32)
    (local $ptr i32) (local $end i32)
    ;; round the heap top up to $align (a power of two)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $new_size)))
    ;; grow memory in 64 KiB pages when the heap would pass its end
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (i32.const -1)
              (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
                                               (i32.const 16))
                                    (i32.const 1))))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (if (i32.ne (local.get $old) (i32.const 0))
      (then (memory.copy (local.get $ptr) (local.get $old)
              (select (local.get $old_size) (local.get $new_size)
                      (i32.lt_u (local.get $old_size) (local.get $new_size))))))
    (local.get $ptr))

  ;; Writes $n in decimal at $at; returns the number of digits.
  (func $itoa (param $n i32) (param $at i32) (result i32)
    (local $len i32) (local $t i32) (local $i i32)
    (local.set $t (local.get $n))
    (loop $count
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $count (i32.ne (local.get $t) (i32.const 0))))
    (local.set $i (local.get $len))
    (loop $digits
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $at) (local.get $i))
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (i32.ne (local.get $i) (i32.const 0))))
    (local.get $len))

  ;; Sets the run result to err(the error message in the return area at 32) and returns its address.
  (func $fail (result i32)
    (i32.store8 (i32.const 16) (i32.const 1))
    (i32.store (i32.const 20) (i32.load (i32.const 40)))   ;; error.message ptr (area @8)
    (i32.store (i32.const 24) (i32.load (i32.const 44)))   ;; error.message len (area @12)
    (i32.const 16))

  (func (export "run") (param $input i32) (param $input_len i32) (result i32)
    (local $size i32) (local $text i32) (local $len i32)
    ;; fs.read(input) -> result<list<u8>, error>, written at 32
    (call $fs_read (local.get $input) (local.get $input_len) (i32.const 32))
    (if (i32.load8_u (i32.const 32)) (then (return (call $fail))))
    (local.set $size (i32.load (i32.const 40)))            ;; list<u8> length (area @8)

    ;; text = "PATH: N bytes\n" on the heap (it is also the answer)
    (local.set $text (call $cabi_realloc (i32.const 0) (i32.const 0) (i32.const 1)
                        (i32.add (local.get $input_len) (i32.const 20))))
    (memory.copy (local.get $text) (local.get $input) (local.get $input_len))
    (local.set $len (local.get $input_len))
    (memory.copy (i32.add (local.get $text) (local.get $len)) (i32.const 144) (i32.const 2))
    (local.set $len (i32.add (local.get $len) (i32.const 2)))
    (local.set $len (i32.add (local.get $len)
                      (call $itoa (local.get $size) (i32.add (local.get $text) (local.get $len)))))
    (memory.copy (i32.add (local.get $text) (local.get $len)) (i32.const 148) (i32.const 7))
    (local.set $len (i32.add (local.get $len) (i32.const 7)))

    ;; fs.append(ledger, text) -> result<_, error>, written at 32
    (call $fs_append (i32.const 64) (i32.const 34) (local.get $text) (local.get $len) (i32.const 32))
    (if (i32.load8_u (i32.const 32)) (then (return (call $fail))))
    (call $log (i32.const 1) (i32.const 128) (i32.const 14))   ;; level info = 1

    ;; ok(text without its newline)
    (i32.store8 (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (local.get $text))
    (i32.store (i32.const 24) (i32.sub (local.get $len) (i32.const 1)))
    (i32.const 16))

  ;; Nothing to free: the bump heap lives for one run.
  (func (export "cabi_post_run") (param $result i32)))
