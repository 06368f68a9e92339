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

if [ -z "${EPOLLTRACK_SKIP_KERNELS:-}" ] && [ -x test/kernels/run-all.sh ]; then
  klog=$(mktemp)
  bash test/kernels/run-all.sh 2>&1 | tee "$klog"
  kstatus=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$klog" | tail -1)
  kp=$(echo "${line:-0 passed, 1 failed}" | awk '{print $1}')
  kf=$(echo "${line:-0 passed, 1 failed}" | awk '{print $3}')
  [ "$kstatus" != 0 ] && [ "$kf" = 0 ] && kf=1
  passed=$((passed + kp)); failed=$((failed + kf))
  rm -f "$klog"
fi

# The container image against this kernel (installs docker.io and starts dockerd if needed).
if [ -z "${EPOLLTRACK_SKIP_DOCKER:-}" ]; then
  dlog=$(mktemp)
  bash scripts/test-docker.sh 2>&1 | tee "$dlog"
  dstatus=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$dlog" | tail -1)
  dp=$(echo "${line:-0 passed, 1 failed}" | awk '{print $1}')
  df=$(echo "${line:-0 passed, 1 failed}" | awk '{print $3}')
  [ "$dstatus" != 0 ] && [ "$df" = 0 ] && df=1
  passed=$((passed + dp)); failed=$((failed + df))
  rm -f "$dlog"
fi

echo "${passed} passed, ${failed} failed"
[ "$status" = 0 ] && [ "$failed" = 0 ]
