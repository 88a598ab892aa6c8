#!/usr/bin/env bash
# Builds modules/py-researcher into a component: modules/py-researcher/build.sh [OUTPUT.wasm]
# Needs `pip install componentize-py==0.25.1`. The component (~18 MB: it carries CPython; its compiled cache file is ~40 MB) is not
# committed; the default output is researcher.wasm beside this script (ignored by git).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$here/researcher.wasm}"
if ! command -v componentize-py >/dev/null 2>&1; then
    echo "py-researcher/build.sh: componentize-py is not installed (pip install componentize-py==0.25.1)" >&2
    exit 3
fi
cd "$here"
componentize-py -d "$repo/wit" -w agent componentize app -o "$out" >&2
echo "$out"
