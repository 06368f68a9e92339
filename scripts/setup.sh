#!/usr/bin/env bash
# Everything epolltrack needs on a fresh Debian 12 machine, as root:
# Debian packages, bpffs and tracefs, npm dependencies, and the build.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (BPF needs it): sudo bash $0" >&2
  exit 1
fi
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is needed (node --version: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

pkgs=(clang llvm libbpf-dev libbpf1 bpftool make gcc libc6-dev iproute2 nginx-light nutcracker runc crun containerd busybox-static chromium python3 prometheus groff-base)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # prometheus is here for promtool (the metrics test); its server is not wanted running.
  command -v systemctl >/dev/null && systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

# libbpf pins under bpffs and attaches tracepoints through tracefs.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs none /sys/kernel/tracing

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
