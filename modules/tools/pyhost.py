#!/usr/bin/env python3
"""pyhost: a small test host for peon-wasm agent modules, built on wasmtime-py.

It is NOT the product (that is the Swift `peon-wasm run`). It exists to cross-check, with a second
and independent implementation of the canonical ABI, that every example agent calls the
`peon:host` imports of wit/peon.wit correctly: it implements the imports with simple but real
fakes, enforces a simplified reading of the agent's grants file (policies/NAME.toml, issue 5
section 3), and prints one trace line per host call (allow/deny) on stderr.

    pip install wasmtime==50.0.1
    python3 modules/tools/pyhost.py MODULE.wasm --grants policies/NAME.toml \
        [--db NAME=PATH]... [--http-fixture URL=FILE]... [--input TEXT]

What the fakes do:
  fs    real files; a path (absolute, or relative to the current folder) is normalized lexically
        and, resolved through symlinks, must match a grant glob for the action
        (read | write | append | list | remove). `*` is one path segment, `**` any number; a grant
        `D/**` also covers the folder D itself.
  http  no network: a URL must match a grant glob and method; loopback, private and link-local
        hosts are refused unless a grant names that exact host. The answer is the file given by
        --http-fixture for that URL (200), or for other methods a 200 JSON receipt; else 404.
  db    SQLite files bound with --db NAME=PATH; a Python sqlite3 authorizer allows exactly the
        granted tables and operations (read | insert | update | delete | schema) and nothing else.
  exec  the program must be a granted absolute path and each argument must match its pattern
        (`*` any characters, `?` one); run without a shell, with an empty environment.
  log   one line on stderr.
WASI: if the module imports wasi_snapshot_preview1 it gets wasmtime's, with no preopened folder,
no environment, no arguments (stderr inherited so a guest panic is visible).
Run protocol: `_initialize` if exported, then `run(ptr, len) -> ptr` and `cabi_post_run(ptr)`;
a module exporting only `_start` runs as a WASI command.
Exit status: 0 with the ok string on stdout; 1 with the error string on stderr; 2 on a trap or a
usage error.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sqlite3
import struct
import subprocess
import sys
import tomllib
import urllib.parse

import wasmtime
from wasmtime import Engine, FuncType, Linker, Module, Store, ValType, WasiConfig

# error-code enum
DENIED, INVALID_ARGUMENT, NOT_FOUND, LIMIT_EXCEEDED, IO, TIMEOUT = range(6)
CODE_NAMES = ["denied", "invalid-argument", "not-found", "limit-exceeded", "io", "timeout"]


class HostError(Exception):
    """A refusal or failure returned to the guest as `error { code, message }`."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class GuestFault(Exception):
    """The guest passed something that breaks the ABI (bad pointer, bad UTF-8): a trap."""


# ---- grants ------------------------------------------------------------------------------------

