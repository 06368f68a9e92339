#!/usr/bin/env bash
# Build epolltrack's container image without any registry:
#   1. the base, epolltrack-base:bookworm: Debian 12 from `debootstrap --variant=minbase`
#      with libbpf1, libstdc++6 and tini, then `docker import` (~25 s, cached: reused
#      while its package list label matches);
#   2. the image (default epolltrack:latest) from the built project: the host's node
#      binary and what the npm package ships, with the production dependencies.
# Usage: bash docker/build.sh [TAG]   (as root, dockerd running, after `npm run build`)
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-epolltrack:latest}
BASE=${EPOLLTRACK_BASE_IMAGE:-epolltrack-base:bookworm}
BASE_PKGS=libbpf1,libstdc++6,tini
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
say() { echo "docker/build: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and docker need it)"
docker info >/dev/null 2>&1 || die "dockerd is not reachable: start it (scripts/test-docker.sh does)"
[ -f build/epolltrack.bpf.o ] && [ -f dist/src/cli/main.js ] || die "the project is not built: run npm run build (or bash scripts/setup.sh)"
NODE=$(command -v node) || die "node not found"
NODE=$(readlink -f "$NODE")
[ "$("$NODE" -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "$NODE is older than Node.js 20"

# 1. Base image, cached.
have=$(docker image inspect "$BASE" --format '{{ index .Config.Labels "org.epolltrack.base-packages" }}' 2>/dev/null || true)
if [ "$have" = "$BASE_PKGS" ]; then
  say "base $BASE cached"
else
  command -v debootstrap >/dev/null || { say "installing debootstrap"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  root=$(mktemp -d /tmp/epolltrack-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  say "debootstrap bookworm ($BASE_PKGS) from $MIRROR"
  t0=$(date +%s)
  debootstrap --variant=minbase --include="$BASE_PKGS" bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; rm -f "$root.log"; die "debootstrap failed"; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*.log
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL org.epolltrack.base-packages=$BASE_PKGS" \
    --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$root"; trap - EXIT
  say "base $BASE imported in $(( $(date +%s) - t0 )) s"
fi

# 2. Build context: ./node, ./app (package files + production node_modules), Dockerfile, .dockerignore.
ctx=$(mktemp -d /tmp/epolltrack-docker.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/app"
cp "$NODE" "$ctx/node"
npm pack --dry-run --json 2>/dev/null \
  | node -e 'for (const f of JSON.parse(require("fs").readFileSync(0, "utf8"))[0].files) console.log(f.path)' \
  | tar -c -T - | tar -C "$ctx/app" -x
deps=$(npm ls --omit=dev --all --parseable 2>/dev/null) \
  || die "production dependencies are missing from node_modules (npm ls --omit=dev): run npm ci"
root=$(pwd)
while IFS= read -r d; do
  [ "$d" = "$root" ] && continue
  rel=${d#"$root"/}
  case "$rel" in node_modules/*/node_modules/*) continue ;; esac   # copied with its parent
  mkdir -p "$ctx/app/$(dirname "$rel")"
  cp -a "$d" "$ctx/app/$rel"
done <<<"$deps"
cp docker/Dockerfile docker/.dockerignore "$ctx/"

t0=$(date +%s)
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$BASE" -t "$TAG" "$ctx" >/dev/null 2>"$ctx.err" \
  || { cat "$ctx.err" >&2; rm -f "$ctx.err"; die "docker build failed"; }
rm -f "$ctx.err"
say "image $TAG built in $(( $(date +%s) - t0 )) s ($(docker image inspect "$TAG" --format '{{ .Size }}' | awk '{printf "%d MB", $1/1e6}'))"
