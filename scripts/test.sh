#!/usr/bin/env bash
# The README's test command (and CI's): set up, run every test against the
# real kernel, and end with one line "N passed, N failed".
# Skipped tests count as failed when CI is set: CI must not skip privileged tests.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
npx mocha --reporter spec 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^ +[0-9]+ passing' "$log" | grep -Eo '[0-9]+' | tail -1)
failed=$(grep -Eo '^ +[0-9]+ failing' "$log" | grep -Eo '[0-9]+' | tail -1)
pending=$(grep -Eo '^ +[0-9]+ pending' "$log" | grep -Eo '[0-9]+' | tail -1)
passed=${passed:-0}; failed=${failed:-0}; pending=${pending:-0}
if [ "$passed" = 0 ] && [ "$failed" = 0 ]; then failed=1; fi   # mocha died before reporting
if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then failed=$((failed + pending)); fi

# A further suite that ends with its own "N passed, N failed" line: add its counts
# (a non-zero exit with no failure counted counts as one failure).
run_suite() {
  local out st line p f
  out=$(mktemp)
  "$@" 2>&1 | tee "$out"
  st=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
  p=$(echo "${line:-0 passed, 1 failed}" | awk '{print $1}')
  f=$(echo "${line:-0 passed, 1 failed}" | awk '{print $3}')
  [ "$st" != 0 ] && [ "$f" = 0 ] && f=1
  passed=$((passed + p)); failed=$((failed + f))
  rm -f "$out"
}

# Debian's 6.1 and 6.12 kernels under QEMU, in fentry and kprobe mode.
[ -z "${EPOLLTRACK_SKIP_KERNELS:-}" ] && run_suite bash test/kernels/run-all.sh
# The container image against this kernel (installs docker.io and starts dockerd if needed).
[ -z "${EPOLLTRACK_SKIP_DOCKER:-}" ] && run_suite bash scripts/test-docker.sh

echo "${passed} passed, ${failed} failed"
[ "$status" = 0 ] && [ "$failed" = 0 ]
