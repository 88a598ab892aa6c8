#!/usr/bin/env python3
"""Drives `peon-wasm mcp` with the official Python MCP client (PyPI `mcp` 2.3.0).

Usage: mcp_client_test.py PEON_WASM FIXTURES_DIR WORK_DIR SCENARIO

Each scenario starts a server on fresh grants files in WORK_DIR (tools: reader, echo, trap, sleeper,
napper, guarded, spinner, built from the .wat files in FIXTURES_DIR), checks what the client sees and
what the audit log holds, and exits 0, or prints what went wrong and exits 1. Run by McpServerTests.swift.
The `policy-store` scenario needs PEON_TEST_POSTGRES_URL (a PostgreSQL server it may create databases on).
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
import mcp.types as types

PEON, FIXTURES, WORK, SCENARIO = sys.argv[1:5]
LOG = os.path.join(WORK, "audit.jsonl")
KEY = os.path.join(WORK, "audit.key")
STDERR = os.path.join(WORK, "server.stderr")
CLIENT = types.Implementation(name="peon-test-client", version="1.0")

READER_GRANTS = """module = "reader"
[tool]
wasm = "{fixtures}/reader.wat"
description = "Reads a text file under data/ and returns its content."
[[fs]]
paths = ["data/*.txt"]
allow = ["read"]
"""
# Information-flow labels across calls of one session: `hrreader` reads HR data (labelled), `ledger` appends to
# a ledger (a sink without clearance). Passed with `extra`, so the other scenarios keep their tool list.
HR_GRANTS = """module = "hrreader"
[tool]
wasm = "{fixtures}/reader.wat"
description = "Reads an HR file."
[[fs]]
paths = ["hr/*.txt"]
allow = ["read"]
labels = ["hr"]
"""
LEDGER_GRANTS = """module = "ledger"
[tool]
wasm = "{repository}/modules/wat-minimal/minimal.wasm"
description = "Counts a file's bytes into a ledger."
[[fs]]
paths = ["data/*.txt"]
allow = ["read"]
[[fs]]
paths = ["modules/wat-minimal/out/ledger.txt"]
allow = ["append"]
"""
LABEL_TOOLS = ("hrreader.toml", "ledger.toml")
# The ledger again, each read approved by a person: its run waits for the client's answer, then appends.
ASKING_LEDGER_GRANTS = LEDGER_GRANTS.replace('module = "ledger"', 'module = "askingledger"').replace(
    'allow = ["read"]', 'allow = ["read"]\napproval = true')
# `hrpeek` reads HR data, then asks to read a file whose name spells it, under a grant that needs approval:
# the approval request shows the client the data before the call answers.
HRPEEK_GRANTS = """module = "hrpeek"
[tool]
wasm = "{fixtures}/hrpeek.wat"
description = "Reads an HR file, then a data file named by it (approved by a person)."
[[fs]]
paths = ["hr/*.txt"]
allow = ["read"]
labels = ["hr"]
[[fs]]
paths = ["data/*"]
allow = ["read"]
approval = true
"""
READER_REVOKED = """module = "reader"
[tool]
wasm = "{fixtures}/reader.wat"
description = "Reads nothing any more: its grant was revoked."
"""


def fail(message):
    print("FAIL: " + message)
    try:
        with open(STDERR) as f:
            print("--- server stderr ---\n" + f.read()[-4000:])
    except OSError:
        pass
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def setup():
    os.makedirs(os.path.join(WORK, "data"), exist_ok=True)
    os.makedirs(os.path.join(WORK, "secret"), exist_ok=True)
    write(os.path.join(WORK, "data", "hello.txt"), "hello from a granted file")
    write(os.path.join(WORK, "secret", "key.txt"), "TOP-SECRET-CONTENT")
    write(os.path.join(WORK, "reader.toml"), READER_GRANTS.format(fixtures=FIXTURES))
    os.makedirs(os.path.join(WORK, "hr"), exist_ok=True)
    os.makedirs(os.path.join(WORK, "modules", "wat-minimal", "out"), exist_ok=True)
    write(os.path.join(WORK, "hr", "pay.txt"), "alice 120000")
    write(os.path.join(WORK, "hrreader.toml"), HR_GRANTS.format(fixtures=FIXTURES))
    repository = os.path.abspath(os.path.join(FIXTURES, "..", "..", ".."))
    write(os.path.join(WORK, "ledger.toml"), LEDGER_GRANTS.format(repository=repository))
    write(os.path.join(WORK, "hrpeek.toml"), HRPEEK_GRANTS.format(fixtures=FIXTURES))
    write(os.path.join(WORK, "askingledger.toml"), ASKING_LEDGER_GRANTS.format(repository=repository))
    write(os.path.join(WORK, "echo.toml"), f"""module = "echo"
[tool]
wasm = "{FIXTURES}/echo.wat"
description = "Answers its arguments as JSON."
input-schema = {{ type = "object", properties = {{ text = {{ type = "string" }} }}, required = ["text"] }}
""")
    write(os.path.join(WORK, "trap.toml"), f"""module = "trap"
[tool]
wasm = "{FIXTURES}/trap.wat"
description = "Traps."
""")
    write(os.path.join(WORK, "sleeper.toml"), f"""module = "sleeper"
[limits]
timeout = "20s"
[tool]
wasm = "{FIXTURES}/sleeper.wat"
description = "Sleeps until cancelled."
""")
    write(os.path.join(WORK, "dozer.toml"), f"""module = "dozer"
[limits]
timeout = "4s"
[tool]
wasm = "{FIXTURES}/sleeper.wat"
description = "Sleeps 4 s, then answers with its timeout."
""")
    write(os.path.join(WORK, "napper.toml"), f"""module = "napper"
[limits]
timeout = "300ms"
[tool]
wasm = "{FIXTURES}/sleeper.wat"
description = "Sleeps past its 300ms timeout."
""")


    write(os.path.join(WORK, "guarded.toml"), f"""module = "guarded"
[tool]
wasm = "{FIXTURES}/reader.wat"
description = "Reads a text file under data/, each read approved by a person."
[[fs]]
paths = ["data/*.txt"]
allow = ["read"]
approval = true
""")
    write(os.path.join(WORK, "spinner.toml"), f"""module = "spinner"