def glob_to_regex(glob: str, slash_in_star: bool) -> re.Pattern:
    out = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(".*" if slash_in_star else "[^/]*")
        elif c == "?":
            out.append("." if slash_in_star else "[^/]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


class Grants:
    def __init__(self, path: str | None):
        self.module = "module"
        self.fs: list[tuple[list[re.Pattern], set[str]]] = []
        self.http: list[dict] = []
        self.db: dict[str, tuple[set[str], set[str]]] = {}
        self.exec: list[tuple[str, list[re.Pattern]]] = []
        if path is None:
            return
        base = os.path.dirname(os.path.abspath(path))
        with open(path, "rb") as f:
            doc = tomllib.load(f)
        self.module = doc.get("module", self.module)
        for g in doc.get("fs", []):
            pats = []
            for p in g["paths"]:
                full = os.path.normpath(os.path.join(base, p))
                pats.append(glob_to_regex(full, False))
                if full.endswith("/**"):
                    pats.append(glob_to_regex(full[:-3], False))
            self.fs.append((pats, set(g["allow"])))
        for g in doc.get("http", []):
            self.http.append({
                "urls": [glob_to_regex(u, False) for u in g["urls"]],
                "hosts": {urllib.parse.urlsplit(u).hostname for u in g["urls"]},
                "methods": {m.upper() for m in g.get("methods", ["GET"])},
            })
        for g in doc.get("db", []):
            tables, allow = self.db.setdefault(g["database"], (set(), set()))
            tables.update(t.lower() for t in g.get("tables", []))
            allow.update(g["allow"])
        for g in doc.get("exec", []):
            self.exec.append((g["program"], [glob_to_regex(a, True) for a in g.get("args", [])]))


# ---- the host ----------------------------------------------------------------------------------

class PyHost:
    def __init__(self, grants: Grants, dbs: dict[str, str], fixtures: dict[str, str], trace: bool):
        self.grants = grants
        self.dbs = dbs
        self.fixtures = fixtures
        self.trace_on = trace
        self.calls: list[tuple[str, str, str]] = []  # (verdict, call, detail)

    def trace(self, verdict: str, call: str, detail: str) -> None:
        self.calls.append((verdict, call, detail))
        if self.trace_on:
            print(f"pyhost: {verdict:5} {call} {detail}", file=sys.stderr)

    # -- guest memory --
    def bind(self, caller) -> None:
        self.caller = caller
        self.memory = caller.get("memory")
        self.realloc = caller.get("cabi_realloc")

    def read(self, ptr: int, length: int) -> bytes:
        size = self.memory.data_len(self.caller)
        if ptr < 0 or length < 0 or ptr + length > size:
            raise GuestFault(f"out-of-bounds guest range ({ptr}, {length})")
        return self.memory.read(self.caller, ptr, ptr + length)

    def write(self, ptr: int, data: bytes) -> None:
        size = self.memory.data_len(self.caller)
        if ptr < 0 or ptr + len(data) > size:
            raise GuestFault(f"out-of-bounds guest write at {ptr}")
        self.memory.write(self.caller, data, ptr)

    def string(self, ptr: int, length: int) -> str:
        try:
            return self.read(ptr, length).decode("utf-8")
        except UnicodeDecodeError as e:
            raise GuestFault(f"invalid UTF-8: {e}") from None

    def alloc(self, align: int, size: int) -> int:
        if self.realloc is None:
            raise GuestFault("the module returns lists but exports no cabi_realloc")
        ptr = self.realloc(self.caller, 0, 0, align, size)
        if ptr % align != 0:
            raise GuestFault(f"cabi_realloc returned misaligned {ptr}")
        return ptr

    def put_bytes(self, data: bytes, align: int = 1) -> tuple[int, int]:
        ptr = self.alloc(align, len(data))
        if data:
            self.write(ptr, data)
        return ptr, len(data)

    def put_string(self, s: str) -> tuple[int, int]:
        return self.put_bytes(s.encode("utf-8"))

    def put_string_list(self, items: list[str]) -> tuple[int, int]:
        elems = b"".join(struct.pack("<II", *self.put_string(s)) for s in items)
        ptr = self.alloc(4, len(elems))
        if elems:
            self.write(ptr, elems)
        return ptr, len(items)

    def put_headers(self, headers: list[tuple[str, str]]) -> tuple[int, int]:
        elems = b"".join(struct.pack("<IIII", *self.put_string(n), *self.put_string(v)) for n, v in headers)
        ptr = self.alloc(4, len(elems))
        if elems:
            self.write(ptr, elems)
        return ptr, len(headers)

    def put_value(self, v) -> bytes:
        # variant value: tag u8 @0, payload @8; 16 bytes, align 8
        if v is None:
            return struct.pack("<B7x8x", 0)
        if isinstance(v, int):
            return struct.pack("<B7xq", 1, v)
        if isinstance(v, float):
            return struct.pack("<B7xd", 2, v)
        if isinstance(v, str):
            return struct.pack("<B7xII", 3, *self.put_string(v))
        return struct.pack("<B7xII", 4, *self.put_bytes(bytes(v)))

    def lift_values(self, ptr: int, count: int) -> list:
        if ptr % 8 != 0 and count:
            raise GuestFault("list<value> is not 8-aligned")
        raw = self.read(ptr, count * 16)
        values = []
        for i in range(count):
            tag = raw[i * 16]
            payload = raw[i * 16 + 8: i * 16 + 16]
            if tag == 0:
                values.append(None)
            elif tag == 1:
                values.append(struct.unpack("<q", payload)[0])
            elif tag == 2:
                values.append(struct.unpack("<d", payload)[0])
            elif tag == 3:
                values.append(self.string(*struct.unpack("<II", payload)))
            elif tag == 4:
                values.append(self.read(*struct.unpack("<II", payload)))
            else:
                raise GuestFault(f"bad value tag {tag}")
        return values

    def lift_strings(self, ptr: int, count: int) -> list[str]:
        raw = self.read(ptr, count * 8)
        return [self.string(*struct.unpack_from("<II", raw, i * 8)) for i in range(count)]

    # -- result areas --
    def ret_error(self, retptr: int, err: HostError, payload_offset: int = 4) -> None:
        mptr, mlen = self.put_string(err.message)
        self.write(retptr, struct.pack("<B", 1))
        self.write(retptr + payload_offset, struct.pack("<BxxxII", err.code, mptr, mlen))

    # -- fs --
    def fs_check(self, action: str, path: str) -> str:
        if "\0" in path or path == "":
            raise HostError(INVALID_ARGUMENT, "empty path or NUL byte")
        full = os.path.normpath(os.path.join(os.getcwd(), path))
        real = os.path.realpath(full)
        for pats, allow in self.grants.fs:
            if action in allow and any(p.match(full) for p in pats) and any(p.match(real) for p in pats):
                return full
        raise HostError(DENIED, f"no grant allows fs.{action} on {full}")

    def fs_call(self, name: str, action: str, retptr: int, path_ptr: int, path_len: int, body, ok_writer):
        path = self.string(path_ptr, path_len)
        try:
            full = self.fs_check(action, path)
            try:
                result = body(full)
            except FileNotFoundError:
                raise HostError(NOT_FOUND, f"{full}: not found") from None
            except OSError as e:
                raise HostError(IO, f"{full}: {e.strerror}") from None
            self.trace("allow", f"fs.{name}", path)
            self.write(retptr, b"\0")
            ok_writer(result)
        except HostError as e:
            self.trace("deny" if e.code == DENIED else "error", f"fs.{name}", f"{path}: {CODE_NAMES[e.code]}")
            self.ret_error(retptr, e)

    # -- http --
    def http_send(self, method: str, url: str, headers, body: bytes) -> tuple[int, list, bytes]:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HostError(INVALID_ARGUMENT, f"not an http(s) URL: {url}")
        host = parts.hostname
        for g in self.grants.http:
            if method.upper() in g["methods"] and any(p.match(url) for p in g["urls"]):
                if is_private(host) and host not in g["hosts"]:
                    continue
                break
        else:
            if is_private(host):
                raise HostError(DENIED, f"{host} is a loopback/private/link-local address")
            raise HostError(DENIED, f"no grant allows {method} {url}")
        if url in self.fixtures:
            with open(self.fixtures[url], "rb") as f:
                return 200, [("content-type", "text/html; charset=utf-8")], f.read()
        if method.upper() != "GET":
            receipt = json.dumps({"received": len(body), "method": method.upper()}).encode()
            return 200, [("content-type", "application/json")], receipt
        return 404, [], b"not found"

    # -- db --
    def db_connect(self, name: str) -> sqlite3.Connection:
        if name not in self.grants.db:
            raise HostError(DENIED, f"no grant for database {name}")
        if name not in self.dbs:
            raise HostError(NOT_FOUND, f"database {name} is not bound (--db {name}=PATH)")
        tables, allow = self.grants.db[name]
        conn = sqlite3.connect(self.dbs[name], isolation_level=None)
        ops = {
            sqlite3.SQLITE_READ: "read", sqlite3.SQLITE_INSERT: "insert",
            sqlite3.SQLITE_UPDATE: "update", sqlite3.SQLITE_DELETE: "delete",
        }

        def authorizer(action, arg1, arg2, dbname, source):
            if action == sqlite3.SQLITE_SELECT or action == sqlite3.SQLITE_FUNCTION:
                return sqlite3.SQLITE_OK
            if action in ops:
                table = (arg1 or "").lower()
                ok = ops[action] in allow and (table in tables or "*" in tables)
                return sqlite3.SQLITE_OK if ok else sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_DENY  # ATTACH, PRAGMA, schema changes, transactions ...

        conn.set_authorizer(authorizer)
        return conn

    def db_run(self, name: str, sql: str, params: list, write: bool):
        conn = self.db_connect(name)
        try:
            cur = conn.execute(sql, params)
            if write:
                return cur.rowcount if cur.rowcount >= 0 else 0
            cols = [d[0] for d in cur.description or []]
            return cols, [list(r) for r in cur.fetchall()]
        except sqlite3.DatabaseError as e:
            msg = str(e)
            if "not authorized" in msg:
                raise HostError(DENIED, f"database {name}: {msg}") from None
            if "one statement" in msg:
                raise HostError(INVALID_ARGUMENT, msg) from None
            raise HostError(INVALID_ARGUMENT if isinstance(e, sqlite3.OperationalError) else IO, msg) from None
        except sqlite3.Warning as e:
            raise HostError(INVALID_ARGUMENT, str(e)) from None
        finally:
            conn.close()

    # -- exec --
    def exec_run(self, program: str, args: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
        for prog, pats in self.grants.exec:
            if prog == program and len(pats) == len(args) and all(p.match(a) for p, a in zip(pats, args)):
                break
        else:
            raise HostError(DENIED, f"no grant allows exec of {program} {args}")
        try:
            p = subprocess.run([program, *args], input=stdin, capture_output=True, env={}, timeout=10)
        except FileNotFoundError:
            raise HostError(NOT_FOUND, f"{program}: not found") from None
        except subprocess.TimeoutExpired:
            raise HostError(TIMEOUT, f"{program}: timed out") from None
        return p.returncode, p.stdout, p.stderr

    # -- linking --
    def link(self, linker: Linker) -> None:
        i32 = ValType.i32()

        def define(module: str, name: str, nparams: int, fn):
            def wrapper(caller, *args):
                self.bind(caller)
                fn(*args)
            linker.define_func(f"peon:host/{module}@0.1.0", name, FuncType([i32] * nparams, []), wrapper,
                               access_caller=True)

        def fs_read(p, n, ret):
            def body(full):
                with open(full, "rb") as f:
                    return f.read()
            self.fs_call("read", "read", ret, p, n, body, lambda data: self.write(ret + 4, struct.pack("<II", *self.put_bytes(data))))

        def fs_write_like(name, mode):
            def fn(p, n, dp, dn, ret):
                data = self.read(dp, dn)

                def body(full):
                    with open(full, mode) as f:
                        f.write(data)
                self.fs_call(name, name, ret, p, n, body, lambda _: None)
            return fn

        def fs_read_dir(p, n, ret):
            self.fs_call("read-dir", "list", ret, p, n, lambda full: sorted(os.listdir(full)),
                         lambda names: self.write(ret + 4, struct.pack("<II", *self.put_string_list(names))))

        def fs_remove(p, n, ret):
            def body(full):
                if os.path.isdir(full) and not os.path.islink(full):
                    os.rmdir(full)
                else:
                    os.remove(full)
            self.fs_call("remove", "remove", ret, p, n, body, lambda _: None)

        define("fs", "read", 3, fs_read)
        define("fs", "write", 5, fs_write_like("write", "wb"))
        define("fs", "append", 5, fs_write_like("append", "ab"))
        define("fs", "read-dir", 3, fs_read_dir)
        define("fs", "remove", 3, fs_remove)

        def http_send(mp, mn, up, un, hp, hn, bp, bn, ret):
            method, url = self.string(mp, mn), self.string(up, un)
            raw = self.read(hp, hn * 16)
            headers = []
            for i in range(hn):
                a, b, c, d = struct.unpack_from("<IIII", raw, i * 16)
                headers.append((self.string(a, b), self.string(c, d)))
            body = self.read(bp, bn)
            try:
                status, rheaders, rbody = self.http_send(method, url, headers, body)
                self.trace("allow", "http.send", f"{method} {url} -> {status}")
                hptr, hlen = self.put_headers(rheaders)
                bptr, blen = self.put_bytes(rbody)
                self.write(ret, struct.pack("<BxxxHxxIIII", 0, status, hptr, hlen, bptr, blen))
            except HostError as e:
                self.trace("deny" if e.code == DENIED else "error", "http.send", f"{method} {url}: {CODE_NAMES[e.code]}")
                self.ret_error(ret, e)

        define("http", "send", 9, http_send)

        def db_call(write: bool):
            def fn(dp, dn, sp, sn, pp, pn, ret):
                name, sql = self.string(dp, dn), self.string(sp, sn)
                params = self.lift_values(pp, pn)
                call = "db.execute" if write else "db.query"
                try:
                    result = self.db_run(name, sql, params, write)
                    self.trace("allow", call, f"{name}: {sql}")
                    if write:
                        self.write(ret, struct.pack("<B7xQ", 0, result))
                    else:
                        cols, rows = result
                        cptr, clen = self.put_string_list(cols)
                        row_elems = b""
                        for row in rows:
                            vals = b"".join(self.put_value(v) for v in row)
                            vptr = self.alloc(8, len(vals))
                            if vals:
                                self.write(vptr, vals)
                            row_elems += struct.pack("<II", vptr, len(row))
                        rptr = self.alloc(4, len(row_elems))
                        if row_elems:
                            self.write(rptr, row_elems)
                        self.write(ret, struct.pack("<BxxxIIII", 0, cptr, clen, rptr, len(rows)))
                except HostError as e:
                    self.trace("deny" if e.code == DENIED else "error", call, f"{name}: {sql}: {CODE_NAMES[e.code]}")
                    self.ret_error(ret, e, payload_offset=8 if write else 4)
            return fn

        define("db", "query", 7, db_call(False))
        define("db", "execute", 7, db_call(True))

        def exec_run(pp, pn, ap, an, sp, sn, ret):
            program = self.string(pp, pn)
            args = self.lift_strings(ap, an)
            stdin = self.read(sp, sn)
            try:
                code, out, err = self.exec_run(program, args, stdin)
                self.trace("allow", "exec.run", f"{program} {args} -> {code}")
                optr, olen = self.put_bytes(out)
                eptr, elen = self.put_bytes(err)
                self.write(ret, struct.pack("<BxxxiIIII", 0, code, optr, olen, eptr, elen))
            except HostError as e:
                self.trace("deny" if e.code == DENIED else "error", "exec.run", f"{program} {args}: {CODE_NAMES[e.code]}")
                self.ret_error(ret, e)

        define("exec", "run", 7, exec_run)

        def log(level, p, n):
            names = ["debug", "info", "warn", "error"]
            if not 0 <= level < 4:
                raise GuestFault(f"bad log level {level}")
            print(f"[{self.grants.module}] {names[level]}: {self.string(p, n)}", file=sys.stderr)

        define("log", "log", 3, log)


def is_private(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_reserved


def run_module(wasm: str, host: PyHost, input_text: str) -> tuple[bool, str]:
    """Instantiates and runs the module; returns (ok, text). Raises wasmtime.Trap on a trap."""
    engine = Engine()
    store = Store(engine)
    wasi = WasiConfig()
    wasi.inherit_stderr()
    store.set_wasi(wasi)
    linker = Linker(engine)
    module = Module.from_file(engine, wasm)
    if any(imp.module == "wasi_snapshot_preview1" for imp in module.imports):
        linker.define_wasi()
    host.link(linker)
    instance = linker.instantiate(store, module)
    exports = instance.exports(store)
    names = {e.name for e in module.exports}
    if "_initialize" in names:
        exports["_initialize"](store)
    if "run" not in names:
        if "_start" in names:
            try:
                exports["_start"](store)
            except wasmtime.ExitTrap as e:
                return e.code == 0, ""
            return True, ""
        raise SystemExit("pyhost: the module exports neither run nor _start")
    memory = exports["memory"]
    realloc = exports["cabi_realloc"]
    data = input_text.encode("utf-8")
    ptr = realloc(store, 0, 0, 1, len(data))
    if data:
        memory.write(store, data, ptr)
    area = exports["run"](store, ptr, len(data))
    raw = memory.read(store, area, area + 12)
    tag, sptr, slen = struct.unpack("<BxxxII", raw)
    if tag > 1:
        raise SystemExit(f"pyhost: bad result tag {tag}")
    text = memory.read(store, sptr, sptr + slen).decode("utf-8")
    if "cabi_post_run" in names:
        exports["cabi_post_run"](store, area)
    return tag == 0, text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("module")
    ap.add_argument("--grants")
    ap.add_argument("--db", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--http-fixture", action="append", default=[], metavar="URL=FILE")
    ap.add_argument("--input", default="")
    ap.add_argument("--quiet", action="store_true", help="no trace lines")
    a = ap.parse_args()
    dbs = dict(x.split("=", 1) for x in a.db)
    fixtures = dict(x.rsplit("=", 1) for x in a.http_fixture)
    host = PyHost(Grants(a.grants), dbs, fixtures, not a.quiet)
    try:
        ok, text = run_module(a.module, host, a.input)
    except (wasmtime.WasmtimeError, wasmtime.Trap, GuestFault) as e:
        print(f"pyhost: trap: {e}", file=sys.stderr)
        return 2
    if ok:
        print(text)
        return 0
    print(text, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
