#!/bin/sh
# /init of the guest initramfs built by setup.sh (runs under busybox sh).
# Console layout (see run-in-guest.sh):
#   ttyS0 -> host stdout: only the command's stdout+stderr between markers
#   ttyS1 -> host log file: kernel console (console=ttyS1) and these diagnostics
export PATH=/bin
R=/mnt/root
OUT=/dev/ttyS0

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

NONCE=$(cat /epolltrack/nonce 2>/dev/null || echo nononce)

say() { echo "epolltrack-init: $*" >/dev/ttyS1 2>/dev/null || echo "epolltrack-init: $*"; }
# Report a setup failure on the output channel and power off.
fail() {
  say "FAILED: $*"
  echo "@@EPOLLTRACK-SETUP-FAILED-$NONCE $*@@" >"$OUT"
  stty -F "$OUT" -opost 2>/dev/null   # tcsetattr(TCSADRAIN): wait until sent
  poweroff -f
  sleep 10
}

say "kernel $(uname -r), loading modules"
for m in $(cat /lib/modules/load.list); do
  insmod "/lib/modules/$m" || fail "insmod $m"
done

# The virtio device probes synchronously on insmod, but be tolerant.
# both can be overridden with EPOLLTRACK_KERNEL_APPEND="EPOLLTRACK_MSIZE=.. EPOLLTRACK_9P_CACHE=.."
MSIZE=${EPOLLTRACK_MSIZE:-512000}
CACHEMODE=${EPOLLTRACK_9P_CACHE:-loose}
n=0
until mount -t 9p -o "trans=virtio,version=9p2000.L,ro,msize=$MSIZE,cache=$CACHEMODE" root "$R" 2>/dev/null; do
  n=$((n + 1))
  [ $n -ge 50 ] && fail "cannot mount the 9p share 'root'"
  sleep 0.1
done

mount -t proc proc "$R/proc" || fail "mount proc"
mount -t sysfs sysfs "$R/sys" || fail "mount sysfs"
mount -t devtmpfs devtmpfs "$R/dev" || fail "mount devtmpfs"
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts" || say "devpts failed"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm" || say "/dev/shm failed"
# The host's /tmp stays visible (read-only): a project cloned there must be reachable.
# Scratch space is a tmpfs under /run, and TMPDIR/HOME point at it.
mount -t tmpfs -o mode=755 tmpfs "$R/run" || fail "mount tmpfs on /run"
mkdir -p -m 1777 "$R/run/tmp"
mount -t bpf -o mode=700 bpf "$R/sys/fs/bpf" || fail "mount bpffs"
mount -t tracefs tracefs "$R/sys/kernel/tracing" || fail "mount tracefs"
mount -t debugfs debugfs "$R/sys/kernel/debug" || say "debugfs failed"
mount -t securityfs securityfs "$R/sys/kernel/security" || say "securityfs failed"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup" 2>/dev/null || say "cgroup2 failed"
ip link set lo up 2>/dev/null || say "lo up failed"
hostname epolltrack-guest 2>/dev/null

mkdir -p "$R/run/epolltrack"
cp /epolltrack/cmd.sh "$R/run/epolltrack/cmd.sh" || fail "no command script"

ulimit -Hn 1048576 2>/dev/null || ulimit -Hn 524288
ulimit -Sn "$(ulimit -Hn)"
ulimit -l unlimited 2>/dev/null
ulimit -c 0

stty -F "$OUT" -opost -echo 2>/dev/null   # no \n -> \r\n on the way out
say "running command"
echo "@@EPOLLTRACK-BEGIN-$NONCE@@" >"$OUT"
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/run/tmp \
  TERM=dumb LANG=C.UTF-8 TMPDIR=/run/tmp USER=root LOGNAME=root \
  chroot "$R" /bin/bash /run/epolltrack/cmd.sh </dev/null >"$OUT" 2>&1
rc=$?
echo "@@EPOLLTRACK-EXIT-$NONCE $rc@@" >"$OUT"
say "command exited with $rc"
stty -F "$OUT" -opost 2>/dev/null   # drains ttyS0 before the power goes
stty -F /dev/ttyS1 -opost 2>/dev/null
poweroff -f
sleep 10