[limits]
timeout = "60s"
[tool]
wasm = "{FIXTURES}/spinner.wat"
description = "Loops without host calls; without fuel only the process's end stops it."
""")


TOOLS = ["reader.toml", "echo.toml", "trap.toml", "sleeper.toml", "napper.toml", "guarded.toml", "spinner.toml"]


def server_args(extra=()):
    return ["mcp", "--audit", LOG, "--audit-key", KEY, *extra, *TOOLS]


def entries():
    with open(LOG) as f:
        return [json.loads(line) for line in f if line.strip()]


def runs(tool=None):
    """run id -> entries of that run, for runs of `tool` (all when None)."""
    table = {}
    for entry in entries():
        if tool is None or entry.get("module") == tool:
            table.setdefault(entry["run"], []).append(entry)
    return table


def text_of(result):
    check(len(result.content) == 1, f"expected one content item, got {result.content!r}")
    return result.content[0].text


async def with_session(body, notifications=None, extra=(), elicitation=None):
    params = StdioServerParameters(command=PEON, args=server_args(extra), cwd=WORK,
                                   env={"XDG_CONFIG_HOME": WORK})

    async def handler(message):
        if notifications is not None and isinstance(message, types.ToolListChangedNotification):
            notifications.append(message)

    with open(STDERR, "a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write_stream):
            async with ClientSession(read, write_stream, client_info=CLIENT, message_handler=handler,
                                     elicitation_callback=elicitation) as session:
                info = await session.initialize()
                check(info.server_info.name == "peon-wasm", f"server name {info.server_info.name!r}")
                await body(session)


def verify_log():
    key = subprocess.run([PEON, "audit", "key", "--audit-key", KEY], capture_output=True, text=True).stdout.strip()
    check(key, "no verifier key from `peon-wasm audit key`")
    result = subprocess.run([PEON, "audit", "verify", LOG, "--key", key], capture_output=True, text=True,
                            env={**os.environ, "XDG_CONFIG_HOME": WORK})
    check(result.returncode == 0, f"audit verify exited {result.returncode}: {result.stdout} {result.stderr}")


# MARK: scenarios

async def basic(session):
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    check(set(tools) == {"reader", "echo", "trap", "sleeper", "napper", "guarded", "spinner"}, f"tools {sorted(tools)}")
    check(tools["reader"].input_schema["properties"]["input"]["type"] == "string", "reader's default schema")
    check(tools["echo"].input_schema["required"] == ["text"], "echo's declared schema")
    check("granted file" not in tools["reader"].description, "description")

    granted = await session.call_tool("reader", {"input": "data/hello.txt"})
    check(not granted.is_error, f"granted read failed: {text_of(granted)}")
    check(text_of(granted) == "hello from a granted file", f"granted read answered {text_of(granted)!r}")

    echoed = await session.call_tool("echo", {"text": "hi"})
    check(not echoed.is_error and text_of(echoed) == '{"text":"hi"}', f"echo answered {text_of(echoed)!r}")

    denied = await session.call_tool("reader", {"input": "secret/key.txt"})
    message = text_of(denied)
    check(denied.is_error, "a denied read was not an error")
    check("secret/key.txt" in message and "not granted" in message, f"denial text: {message}")
    check("fs[0]" in message and "reader.toml" in message, f"denial does not name the grant line: {message}")
    check("TOP-SECRET" not in message, "the secret leaked")

    wrong = await session.call_tool("reader", {"path": "x"})
    check(wrong.is_error and "`input`" in text_of(wrong), f"wrong arguments: {text_of(wrong)}")
    # The right name with the wrong type says what is wrong with it.
    typed = await session.call_tool("reader", {"input": 5})
    check(typed.is_error and text_of(typed) == "arguments.input must be a string; got an integer", f"a number as input: {text_of(typed)}")
    # The SDK reads a string that looks like a data URL as binary data: refused, never passed on changed.
    for name, arguments in [("reader", {"input": "data:text/plain,hello"}), ("echo", {"text": "data:text/plain,hello"})]:
        changed = await session.call_tool(name, arguments)
        check(changed.is_error and "data:" in text_of(changed), f"{name} with a data: string answered {text_of(changed)}")

    # The server keeps running, and the log open: its entries are still signed within about a second (a periodic
    # checkpoint used to wait for 1,000 entries or the server's exit), and that checkpoint verifies.
    signed = None
    for _ in range(200):
        with open(LOG + ".checkpoint") as f:
            signed = int(f.read().split("\n")[1])
        if signed == len(entries()):
            break
        await anyio.sleep(0.1)
    check(signed == len(entries()), f"the running server's checkpoint covers {signed} of {len(entries())} entries")
    verify_log()


def basic_log():
    verify_log()
    reader_runs = runs("reader")
    check(len(reader_runs) == 2, f"{len(reader_runs)} reader runs logged (the bad-arguments call must not run)")
    denials = [e for run in reader_runs.values() for e in run if e.get("decision") == "deny"]
    check(len(denials) == 1 and denials[0]["resource"].endswith("/secret/key.txt"), f"deny entries: {denials}")
    for run_id, run in runs().items():
        start = [e for e in run if e["call"] == "run.start"]
        end = [e for e in run if e["call"] == "run.end"]
        check(len(start) == 1 and len(end) == 1, f"run {run_id} is not bracketed: {run}")
        for entry in start + end:
            details = entry.get("details", {})
            check(details.get("mcp_client") == "peon-test-client", f"client name missing: {entry}")
            check(details.get("mcp_request", "unknown") != "unknown", f"request id missing: {entry}")


async def concurrent(session):
    plan = [("reader", {"input": "data/hello.txt"})] * 17 + [("echo", {"text": "x"})] * 17 + [("trap", {"input": ""})] * 16
    results = [None] * len(plan)

    async def one(index, name, arguments):
        results[index] = await session.call_tool(name, arguments)

    async with anyio.create_task_group() as group:
        for index, (name, arguments) in enumerate(plan):
            group.start_soon(one, index, name, arguments)
    for (name, _), result in zip(plan, results):
        check(result.is_error == (name == "trap"), f"{name}: {text_of(result)}")


def concurrent_log():
    verify_log()
    all_entries = entries()
    # reader: run.start, fs.read allow, fs.read outcome, run.end; echo and trap: run.start, run.end.
    check(len(all_entries) == 17 * 4 + 17 * 2 + 16 * 2, f"{len(all_entries)} entries")
    table = runs()
    check(len(table) == 50, f"{len(table)} runs")
    requests = set()
    for run in table.values():
        start = [e for e in run if e["call"] == "run.start"]
        check(len(start) == 1, f"run without one run.start: {run}")
        requests.add(start[0]["details"]["mcp_request"])
    check(len(requests) == 50, f"{len(requests)} distinct request ids")
    outcomes = sorted(e["outcome"] for e in all_entries if e["call"] == "run.end")
    check(outcomes.count("ok") == 34 and outcomes.count("error:trap") == 16, f"outcomes {outcomes}")


async def cancel(session):
    started = time.monotonic()
    try:
        await session.call_tool("sleeper", {"input": ""}, read_timeout_seconds=1.0)
        fail("the sleeper answered")
    except Exception:
        pass  # the client gave up and sent notifications/cancelled
    for _ in range(100):
        ends = [e for e in entries() if e["module"] == "sleeper" and e["call"] == "run.end"]
        if ends:
            break
        await anyio.sleep(0.1)
    check(ends and ends[0]["outcome"] == "cancelled", f"sleeper run.end: {ends}")
    check(time.monotonic() - started < 10, "the cancelled call ran on towards its 20s deadline")
    again = await session.call_tool("echo", {"text": "still here"})
    check(not again.is_error, "server unhealthy after a cancellation")


async def reload(session, notifications):
    before = await session.call_tool("reader", {"input": "data/hello.txt"})
    check(not before.is_error, f"read before the revocation failed: {text_of(before)}")
    time.sleep(1.1)  # a new modification time even on coarse file systems
    write(os.path.join(WORK, "reader.toml"), READER_REVOKED.format(fixtures=FIXTURES))
    for _ in range(100):
        if notifications:
            break
        await anyio.sleep(0.1)
    check(notifications, "no notifications/tools/list_changed after the grants changed")
    after = await session.call_tool("reader", {"input": "data/hello.txt"})
    check(after.is_error and "not granted" in text_of(after), f"revoked read: {text_of(after)}")
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    check("revoked" in tools["reader"].description, "tools/list does not show the reloaded description")
    time.sleep(1.1)
    write(os.path.join(WORK, "reader.toml"), "module = \"reader\"\n[[fs]]\npaths = [\n")
    for _ in range(50):
        with open(STDERR) as f:
            if "reload rejected" in f.read():
                break
        await anyio.sleep(0.1)
    with open(STDERR) as f:
        check("reload rejected" in f.read(), "a broken edit was not reported on stderr")
    still = await session.call_tool("reader", {"input": "data/hello.txt"})
    check(still.is_error and "not granted" in text_of(still), "a broken edit changed the grants in force")
    # The refused edit is in the audit log too (once), not only on stderr.
    rejected = []
    for _ in range(50):
        rejected = [e for e in entries() if e["call"] == "policy.reload" and e["module"] == "reader"]
        if rejected:
            break
        await anyio.sleep(0.1)
    check(len(rejected) == 1 and rejected[0]["outcome"] == "rejected" and "stays in force" in rejected[0]["reason"],
          f"the rejected reload in the audit log: {rejected}")


async def failures(session):
    trapped = await session.call_tool("trap", {"input": ""})
    check(trapped.is_error and "trapped" in text_of(trapped), f"trap: {text_of(trapped)}")
    slow = await session.call_tool("napper", {"input": ""})
    check(slow.is_error and "timeout" in text_of(slow), f"napper: {text_of(slow)}")
    fine = await session.call_tool("reader", {"input": "data/hello.txt"})
    check(not fine.is_error, "server unhealthy after a trap and a timeout")


def raw_protocol():
    """Malformed JSON-RPC and an oversized message, written by hand on the wire, then a ping."""
    process = subprocess.Popen([PEON, *server_args(["--max-message", "4KiB"])], cwd=WORK,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(STDERR, "a"),
                               env={**os.environ, "XDG_CONFIG_HOME": WORK})

    def send(text):
        process.stdin.write(text.encode() + b"\n")
        process.stdin.flush()

    def reply():
        line = process.stdout.readline()
        check(line, "the server closed its output")
        return json.loads(line)

    send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}))
    check(reply().get("id") == 1, "no initialize answer")
    send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    send("{this is not json")
    malformed = reply()
    check("error" in malformed and malformed["error"]["code"] == -32700 and malformed.get("id", "absent") is None,
          f"malformed message answered {malformed} (JSON-RPC 2.0: a parse error, id null)")
    send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                     "params": {"name": "echo", "arguments": {"text": "x" * 100_000}}}))
    oversized = reply()
    check("error" in oversized and "limit" in oversized["error"]["message"] and oversized.get("id", "absent") is None,
          f"oversized answered {oversized}")
    send(json.dumps([{"jsonrpc": "2.0", "id": 20, "method": "ping"}, {"jsonrpc": "2.0", "id": 21, "method": "ping"}]))
    batch = reply()
    check("error" in batch and "batch" in batch["error"]["message"] and batch.get("id", "absent") is None,
          f"a batch answered {batch}")
    # MCP ids are strings or integers: anything else is an Invalid Request answered with id null (not dropped).
    for odd in [True, 1.5, None, {"x": 1}, [1]]:
        send(json.dumps({"jsonrpc": "2.0", "id": odd, "method": "ping"}))
        refused = reply()
        check("error" in refused and refused["error"]["code"] == -32600 and refused.get("id", "absent") is None,
              f"a ping with id {odd!r} answered {refused}")
    send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "ping"}))
    pong = reply()
    check(pong.get("id") == 3 and "result" in pong, f"ping after bad input answered {pong}")
    send(json.dumps({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                     "params": {"name": "echo", "arguments": {"text": "ok"}}}))
    answer = reply()
    check(answer.get("id") == 4 and answer["result"]["content"][0]["text"] == '{"text":"ok"}', f"call answered {answer}")
    # A cancelled request gets no answer (MCP: the receiver should not respond to it).
    send(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "sleeper", "arguments": {"input": ""}}}))
    time.sleep(0.5)
    send(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5, "reason": "test"}}))
    time.sleep(2.0)
    send(json.dumps({"jsonrpc": "2.0", "id": 6, "method": "ping"}))
    pong = reply()
    check(pong.get("id") == 6, f"after a cancellation the next message was {pong}, not the ping's answer")
    process.stdin.close()
    check(process.wait(timeout=20) == 0, "the server did not exit 0 when its input closed")


# MARK: approval through the client (elicitation)

def approval_decisions():
    return [(e["decision"], e.get("details", {}).get("approver"), e.get("details", {}).get("approval"))
            for e in entries() if e["module"] == "guarded" and e["call"] == "fs.read" and e.get("decision")]


def elicit_scenario():
    asked = []
    answers = [types.ElicitResult(action="accept", content={"approve": True}), types.ElicitResult(action="decline")]

    async def callback(context, params):
        asked.append(params.message)
        return answers[min(len(asked), len(answers)) - 1]

    async def ask(session):
        yes = await session.call_tool("guarded", {"input": "data/hello.txt"})
        check(not yes.is_error and text_of(yes) == "hello from a granted file", f"approved read: {text_of(yes)}")
        no = await session.call_tool("guarded", {"input": "data/hello.txt"})
        check(no.is_error and "not approved (decline)" in text_of(no), f"declined read: {text_of(no)}")
        check(len(asked) == 2 and "guarded wants fs.read" in asked[0] and "hello.txt" in asked[0], f"asked {asked}")

    anyio.run(lambda: with_session(ask, elicitation=callback))

    # A client without the elicitation capability: the configured --approver decides.
    approver = "/usr/bin/true"

    async def fallback(session):
        result = await session.call_tool("guarded", {"input": "data/hello.txt"})
        check(not result.is_error, f"--approver fallback: {text_of(result)}")

    anyio.run(lambda: with_session(fallback, extra=["--approver", approver]))

    # A human who does not answer within --approval-timeout: denied.
    async def slow(context, params):
        await anyio.sleep(3)
        return types.ElicitResult(action="accept", content={"approve": True})

    async def unanswered(session):
        started = time.monotonic()
        result = await session.call_tool("guarded", {"input": "data/hello.txt"})
        check(result.is_error and "not approved (timeout)" in text_of(result), f"unanswered: {text_of(result)}")
        check(time.monotonic() - started < 2.5, "the call waited past --approval-timeout")

    anyio.run(lambda: with_session(unanswered, extra=["--approval-timeout", "500ms"], elicitation=slow))
    verify_log()
    expected = [("allow", "mcp-elicitation:peon-test-client", "accept"),
                ("deny", "mcp-elicitation:peon-test-client", "decline"),
                ("allow", "command:" + approver, "exit 0"),
                ("deny", "mcp-elicitation:peon-test-client", "timeout")]
    check(approval_decisions() == expected, f"approval entries {approval_decisions()}")


# MARK: SIGTERM / SIGINT / SIGQUIT

def stop_scenario(sig, name):
    process = subprocess.Popen([PEON, *server_args()], cwd=WORK, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=open(STDERR, "a"), env={**os.environ, "XDG_CONFIG_HOME": WORK})

    def send(message):
        process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()

    # A reload before the client initialized tells it nothing (no tools/list_changed: that capability was not
    # offered yet). The ping's answer shows the server serves (its signal handlers are in place).
    send({"jsonrpc": "2.0", "id": 0, "method": "ping"})
    check(json.loads(process.stdout.readline()).get("id") == 0, "no ping answer")
    os.kill(process.pid, signal.SIGHUP)
    time.sleep(0.3)
    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "stopper", "version": "1"}}})
    first = json.loads(process.stdout.readline())
    check(first.get("id") == 1, f"the first message after a SIGHUP before initialize is not initialize's answer: {first}")
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    # SIGHUP reloads (it must not end the server): the tools are still served after it.
    os.kill(process.pid, signal.SIGHUP)
    time.sleep(0.3)
    send({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hup"}}})
    seen = []
    while not any(message.get("id") == 9 for message in seen):
        line = process.stdout.readline()
        check(line, f"the server closed its output after SIGHUP; it sent {seen}")
        seen.append(json.loads(line))
    check(any(message.get("method") == "notifications/tools/list_changed" for message in seen),
          f"SIGHUP did not reload (no tools/list_changed): {seen}")
    check(not seen[-1]["result"].get("isError"), f"a call after SIGHUP answered {seen[-1]}")
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "sleeper", "arguments": {"input": ""}}})
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "spinner", "arguments": {"input": ""}}})
    for _ in range(200):
        started = {e["module"] for e in entries() if e["call"] == "run.start"}
        if {"sleeper", "spinner"} <= started:
            break
        time.sleep(0.05)
    check({"sleeper", "spinner"} <= started, f"the calls did not start: {started}")
    signalled = time.monotonic()
    os.kill(process.pid, sig)
    replies = [json.loads(line) for line in process.stdout.read().splitlines() if line.strip()]
    status = process.wait(timeout=30)
    stopped_after = time.monotonic() - signalled
    check(status == 128 + sig, f"exit status {status}, expected {128 + sig}")
    # Both calls are answered: the sleeper stops at its next host call; the spinner, which makes none, is cut off
    # when the 5 s grace ends (it used to get no answer, and the process waited 30 s more for one).
    for request, tool in ((2, "sleeper"), (3, "spinner")):
        answer = [r for r in replies if r.get("id") == request]
        check(answer and answer[0]["result"]["isError"] and "stopping" in answer[0]["result"]["content"][0]["text"],
              f"the {tool}'s answer: {replies}")
    check(stopped_after < 20, f"the server took {stopped_after:.1f} s to stop (grace 5 s)")
    verify_log()
    for tool in ("sleeper", "spinner"):
        ends = [e for e in entries() if e["module"] == tool and e["call"] == "run.end"]
        check(len(ends) == 1 and ends[0]["outcome"] == f"signal:{name}", f"{tool} run.end: {ends}")
    with open(STDERR) as f:
        text = f.read()
        check(f"received SIG{name}" in text, "no stop message on stderr")
        check("Backtrace" not in text and "Crash" not in text, f"a crash report on stderr: {text[-2000:]}")


# MARK: streamable HTTP

def start_http_server(extra=()):
    errlog = open(STDERR, "a")
    process = subprocess.Popen([PEON, *server_args(["--http", "127.0.0.1:0", *extra])], cwd=WORK,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "XDG_CONFIG_HOME": WORK})
    url = None
    deadline = time.monotonic() + 30
    while url is None and time.monotonic() < deadline:
        line = process.stderr.readline().decode()
        check(line, "the HTTP server exited before it listened")
        errlog.write(line)
        if "serving MCP (streamable HTTP) at " in line:
            url = line.strip().split(" at ", 1)[1]

    def drain():
        for line in process.stderr:
            errlog.write(line.decode())
            errlog.flush()

    import threading
    threading.Thread(target=drain, daemon=True).start()
    check(url and url.startswith("http://127.0.0.1:") and url.endswith("/mcp"), f"url {url!r}")
    return process, url


def http_scenario():
    process, url = start_http_server(["--max-message", "64KiB", "--allowed-host", "proxy.internal"])
    try:
        asked = []

        async def callback(context, params):
            asked.append(params.message)
            return types.ElicitResult(action="accept", content={"approve": True})

        async def body():
            async with streamable_http_client(url) as (read, write_stream):
                async with ClientSession(read, write_stream, client_info=CLIENT, elicitation_callback=callback) as session:
                    info = await session.initialize()
                    check(info.server_info.name == "peon-wasm", f"server name {info.server_info.name!r}")
                    tools = {tool.name for tool in (await session.list_tools()).tools}
                    check("reader" in tools and "guarded" in tools, f"tools {tools}")
                    granted = await session.call_tool("reader", {"input": "data/hello.txt"})
                    check(not granted.is_error and text_of(granted) == "hello from a granted file", f"granted: {text_of(granted)}")
                    denied = await session.call_tool("reader", {"input": "secret/key.txt"})
                    check(denied.is_error and "not granted" in text_of(denied), f"denied: {text_of(denied)}")
                    approved = await session.call_tool("guarded", {"input": "data/hello.txt"})
                    check(not approved.is_error and len(asked) == 1, f"approved over HTTP: {text_of(approved)} {asked}")
                    results = [None] * 10

                    async def one(index):
                        results[index] = await session.call_tool("echo", {"text": str(index)})

                    async with anyio.create_task_group() as group:
                        for index in range(10):
                            group.start_soon(one, index)
                    for index, result in enumerate(results):
                        check(not result.is_error and text_of(result) == json.dumps({"text": str(index)}, separators=(",", ":")),
                              f"concurrent call {index}: {text_of(result)}")

        anyio.run(body)

        initialize = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
        accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        port = url.split(":")[2].split("/")[0]
        rebound = httpx2.post(url, content=initialize, headers={**accept, "Host": f"evil.example:{port}"})
        check(rebound.status_code == 421, f"a foreign Host header got {rebound.status_code}")
        proxied = httpx2.post(url, content=initialize, headers={**accept, "Host": "proxy.internal"})
        check(proxied.status_code == 200, f"a Host named by --allowed-host got {proxied.status_code}")
        foreign = httpx2.post(url, content=initialize, headers={**accept, "Origin": "http://evil.example"})
        check(foreign.status_code == 403, f"a foreign Origin got {foreign.status_code}")
        elsewhere = httpx2.post(url.replace("/mcp", "/other"), content=initialize, headers=accept)
        check(elsewhere.status_code == 404, f"another path got {elsewhere.status_code}")
        big = httpx2.post(url, content="x" * 100_000, headers=accept)
        check(big.status_code == 413 and "--max-message" in big.text,
              f"an oversized body got {big.status_code} {big.text[:200]}")
        stranger = httpx2.post(url, content=initialize.replace('"initialize"', '"ping"'),
                               headers={**accept, "Mcp-Session-Id": "no-such-session"})
        check(stranger.status_code == 404, f"an unknown session got {stranger.status_code}")
        nosession = httpx2.post(url, content=initialize.replace('"initialize"', '"ping"'), headers=accept)
        check(nosession.status_code == 400, f"a request without a session got {nosession.status_code}")

        # Ending a session (DELETE) cancels its running calls: the sleeper stops at once, recorded cancelled.
        import threading
        opened = httpx2.post(url, content=initialize, headers=accept)
        sid = opened.headers.get("mcp-session-id")
        check(sid, f"no session id: {opened.status_code} {opened.headers}")
        headers = {**accept, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"}
        httpx2.post(url, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), headers=headers)
        call = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                           "params": {"name": "sleeper", "arguments": {"input": ""}}})

        def sleep_call():
            try:
                httpx2.post(url, content=call, headers=headers, timeout=30)
            except Exception:
                pass
        caller = threading.Thread(target=sleep_call)
        caller.start()
        raw_start = None
        for _ in range(100):
            raw_start = next((e for e in entries() if e["call"] == "run.start" and e["module"] == "sleeper"
                              and e.get("details", {}).get("mcp_client") == "raw"), None)
            if raw_start:
                break
            time.sleep(0.1)
        check(raw_start, "the raw client's sleeper never started")
        deleted_at = time.monotonic()
        httpx2.delete(url, headers=headers)
        raw_end = None
        for _ in range(100):
            raw_end = next((e for e in entries() if e["call"] == "run.end" and e["run"] == raw_start["run"]), None)
            if raw_end:
                break
            time.sleep(0.1)
        check(raw_end and raw_end["outcome"] == "cancelled", f"the deleted session's call ended {raw_end}")
        check(time.monotonic() - deleted_at < 8, "the deleted session's call ran on towards its deadline")
        caller.join(timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=30)
    check(status == 143, f"exit status {status} after SIGTERM")
    verify_log()
    starts = [e for e in entries() if e["call"] == "run.start" and e.get("details", {}).get("mcp_client") != "raw"]
    check(len(starts) == 13, f"{len(starts)} runs")
    for entry in starts:
        details = entry.get("details", {})
        check(details.get("mcp_client") == "peon-test-client", f"client name: {entry}")
        check(details.get("mcp_request", "unknown") != "unknown", f"request id: {entry}")
    check(approval_decisions() == [("allow", "mcp-elicitation:peon-test-client", "accept")], f"approval {approval_decisions()}")


# MARK: policy store (PostgreSQL)

def policy_store_scenario():
    import psycopg2
    server = os.environ.get("PEON_TEST_POSTGRES_URL", "")
    check(server.startswith("postgresql://"), "PEON_TEST_POSTGRES_URL is not set")
    name = "peon_mcp_" + uuid.uuid4().hex
    connection = psycopg2.connect(server)
    connection.autocommit = True
    connection.cursor().execute(f"CREATE DATABASE {name}")
    connection.close()
    database = server.rsplit("/", 1)[0] + "/" + name
    admin = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(FIXTURES))), "scripts", "casbin_policy_admin.py")

    def casbin(*arguments):
        result = subprocess.run([sys.executable, admin, database, *arguments], capture_output=True, text=True)
        check(result.returncode == 0, f"casbin_policy_admin {arguments}: {result.stderr}")

    casbin("list")  # creates the empty casbin_rule table
    target = os.path.join(WORK, "secret", "key.txt")
    write(os.path.join(WORK, "store.toml"), f"""module = "store-reader"
