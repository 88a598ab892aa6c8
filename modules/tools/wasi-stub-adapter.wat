;; wasi-stub-adapter.wat: a stand-in wasi_snapshot_preview1 adapter for the wasm-tools referee check ONLY.
;;
;; `wasm-tools component new` needs an adapter for a core module that imports
;; wasi_snapshot_preview1 (Go's wasip1 runtime does). The real one is wasmtime's
;; wasi_snapshot_preview1.reactor.wasm, which none of the packages we install provides. This stub lets the
;; encoder check everything else -- every peon:host import against wit/peon.wit and the `run`
;; export -- while the WASI part of the resulting component does nothing: every function answers
;; ERRNO_NOSYS (52) and proc_exit traps. peon-wasm never uses it: it runs the core module and
;; gives it the host's own sandboxed wasi_snapshot_preview1 (no preopens, no sockets, empty
;; environment). Written from the preview1 witx signatures.
(module
  (func (export "args_get") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "args_sizes_get") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "environ_get") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "environ_sizes_get") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "clock_res_get") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "clock_time_get") (param i32) (param i64) (param i32) (result i32) i32.const 52)
  (func (export "fd_advise") (param i32) (param i64) (param i64) (param i32) (result i32) i32.const 52)
  (func (export "fd_allocate") (param i32) (param i64) (param i64) (result i32) i32.const 52)
  (func (export "fd_close") (param i32) (result i32) i32.const 52)
  (func (export "fd_datasync") (param i32) (result i32) i32.const 52)
  (func (export "fd_fdstat_get") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "fd_fdstat_set_flags") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "fd_fdstat_set_rights") (param i32) (param i64) (param i64) (result i32) i32.const 52)
  (func (export "fd_filestat_get") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "fd_filestat_set_size") (param i32) (param i64) (result i32) i32.const 52)
  (func (export "fd_filestat_set_times") (param i32) (param i64) (param i64) (param i32) (result i32) i32.const 52)
  (func (export "fd_pread") (param i32) (param i32) (param i32) (param i64) (param i32) (result i32) i32.const 52)
  (func (export "fd_prestat_get") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "fd_prestat_dir_name") (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "fd_pwrite") (param i32) (param i32) (param i32) (param i64) (param i32) (result i32) i32.const 52)
  (func (export "fd_read") (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "fd_readdir") (param i32) (param i32) (param i32) (param i64) (param i32) (result i32) i32.const 52)
  (func (export "fd_renumber") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "fd_seek") (param i32) (param i64) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "fd_sync") (param i32) (result i32) i32.const 52)
  (func (export "fd_tell") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "fd_write") (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "path_create_directory") (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "path_filestat_get") (param i32) (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "path_filestat_set_times") (param i32) (param i32) (param i32) (param i32) (param i64) (param i64) (param i32) (result i32) i32.const 52)
  (func (export "path_link") (param i32) (param i32) (param i32) (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "path_open") (param i32) (param i32) (param i32) (param i32) (param i32) (param i64) (param i64) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "path_readlink") (param i32) (param i32) (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "path_remove_directory") (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "path_rename") (param i32) (param i32) (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "path_symlink") (param i32) (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "path_unlink_file") (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "poll_oneoff") (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "proc_raise") (param i32) (result i32) i32.const 52)
  (func (export "sched_yield")  (result i32) i32.const 52)
  (func (export "random_get") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "sock_accept") (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "sock_recv") (param i32) (param i32) (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "sock_send") (param i32) (param i32) (param i32) (param i32) (param i32) (result i32) i32.const 52)
  (func (export "sock_shutdown") (param i32) (param i32) (result i32) i32.const 52)
  (func (export "proc_exit") (param i32) unreachable))
