#!/usr/bin/env bash
# The one command for peon-wasm's benchmarks: builds PeonBench (a target of the main package, sources in
# Benchmarks/Sources) and peon-wasm in release mode into .build-release, runs every section
# (floor, mediation, capabilities vs native, policy vs pycasbin, audit, agents) and writes RESULTS.md.
#
#   Benchmarks/run.sh            # the full run (a few minutes on 2 cores)
#   Benchmarks/run.sh --quick    # fewer samples, smaller logs (about a minute)
#   Benchmarks/run.sh --only policy,audit    # some sections: floor (1-3), policy (4), audit (5), agents (6), components (8)
#
# Needs: a Swift 6.1+ toolchain; python3 with `pip install casbin` for the pycasbin column and
# `pip install wasmtime==50.0.1` for the wasmtime engine (both optional: without them the run says so).
set -euo pipefail
cd "$(dirname "$0")"

python_module_version() {
    python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo "not installed"
}

# From the repository root, into its own build folder, so the debug build in .build is untouched.
release=(swift build --package-path .. --build-path ../.build-release -c release)
echo "building PeonBench (release)..." >&2
build_log="$(mktemp)"
# A failed build stops the run: an older PeonBench left in .build-release must never produce the results.
if ! "${release[@]}" --product PeonBench >"$build_log" 2>&1; then
    grep -E "error" "$build_log" >&2 || cat "$build_log" >&2
    echo "run.sh: the release build of PeonBench failed; run 'swift build -c release --build-path .build-release --product PeonBench' at the repository root to see why" >&2
    rm -f "$build_log"
    exit 1
fi
grep -E "warning: .*Benchmarks/Sources" "$build_log" >&2 || true
rm -f "$build_log"
binary="$("${release[@]}" --show-bin-path)/PeonBench"
# The release peon-wasm for the MCP section (section 7), built from the same sources into the same folder.
if "${release[@]}" --product peon-wasm >/dev/null 2>&1; then
    peon_wasm=(--peon-wasm "$("${release[@]}" --show-bin-path)/peon-wasm")
else
    echo "run.sh: the release build of peon-wasm failed; the MCP section will say it was not measured" >&2
    peon_wasm=()
fi

export BENCH_TOOLCHAIN="$(swift --version 2>&1 | grep -m1 -o 'Swift version [^ ]*' || echo unknown)"
export BENCH_PYTHON="$(python3 --version 2>&1 || echo none)"
export BENCH_PYCASBIN="$(python_module_version casbin)"
export BENCH_WASMTIME="$(python_module_version wasmtime)"
"$binary" --out RESULTS.md --pycasbin "$PWD/pycasbin_bench.py" "${peon_wasm[@]}" "$@"
echo "wrote $PWD/RESULTS.md" >&2