[tool]
wasm = "{FIXTURES}/reader.wat"
description = "Reads what the fleet policy lets it read."
""")

    async def body(session):
        before = await session.call_tool("store-reader", {"input": target})
        check(before.is_error and "not granted" in text_of(before), f"before the rule: {text_of(before)}")
        casbin("add", "store-reader", "fs:" + target, "fs.read")
        added = time.monotonic()
        while True:
            now = await session.call_tool("store-reader", {"input": target})
            if not now.is_error:
                break
            check(time.monotonic() - added < 2.0, f"the rule did not apply within 2 s: {text_of(now)}")
            await anyio.sleep(0.05)
        check(text_of(now) == "TOP-SECRET-CONTENT", f"allowed read: {text_of(now)}")
        casbin("remove", "store-reader", "fs:" + target, "fs.read")
        removed = time.monotonic()
        while True:
            now = await session.call_tool("store-reader", {"input": target})
            if now.is_error:
                break
            check(time.monotonic() - removed < 2.0, "the removed rule still allowed the read after 2 s")
            await anyio.sleep(0.05)

    params = StdioServerParameters(command=PEON, args=["mcp", "--audit", LOG, "--audit-key", KEY,
                                                       "--policy", database + "?poll=60", "store.toml"],
                                   cwd=WORK, env={"XDG_CONFIG_HOME": WORK})

    async def run():
        with open(STDERR, "a") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write_stream):
                async with ClientSession(read, write_stream, client_info=CLIENT) as session:
                    await session.initialize()
                    await body(session)

    anyio.run(run)
    verify_log()
    decisions = [e["decision"] for e in entries() if e["call"] == "fs.read" and e.get("decision")]
    check(decisions[0] == "deny" and "allow" in decisions and decisions[-1] == "deny", f"decisions {decisions}")
    allowed = [e for e in entries() if e["call"] == "fs.read" and e.get("decision") == "allow"]
    check("/casbin_rule:" in allowed[0]["reason"], f"the allow does not quote its row: {allowed[0]}")


async def labels_first_session(session):
    before = await session.call_tool("ledger", {"input": "data/hello.txt"})
    check(not before.is_error, f"the ledger before any HR read failed: {text_of(before)}")
    hr = await session.call_tool("hrreader", {"input": "hr/pay.txt"})
    check(not hr.is_error and text_of(hr) == "alice 120000", f"the HR read answered {text_of(hr)!r}")
    # The client now holds HR data and could pass it on in any argument: the session's next calls hold `hr`.
    after = await session.call_tool("ledger", {"input": "data/hello.txt"})
    check(after.is_error and "hr" in text_of(after), f"the ledger after the HR read answered {text_of(after)!r}")


async def labels_second_session(session):
    fresh = await session.call_tool("ledger", {"input": "data/hello.txt"})
    check(not fresh.is_error, f"a new session started with labels: {text_of(fresh)}")


def labels_log():
    hr_runs = list(runs("hrreader").items())
    check(len(hr_runs) == 1, f"hrreader runs {len(hr_runs)}")
    hr_run, hr_entries = hr_runs[0]
    end = [e for e in hr_entries if e["call"] == "run.end"][0]
    check(end.get("details", {}).get("run_labels", "").startswith("hr@"), f"hrreader's run.end: {end}")
    ledger = list(runs("ledger").values())
    check(len(ledger) == 3, f"ledger runs {len(ledger)}")
    starts = [[e for e in run if e["call"] == "run.start"][0].get("details", {}) for run in ledger]
    labelled = [d for d in starts if d.get("session_labels")]
    check(len(labelled) == 1 and labelled[0]["session_labels"] == "hr" and labelled[0]["session_label_runs"] == hr_run,
          f"run.start details {starts}")
    refused = [e for run in ledger for e in run if e["call"] == "fs.append" and e.get("decision") == "deny"]
    check(len(refused) == 1 and refused[0].get("details", {}).get("missing_clearance") == "hr", f"refusals {refused}")
    verify_log()


def raw_elicitation_session(tools):
    """A server on stdio, initialized by hand by a client that declares elicitation."""
    process = subprocess.Popen([PEON, *server_args(tools)], cwd=WORK,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(STDERR, "a"),
                               env={**os.environ, "XDG_CONFIG_HOME": WORK})

    def send(message):
        process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()

    def next_message(matching):
        while True:
            line = process.stdout.readline()
            check(line, "the server closed its output")
            message = json.loads(line)
            if matching(message):
                return message

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "raw", "version": "1"}}})
    next_message(lambda m: m.get("id") == 1)
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return process, send, next_message


def elicit_labels_scenario():
    """An approval request is data reaching the client: a call of the session started while it waits for the
    answer holds the labels the asking run held when it asked (its request can spell what the run read)."""
    process, send, next_message = raw_elicitation_session(LABEL_TOOLS + ("hrpeek.toml",))
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "hrpeek", "arguments": {"input": ""}}})
    asked = next_message(lambda m: m.get("method") == "elicitation/create")
    check("120000" in asked["params"]["message"], f"the approval request {asked}")
    # The client holds HR data now, from the question: a call it makes meanwhile holds `hr`.
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "ledger", "arguments": {"input": "data/hello.txt"}}})
    meanwhile = next_message(lambda m: m.get("id") == 3)
    text = meanwhile["result"]["content"][0]["text"]
    check(meanwhile["result"].get("isError") and "hr" in text,
          f"a call made while the approval request (showing HR data) waited answered {meanwhile}")
    send({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "decline"}})
    declined = next_message(lambda m: m.get("id") == 2)
    check(declined["result"].get("isError"), f"the declined call answered {declined}")
    process.stdin.close()
    check(process.wait(timeout=20) == 0, "the server did not exit 0 when its input closed")
    verify_log()
    peek = list(runs("hrpeek"))
    ledger = [e for run in runs("ledger").values() for e in run if e["call"] == "run.start"]
    check(len(peek) == 1 and len(ledger) == 1 and ledger[0].get("details", {}).get("session_labels") == "hr"
          and ledger[0]["details"].get("session_label_runs") == peek[0], f"the ledger's run.start {ledger}")

    # The other way: an approval answer is the client speaking to a running call, and the client may choose it
    # by what it holds. A call that waits for its answer while the session gets HR data holds `hr` from the
    # answer on: its append to the uncleared ledger is refused.
    process, send, next_message = raw_elicitation_session(LABEL_TOOLS + ("askingledger.toml",))
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
          "params": {"name": "askingledger", "arguments": {"input": "data/hello.txt"}}})
    asked = next_message(lambda m: m.get("method") == "elicitation/create")
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "hrreader", "arguments": {"input": "hr/pay.txt"}}})
    hr = next_message(lambda m: m.get("id") == 3)
    check(hr["result"]["content"][0]["text"] == "alice 120000", f"the HR read answered {hr}")
    send({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "accept", "content": {"approve": True}}})
    appended = next_message(lambda m: m.get("id") == 2)
    check(appended["result"].get("isError") and "hr" in appended["result"]["content"][0]["text"],
          f"a call approved after the session got HR data answered {appended}")
    process.stdin.close()
    check(process.wait(timeout=20) == 0, "the server did not exit 0 when its input closed")
    verify_log()


# MARK: the calls waiting for a slot, and request ids

def run_starts(request=None):
    return [e for e in entries() if e["call"] == "run.start"
            and (request is None or e.get("details", {}).get("mcp_request_json") == request)]


def wait_for(condition, what, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    fail(f"timed out waiting for {what}")


def waiting_limit_scenario():
    """On stdio, with one slot and room for one waiting call: a call past that is refused at once with a JSON-RPC
    error naming the limit; a waiting call its client cancels never starts; ids 7 and "7" are told apart in the log."""
    import select
    process = subprocess.Popen([PEON, *server_args(["--max-concurrent", "1", "--max-waiting", "1"])], cwd=WORK,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(STDERR, "a"),
                               env={**os.environ, "XDG_CONFIG_HOME": WORK})

    def send(message):
        process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()

    def reply(seconds=20):
        ready, _, _ = select.select([process.stdout], [], [], seconds)
        check(ready, f"no answer within {seconds} s")
        line = process.stdout.readline()
        check(line, "the server closed its output")
        return json.loads(line)

    def call(id, tool, arguments):
        send({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})

    def cancel(id):
        send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id, "reason": "test"}})

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
    check(reply().get("id") == 1, "no initialize answer")
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    call(10, "sleeper", {"input": ""})
    wait_for(lambda: run_starts("10"), "the first sleeper to start")
    call(11, "sleeper", {"input": ""})  # waits for the slot
    time.sleep(0.5)
    call(12, "echo", {"text": "late"})  # one call waits already: refused at once
    refused = reply(seconds=10)
    check(refused.get("id") == 12 and refused.get("error", {}).get("code") == -32000
          and "--max-waiting" in refused["error"]["message"], f"a call past the waiting limit answered {refused}")
    # The waiting call, cancelled by its client, leaves the line: it never starts, and makes room.
    cancel(11)
    time.sleep(0.5)
    call(13, "echo", {"text": "room"})  # waits (the sleeper holds the slot); refused if 11 still waited
    cancel(10)
    answer = reply()
    check(answer.get("id") == 13 and answer.get("result", {}).get("content", [{}])[0].get("text") == '{"text":"room"}',
          f"the call that took the cancelled one's place answered {answer}")
    # 7 and "7": both answered under their own id, and the log tells them apart.
    call(7, "echo", {"text": "number"})
    first = reply()
    call("7", "echo", {"text": "string"})
    second = reply()
    check(first.get("id") == 7 and second.get("id") == "7", f"the answers to 7 and \"7\": {first} {second}")
    process.stdin.close()
    check(process.wait(timeout=20) == 0, "the server did not exit 0 when its input closed")
    verify_log()
    check(not run_starts("11"), f"a waiting call its client cancelled started: {run_starts('11')}")
    check(not run_starts("12"), "a call refused at the waiting limit started")
    number, string = run_starts("7"), run_starts('"7"')
    check(len(number) == 1 and len(string) == 1, f"run.start of 7 and \"7\": {number} {string}")
    check(json.loads(number[0]["details"]["mcp_request_json"]) == 7
          and json.loads(string[0]["details"]["mcp_request_json"]) == "7", "mcp_request_json is not the id's JSON")
    # `mcp_request` reads as it always did (readers of older logs go on working).
    check(number[0]["details"]["mcp_request"] == "7" and string[0]["details"]["mcp_request"] == "7",
          f"mcp_request changed: {number[0]['details']} {string[0]['details']}")
    ends = [e for e in entries() if e["call"] == "run.end" and e["run"] in (number[0]["run"], string[0]["run"])]
    check(sorted(e["details"].get("mcp_request_json") for e in ends) == ['"7"', "7"], f"run.end of 7 and \"7\": {ends}")


def http_waiting_scenario():
    """Over HTTP, with one slot and room for one waiting call: a call past that is answered 503 at once (a JSON-RPC
    error under its own id); a waiting call whose client closes the connection never starts and frees its place."""
    import socket
    import threading
    process, url = start_http_server(["--max-concurrent", "1", "--max-waiting", "1"])
    try:
        initialize = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
        accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        opened = httpx2.post(url, content=initialize, headers=accept)
        sid = opened.headers.get("mcp-session-id")
        check(sid, f"no session id: {opened.status_code} {opened.headers}")
        headers = {**accept, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"}
        httpx2.post(url, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), headers=headers)

        def call(id, tool, arguments):
            return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                               "params": {"name": tool, "arguments": arguments}})

        answers = {}

        def post_in_background(id, body):
            def run():
                try:
                    answers[id] = httpx2.post(url, content=body, headers=headers, timeout=60).text
                except Exception as error:
                    answers[id] = f"failed: {error}"
            thread = threading.Thread(target=run)
            thread.start()
            return thread

        running = post_in_background(2, call(2, "sleeper", {"input": ""}))
        wait_for(lambda: run_starts("2"), "the sleeper to start")
        # A call that waits, on a connection its client then closes.
        port = int(url.split(":")[2].split("/")[0])
        waiting = socket.create_connection(("127.0.0.1", port))
        body = call(3, "sleeper", {"input": ""}).encode()
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        waiting.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        waiting.settimeout(20)
        check(waiting.recv(4096).startswith(b"HTTP/1.1 200"), "the waiting call's POST was not answered with a stream")
        # One call waits: the next is refused at once, 503, under its own id.
        started = time.monotonic()
        refused = httpx2.post(url, content=call(4, "echo", {"text": "late"}), headers=headers, timeout=30)
        check(refused.status_code == 503 and time.monotonic() - started < 10,
              f"a call past the waiting limit got {refused.status_code} {refused.text[:300]}")
        error = refused.json()
        check(error.get("id") == 4 and error["error"]["code"] == -32000 and "--max-waiting" in error["error"]["message"],
              f"the 503 body {error}")
        # The waiting call's client goes away: its place is freed, and it never starts.
        waiting.close()
        time.sleep(1.0)
        late = post_in_background(5, call(5, "echo", {"text": "room"}))  # waits; refused 503 if 3 still waited
        time.sleep(1.0)
        httpx2.post(url, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                             "params": {"requestId": 2, "reason": "test"}}), headers=headers)
        late.join(timeout=30)
        events = [json.loads(line[5:]) for line in answers.get(5, "").splitlines() if line.startswith("data:") and line[5:].strip()]
        check(any(e.get("id") == 5 and e.get("result", {}).get("content", [{}])[0].get("text") == '{"text":"room"}' for e in events),
              f"the call that took the gone one's place: {answers.get(5)}")
        time.sleep(1.0)
        check(not run_starts("3"), f"a waiting call whose client went away started: {run_starts('3')}")
        httpx2.delete(url, headers=headers)
        running.join(timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=30)
    check(status == 143, f"exit status {status} after SIGTERM")
    verify_log()
    check(not run_starts("3") and not run_starts("4"), "a refused or abandoned call ran")


def request_ids_scenario():
    """Requests 7 and "7" (a number and a string) in flight at once in one session. Over HTTP the SDK files a request's
    answer stream under its id's text, so the second would take the first's stream: one caller would get the other's
    answer, the other none. A request whose id reads like that of one still waiting for its answer is refused at once
    (400, -32600 under its own id) before the SDK sees it; the one in flight gets its own answer, and then the id is
    free again. Over stdio each answer carries its request's own id: both run, each gets its own answer."""
    import threading
    process, url = start_http_server(["dozer.toml"])
    try:
        initialize = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
        accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        opened = httpx2.post(url, content=initialize, headers=accept)
        sid = opened.headers.get("mcp-session-id")
        check(sid, f"no session id: {opened.status_code} {opened.headers}")
        headers = {**accept, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"}
        httpx2.post(url, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), headers=headers)

        def call(id, tool, arguments):
            return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                               "params": {"name": tool, "arguments": arguments}})

        def events(text):
            return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]

        slow = {}

        def post_slow():
            try:
                slow["text"] = httpx2.post(url, content=call(7, "dozer", {"input": ""}), headers=headers, timeout=30).text
            except Exception as error:
                slow["text"] = f"failed: {error}"
        caller = threading.Thread(target=post_slow)
        caller.start()
        wait_for(lambda: run_starts("7"), "call 7 (the dozer) to start")
        # "7" and a second 7 while 7 runs: refused at once, each under its own id, and never run.
        for clash, spelled in [("7", '"7"'), (7, "7")]:
            started = time.monotonic()
            refused = httpx2.post(url, content=call(clash, "echo", {"text": "clash"}), headers=headers, timeout=30)
            check(time.monotonic() - started < 3, f"the request {spelled} was not answered at once")
            check(refused.status_code == 400, f"the request {spelled} beside 7 in flight got {refused.status_code} {refused.text[:300]}")
            error = refused.json()
            check(error.get("id") == clash and error["error"]["code"] == -32600 and "not used before" in error["error"]["message"],
                  f"the refusal of {spelled}: {error}")
        caller.join(timeout=30)
        answers = events(slow.get("text", ""))
        check(len(answers) == 1 and answers[0].get("id") == 7 and answers[0]["result"]["isError"]
              and "timeout" in answers[0]["result"]["content"][0]["text"], f"call 7's own answer: {slow.get('text')}")
        # 7 answered: "7" is free again.
        later = httpx2.post(url, content=call("7", "echo", {"text": "string"}), headers=headers, timeout=30)
        answers = events(later.text)
        check(len(answers) == 1 and answers[0].get("id") == "7" and answers[0]["result"]["content"][0]["text"] == '{"text":"string"}',
              f"\"7\" after 7 was answered: {later.status_code} {later.text[:300]}")
        httpx2.delete(url, headers=headers)
    finally:
        process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=30)
    check(status == 143, f"exit status {status} after SIGTERM")
    verify_log()
    check(len(run_starts("7")) == 1 and len(run_starts('"7"')) == 1,
          f"runs of 7 and \"7\": {run_starts('7')} {run_starts(chr(34) + '7' + chr(34))}")
    check(len([e for e in run_starts() if e["module"] == "echo"]) == 1, "a refused request ran")

    # stdio: 7 runs, "7" arrives meanwhile; each is answered under its own id with its own result.
    import select
    process = subprocess.Popen([PEON, *server_args(["dozer.toml"])], cwd=WORK, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=open(STDERR, "a"), env={**os.environ, "XDG_CONFIG_HOME": WORK})

    def send(message):
        process.stdin.write(json.dumps(message).encode() + b"\n")
        process.stdin.flush()

    def reply(seconds=20):
        ready, _, _ = select.select([process.stdout], [], [], seconds)
        check(ready, f"no answer within {seconds} s")
        line = process.stdout.readline()
        check(line, "the server closed its output")
        return json.loads(line)

    send(json.loads(initialize))
    check(reply().get("id") == 1, "no initialize answer")
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    before = len(run_starts("7"))
    send(json.loads(call(7, "dozer", {"input": ""})))
    wait_for(lambda: len(run_starts("7")) > before, "call 7 (the dozer) to start on stdio")
    send(json.loads(call("7", "echo", {"text": "string"})))
    first, second = reply(), reply()
    check(first.get("id") == "7" and first["result"]["content"][0]["text"] == '{"text":"string"}',
          f"the first answer on stdio (\"7\", the echo): {first}")
    check(second.get("id") == 7 and "timeout" in second["result"]["content"][0]["text"],
          f"the second answer on stdio (7, the dozer): {second}")
    process.stdin.close()
    check(process.wait(timeout=20) == 0, "the server did not exit 0 when its input closed")
    verify_log()


