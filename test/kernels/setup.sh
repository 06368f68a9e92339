#!/bin/bash
# Prepare Debian stock kernels for booting under QEMU/TCG (see README.md).
#
#   test/kernels/setup.sh [KERNEL_ID...]      (default: 6.1 6.12)
#
# Idempotent. For each KERNEL_ID it resolves the Debian kernel package
# (meta package linux-image-$ID-amd64, else linux-image-amd64 when that points
# at a $ID.* kernel), apt-get downloads it into the cache, dpkg -x's it,
# extracts the uncompressed ELF vmlinux, and builds an initramfs holding
# busybox-static, the modules needed for virtio-9p and the /init from
# guest-init.sh.
#
# Env:
#   EPOLLTRACK_KERNEL_CACHE    cache dir (default /var/cache/epolltrack-kernels)
#   EPOLLTRACK_KERNEL_REFRESH  1 = re-resolve packages even if a kernel is ready
#                              (picks up a newer Debian kernel)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${EPOLLTRACK_KERNEL_CACHE:-/var/cache/epolltrack-kernels}
REFRESH=${EPOLLTRACK_KERNEL_REFRESH:-0}
# The initramfs layout version: bump when guest-init.sh or the layout changes
# in a way that needs a rebuild (guest-init.sh changes are picked up by hash).
LAYOUT=1

log() { printf 'setup.sh: %s\n' "$*" >&2; }
die() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, dpkg -x, depmod)"

QUIET=0
if [ "${1:-}" = --quiet ]; then QUIET=1; shift; fi
if [ $# -eq 0 ]; then set -- 6.1 6.12; fi

# --- host packages ----------------------------------------------------------
APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
}

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have qemu-system-x86_64 || need_pkgs+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
have xz || need_pkgs+=(xz-utils)
have zstd || need_pkgs+=(zstd)
have cpio || need_pkgs+=(cpio)
have depmod || need_pkgs+=(kmod)
have modprobe || need_pkgs+=(kmod)
have timeout || need_pkgs+=(coreutils)
have awk || need_pkgs+=(mawk)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2; then
    apt_update_once
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2 \
      || die "apt-get install ${need_pkgs[*]} failed"
  fi
fi
# qemu needs the SeaBIOS image even for -kernel (a Depends of qemu-system-x86).
[ -e /usr/share/seabios/bios-256k.bin ] || [ -e /usr/share/qemu/bios-256k.bin ] \
  || die "bios-256k.bin not found (package seabios)"

# --- resolve the kernel package for an id -----------------------------------
# prints the name of the (signed) image package, e.g. linux-image-6.1.0-57-amd64
first_dep() {
  apt-cache depends "$1" 2>/dev/null | awk '/^  Depends: linux-image-/ {print $2; exit}'
}
resolve_pkg() {
  local id=$1 dep try
  for try in 1 2; do
    dep=$(first_dep "linux-image-$id-amd64")
    if [ -n "$dep" ]; then echo "$dep"; return 0; fi
    dep=$(first_dep linux-image-amd64)
    case $dep in
      "linux-image-$id".*) echo "$dep"; return 0 ;;
    esac
    # exact version id, e.g. 6.1.0-57 or 6.12.117+deb12
    if apt-cache show "linux-image-$id-amd64" >/dev/null 2>&1; then
      echo "linux-image-$id-amd64"; return 0
    fi
    [ "$try" = 1 ] && apt_update_once
  done
  return 1
}

# --- vmlinux extraction -----------------------------------------------------
is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# like the kernel's scripts/extract-vmlinux: try every offset of each magic
extract_vmlinux() {
  local img=$1 out=$2 magic tool off
  for spec in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08' \
              'lzma:\x5d\x00\x00\x00' 'lz4:\x02\x21\x4c\x18'; do
    tool=${spec%%:*}; magic=${spec#*:}
    have "$tool" || { [ "$tool" = lz4 ] || [ "$tool" = lzma ]; } || continue
    for off in $(LC_ALL=C grep -obUaP "$magic" "$img" | cut -d: -f1 | head -20); do
      case $tool in
        xz)   tail -c +$((off + 1)) "$img" | xz -dc --single-stream >"$out" 2>/dev/null || true ;;
        zstd) tail -c +$((off + 1)) "$img" | zstd -dcq >"$out" 2>/dev/null || true ;;
        gzip) tail -c +$((off + 1)) "$img" | gzip -dc >"$out" 2>/dev/null || true ;;
        lzma) have xz && { tail -c +$((off + 1)) "$img" | xz -dc --format=lzma >"$out" 2>/dev/null || true; } ;;
        lz4)  have lz4 && { tail -c +$((off + 1)) "$img" | lz4 -dc >"$out" 2>/dev/null || true; } ;;
      esac
      if is_elf "$out"; then
        log "extracted vmlinux ($tool stream at offset $off, $(du -m "$out" | cut -f1) MiB)"
        return 0
      fi
    done
  done
  rm -f "$out"
  return 1
}

