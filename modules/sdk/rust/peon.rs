//! peon: the Rust guest SDK for peon-wasm (wit/peon.wit, package `peon:host@0.1.0`, world `agent`).
//!
//! One dependency-free file: include it with
//! `#[path = "../sdk/rust/peon.rs"] mod peon;` and export your entry point with
//! `peon::export_run!(my_run);` where `fn my_run(input: String) -> Result<String, String>`.
//! Built for `wasm32-unknown-unknown` it imports nothing but `peon:host/*` (no WASI).
//!
//! The `raw` module declares the imports exactly as the Component Model canonical ABI lowers them
//! for a core module (the shapes wit-bindgen generates); the other modules are safe wrappers.
//! Lists the host returns are allocated by our exported `cabi_realloc` with the global allocator,
//! and taken back into owned `Vec`/`String` values here.
#![allow(dead_code)]

use std::alloc::{alloc, dealloc, realloc, Layout};

/// Why a host call did not succeed (`enum error-code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Denied,
    InvalidArgument,
    NotFound,
    LimitExceeded,
    Io,
    Timeout,
}

impl ErrorCode {
    fn from_u8(v: u8) -> ErrorCode {
        match v {
            0 => ErrorCode::Denied,
            1 => ErrorCode::InvalidArgument,
            2 => ErrorCode::NotFound,
            3 => ErrorCode::LimitExceeded,
            4 => ErrorCode::Io,
            _ => ErrorCode::Timeout,
        }
    }

    /// The WIT name of the code, e.g. `"denied"`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Denied => "denied",
            ErrorCode::InvalidArgument => "invalid-argument",
            ErrorCode::NotFound => "not-found",
            ErrorCode::LimitExceeded => "limit-exceeded",
            ErrorCode::Io => "io",
            ErrorCode::Timeout => "timeout",
        }
    }
}

/// A refusal or failure from the host (`record error`).
#[derive(Clone, Debug)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

/// The imports as core functions. Every (ptr, len) is a string or list; the last parameter of
/// each function returning a result is the return area the host writes.
pub mod raw {
    #[link(wasm_import_module = "peon:host/fs@0.1.0")]
    extern "C" {
        pub fn read(path: *const u8, path_len: usize, ret: *mut u8);
        pub fn write(path: *const u8, path_len: usize, data: *const u8, data_len: usize, ret: *mut u8);
        pub fn append(path: *const u8, path_len: usize, data: *const u8, data_len: usize, ret: *mut u8);
        #[link_name = "read-dir"]
        pub fn read_dir(path: *const u8, path_len: usize, ret: *mut u8);
        pub fn remove(path: *const u8, path_len: usize, ret: *mut u8);
    }

    #[link(wasm_import_module = "peon:host/http@0.1.0")]
    extern "C" {
        /// The `request` record flattens to method, url, headers, body: four (ptr, len) pairs.
        pub fn send(
            method: *const u8, method_len: usize, url: *const u8, url_len: usize,
            headers: *const u8, headers_len: usize, body: *const u8, body_len: usize, ret: *mut u8,
        );
    }

    #[link(wasm_import_module = "peon:host/db@0.1.0")]
    extern "C" {
        pub fn query(
            db: *const u8, db_len: usize, sql: *const u8, sql_len: usize,
            params: *const u8, params_len: usize, ret: *mut u8,
        );
        pub fn execute(
            db: *const u8, db_len: usize, sql: *const u8, sql_len: usize,
            params: *const u8, params_len: usize, ret: *mut u8,
        );
    }

    #[link(wasm_import_module = "peon:host/exec@0.1.0")]
    extern "C" {
        pub fn run(
            program: *const u8, program_len: usize, args: *const u8, args_len: usize,
            stdin: *const u8, stdin_len: usize, ret: *mut u8,
        );
    }

    #[link(wasm_import_module = "peon:host/log@0.1.0")]
    extern "C" {
        pub fn log(level: i32, message: *const u8, message_len: usize);
    }
}

/// A return area big and aligned enough for every result in the interface (at most 24 bytes, align 8).
#[repr(C, align(8))]
struct RetArea([u8; 24]);

