"""py-researcher: a peon-wasm agent written in Python (componentize-py, world `agent` of wit/peon.wit).

Input: "NOTES_FILE DATABASE URL" (or "probe" to print what the WASI sandbox lets Python see). It reads
the notes file, counts the rows of the `findings` table in the database by topic, fetches URL, and
answers one report line per source.
Every host call goes through peon-wasm's mediator: a refused call raises Err(Error) here, which the
agent turns into its own error (the run's exit status 1), naming the call that was refused.
"""
import json
import os
import socket
import sys

import wit_world
from componentize_py_types import Err
from wit_world.imports import db, fs, http, log
from wit_world.imports.log import Level


def describe(error: Err) -> str:
    """The host's error (code and message) in one line."""
    value = error.value
    return f"{value.code.name.lower().replace('_', '-')}: {value.message}"


def probe() -> str:
    """What the WASI sandbox lets Python see: printed as one JSON line on stdout (the tests read it)."""
    report = {"env": sorted(os.environ.keys()), "argv": sys.argv[1:]}
    for name, action in [("list-root", lambda: os.listdir("/")), ("read-passwd", lambda: open("/etc/passwd").read()),
                         ("list-cwd", lambda: os.listdir("."))]:
        try:
            action()
            report[name] = "allowed"
        except Exception as error:
            report[name] = f"refused: {type(error).__name__}"
    for name, address in [("socket-ip", ("127.0.0.1", 9)), ("socket-name", ("localhost", 9))]:
        try:
            connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            connection.settimeout(1)
            connection.connect(address)
            connection.close()
            report[name] = "allowed"
        except Exception as error:
            report[name] = f"refused: {type(error).__name__}"
    report["stdin"] = sys.stdin.read()
    print(json.dumps(report, sort_keys=True))
    sys.stdout.flush()
    return "probed"


class WitWorld(wit_world.WitWorld):
    def run(self, input: str) -> str:
        if input.startswith("probe"):
            # "probe" reports the sandbox; "probe N" also writes N bytes to stderr (the output cap).
            count = input[len("probe"):].strip()
            if count.isdigit():
                sys.stderr.write("x" * int(count))
                sys.stderr.flush()
            return probe()
        parts = input.split()
        if len(parts) != 3:
            raise Err("usage: NOTES_FILE DATABASE URL")
        notes_path, database, url = parts
        log.log(Level.INFO, f"py-researcher: notes {notes_path}, database {database}, url {url}")
        lines = []
        try:
            notes = fs.read(notes_path).decode("utf-8", errors="replace")
        except Err as error:
            raise Err(f"cannot read {notes_path}: {describe(error)}")
        words = notes.split()
        lines.append(f"notes: {len(notes.splitlines())} lines, {len(words)} words")
        try:
            rows = db.query(database, "SELECT topic, COUNT(*) FROM findings WHERE score >= ? GROUP BY topic ORDER BY topic",
                            [db.Value_Integer(2)])
        except Err as error:
            raise Err(f"cannot query {database}: {describe(error)}")
        summary = []
        for row in rows.rows:
            topic = row[0].value if isinstance(row[0], db.Value_Text) else "?"
            count = row[1].value if isinstance(row[1], db.Value_Integer) else 0
            summary.append(f"{topic}={count}")
        lines.append(f"findings (score >= 2): {', '.join(summary) if summary else 'none'}")
        try:
            response = http.send(http.Request(method="GET", url=url, headers=[http.Header(name="accept", value="text/plain")], body=b""))
        except Err as error:
            raise Err(f"cannot fetch {url}: {describe(error)}")
        body = response.body.decode("utf-8", errors="replace").strip()
        first = body.splitlines()[0] if body else ""
        lines.append(f"{url}: {response.status}, {len(response.body)} bytes, first line {first!r}")
        return "\n".join(lines)
