#!/bin/bash
# Build the BPF object against each test kernel's own BTF (see README.md):
#
#   bash test/kernels/build-all.sh [KERNEL_ID...]      (default: 6.1 6.12)
#
# For each kernel: test/kernels/setup.sh has the extracted vmlinux in the cache;
# `make -C bpf VMLINUX_BTF=<that vmlinux> OUTPUT=build/kernels/ID` generates a
# vmlinux.h from its BTF with bpftool and compiles epolltrack.bpf.c against it
# (not against the vendored bpf/x86/vmlinux.h), then
# `scripts/gen-layout.mjs --check` confirms the object's layout of the shared
# types is the one src/kernel/layout.gen.ts was generated from. run-all.sh runs
# the guests' suites with these objects (EPOLLTRACK_BPF_OBJECT).
#
# Prints one line per kernel ("build: ID ok ..." or "build: ID FAILED ...",
# with the compiler's errors) and last "N passed, N failed"; exit 1 on a failure.
# Env: EPOLLTRACK_KERNEL_CACHE (default /var/cache/epolltrack-kernels),
#      EPOLLTRACK_KERNEL_BUILD (default build/kernels), EPOLLTRACK_KERNEL_SETUP=0
#      (skip setup.sh: the caller ran it).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${EPOLLTRACK_KERNEL_CACHE:-/var/cache/epolltrack-kernels}
OUT=${EPOLLTRACK_KERNEL_BUILD:-$ROOT/build/kernels}
if [ $# -eq 0 ]; then set -- 6.1 6.12; fi

if [ "${EPOLLTRACK_KERNEL_SETUP:-1}" != 0 ]; then
  "$HERE/setup.sh" --quiet "$@" || { echo "build: setup.sh failed"; echo "0 passed, $# failed"; exit 1; }
fi

passed=0; failed=0
for id in "$@"; do
  vmlinux="$CACHE/$id/vmlinux"; dir="$OUT/$id"
  if [ ! -s "$vmlinux" ]; then
    echo "build: $id FAILED: no extracted vmlinux in $CACHE/$id (test/kernels/setup.sh could not extract it)"
    failed=$((failed + 1)); continue
  fi
  mkdir -p "$dir"
  log="$dir/build.log"
  t0=$(date +%s.%N)
  if make -s -C "$ROOT/bpf" VMLINUX_BTF="$vmlinux" OUTPUT="$dir" >"$log" 2>&1 \
     && node "$ROOT/scripts/gen-layout.mjs" --check "$dir/epolltrack.bpf.o" >>"$log" 2>&1; then
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "build: $id ok ($(cat "$CACHE/$id/release" 2>/dev/null || echo '?') BTF, $(grep -c . "$dir/vmlinux/vmlinux.h") lines of vmlinux.h, layout matches layout.gen.ts, ${secs} s): $dir/epolltrack.bpf.o"
    passed=$((passed + 1))
  else
    echo "build: $id FAILED against $(cat "$CACHE/$id/release" 2>/dev/null || echo '?')'s BTF (log: $log):"
    grep -E 'error|Error|stale|differ' "$log" | head -n 20 | sed 's/^/  /'
    failed=$((failed + 1))
  fi
done
echo "${passed} passed, ${failed} failed"
[ "$failed" = 0 ]