impl RetArea {
    fn new() -> RetArea {
        RetArea([0; 24])
    }
    fn ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }
    fn u8(&self, at: usize) -> u8 {
        self.0[at]
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }
    fn u32(&self, at: usize) -> usize {
        u32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]]) as usize
    }
    fn u64(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        u64::from_le_bytes(b)
    }
    /// `record error` at `at`: code u8 @0, message @4.
    fn error(&self, at: usize) -> Error {
        Error {
            code: ErrorCode::from_u8(self.u8(at)),
            message: unsafe { take_string(self.u32(at + 4) as *mut u8, self.u32(at + 8)) },
        }
    }
}

// ---- memory the host allocates in --------------------------------------------------------------

/// Allocates (or grows) memory for a list the host returns; called by the host only.
#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_size: usize, align: usize, new_size: usize) -> *mut u8 {
    if new_size == 0 {
        return align as *mut u8; // an aligned, never-dereferenced pointer for an empty list
    }
    let p = if old_size == 0 {
        alloc(Layout::from_size_align_unchecked(new_size, align))
    } else {
        realloc(old, Layout::from_size_align_unchecked(old_size, align), new_size)
    };
    if p.is_null() {
        std::process::abort();
    }
    p
}

unsafe fn take_bytes(ptr: *mut u8, len: usize) -> Vec<u8> {
    if len == 0 {
        Vec::new()
    } else {
        // allocated by cabi_realloc with Layout(len, 1): exactly a Vec<u8>'s layout
        Vec::from_raw_parts(ptr, len, len)
    }
}

unsafe fn take_string(ptr: *mut u8, len: usize) -> String {
    match String::from_utf8(take_bytes(ptr, len)) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Reads `len` elements of `size` bytes from a host-allocated list, then frees the list.
unsafe fn take_list<T>(ptr: *mut u8, len: usize, size: usize, align: usize, mut f: impl FnMut(*const u8) -> T) -> Vec<T> {
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        out.push(f(ptr.add(i * size)));
    }
    if len != 0 {
        dealloc(ptr, Layout::from_size_align_unchecked(len * size, align));
    }
    out
}

unsafe fn load_u32(p: *const u8) -> usize {
    (p as *const u32).read_unaligned() as usize
}

unsafe fn take_strings(ptr: *mut u8, len: usize) -> Vec<String> {
    take_list(ptr, len, 8, 4, |p| take_string(load_u32(p) as *mut u8, load_u32(p.add(4))))
}

fn unit(ret: &RetArea) -> Result<(), Error> {
    if ret.u8(0) == 0 { Ok(()) } else { Err(ret.error(4)) }
}

/// Files inside the trees the grants name.
pub mod fs {
    use super::*;

    /// Reads a whole file.
    pub fn read(path: &str) -> Result<Vec<u8>, Error> {
        let mut ret = RetArea::new();
        unsafe {
            raw::read(path.as_ptr(), path.len(), ret.ptr());
            if ret.u8(0) == 0 { Ok(take_bytes(ret.u32(4) as *mut u8, ret.u32(8))) } else { Err(ret.error(4)) }
        }
    }

    /// Reads a whole file as UTF-8 text (invalid sequences replaced).
    pub fn read_to_string(path: &str) -> Result<String, Error> {
        read(path).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Creates or replaces a file.
    pub fn write(path: &str, data: &[u8]) -> Result<(), Error> {
        let mut ret = RetArea::new();
        unsafe { raw::write(path.as_ptr(), path.len(), data.as_ptr(), data.len(), ret.ptr()) };
        unit(&ret)
    }

    /// Creates a file or appends to it.
    pub fn append(path: &str, data: &[u8]) -> Result<(), Error> {
        let mut ret = RetArea::new();
        unsafe { raw::append(path.as_ptr(), path.len(), data.as_ptr(), data.len(), ret.ptr()) };
        unit(&ret)
    }

    /// Lists the names in a directory.
    pub fn read_dir(path: &str) -> Result<Vec<String>, Error> {
        let mut ret = RetArea::new();
        unsafe {
            raw::read_dir(path.as_ptr(), path.len(), ret.ptr());
            if ret.u8(0) == 0 { Ok(take_strings(ret.u32(4) as *mut u8, ret.u32(8))) } else { Err(ret.error(4)) }
        }
    }

    /// Removes a file or an empty directory.
    pub fn remove(path: &str) -> Result<(), Error> {
        let mut ret = RetArea::new();
        unsafe { raw::remove(path.as_ptr(), path.len(), ret.ptr()) };
        unit(&ret)
    }
}

/// Outgoing HTTP requests.
pub mod http {
    use super::*;

