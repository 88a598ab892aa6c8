"""Section 7 of the benchmarks: `peon-wasm mcp` measured from a real MCP client (the official Python SDK).

    python3 mcp_bench.py PEON_WASM REPO_ROOT [--quick]

For each engine: the latency (median, p99) of a tool call for a no-op tool and for c-summarizer, from one
client; calls per second with 16 clients (16 sessions, each calling in a loop); and the same two tools run
as one `peon-wasm run` process per call, which is what a client without a server would do. Prints a
Markdown table; PeonBench includes it in RESULTS.md.
"""
import asyncio, os, shutil, statistics, subprocess, sys, tempfile, time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

PEON, ROOT = sys.argv[1], sys.argv[2]
QUICK = "--quick" in sys.argv
HERE = os.path.dirname(os.path.abspath(__file__))


def grants(work):
    noop = os.path.join(work, "noop.toml")
    with open(noop, "w") as f:
        f.write('module = "noop"\n[tool]\nwasm = "%s"\ndescription = "Answers its input."\n'
                % os.path.join(HERE, "mcp", "noop.wat"))
    summarizer = os.path.join(work, "summarizer.toml")
    with open(summarizer, "w") as f:
        f.write('module = "c-summarizer"\n[[fs]]\npaths = ["%s", "%s/**"]\nallow = ["read", "list"]\n'
                '[[fs]]\npaths = ["%s/*.md"]\nallow = ["write"]\n[tool]\nwasm = "%s"\ndescription = "Summarizes reports."\n'
                % (os.path.join(ROOT, "modules/c-summarizer/reports"), os.path.join(ROOT, "modules/c-summarizer/reports"),
                   work, os.path.join(ROOT, "modules/c-summarizer/summarizer.wasm")))
    return noop, summarizer


def summarizer_input(work):
    return "%s %s" % (os.path.join(ROOT, "modules/c-summarizer/reports"), os.path.join(work, "summary.md"))


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def ms(seconds):
    return "%.2f ms" % (seconds * 1000)


async def session_for(engine, work, files):
    params = StdioServerParameters(command=PEON, args=["mcp", *files, "--engine", engine, "--audit",
                                   os.path.join(work, "mcp-%s.jsonl" % engine), "--audit-key", os.path.join(work, "audit.key"),
                                   "--audit-sync", "batch", "--max-concurrent", "16"], cwd=work)
    return params


async def measure(engine, work, files, calls, clients):
    params = await session_for(engine, work, files)
    results = {}
    with open(os.path.join(work, "server.stderr"), "a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                for name, arguments in [("noop", {"input": "x"}), ("c-summarizer", {"input": summarizer_input(work)})]:
                    await session.call_tool(name, arguments)  # warm: compile, cache
                    samples = []
                    for _ in range(calls):
                        start = time.perf_counter()
                        result = await session.call_tool(name, arguments)
                        samples.append(time.perf_counter() - start)
                        if result.is_error:
                            raise SystemExit("%s failed: %r" % (name, result.content))
                    results[name] = samples
    # 16 clients, each its own session with the server (one server per client process is what stdio gives;
    # the server runs each client's calls concurrently, so 16 clients are 16 servers here).
    ready = asyncio.Event()
    waiting = [clients]

    async def client(count):
        async with stdio_client(params, errlog=open(os.devnull, "w")) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                await session.call_tool("noop", {"input": "x"})
                waiting[0] -= 1
                if waiting[0] == 0:
                    ready.set()
                await ready.wait()  # every client connected and warm: only the calls are timed
                for _ in range(count):
                    await session.call_tool("noop", {"input": "x"})
                return time.perf_counter()
    per_client = max(5, calls // 4)

    async def timed():
        tasks = [asyncio.create_task(client(per_client)) for _ in range(clients)]
        await ready.wait()
        start = time.perf_counter()
        ends = await asyncio.gather(*tasks)
        return max(ends) - start
    wall = await timed()
    results["throughput"] = clients * per_client / wall
    return results


def run_per_call(engine, work, files, calls):
    out = {}
    for name, grants_file, module, text in [("noop", files[0], os.path.join(HERE, "mcp", "noop.wat"), "x"),
                                            ("c-summarizer", files[1], os.path.join(ROOT, "modules/c-summarizer/summarizer.wasm"), summarizer_input(work))]:
        samples = []
        for index in range(calls + 1):
            start = time.perf_counter()
            done = subprocess.run([PEON, "run", module, "--grants", grants_file, "--engine", engine, "--audit",
                                   os.path.join(work, "run-%s.jsonl" % engine), "--audit-key", os.path.join(work, "audit.key"),
                                   "--audit-sync", "batch", "--input", text], cwd=work, capture_output=True)
            if done.returncode != 0:
                raise SystemExit("peon-wasm run %s failed: %s" % (name, done.stderr.decode(errors="replace")))
            if index > 0:
                samples.append(time.perf_counter() - start)
        out[name] = samples
    return out


def main():
    work = tempfile.mkdtemp(prefix="peon-mcp-bench-")
    try:
        files = grants(work)
        calls = 20 if QUICK else 100
        rows = []
        for engine in ["wasmkit", "wasmtime"]:
            try:
                served = asyncio.run(measure(engine, work, files, calls, 16))
            except BaseException as error:  # wasmtime missing: say so and go on
                rows.append("| %s | — | — | — | — | — | not measured: %s |" % (engine, str(error).splitlines()[0] if str(error) else type(error).__name__))
                continue
            per_call = run_per_call(engine, work, files, max(5, calls // 10))
            for name in ["noop", "c-summarizer"]:
                s, r = served[name], per_call[name]
                rows.append("| %s | %s | %s | %s | %s | %s | %.0f× |" % (
                    engine, name, ms(statistics.median(s)), ms(percentile(s, 0.99)), ms(statistics.median(r)),
                    ms(percentile(r, 0.99)), statistics.median(r) / statistics.median(s)))
            rows.append("| %s | noop, 16 clients | %.0f calls/s | — | — | — | — |" % (engine, served["throughput"]))
        print("| engine | tool | mcp call median | mcp call p99 | `peon-wasm run` per call median | p99 | run / mcp |")
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            print(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)


main()