# --- one kernel -------------------------------------------------------------
setup_kernel() {
  local id=$1 dir="$CACHE/$id" pkg deb kver root stamp inithash
  inithash=$(cat "$HERE/guest-init.sh" "$HERE/setup.sh" | md5sum | cut -c1-16)
  stamp="layout=$LAYOUT init=$inithash"
  if [ "$REFRESH" != 1 ] && [ -f "$dir/ready" ] && grep -qx "$stamp" "$dir/ready" 2>/dev/null; then
    [ "$QUIET" = 1 ] || log "$id: ready ($(cat "$dir/release")) in $dir"
    return 0
  fi

  pkg=$(resolve_pkg "$id") || die "$id: no Debian kernel package found (tried linux-image-$id-amd64, linux-image-amd64)"
  mkdir -p "$CACHE/debs" "$dir"
  deb=$(ls "$CACHE/debs/${pkg}_"*.deb 2>/dev/null | head -1 || true)
  local want_ver
  want_ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -n "$deb" ] && [ -n "$want_ver" ] && [ "$(dpkg-deb -f "$deb" Version)" != "$want_ver" ]; then
    deb=""
  fi
  if [ -z "$deb" ]; then
    log "$id: downloading $pkg"
    # apt-get download writes into the cwd; _apt cannot write there, that's ok as root
    (cd "$CACHE/debs" && apt-get download -q "$pkg" >&2) \
      || { apt_update_once; (cd "$CACHE/debs" && apt-get download -q "$pkg" >&2); } \
      || die "$id: apt-get download $pkg failed"
    deb=$(ls -t "$CACHE/debs/${pkg}_"*.deb | head -1)
  fi

  log "$id: unpacking $(basename "$deb")"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  root="$dir.tmp/root"
  dpkg -x "$deb" "$root"
  kver=$(ls "$root/lib/modules" | head -1)
  [ -n "$kver" ] && [ -f "$root/boot/vmlinuz-$kver" ] || die "$id: unexpected package layout in $deb"

  # Debian ships no modules.dep; generate it (only inside the extracted tree)
  depmod -b "$root" "$kver"

  if ! extract_vmlinux "$root/boot/vmlinuz-$kver" "$dir.tmp/vmlinux"; then
    log "$id: could not extract an ELF vmlinux; run-in-guest.sh will boot the bzImage (slower)"
  fi
  cp "$root/boot/vmlinuz-$kver" "$dir.tmp/bzImage"
  cp "$root/boot/config-$kver" "$dir.tmp/config"

  # --- initramfs ---
  local ird="$dir.tmp/initramfs" m line f base
  mkdir -p "$ird"/{bin,dev,proc,sys,mnt/root,lib/modules,epolltrack}
  mknod -m 600 "$ird/dev/console" c 5 1
  cp /bin/busybox "$ird/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$ird/bin/$a"; done
  ln -sf bin "$ird/sbin"
  cp "$HERE/guest-init.sh" "$ird/init"
  chmod 755 "$ird/init"
  : >"$ird/lib/modules/load.list"
  # dependency order from modprobe --show-depends (modules.dep); "builtin" lines are skipped
  for m in virtio_pci 9pnet_virtio 9p; do
    modprobe -d "$root" -S "$kver" --show-depends "$m" \
      || die "$id: modprobe --show-depends $m failed"
  done | awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++' | while read -r f; do
    base=$(basename "$f"); base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
    case $f in
      *.ko.xz)  xz -dc "$f" >"$ird/lib/modules/$base" ;;
      *.ko.zst) zstd -dcq "$f" >"$ird/lib/modules/$base" ;;
      *.ko.gz)  gzip -dc "$f" >"$ird/lib/modules/$base" ;;
      *)        cp "$f" "$ird/lib/modules/$base" ;;
    esac
    echo "$base" >>"$ird/lib/modules/load.list"
  done
  log "$id: modules: $(tr '\n' ' ' <"$ird/lib/modules/load.list")"
  echo "$kver" >"$ird/epolltrack/kver"
  (cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) >"$dir.tmp/initramfs.cpio"
  rm -rf "$ird"

  echo "$kver" >"$dir.tmp/release"
  echo "$pkg" >"$dir.tmp/package"
  echo "$stamp" >"$dir.tmp/ready"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  # keep only the current .deb of this package
  for f in "$CACHE/debs/${pkg}_"*.deb; do [ "$f" = "$deb" ] || rm -f "$f"; done
  log "$id: ready ($kver) in $dir"
}

# one setup at a time (run-in-guest.sh calls setup.sh on every run)
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

for id in "$@"; do
  case $id in
    *[!0-9A-Za-z.+-]*|"") die "bad KERNEL_ID '$id'" ;;
  esac
  setup_kernel "$id"
done
