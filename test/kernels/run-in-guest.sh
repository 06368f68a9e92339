#!/bin/bash
# Run a command inside a Debian stock kernel booted under QEMU/TCG, in a chroot
# of this machine's root file system (shared read-only over 9p).
#
#   test/kernels/run-in-guest.sh KERNEL_ID -- CMD [ARG...]
#
#   KERNEL_ID  6.1 or 6.12 (anything setup.sh can resolve)
#   CMD        one argument: a bash script string (like ssh): 'uname -r; ls /'
#              several arguments: an argv, executed as is
#
# The command runs as root in the host's current directory, with HOME=TMPDIR=/run/tmp,
# a fresh tmpfs on /run (the host's /tmp is visible read-only), and proc, sysfs, devtmpfs, bpffs, tracefs,
# debugfs, securityfs and cgroup2 mounted. Its stdout+stderr come back on this
# script's stdout; the exit status is the command's. 124: timeout,
# 125: the harness or the guest failed (message on stderr).
#
# Env:
#   EPOLLTRACK_GUEST_TIMEOUT   seconds for the whole run (default 600)
#   EPOLLTRACK_GUEST_MEM       guest memory (default 2G)
#   EPOLLTRACK_GUEST_SMP       guest CPUs (default 2)
#   EPOLLTRACK_GUEST_ENV       names of host env variables to pass into the command
#   EPOLLTRACK_KERNEL_APPEND   extra kernel command line parameters
#   EPOLLTRACK_BOOT_BZIMAGE    1 = boot the compressed bzImage instead of vmlinux
#   EPOLLTRACK_KERNEL_CACHE    cache dir of setup.sh (default /var/cache/epolltrack-kernels)
#   EPOLLTRACK_KERNEL_LOGDIR   where the guest console logs go (default $CACHE/logs)
#   EPOLLTRACK_GUEST_VERBOSE   1 = print the log path and timings on stderr
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${EPOLLTRACK_KERNEL_CACHE:-/var/cache/epolltrack-kernels}
TIMEOUT=${EPOLLTRACK_GUEST_TIMEOUT:-600}
MEM=${EPOLLTRACK_GUEST_MEM:-2G}
SMP=${EPOLLTRACK_GUEST_SMP:-2}
LOGDIR=${EPOLLTRACK_KERNEL_LOGDIR:-$CACHE/logs}
VERBOSE=${EPOLLTRACK_GUEST_VERBOSE:-0}

die() { printf 'run-in-guest: %s\n' "$*" >&2; exit 125; }
usage() { die "usage: run-in-guest.sh KERNEL_ID -- CMD [ARG...]"; }

[ $# -ge 3 ] && [ "$2" = -- ] || usage
ID=$1; shift 2
case $ID in *[!0-9A-Za-z.+-]*|"") die "bad KERNEL_ID '$ID'" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root"

T0=$(date +%s.%N)
"$HERE/setup.sh" --quiet "$ID" || die "setup.sh $ID failed"
DIR="$CACHE/$ID"

if [ "${EPOLLTRACK_BOOT_BZIMAGE:-0}" != 1 ] && [ -f "$DIR/vmlinux" ]; then
  KERNEL="$DIR/vmlinux"
else
  KERNEL="$DIR/bzImage"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/epolltrack-guest.XXXXXX") || die "mktemp failed"