    /// A request; `headers` are (name, value) pairs.
    pub struct Request {
        pub method: String,
        pub url: String,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    /// A response, as the host returned it (redirects are not followed).
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    /// `record header` in memory: name (ptr, len), value (ptr, len); 16 bytes.
    #[repr(C)]
    struct RawHeader(*const u8, usize, *const u8, usize);

    /// Sends a request and waits for the whole response.
    pub fn send(req: &Request) -> Result<Response, Error> {
        let raw: Vec<RawHeader> = req
            .headers
            .iter()
            .map(|(n, v)| RawHeader(n.as_ptr(), n.len(), v.as_ptr(), v.len()))
            .collect();
        let mut ret = RetArea::new();
        unsafe {
            raw::send(
                req.method.as_ptr(), req.method.len(), req.url.as_ptr(), req.url.len(),
                raw.as_ptr() as *const u8, raw.len(), req.body.as_ptr(), req.body.len(), ret.ptr(),
            );
            if ret.u8(0) != 0 {
                return Err(ret.error(4));
            }
            // response @4: status u16 @4, headers @8/@12, body @16/@20
            let headers = take_list(ret.u32(8) as *mut u8, ret.u32(12), 16, 4, |p| {
                (take_string(load_u32(p) as *mut u8, load_u32(p.add(4))),
                 take_string(load_u32(p.add(8)) as *mut u8, load_u32(p.add(12))))
            });
            Ok(Response { status: ret.u16(4), headers, body: take_bytes(ret.u32(16) as *mut u8, ret.u32(20)) })
        }
    }
}

/// Named SQLite databases.
pub mod db {
    use super::*;

    /// A SQLite value (`variant value`).
    #[derive(Clone, Debug, PartialEq)]
    pub enum Value {
        Null,
        Integer(i64),
        Real(f64),
        Text(String),
        Blob(Vec<u8>),
    }

    /// Query results.
    #[derive(Clone, Debug)]
    pub struct Rows {
        pub columns: Vec<String>,
        pub rows: Vec<Vec<Value>>,
    }

    /// `variant value` in memory: tag u8 @0, payload @8; 16 bytes, align 8.
    #[repr(C, align(8))]
    struct RawValue {
        tag: u8,
        payload: u64,
    }

    fn lower(params: &[Value]) -> Vec<RawValue> {
        params
            .iter()
            .map(|v| match v {
                Value::Null => RawValue { tag: 0, payload: 0 },
                Value::Integer(i) => RawValue { tag: 1, payload: *i as u64 },
                Value::Real(r) => RawValue { tag: 2, payload: r.to_bits() },
                // (ptr, len) little-endian: ptr @8, len @12
                Value::Text(s) => RawValue { tag: 3, payload: s.as_ptr() as u64 | (s.len() as u64) << 32 },
                Value::Blob(b) => RawValue { tag: 4, payload: b.as_ptr() as u64 | (b.len() as u64) << 32 },
            })
            .collect()
    }

    unsafe fn lift_value(p: *const u8) -> Value {
        let payload = p.add(8);
        match *p {
            0 => Value::Null,
            1 => Value::Integer((payload as *const i64).read_unaligned()),
            2 => Value::Real(f64::from_bits((payload as *const u64).read_unaligned())),
            3 => Value::Text(take_string(load_u32(payload) as *mut u8, load_u32(payload.add(4)))),
            _ => Value::Blob(take_bytes(load_u32(payload) as *mut u8, load_u32(payload.add(4)))),
        }
    }

    /// Runs one read statement with bound parameters.
    pub fn query(database: &str, sql: &str, params: &[Value]) -> Result<Rows, Error> {
        let raw = lower(params);
        let mut ret = RetArea::new();
        unsafe {
            raw::query(database.as_ptr(), database.len(), sql.as_ptr(), sql.len(),
                       raw.as_ptr() as *const u8, raw.len(), ret.ptr());
            if ret.u8(0) != 0 {
                return Err(ret.error(4));
            }
            // rows @4: columns @4/@8, rows @12/@16 (each a list<value> of 16-byte values)
            let columns = take_strings(ret.u32(4) as *mut u8, ret.u32(8));
            let rows = take_list(ret.u32(12) as *mut u8, ret.u32(16), 8, 4, |p| {
                take_list(load_u32(p) as *mut u8, load_u32(p.add(4)), 16, 8, |v| lift_value(v))
            });
            Ok(Rows { columns, rows })
        }
    }

