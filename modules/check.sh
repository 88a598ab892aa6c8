#!/usr/bin/env bash
# modules/check.sh: the wasm-tools referee check and the pyhost runs for every example agent
# (see modules/tools/check.py). Needs wasm-tools, wat2wasm and, for the runs, wasmtime-py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/tools/check.py" "$@"