QPID=""
cleanup() {
  if [ -n "$QPID" ]; then kill "$QPID" 2>/dev/null; wait "$QPID" 2>/dev/null; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "run-in-guest: interrupted" >&2; exit 130' INT TERM

mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
LOG="$LOGDIR/$ID-$(date +%Y%m%d-%H%M%S)-$$.log"
# keep the newest 20 logs of this kernel
ls -t "$LOGDIR/$ID"-*.log 2>/dev/null | tail -n +20 | xargs -r rm -f

NONCE=$(od -An -tx8 -N8 /dev/urandom | tr -d ' \n')

# --- the command script, run by the host's /bin/bash inside the chroot ---
mkdir -p "$WORK/rootfs/epolltrack"
{
  printf 'cd -- %q 2>/dev/null || { echo "run-in-guest: cannot cd to %q in the guest (not on the 9p root?)" >&2; exit 125; }\n' "$PWD" "$PWD"
  printf 'export PWD=%q\n' "$PWD"
  for v in ${EPOLLTRACK_GUEST_ENV:-}; do
    if [ -n "${!v+x}" ]; then printf 'export %s=%q\n' "$v" "${!v}"; fi
  done
  if [ $# -eq 1 ]; then
    printf 'exec /bin/bash -c %q\n' "$1"
  else
    printf 'exec'; printf ' %q' "$@"; printf '\n'
  fi
} >"$WORK/rootfs/epolltrack/cmd.sh"
printf '%s\n' "$NONCE" >"$WORK/rootfs/epolltrack/nonce"
(cd "$WORK/rootfs" && find . | cpio -o -H newc --quiet -R 0:0) >"$WORK/run.cpio" || die "cpio failed"
cat "$DIR/initramfs.cpio" "$WORK/run.cpio" >"$WORK/initrd" || die "cannot write initrd"

APPEND="console=ttyS1 loglevel=7 panic=-1 rdinit=/init ${EPOLLTRACK_KERNEL_APPEND:-}"

QEMU=(qemu-system-x86_64 -nodefaults -no-user-config
  -machine pc -accel tcg -cpu max -smp "$SMP" -m "$MEM"
  -display none -monitor none -no-reboot
  -serial stdio -serial "file:$LOG"
  -kernel "$KERNEL" -initrd "$WORK/initrd" -append "$APPEND"
  -virtfs local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap)

[ "$VERBOSE" = 1 ] && echo "run-in-guest: $ID ($(cat "$DIR/release")), $(basename "$KERNEL"), log $LOG" >&2

STATUS="$WORK/status"
# ttyS0 carries only: BEGIN marker, the command's output, EXIT marker.
mkfifo "$WORK/ttyS0" || die "mkfifo failed"
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null >"$WORK/ttyS0" 2>"$WORK/qemu.err" &
QPID=$!
AWK=(awk)
# mawk (Debian's default awk) block-buffers its input: ask it for line mode so
# the output streams while the command runs
if awk -W version 2>&1 | grep -qi mawk; then AWK=(awk -W interactive); fi
LC_ALL=C "${AWK[@]}" -v nonce="$NONCE" -v statf="$STATUS" -v t0="$T0" -v verbose="$VERBOSE" '
    BEGIN { b = "@@EPOLLTRACK-BEGIN-" nonce "@@"; e = "@@EPOLLTRACK-EXIT-" nonce " ";
            f = "@@EPOLLTRACK-SETUP-FAILED-" nonce " " }
    done { next }
    !started {
      if (index($0, b)) {
        started = 1
        if (verbose == 1) { "date +%s.%N" | getline now; printf "run-in-guest: command started %.2f s after launch\n", now - t0 > "/dev/stderr" }
      } else if ((i = index($0, f)) > 0) {
        s = substr($0, i + length(f)); sub(/@@$/, "", s); print "setup-failed " s > statf; close(statf); done = 1
      }
      next
    }
    (i = index($0, e)) > 0 {
      printf "%s", substr($0, 1, i - 1)
      s = substr($0, i + length(e)); sub(/@@.*/, "", s)
      print "exit " s > statf; close(statf); fflush(); exit 0
    }
    { print; fflush() }' <"$WORK/ttyS0"
# After the EXIT marker the guest powers off at once; don't wait long for it.
if grep -q '^exit ' "$STATUS" 2>/dev/null; then
  for _ in $(seq 30); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
  kill "$QPID" 2>/dev/null
fi
wait "$QPID"; QRC=$?; QPID=""
T1=$(date +%s.%N)
[ "$VERBOSE" = 1 ] && awk -v a="$T0" -v b="$T1" 'BEGIN { printf "run-in-guest: whole run %.2f s\n", b - a }' >&2

if [ -s "$STATUS" ]; then
  read -r kind rest <"$STATUS"
  if [ "$kind" = exit ] && [[ $rest =~ ^[0-9]+$ ]]; then
    if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
      echo "run-in-guest: warning: guest did not power off after the command (log: $LOG)" >&2
    fi
    if sed -n '/^epolltrack-init: running command/,$p' "$LOG" | grep -q -E 'BUG: |Oops|WARNING: |Call Trace'; then
      echo "run-in-guest: note: the guest kernel logged a BUG/WARNING/Oops during the command; see $LOG" >&2
    fi
    exit "$rest"
  fi
  echo "run-in-guest: guest setup failed on $ID: $rest (log: $LOG)" >&2
  tail -n 30 "$LOG" | sed 's/^/  | /' >&2
  exit 125
fi

if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
  echo "run-in-guest: TIMEOUT: the guest ($ID) did not finish within ${TIMEOUT}s (EPOLLTRACK_GUEST_TIMEOUT); log: $LOG" >&2
  tail -n 20 "$LOG" | sed 's/^/  | /' >&2
  exit 124
fi
if grep -q 'Kernel panic' "$LOG" 2>/dev/null; then
  echo "run-in-guest: KERNEL PANIC in the guest ($ID); log: $LOG" >&2
  first=$(grep -n -m1 -E 'sysrq: |BUG: |Oops|general protection|Kernel panic' "$LOG" | cut -d: -f1)
  sed -n "$((first > 3 ? first - 3 : 1)),$((first + 40))p" "$LOG" | sed 's/^/  | /' >&2
  exit 125
fi
echo "run-in-guest: the guest ($ID) ended without reporting an exit status (qemu exit $QRC); log: $LOG" >&2
[ -s "$WORK/qemu.err" ] && sed 's/^/  qemu: /' "$WORK/qemu.err" >&2
tail -n 30 "$LOG" 2>/dev/null | sed 's/^/  | /' >&2
exit 125