    /// Runs one write statement with bound parameters; returns the number of rows changed.
    pub fn execute(database: &str, sql: &str, params: &[Value]) -> Result<u64, Error> {
        let raw = lower(params);
        let mut ret = RetArea::new();
        unsafe {
            raw::execute(database.as_ptr(), database.len(), sql.as_ptr(), sql.len(),
                         raw.as_ptr() as *const u8, raw.len(), ret.ptr());
        }
        // result<u64, error>: the payload is 8-aligned, so it starts @8
        if ret.u8(0) == 0 { Ok(ret.u64(8)) } else { Err(ret.error(8)) }
    }
}

/// Programs the host runs directly, never through a shell.
pub mod exec {
    use super::*;

    /// What a program produced.
    pub struct Output {
        pub code: i32,
        pub stdout: Vec<u8>,
        pub stderr: Vec<u8>,
    }

    /// Runs `program` with `args` and `stdin`, and waits for it to end.
    pub fn run(program: &str, args: &[&str], stdin: &[u8]) -> Result<Output, Error> {
        let raw: Vec<(*const u8, usize)> = args.iter().map(|a| (a.as_ptr(), a.len())).collect();
        let mut ret = RetArea::new();
        unsafe {
            raw::run(program.as_ptr(), program.len(), raw.as_ptr() as *const u8, raw.len(),
                     stdin.as_ptr(), stdin.len(), ret.ptr());
            if ret.u8(0) != 0 {
                return Err(ret.error(4));
            }
            Ok(Output {
                code: ret.u32(4) as i32,
                stdout: take_bytes(ret.u32(8) as *mut u8, ret.u32(12)),
                stderr: take_bytes(ret.u32(16) as *mut u8, ret.u32(20)),
            })
        }
    }
}

/// Lines for the host's log.
pub mod log {
    /// How important a line is.
    #[derive(Clone, Copy)]
    pub enum Level {
        Debug = 0,
        Info = 1,
        Warn = 2,
        Error = 3,
    }

    /// Writes one line.
    pub fn log(level: Level, message: &str) {
        unsafe { super::raw::log(level as i32, message.as_ptr(), message.len()) }
    }
}

// ---- the world export `run` --------------------------------------------------------------------

/// The 12-byte `result<string, string>` area `run` returns: tag @0, ptr @4, len @8.
#[repr(C, align(4))]
pub struct RunResult(pub [u32; 3]);

#[doc(hidden)]
pub static mut RUN_RESULT: RunResult = RunResult([0; 3]);

#[doc(hidden)]
pub unsafe fn run_glue(ptr: *mut u8, len: usize, f: fn(String) -> Result<String, String>) -> *mut u8 {
    let input = take_string(ptr, len);
    let (tag, text) = match f(input) {
        Ok(s) => (0u32, s),
        Err(s) => (1u32, s),
    };
    let boxed: Box<[u8]> = text.into_bytes().into_boxed_slice();
    let len = boxed.len();
    let p = Box::into_raw(boxed) as *mut u8;
    RUN_RESULT = RunResult([tag, p as u32, len as u32]);
    std::ptr::addr_of_mut!(RUN_RESULT) as *mut u8
}

#[doc(hidden)]
pub unsafe fn post_run_glue() {
    let [_, p, len] = RUN_RESULT.0;
    if len != 0 {
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(p as *mut u8, len as usize)));
    }
    RUN_RESULT = RunResult([0; 3]);
}

/// Exports `f: fn(String) -> Result<String, String>` as the world export
/// `run: func(input: string) -> result<string, string>` (core `run(i32, i32) -> i32`) with its
/// `cabi_post_run`.
#[macro_export]
macro_rules! export_run {
    ($f:path) => {
        #[no_mangle]
        pub unsafe extern "C" fn run(ptr: *mut u8, len: usize) -> *mut u8 {
            $crate::peon::run_glue(ptr, len, $f)
        }
        #[no_mangle]
        pub unsafe extern "C" fn cabi_post_run(_result: *mut u8) {
            $crate::peon::post_run_glue()
        }
    };
}
pub use export_run;