# MARK: a client that does not read the answers

def flood_until_stalled(fd, request, budget):
    """Writes request(1), request(2), ... to `fd` (made non-blocking) until the pipe stays full for a second, or
    `budget` were written, or a minute passed: (how many were written, whether the pipe stayed full)."""
    import fcntl
    # Each line is shorter than PIPE_BUF, so a non-blocking write takes all of it or none (EAGAIN).
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    def try_write(number):
        try:
            os.write(fd, json.dumps(request(number)).encode() + b"\n")
            return True
        except BlockingIOError:
            return False

    written = 0
    deadline = time.monotonic() + 60
    while written < budget and time.monotonic() < deadline:
        if try_write(written + 1):
            written += 1
            continue
        # A full pipe may be a moment's lag: the server must stay stopped while nobody reads its answers.
        time.sleep(1.0)
        if try_write(written + 1):
            written += 1
            continue
        return written, True
    return written, False

def backpressure_scenario():
    """On stdio, a client that writes requests (pings, echo calls) and never reads the answers: the server stops
    reading its stdin once a bounded number of answers wait to be written, so the client's pipe fills (a
    non-blocking write gets EAGAIN) and stays full; an approval asked through the client (elicitation) while the
    answers pile up still works once the client reads, every request is answered exactly once, and closing stdin
    still ends the server (exit 0) with a log that verifies, every run ended. Then SIGTERM stops a second server
    that waits for such a client: exit 143, its running call's run.end, a log that verifies."""
    import select
    budget = 30_000  # requests; a server that stops reading stalls after a few thousand at most
    process = subprocess.Popen([PEON, *server_args()], cwd=WORK, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=open(STDERR, "a"), env={**os.environ, "XDG_CONFIG_HOME": WORK}, bufsize=0)
    to_server, from_server = process.stdin.fileno(), process.stdout.fileno()
    try:
        received = b""

        def messages(seconds):
            """The messages the server wrote, read within `seconds` (at least one, else a failure)."""
            nonlocal received
            deadline = time.monotonic() + seconds
            while b"\n" not in received:
                ready, _, _ = select.select([from_server], [], [], max(0.0, deadline - time.monotonic()))
                check(ready, f"nothing from the server within {seconds} s")
                chunk = os.read(from_server, 1 << 16)
                check(chunk, "the server closed its output")
                received += chunk
            *lines, received = received.split(b"\n")
            return [json.loads(line) for line in lines if line.strip()]

        def send_blocking(message):
            os.write(to_server, json.dumps(message).encode() + b"\n")

        send_blocking({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "deaf", "version": "1"}}})
        check(any(m.get("id") == "init" for m in messages(20)), "no initialize answer")
        send_blocking({"jsonrpc": "2.0", "method": "notifications/initialized"})
        # A call that asks the client for approval; its question waits behind the answers the client does not read.
        send_blocking({"jsonrpc": "2.0", "id": "guarded", "method": "tools/call",
                       "params": {"name": "guarded", "arguments": {"input": "data/hello.txt"}}})

        def request(number):
            if number % 4 == 0:
                return {"jsonrpc": "2.0", "id": number, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": f"call {number}"}}}
            return {"jsonrpc": "2.0", "id": number, "method": "ping"}

        written, stalled = flood_until_stalled(to_server, request, budget)
        check(stalled, f"the server read {written} requests while nobody read its answers: it did not stop reading")
        with open(f"/proc/{process.pid}/status") as f:
            rss = next((line.split()[1] for line in f if line.startswith("VmRSS:")), "?")
        print(f"the server stopped reading after {written} requests (its resident memory {rss} kB)")

        # The client reads now, and sends 1,000 more: every request is answered once, and the approval question is
        # answered on the way.
        outgoing = b"".join(json.dumps(request(n)).encode() + b"\n" for n in range(written + 1, written + 1001))
        written += 1000
        answers, asked = {}, []
        deadline = time.monotonic() + 90
        while (outgoing or len(answers) < written + 1) and time.monotonic() < deadline:
            readable, writable, _ = select.select([from_server], [to_server] if outgoing else [], [],
                                                  max(0.0, deadline - time.monotonic()))
            if writable:
                try:
                    outgoing = outgoing[os.write(to_server, outgoing):]
                except BlockingIOError:
                    pass
            if not readable:
                continue
            chunk = os.read(from_server, 1 << 16)
            check(chunk, "the server closed its output")
            received += chunk
            *lines, received = received.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                message = json.loads(line)
                if message.get("method") == "elicitation/create":
                    asked.append(message["params"]["message"])
                    outgoing += json.dumps({"jsonrpc": "2.0", "id": message["id"],
                                            "result": {"action": "accept", "content": {"approve": True}}}).encode() + b"\n"
                elif "id" in message and "method" not in message:
                    check(message["id"] not in answers, f"request {message['id']} was answered twice")
                    answers[message["id"]] = message
        check(not outgoing, "the server did not take the client's last messages")
        missing = [n for n in list(range(1, written + 1)) + ["guarded"] if n not in answers]
        check(not missing, f"{len(missing)} requests were never answered, first {missing[:5]}")
        check(len(asked) == 1 and "guarded wants fs.read" in asked[0], f"approval questions {asked}")
        guarded = answers["guarded"].get("result", {})
        check(not guarded.get("isError") and guarded["content"][0]["text"] == "hello from a granted file",
              f"the approved call answered {answers['guarded']}")
        ran = 0
        for number in range(1, written + 1):
            answer = answers[number]
            if number % 4:
                check("result" in answer, f"ping {number} answered {answer}")
            elif "error" in answer:
                check(answer["error"]["code"] == -32000 and "busy" in answer["error"]["message"],
                      f"call {number} answered {answer}")
            else:
                check(answer["result"]["content"][0]["text"] == json.dumps({"text": f"call {number}"}, separators=(",", ":")),
                      f"call {number} answered {answer}")
                ran += 1
        check(ran > 0, "no echo call ran")

        process.stdin.close()
        check(process.wait(timeout=20) == 0, "the server did not exit 0 when its input closed")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    verify_log()
    table = runs()
    starts = [e for run in table.values() for e in run if e["call"] == "run.start"]
    ends = [e for run in table.values() for e in run if e["call"] == "run.end"]
    check(len(starts) == ran + 1 and len(ends) == ran + 1, f"{ran} echo calls and the approved one ran; the log has "
          f"{len(starts)} run.start and {len(ends)} run.end")
    check(all(len([e for e in run if e["call"] == "run.end"]) == 1 for run in table.values() if
              any(e["call"] == "run.start" for e in run)), "a run without exactly one run.end")
    check(approval_decisions() == [("allow", "mcp-elicitation:deaf", "accept")], f"approval entries {approval_decisions()}")

    # SIGTERM while the server waits for a client that does not read: it still stops (143), its running call ended
    # and recorded, the log checkpointed.
    process = subprocess.Popen([PEON, *server_args()], cwd=WORK, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=open(STDERR, "a"), env={**os.environ, "XDG_CONFIG_HOME": WORK}, bufsize=0)
    try:
        process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "deaf", "version": "1"}}}).encode()
            + b"\n" + json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode() + b"\n"
            + json.dumps({"jsonrpc": "2.0", "id": "sleeper", "method": "tools/call",
                          "params": {"name": "sleeper", "arguments": {"input": ""}}}).encode() + b"\n")
        wait_for(lambda: any(e["call"] == "run.start" and e["module"] == "sleeper" for e in entries()[-50:]),
                 "the sleeper to start")
        written, stalled = flood_until_stalled(process.stdin.fileno(),
                                               lambda n: {"jsonrpc": "2.0", "id": n, "method": "ping"}, budget)
        check(stalled, f"the second server read {written} requests while nobody read its answers")
        process.send_signal(signal.SIGTERM)
        check(process.wait(timeout=30) == 143, "a server waiting for a client that does not read did not stop on SIGTERM")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    verify_log()
    sleeper = [e for e in entries() if e["module"] == "sleeper" and e["call"] == "run.end"]
    check(len(sleeper) == 1 and sleeper[0]["outcome"] == "signal:TERM", f"the sleeper's run.end {sleeper}")


