#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), one after another.
#
#   Fuzz/run.sh [SECONDS] [TARGET...]      e.g. Fuzz/run.sh 300   or   Fuzz/run.sh 30 FuzzAudit
#
# Targets are the folders under Fuzz/Sources/. Each run reads the seeds in Fuzz/corpus/TARGET/ and keeps what it
# learns in Fuzz/.build/fuzz-corpus/TARGET/ (not committed); a crash, leak or hang is written to
# Fuzz/.build/fuzz-artifacts/ and the script exits non-zero after running the rest. Logs: Fuzz/.build/fuzz-logs/.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
case "$seconds" in ''|*[!0-9]*) echo "usage: Fuzz/run.sh [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for dir in Sources/*/; do targets+=("$(basename "$dir")"); done
fi

# The targets belong to the main package (its Package.swift); they are built from the root into .build-fuzz, so the
# ordinary debug build in .build is untouched.
# -sanitize=fuzzer instruments and links libFuzzer (which supplies main; -DPEON_LIBFUZZER leaves out each target's own
# replaying main, hence -parse-as-library); address adds AddressSanitizer. --sanitize instruments the C/C++
# dependencies too (TOMLKit's toml++ parses every grants file), but passes swiftc two -sanitize= flags of which only
# the last counts, leaving the Swift code without coverage; the one -Xswiftc -sanitize=fuzzer,address (passed after
# them) is what instruments it.
build=(swift build --package-path .. --build-path ../.build-fuzz -c debug --sanitize fuzzer --sanitize address
       -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DPEON_LIBFUZZER)
for target in "${targets[@]}"; do "${build[@]}" --product "$target"; done
bin="$("${build[@]}" --show-bin-path)"

mkdir -p .build/fuzz-corpus .build/fuzz-artifacts .build/fuzz-logs
failed=()
for target in "${targets[@]}"; do
  mkdir -p ".build/fuzz-corpus/$target" "corpus/$target"
  log=".build/fuzz-logs/$target.log"
  echo "== $target: ${seconds}s (log: Fuzz/$log)"
  status=0
  # -timeout: one input running 10 s is a hang; -max_len: inputs up to 8 KiB (grants files and logs are text).
  # Leak checks are off by default: TOMLKit leaks a few hundred bytes per parsed document (not our code); run with
  # ASAN_OPTIONS=detect_leaks=1 to see them.
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" "$bin/$target" \
    -max_total_time="$seconds" -timeout=10 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix=".build/fuzz-artifacts/$target-" \
    ".build/fuzz-corpus/$target" "corpus/$target" >"$log" 2>&1 || status=$?
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  if [ "$status" = 0 ]; then
    echo "   $runs executions, no finding"
  else
    echo "   FINDING (exit $status) after $runs executions; see Fuzz/$log and Fuzz/.build/fuzz-artifacts/$target-*"
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "findings in: ${failed[*]}" >&2
  exit 1
fi
