#!/bin/bash
# The tracker's suites under Debian's stock kernels (see README.md), in every
# hook mode those kernels offer besides tracepoint:
#
#   npm run build && npm run test:kernels      (= bash test/kernels/run-all.sh)
#
# First, for each kernel, build-all.sh builds the BPF object against that
# kernel's own BTF (vmlinux.h generated from the guest's vmlinux with bpftool,
# into build/kernels/ID; one case per kernel). Then for each kernel (6.1, 6.12)
# and mode (fentry, kprobe) it boots a guest and runs
# test/kernels/guest-tests.sh there with EPOLLTRACK_BPF_OBJECT set to that
# kernel's object: the mocha suites matching
# $EPOLLTRACK_KERNEL_GREP with EPOLLTRACK_MODE=<mode> and CI=true, then
# hook-check.mjs (every hook of the mode fires). In the first mode's run of
# each kernel it also runs status-check.mjs: load() with mode 'auto' must pick
# fentry. Besides those objects it builds nothing: the caller has built
# (dist/, build/).
#
# Prints one line per kernel+mode (cases passed/failed, seconds), the status
# check per kernel, and last a line "N passed, N failed" counting the test
# cases of all guest runs (mocha's passing; failing and pending count as
# failed; each hook check and status check is one case) and the builds. Exit status 1 if
# anything failed.
#
# Env:
#   EPOLLTRACK_KERNELS         kernels (default "6.1 6.12")
#   EPOLLTRACK_KERNEL_MODES    modes (default "fentry kprobe")
#   EPOLLTRACK_KERNEL_STEPS    differential test steps in the guest (default 400)
#   EPOLLTRACK_KERNEL_GREP     mocha --grep (default "^(Tracker|loader)")
#   EPOLLTRACK_KERNEL_JOBS     guests at a time (default 2)
#   EPOLLTRACK_KERNEL_LOGS     where each run's full output goes
#                              (default test-artifacts/kernels)
#   EPOLLTRACK_SEED            passed on to the differential test
#   EPOLLTRACK_DEBUG           passed on (libbpf log, progress)
#   EPOLLTRACK_GUEST_TIMEOUT   per guest run (default 600 s)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT" || exit 1

KERNELS=${EPOLLTRACK_KERNELS:-6.1 6.12}
MODES=${EPOLLTRACK_KERNEL_MODES:-fentry kprobe}
STEPS=${EPOLLTRACK_KERNEL_STEPS:-400}
GREP=${EPOLLTRACK_KERNEL_GREP:-^(Tracker|loader)}
JOBS=${EPOLLTRACK_KERNEL_JOBS:-2}
LOGS=${EPOLLTRACK_KERNEL_LOGS:-$ROOT/test-artifacts/kernels}
EXPECT_AUTO=fentry

fail_early() { echo "run-all: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

[ "$(id -u)" = 0 ] || fail_early "must run as root (QEMU guests, BPF)"
for f in build/epolltrack.bpf.o build/bin/epctl dist/loader/load.js dist/test/tracker/tracker.test.js node_modules/mocha/bin/mocha.js; do
  [ -e "$f" ] || fail_early "$f is missing: run \`npm run build\` first (run-all.sh builds nothing)"
done

T0=$(date +%s)
"$HERE/setup.sh" $KERNELS || fail_early "setup.sh failed"

mkdir -p "$LOGS" || fail_early "cannot create $LOGS"

# The object of each kernel, built against its own BTF.
BUILD_OUT=${EPOLLTRACK_KERNEL_BUILD:-$ROOT/build/kernels}
EPOLLTRACK_KERNEL_SETUP=0 EPOLLTRACK_KERNEL_BUILD=$BUILD_OUT bash "$HERE/build-all.sh" $KERNELS >"$LOGS/build.log" 2>&1
grep -v -E '^[0-9]+ passed, [0-9]+ failed' "$LOGS/build.log" | sed 's/^/run-all: /' >&2
build_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGS/build.log" | tail -1)
build_p=$(echo "${build_line:-0 passed, 1 failed}" | awk '{print $1}')
build_f=$(echo "${build_line:-0 passed, 1 failed}" | awk '{print $3}')
RES=$(mktemp -d "${TMPDIR:-/tmp}/epolltrack-runall.XXXXXX") || fail_early "mktemp failed"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  rm -rf "$RES"
}
trap cleanup EXIT
trap 'echo "run-all: interrupted" >&2; exit 130' INT TERM

# Lines of one section (mocha, hooks, status) of a guest log.
section() { awk -v s="@@ET-SECTION $2@@" 'index($0, "@@ET-SECTION ") == 1 { on = ($0 == s); next } on' "$1"; }
# The last "N <word>" count of mocha's summary (0 if absent).
count() { section "$1" mocha | grep -Eo "^ +[0-9]+ $2" | grep -Eo '[0-9]+' | tail -1 | grep . || echo 0; }