def main():
    setup()
    if SCENARIO == "basic":
        anyio.run(with_session, basic)
        basic_log()
    elif SCENARIO == "concurrent":
        anyio.run(with_session, concurrent)
        concurrent_log()
    elif SCENARIO == "cancel":
        anyio.run(with_session, cancel)
        verify_log()
    elif SCENARIO == "reload":
        notifications = []
        anyio.run(lambda: with_session(lambda s: reload(s, notifications), notifications))
        verify_log()
    elif SCENARIO == "failures":
        anyio.run(with_session, failures)
        verify_log()
    elif SCENARIO == "raw":
        raw_protocol()
        verify_log()
    elif SCENARIO == "elicit":
        elicit_scenario()
    elif SCENARIO == "sigterm":
        stop_scenario(signal.SIGTERM, "TERM")
    elif SCENARIO == "sigint":
        stop_scenario(signal.SIGINT, "INT")
    elif SCENARIO == "sigquit":
        stop_scenario(signal.SIGQUIT, "QUIT")
    elif SCENARIO == "http":
        http_scenario()
    elif SCENARIO == "labels":
        anyio.run(lambda: with_session(labels_first_session, extra=LABEL_TOOLS))
        anyio.run(lambda: with_session(labels_second_session, extra=LABEL_TOOLS))
        labels_log()
    elif SCENARIO == "elicit-labels":
        elicit_labels_scenario()
    elif SCENARIO == "waiting":
        waiting_limit_scenario()
    elif SCENARIO == "http-waiting":
        http_waiting_scenario()
    elif SCENARIO == "request-ids":
        request_ids_scenario()
    elif SCENARIO == "backpressure":
        backpressure_scenario()
    elif SCENARIO == "policy-store":
        policy_store_scenario()
    else:
        fail(f"unknown scenario {SCENARIO}")
    print("ok")


if __name__ == "__main__":
    main()
