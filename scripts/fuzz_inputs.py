#!/usr/bin/env python3
"""Mutation fuzzing of what peon-wasm reads from operators and guests: grants (TOML), Casbin models and
policies, WebAssembly modules (binary and text), run on both engines.

Run (after `swift build`, from the repository root):
    python3 scripts/fuzz_inputs.py grants|policy|wasm|wat [--cases N] [--seed S] [--engine wasmkit|wasmtime]
        [--peon .build/debug/peon-wasm] [--casbin-examples ../shared/casbin-examples]

Each case mutates a seed file from this repository (for `policy`, Casbin's own example models and policies)
with byte edits and TOML/Casbin/Wasm-flavoured tokens, runs `grants check`, `policy eval`, `run` or `inspect`
on it, and counts a case as bad when peon-wasm dies of a signal, aborts, prints a crash backtrace, or does not
finish in 20 s. Bad inputs are kept in `--keep` (default /tmp/peon-fuzz) to reproduce. Any bad case is a bug:
bad input must get one error line and a documented exit code. The binary is copied first, so rebuilding while
this runs does not disturb it. Exit status: 0 when no case was bad, 1 otherwise.
"""
import argparse
import glob
import os
import random
import shutil
import subprocess
import sys
import tempfile

TOKENS = {
    "grants": [b"\n[", b"\n[[", b"\n[ ", b"#", b'# """', b"# '''", b"\n[\\", b"\n[{", b"\n[\r", b"[", b"]", b"[[",
               b"]]", b'"', b"'", b'"""', b"'''", b"\\", b"=", b"\n", b"\r\n", b"\x00", b"\xef\xbb\xbf", b"\xff",
               b"{", b"}", b",", b".", b"1e999", b"inf", b"nan", b"0x", b"1979-05-27T07:32:00Z", b"\\u0000",
               b"\\uD800", b"\xe2\x80\xae", b"9" * 30, b"[]", b"{}", b'""'],
    "policy": [b"(", b")", b"[", b"]", b'"', b"'", b"\\", b",", b"\n", b"\r\n", b"\x00", b"\xff", b"#", b"&&",
               b"||", b"!", b"==", b"r.", b"p.", b"g(", b"keyMatch2(", b"regexMatch(", b"eval(", b".*", b"*",
               b"{", b"}", b"9" * 25, b"in", b"(?", b"\xef\xbb\xbf", b"[matchers]\n", b"m = ", b"priority",
               b"p.eft", b"_", b"%", b"1e308"],
    "wasm": [b"\x00", b"\x7f", b"\xff\xff\xff\xff\x0f", b"\x80" * 6, b"\x60", b"\x01", b"\x41", b"\x0b", b"\xfc",
             b"\xfd"],
    "wat": [b"(", b")", b'"', b"\\", b"(;", b";)", b";;", b"$", b"0x", b"nan:0x", b"inf", b"i32.const ",
            b"(memory 65537)", b"(func", b"local.get 99", b"br 99", b"\x00", b"\xff", b"9" * 40],
}


def mutate(data, tokens, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op, pos = rng.random(), rng.randint(0, len(data))
        if op < 0.3:
            data[pos:pos] = rng.choice(tokens)
        elif op < 0.5 and data:
            del data[pos:min(len(data), pos + rng.randint(1, 16))]
        elif op < 0.7 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op < 0.8 and data:
            start = rng.randrange(len(data))
            data[pos:pos] = data[start:start + rng.randint(1, 100)]
        elif op < 0.85:
            del data[pos:]
        else:
            data[pos:pos] = rng.choice(tokens) * rng.randint(2, 300)
    return bytes(data)


def seeds(kind, examples):
    if kind == "grants":
        paths = glob.glob("policies/*.toml") + glob.glob("docs/examples/*.toml") + glob.glob("modules/**/*.toml", recursive=True)
    elif kind == "policy":
        return ([open(p, "rb").read() for p in glob.glob(os.path.join(examples, "go", "*.conf"))],
                [open(p, "rb").read() for p in glob.glob(os.path.join(examples, "go", "*.csv"))])
    elif kind == "wasm":
        paths = [p for p in glob.glob("modules/**/*.wasm", recursive=True) if os.path.getsize(p) < 400_000]
    else:
        paths = glob.glob("modules/**/*.wat", recursive=True) + glob.glob("Tests/**/*.wat", recursive=True)
    return [open(p, "rb").read() for p in paths]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(TOKENS))
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=["wasmkit", "wasmtime"], default="wasmkit")
    parser.add_argument("--peon", default=".build/debug/peon-wasm")
    parser.add_argument("--casbin-examples", default="../shared/casbin-examples")
    parser.add_argument("--keep", default="/tmp/peon-fuzz")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpus = seeds(args.kind, args.casbin_examples)
    if not (corpus[0] if args.kind == "policy" else corpus):
        sys.exit(f"fuzz_inputs: no seed files for {args.kind}; run from the repository root")
    work = tempfile.mkdtemp(prefix="peon-fuzz-")
    peon = os.path.join(work, "peon-wasm")
    shutil.copy2(args.peon, peon)
    os.makedirs(args.keep, exist_ok=True)
    bad = 0
    for case in range(args.cases):
        folder = os.path.join(work, "case")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)

        def write(name, data):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
            return os.path.join(folder, name)

        tokens = TOKENS[args.kind]
        if args.kind == "grants":
            command = [peon, "grants", "check", "modules/hello/hello.wat", "--grants",
                       write("grants.toml", mutate(rng.choice(corpus), tokens, rng))]
        elif args.kind == "policy":
            models, policies = corpus
            requests = b'["alice","data1","read"]\n["bob","data2","write"]\n[{"Age":30},"/a/b","GET"]\n'
            command = [peon, "policy", "eval", "--model", write("m.conf", mutate(rng.choice(models), tokens, rng)),
                       "--policy", write("p.csv", mutate(rng.choice(policies), tokens, rng)),
                       write("r.jsonl", mutate(requests, tokens, rng) if rng.random() < 0.3 else requests)]
        elif args.kind == "wasm":
            command = [peon, "run", write("m.wasm", mutate(rng.choice(corpus), tokens, rng)), "--timeout", "2s",
                       "--input", "x", "--audit", os.path.join(folder, "audit.jsonl"), "--engine", args.engine]
        else:
            command = [peon, "inspect", write("m.wat", mutate(rng.choice(corpus), tokens, rng))]
        try:
            result = subprocess.run(command, capture_output=True, timeout=20)
            stderr = result.stderr.decode("utf-8", "replace")
            crashed = (result.returncode < 0 or result.returncode in (132, 133, 134, 139)
                       or "Program crashed" in stderr or "Fatal error" in stderr or "Backtrac" in stderr)
            what = f"exit {result.returncode}: {stderr[:300]!r}"
        except subprocess.TimeoutExpired:
            crashed, what = True, "no answer in 20 s"
        if crashed:
            bad += 1
            kept = os.path.join(args.keep, f"{args.kind}-{args.seed}-{case}")
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(folder, kept)
            print(f"bad case {case} ({kept}): {what}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{args.kind}: {args.cases} cases, {bad} bad")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