# One guest run: kernel $1, mode $2, status check $3 (0/1). Writes $RES/$1-$2.
run_one() {
  local id=$1 mode=$2 st=$3 log="$LOGS/$1-$2.log" t0 t1 secs rc p f pend hp hf sp sf note=""
  local obj="$BUILD_OUT/$id/epolltrack.bpf.o"
  if [ ! -s "$obj" ]; then
    echo "run-all: no object built against $id's BTF ($obj): see $LOGS/build.log" >"$log"
    printf '%s %s %s %s %s %s\n' "$id" "$mode" 0 1 0 "no object built against its BTF;" >"$RES/$id-$mode"
    echo "run-all: $id $mode: not run, no object built against its BTF" >&2
    return
  fi
  t0=$(date +%s.%N)
  CI=true EPOLLTRACK_BPF_OBJECT=$obj EPOLLTRACK_MODE=$mode EPOLLTRACK_STEPS=$STEPS ET_GUEST_GREP=$GREP ET_GUEST_STATUS=$st \
    ET_GUEST_EXPECT_AUTO=$EXPECT_AUTO \
    EPOLLTRACK_GUEST_ENV="CI EPOLLTRACK_BPF_OBJECT EPOLLTRACK_MODE EPOLLTRACK_STEPS EPOLLTRACK_SEED EPOLLTRACK_DEBUG ET_GUEST_GREP ET_GUEST_STATUS ET_GUEST_EXPECT_AUTO" \
    "$HERE/run-in-guest.sh" "$id" -- bash test/kernels/guest-tests.sh >"$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
  p=$(count "$log" passing); f=$(count "$log" failing); pend=$(count "$log" pending)
  f=$((f + pend))   # CI must not skip
  [ "$pend" -gt 0 ] && note+=" ${pend} pending;"
  if [ "$p" = 0 ] && [ "$f" = 0 ]; then f=1; note+=" mocha reported nothing;"; fi
  # hook check: one case
  if section "$log" hooks | grep -q '^hooks: all ok'; then hp=1; hf=0; else hp=0; hf=1; note+=" hook check failed;"; fi
  p=$((p + hp)); f=$((f + hf))
  if [ "$st" = 1 ]; then
    section "$log" status | grep '^status: ' | sed 's/^status: //' >"$RES/$id.status"
    if [ -s "$RES/$id.status" ] && ! grep -q '^FAIL' "$RES/$id.status"; then sp=1; sf=0; else sp=0; sf=1; note+=" status check failed;"; fi
    [ -s "$RES/$id.status" ] || echo "(no output)" >"$RES/$id.status"
    p=$((p + sp)); f=$((f + sf))
  fi
  case $rc in
    0) ;;
    124) note+=" guest TIMEOUT;"; [ "$f" = 0 ] && f=1 ;;
    125) note+=" guest/harness failure;"; [ "$f" = 0 ] && f=1 ;;
    *) [ "$f" = 0 ] && { f=1; note+=" exit $rc;"; } ;;
  esac
  grep -q '^run-in-guest: note:' "$log" && note+=" kernel logged a BUG/WARNING;"
  printf '%s %s %s %s %s %s\n' "$id" "$mode" "$p" "$f" "$secs" "${note# }" >"$RES/$id-$mode"
  printf 'run-all: %-5s %-7s done: %d passed, %d failed (%s s)%s\n' "$id" "$mode" "$p" "$f" \
    "$secs" "${note:+ -$note}" >&2
}

# Schedule: fentry on every kernel first, then kprobe; at most $JOBS at once.
ORDER=()
for mode in $MODES; do for id in $KERNELS; do ORDER+=("$id:$mode"); done; done
first_mode=${MODES%% *}
echo "run-all: kernels: $KERNELS; modes: $MODES; $STEPS differential steps; grep '$GREP'; $JOBS at a time; logs in $LOGS" >&2
for job in "${ORDER[@]}"; do
  id=${job%%:*}; mode=${job#*:}
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  st=0; [ "$mode" = "$first_mode" ] && st=1
  echo "run-all: $id $mode: starting" >&2
  run_one "$id" "$mode" "$st" &
  PIDS+=($!)
done
wait
PIDS=()

# --- report ---
total_p=$build_p; total_f=$build_f
echo
echo "builds against each kernel's BTF: $build_p passed, $build_f failed (log: $LOGS/build.log)"
printf '%-7s %-8s %7s %7s %8s  %s\n' kernel mode passed failed seconds notes
for job in "${ORDER[@]}"; do
  id=${job%%:*}; mode=${job#*:}
  if [ -s "$RES/$id-$mode" ]; then
    read -r _ _ p f s note <"$RES/$id-$mode"
  else
    p=0; f=1; s=0; note="no result"
  fi
  printf '%-7s %-8s %7d %7d %8d  %s\n' "$id" "$mode" "$p" "$f" "$s" "$note"
  total_p=$((total_p + p)); total_f=$((total_f + f))
done
echo
for id in $KERNELS; do
  echo "status check on $id (load mode 'auto', must pick $EXPECT_AUTO):"
  if [ -s "$RES/$id.status" ]; then sed 's/^/  /' "$RES/$id.status"; else echo "  (not run)"; fi
done
# the failures' details
for job in "${ORDER[@]}"; do
  id=${job%%:*}; mode=${job#*:}
  read -r _ _ _ f _ <"$RES/$id-$mode" 2>/dev/null || f=1
  if [ "$f" != 0 ]; then
    echo
    echo "--- $id $mode: failures (full log: $LOGS/$id-$mode.log) ---"
    { if section "$LOGS/$id-$mode.log" mocha | grep -Eq '^ +[0-9]+ failing'; then
        section "$LOGS/$id-$mode.log" mocha | sed -n '/^ *[0-9]* failing/,$p' | head -n 80
      else
        section "$LOGS/$id-$mode.log" mocha | tail -n 30
      fi
      section "$LOGS/$id-$mode.log" hooks | grep -E 'FAIL' | head -n 20
      grep -E '^run-in-guest:' "$LOGS/$id-$mode.log" | head -n 20; } | sed 's/^/  /'
  fi
done
echo
echo "run-all: $(( $(date +%s) - T0 )) s in all" >&2
echo "${total_p} passed, ${total_f} failed"
[ "$total_f" = 0 ]
