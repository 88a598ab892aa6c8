//! peon.zig: the Zig face of the C guest SDK (modules/sdk/c/peon.h), for Zig agents.
//!
//! Zig links modules/sdk/c/peon.c (which provides cabi_realloc and the `run` export glue) and
//! calls it through these `extern` declarations, which mirror peon.h one for one. The agent
//! exports `peon_run` (see `RunFn`). Build: see modules/build.sh (zig build-exe ... peon.c -lc).

/// `enum error-code`.
pub const ErrorCode = enum(c_int) { denied = 0, invalid_argument, not_found, limit_exceeded, io, timeout };

/// A refusal or failure (message is malloc'd, NUL-terminated; release with `errorFree`).
pub const Error = extern struct {
    code: ErrorCode = .denied,
    message: ?[*:0]u8 = null,

    /// The message as a slice ("" when there is none).
    pub fn text(self: *const Error) []const u8 {
        const m = self.message orelse return "";
        var n: usize = 0;
        while (m[n] != 0) n += 1;
        return m[0..n];
    }
};

/// A (ptr, len) list in guest memory: `list<u8>` or `string`.
pub const List = extern struct {
    ptr: ?[*]u8,
    len: usize,

    pub fn slice(self: List) []const u8 {
        return if (self.ptr) |p| p[0..self.len] else &[_]u8{};
    }
};

/// `record output { code: s32, stdout: list<u8>, stderr: list<u8> }`.
pub const Output = extern struct {
    code: i32 = 0,
    stdout: List = .{ .ptr = null, .len = 0 },
    stderr: List = .{ .ptr = null, .len = 0 },
};

/// A growable text buffer (the answer of `run` is one).
pub const Buf = extern struct {
    ptr: ?[*]u8 = null,
    len: usize = 0,
    cap: usize = 0,

    pub fn append(self: *Buf, bytes: []const u8) void {
        peon_buf_append(self, bytes.ptr, bytes.len);
    }
    pub fn slice(self: *const Buf) []const u8 {
        return if (self.ptr) |p| p[0..self.len] else &[_]u8{};
    }
    pub fn deinit(self: *Buf) void {
        peon_buf_free(self);
    }
};

pub const Level = enum(c_int) { debug = 0, info = 1, warn = 2, @"error" = 3 };

/// The signature the agent exports as `peon_run`.
pub const RunFn = fn (input: [*:0]const u8, input_len: usize, out: *Buf) callconv(.c) bool;

pub extern fn peon_error_code_name(code: ErrorCode) [*:0]const u8;
pub extern fn peon_error_free(err: *Error) void;
pub extern fn peon_fs_read(path: [*:0]const u8, data: *?[*]u8, len: *usize, err: ?*Error) bool;
pub extern fn peon_fs_write(path: [*:0]const u8, data: [*]const u8, len: usize, err: ?*Error) bool;
pub extern fn peon_fs_append(path: [*:0]const u8, data: [*]const u8, len: usize, err: ?*Error) bool;
pub extern fn peon_exec(program: [*:0]const u8, args: [*]const [*:0]const u8, args_len: usize, stdin: ?[*]const u8, stdin_len: usize, output: *Output, err: ?*Error) bool;
pub extern fn peon_output_free(output: *Output) void;
pub extern fn peon_log(level: Level, message: [*:0]const u8) void;
pub extern fn peon_buf_append(buf: *Buf, data: [*]const u8, len: usize) void;
pub extern fn peon_buf_free(buf: *Buf) void;
pub extern fn free(ptr: ?*anyopaque) void;

/// Runs a program (no shell); `args` are NUL-terminated strings.
pub fn exec(program: [*:0]const u8, args: []const [*:0]const u8, stdin: []const u8, err: *Error) ?Output {
    var out: Output = .{};
    if (!peon_exec(program, args.ptr, args.len, stdin.ptr, stdin.len, &out, err)) return null;
    return out;
}

/// Reads a whole file; the slice is malloc'd (release with `free(slice.ptr)`).
pub fn readFile(path: [*:0]const u8, err: *Error) ?[]u8 {
    var data: ?[*]u8 = null;
    var len: usize = 0;
    if (!peon_fs_read(path, &data, &len, err)) return null;
    const p = data orelse return null;
    return p[0..len];
}
