//! zig-auditor: a log auditor written in Zig, calling the C guest SDK through modules/sdk/zig.
//!
//! Input: "LOGFILE [KEYWORD ...]". It reads LOGFILE (fs.read) and feeds it on standard input to
//! programs the host runs without a shell (exec): `/usr/bin/wc -l` for the line count,
//! `/usr/bin/grep -c -E ERROR|FATAL` for errors, `/usr/bin/grep -F "Failed password"` for failed
//! logins (tallied per source address here), and `/usr/bin/grep -c -F -- KEYWORD` once per
//! keyword. The grants allow exactly these argument patterns; any other is denied.
//! Capabilities used: fs read, exec, log.
const std = @import("std");
const peon = @import("peon");

const Tally = struct { addr: [64]u8 = undefined, len: usize = 0, count: usize = 0 };

fn put(out: *peon.Buf, comptime fmt: []const u8, args: anytype) void {
    var tmp: [512]u8 = undefined;
    const s = std.fmt.bufPrint(&tmp, fmt, args) catch "(line too long)\n";
    out.append(s);
}

/// Runs a program on `text`; on refusal writes the reason to `out` and returns null.
fn run(out: *peon.Buf, program: [*:0]const u8, args: []const [*:0]const u8, text: []const u8) ?peon.Output {
    var err: peon.Error = .{};
    if (peon.exec(program, args, text, &err)) |o| return o;
    put(out, "exec {s} refused: {s}: {s}\n", .{ std.mem.span(program), std.mem.span(peon.peon_error_code_name(err.code)), err.text() });
    peon.peon_error_free(&err);
    return null;
}

/// The first decimal number in `bytes` (wc and grep -c print one).
fn number(bytes: []const u8) usize {
    const t = std.mem.trim(u8, bytes, " \t\r\n");
    const end = std.mem.indexOfAny(u8, t, " \t\n") orelse t.len;
    return std.fmt.parseInt(usize, t[0..end], 10) catch 0;
}

fn auditRun(input: [*:0]const u8, input_len: usize, out: *peon.Buf) callconv(.c) bool {
    // Split the input into NUL-terminated words in place (a copy: the input is const).
    var words_buf: [1024]u8 = undefined;
    if (input_len == 0 or input_len >= words_buf.len) {
        out.append("usage: LOGFILE [KEYWORD ...]");
        return false;
    }
    @memcpy(words_buf[0..input_len], input[0..input_len]);
    words_buf[input_len] = 0;
    var words: [16][*:0]const u8 = undefined;
    var count: usize = 0;
    var i: usize = 0;
    while (i < input_len and count < words.len) {
        while (i < input_len and words_buf[i] == ' ') : (i += 1) words_buf[i] = 0;
        if (i >= input_len) break;
        words[count] = @ptrCast(&words_buf[i]);
        count += 1;
        while (i < input_len and words_buf[i] != ' ') i += 1;
        if (i < input_len) {
            words_buf[i] = 0;
            i += 1;
        }
    }
    if (count == 0) {
        out.append("usage: LOGFILE [KEYWORD ...]");
        return false;
    }
    const path = words[0];

    var err: peon.Error = .{};
    const log = peon.readFile(path, &err) orelse {
        put(out, "cannot read {s}: {s}: {s}", .{ std.mem.span(path), std.mem.span(peon.peon_error_code_name(err.code)), err.text() });
        peon.peon_error_free(&err);
        return false;
    };
    defer peon.free(log.ptr);

    put(out, "audit of {s}\n", .{std.mem.span(path)});
    var ok = true;
    if (run(out, "/usr/bin/wc", &.{"-l"}, log)) |o| {
        var o2 = o;
        put(out, "lines: {d}\n", .{number(o.stdout.slice())});
        peon.peon_output_free(&o2);
    } else ok = false;

    if (run(out, "/usr/bin/grep", &.{ "-c", "-E", "ERROR|FATAL" }, log)) |o| {
        var o2 = o;
        put(out, "errors (ERROR|FATAL): {d}\n", .{number(o.stdout.slice())});
        peon.peon_output_free(&o2);
    } else ok = false;

    if (run(out, "/usr/bin/grep", &.{ "-F", "Failed password" }, log)) |o| {
        var o2 = o;
        var tallies: [16]Tally = @splat(.{});
        var distinct: usize = 0;
        var total: usize = 0;
        var lines = std.mem.splitScalar(u8, o.stdout.slice(), '\n');
        while (lines.next()) |line| {
            const at = std.mem.indexOf(u8, line, " from ") orelse continue;
            const rest = line[at + 6 ..];
            const addr = rest[0..(std.mem.indexOfScalar(u8, rest, ' ') orelse rest.len)];
            total += 1;
            var found = false;
            for (tallies[0..distinct]) |*t| {
                if (std.mem.eql(u8, t.addr[0..t.len], addr)) {
                    t.count += 1;
                    found = true;
                    break;
                }
            }
            if (!found and distinct < tallies.len and addr.len <= 64) {
                @memcpy(tallies[distinct].addr[0..addr.len], addr);
                tallies[distinct].len = addr.len;
                tallies[distinct].count = 1;
                distinct += 1;
            }
        }
        put(out, "failed logins: {d}\n", .{total});
        for (tallies[0..distinct]) |t| put(out, "  {s}: {d}\n", .{ t.addr[0..t.len], t.count });
        peon.peon_output_free(&o2);
    } else ok = false;

    for (words[1..count]) |keyword| {
        // `--` ends grep's options, so a keyword such as "-r" or "--file=/etc/shadow" is only text.
        if (run(out, "/usr/bin/grep", &.{ "-c", "-F", "--", keyword }, log)) |o| {
            var o2 = o;
            put(out, "keyword \"{s}\": {d}\n", .{ std.mem.span(keyword), number(o.stdout.slice()) });
            peon.peon_output_free(&o2);
        } else ok = false;
    }
    peon.peon_log(.info, "audit finished");
    return ok;
}

comptime {
    @export(&auditRun, .{ .name = "peon_run" });
}
