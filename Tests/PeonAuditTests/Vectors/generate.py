#!/usr/bin/env python3
"""Regenerates the PeonAudit test vectors, independently of the Swift code.

Everything here is computed from the specifications with Python's hashlib and the `cryptography` package's
Ed25519, not from our Swift implementation, so the Swift tests cross-check against a second implementation:

- rfc6962-reference-tree.json: the 8-leaf test tree of the Certificate Transparency reference tests
  (leaves "", 00, 10, 2021, 3031, 40414243, 5051525354555657, 606162636465666768696a6b6c6d6e6f), the root of
  every prefix (asserted below against the published CT values), and every inclusion and consistency proof
  computed with the recursive definitions of RFC 6962 §2.1.1 and §2.1.2.
- tamper/*.json: one signed audit log per tampering, named after it, with the error verification must report
  (`want_error` is an AuditError code, `want_seq` / `want_line` the first bad entry).

Run from this directory:  python3 generate.py
"""
import base64
import hashlib
import json
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))


def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(b):
    return sha256(b"\x00" + b)


def node_hash(l, r):
    return sha256(b"\x01" + l + r)


def split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves):
    """RFC 6962 §2.1 over raw leaves."""
    if len(leaves) == 0:
        return sha256(b"")
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = split(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m, leaves):
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    n = len(leaves)
    if n <= 1:
        return []
    k = split(n)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m, leaves, b):
    """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = split(n)
    if m <= k:
        return subproof(m, leaves[:k], b) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def proof(m, leaves):
    if m == 0 or m == len(leaves):
        return []
    return subproof(m, leaves, True)


CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
# Roots published with the CT reference implementation's tests (merkle_tree_test), sizes 1..8.
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def reference_tree():
    leaves = [bytes.fromhex(h) for h in CT_LEAVES]
    roots = [mth(leaves[:n]).hex() for n in range(0, 9)]
    assert roots[1:] == CT_ROOTS, "our Python MTH disagrees with the published CT roots"
    assert roots[0] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    inclusion = []
    for n in range(1, 9):
        for m in range(n):
            inclusion.append({"leaf_index": m, "tree_size": n, "leaf_hash": leaf_hash(leaves[m]).hex(),
                              "root_hash": roots[n], "hashes": [h.hex() for h in path(m, leaves[:n])]})
    consistency = []
    for n in range(1, 9):
        for m in range(0, n + 1):
            consistency.append({"old_size": m, "new_size": n, "old_root": roots[m], "new_root": roots[n],
                                "hashes": [h.hex() for h in proof(m, leaves[:n])]})
    return {"desc": "RFC 6962 8-leaf reference tree of the CT test suite, with every prefix root, inclusion and consistency proof",
            "leaves": CT_LEAVES, "roots": roots, "inclusion": inclusion, "consistency": consistency}


# --- signed-note checkpoints (C2SP signed-note, tlog-checkpoint) ---

def key_hash(name, pub):
    return sha256(name.encode() + b"\n" + b"\x01" + pub)[:4]


class Signer:
    def __init__(self, name, seed):
        self.name = name
        self.key = Ed25519PrivateKey.from_private_bytes(seed)
        from cryptography.hazmat.primitives import serialization
        self.pub = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verifier(self):
        return "%s+%s+%s" % (self.name, key_hash(self.name, self.pub).hex(), base64.b64encode(b"\x01" + self.pub).decode())

    def sign(self, text):
        sig = self.key.sign(text.encode())
        return text + "\n" + "\u2014 %s %s\n" % (self.name, base64.b64encode(key_hash(self.name, self.pub) + sig).decode())


def checkpoint_text(origin, lines):
    leaves = [l.encode() for l in lines]
    return "%s\n%d\n%s\n" % (origin, len(leaves), base64.b64encode(mth(leaves)).decode())


# --- audit entries in our line format ---

def entry(seq, prev, call, resource, decision, outcome=None, details=None):
    obj = {
        "seq": seq, "time": "2026-11-21T20:00:%02d.%06dZ" % (seq % 60, seq * 1111),
        "run": "run-1", "module": "report.wasm", "module_sha256": "ab" * 32,
        "call": call, "resource": resource, "decision": decision,
        "reason": "rule p3: reports may be read" if decision == "allow" else ("" if decision is None else "no rule allows it"),
        "policy": "v7", "outcome": outcome, "details": dict(sorted((details or {}).items())), "prev": prev,
    }
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def chain(specs, start_prev="0" * 64, start_seq=0):
    lines, prev = [], start_prev
    for i, s in enumerate(specs):
        line = entry(start_seq + i, prev, *s)
        lines.append(line)
        prev = leaf_hash(line.encode()).hex()
    return lines


SPECS = [
    ("run.start", "module:report.wasm", None),
    ("fs.read", "fs:/srv/reports/q1.txt", "allow"),
    ("fs.read", "fs:/srv/reports/q1.txt", None, "ok", {"payload_len": "1024", "payload_sha256": "cd" * 32}),
    ("fs.write", "fs:/srv/out/summary.txt", "allow"),
    ("fs.write", "fs:/srv/out/summary.txt", None, "ok", {"payload_len": "77", "payload_sha256": "ef" * 32}),
    ("http.request", "http:POST https://api.example.com/v1", "deny"),
    ("exec", "exec:/bin/sh", "deny", None, {"note": "quote \" backslash \\ tab \t ünïcödé"}),
    ("db.query", "db:reports", "allow", None, {"sql_sha256": "01" * 32}),
    ("db.query", "db:reports", None, "ok"),
    ("run.end", "module:report.wasm", None, "ok"),
]


def tamper_vectors():
    signer = Signer("peon-wasm/test-vectors", bytes(range(32)))
    other = Signer("peon-wasm/test-vectors", bytes(range(1, 33)))
    origin = signer.name
    lines = chain(SPECS)
    full_cp = signer.sign(checkpoint_text(origin, lines))
    vectors = {}

    def add(name, desc, log_lines=None, log_bytes=None, checkpoint=full_cp, key=signer.verifier(),
            want=None, seq=None, line=None, size=None):
        if log_bytes is None:
            log_bytes = "".join(l + "\n" for l in log_lines).encode()
        v = {"desc": desc, "log_base64": base64.b64encode(log_bytes).decode(), "checkpoint": checkpoint,
             "verifier_key": key, "want_error": want, "want_seq": seq, "want_line": line}
        if want is None:
            n = size if size is not None else len(log_lines)
            v["want_size"] = n
            v["want_root"] = mth([l.encode() for l in log_lines]).hex()
        vectors[name] = v

    add("happy-path", "an untouched log with a checkpoint of all of it verifies", lines)
    add("happy-path-older-checkpoint", "entries after the latest checkpoint are chained and verify",
        lines, checkpoint=signer.sign(checkpoint_text(origin, lines[:7])))
    mod = list(lines)
    mod[3] = mod[3].replace("summary", "sumMary")
    add("modified-byte-@3", "one byte of entry 3 changed: entry 4's prev no longer matches", mod,
        want="brokenChain", seq=3, line=4)
    mod = list(lines)
    mod[9] = mod[9].replace('"outcome":"ok"', '"outcome":"no"')
    add("modified-byte-last-entry", "the last entry changed: only the checkpoint root can tell", mod,
        want="checkpointMismatch", seq=9, line=10)
    add("deleted-entry-@4", "entry 4 removed", lines[:4] + lines[5:], want="brokenChain", seq=4, line=5)
    add("reordered-entries-@5", "entries 5 and 6 swapped", lines[:5] + [lines[6], lines[5]] + lines[7:],
        want="brokenChain", seq=5, line=6)
    forged = entry(2, leaf_hash(lines[1].encode()).hex(), "fs.write", "fs:/etc/passwd", "allow")
    add("inserted-entry-@2", "a forged entry inserted after entry 1, chained to it but not renumbering the rest",
        lines[:2] + [forged] + lines[2:], want="brokenChain", seq=3, line=4)
    rechained = lines[:2] + chain([("fs.write", "fs:/etc/passwd", "allow")] + SPECS[2:],
                                  start_prev=leaf_hash(lines[1].encode()).hex(), start_seq=2)
    add("inserted-entry-rechained-@2", "a forged entry inserted and every later entry renumbered and re-chained: the signed root catches it",
        rechained, want="checkpointMismatch", seq=9, line=10)
    add("truncated-to-7", "the last three entries cut off", lines[:7], want="checkpointMismatch", seq=7, line=8)
    add("truncated-rechained-checkpoint-replaced", "entries cut and the checkpoint replaced by one signed with another key",
        lines[:7], checkpoint=other.sign(checkpoint_text(origin, lines[:7])), want="badSignature")
    cp_lines = full_cp.split("\n")
    cp_lines[1] = "9"
    add("replaced-checkpoint-size", "the checkpoint's size edited", lines, checkpoint="\n".join(cp_lines),
        want="badSignature")
    cp_lines = full_cp.split("\n")
    cp_lines[2] = base64.b64encode(mth([l.encode() for l in mod])).decode()
    add("replaced-checkpoint-root", "the checkpoint's root replaced", lines, checkpoint="\n".join(cp_lines),
        want="badSignature")
    add("wrong-key", "verified with a different key of the same name", lines, key=other.verifier(), want="badSignature")
    add("malformed-key", "a verifier key that is not NAME+HASH+KEY", lines, key="not-a-key", want="badKey")
    add("missing-checkpoint", "no LOG.checkpoint beside the log", lines, checkpoint=None, want="checkpointMissing")
    add("malformed-checkpoint", "LOG.checkpoint is not a signed note", lines, checkpoint="hello\n",
        want="checkpointMalformed")
    add("malformed-checkpoint-size", "a signed checkpoint whose size line is not a number", lines,
        checkpoint=signer.sign("%s\nten\n%s\n" % (origin, base64.b64encode(b"\0" * 32).decode())),
        want="checkpointMalformed")
    torn = "".join(l + "\n" for l in lines[:9]) + lines[9][:40]
    add("torn-tail", "the writer died mid-line, after the last checkpoint, and the log was not reopened",
        log_bytes=torn.encode(), checkpoint=signer.sign(checkpoint_text(origin, lines[:9])),
        want="tornTail", seq=9, line=10)
    add("truncated-signed-entry", "the last signed entry cut mid-line: removal, not a writer's crash",
        log_bytes=torn.encode(), want="checkpointMismatch", seq=9, line=10)
    garbage = "".join(l + "\n" for l in lines[:6]).encode() + b"\xff\xfe\x00garbage\x80\n" + \
        "".join(l + "\n" for l in lines[7:]).encode()
    add("garbage-line-@6", "entry 6 replaced by bytes that are not UTF-8", log_bytes=garbage,
        want="malformedEntry", seq=6, line=7)
    add("non-json-line-@6", "entry 6 replaced by text that is not JSON", lines[:6] + ["hello world"] + lines[7:],
        want="malformedEntry", seq=6, line=7)
    dup = lines[6].replace('{"seq":6,', '{"seq":6,"seq":7,')
    add("duplicate-key-@6", "entry 6 with two seq fields (tools could disagree on which counts)",
        lines[:6] + [dup] + lines[7:], want="malformedEntry", seq=6, line=7)
    add("trailing-garbage", "a non-entry line after the last entry", lines + ["{}"], want="malformedEntry",
        seq=10, line=11)
    add("empty-log", "a log with no entries, signed as such (the size-0 checkpoint a new log gets)", [],
        checkpoint=signer.sign(checkpoint_text(origin, [])), want="emptyLog")
    add("truncated-to-0", "every entry cut off under a checkpoint that covers them: removal, not an empty log", [],
        want="checkpointMismatch", seq=0, line=1)
    add("missing-field-@0", "entry 0 without its prev", [lines[0].replace(',"prev":"' + "0" * 64 + '"', "")] + lines[1:],
        want="malformedEntry", seq=0, line=1)
    return vectors


def main():
    with open(os.path.join(HERE, "rfc6962-reference-tree.json"), "w") as f:
        json.dump(reference_tree(), f, indent=1)
        f.write("\n")
    tdir = os.path.join(HERE, "tamper")
    os.makedirs(tdir, exist_ok=True)
    for old in os.listdir(tdir):
        os.remove(os.path.join(tdir, old))
    for name, v in tamper_vectors().items():
        with open(os.path.join(tdir, name + ".json"), "w") as f:
            json.dump(v, f, indent=1, ensure_ascii=False)
            f.write("\n")


if __name__ == "__main__":
    main()
