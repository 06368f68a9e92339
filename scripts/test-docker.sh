#!/usr/bin/env bash
# The container image against the host kernel (npm run test:docker), as root:
#   - starts dockerd if it is not running (installs Debian's docker.io if missing);
#   - builds the base (debootstrap, cached as epolltrack-base:bookworm) and a test image;
#   - in Docker, with the least privileges Docker allows, and the host's pid namespace:
#     load, status, lookups of a host process's registrations (made before and after
#     the load) answered exactly, the fdinfo way, the daemon (/api/status, /metrics,
#     /api/snapshot) on a read-only root filesystem, a clean stop, unload;
#   - with runc, the image with exactly the capabilities docker/daemonset.yaml grants
#     (Docker 20.10 cannot grant CAP_BPF/CAP_PERFMON): it works, and without any one of
#     them it fails;
#   - removes its containers and test image (the base image stays cached).
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$(date +%s)
passed=0 failed=0
ok() { echo "ok   - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
note() { echo "     $*"; }
finish() { echo "test-docker: $(( $(date +%s) - T0 )) s"; echo "${passed} passed, ${failed} failed"; [ "$failed" = 0 ]; exit $?; }

if [ "$(id -u)" != 0 ]; then echo "test-docker: run as root (BPF and docker need it)" >&2; fail "root"; finish; fi
if [ ! -f build/epolltrack.bpf.o ] || [ ! -f dist/src/cli/main.js ]; then
  bash scripts/setup.sh || { fail "setup (build)"; finish; }
fi
CLI=(node "$ROOT/dist/src/cli/main.js")

TAG=epolltrack:test-$$
PIN=/sys/fs/bpf/epolltrack-docker-test-$$
NAME=epolltrack-test-$$
BUNDLE=
EP_PID=
cleanup() {
  docker rm -f "$NAME-daemon" >/dev/null 2>&1
  for c in $(runc list -q 2>/dev/null | grep "^$NAME-" || true); do runc delete -f "$c" >/dev/null 2>&1; done
  [ -n "$BUNDLE" ] && rm -rf "$BUNDLE"
  [ -d "$PIN" ] && "${CLI[@]}" unload --pin-dir "$PIN" >/dev/null 2>&1
  docker image inspect "$TAG" >/dev/null 2>&1 && docker rmi -f "$TAG" >/dev/null 2>&1
  [ -n "$EP_PID" ] && kill "$EP_PID" 2>/dev/null
}
trap cleanup EXIT

# --- dockerd ---------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null; then
    echo "test-docker: installing docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null; }
  fi
  if ! pgrep -x dockerd >/dev/null; then
    echo "test-docker: starting dockerd (log: /var/log/epolltrack-dockerd.log; it keeps running)"
    setsid dockerd >/var/log/epolltrack-dockerd.log 2>&1 </dev/null &
  fi
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
if docker info >/dev/null 2>&1; then ok "dockerd is running ($(docker version -f '{{.Server.Version}}'))"; else fail "dockerd is running"; finish; fi

# --- images ------------------------------------------------------------------
t=$(date +%s)
if bash docker/build.sh "$TAG"; then ok "image $TAG built ($(( $(date +%s) - t )) s with the base)"; else fail "image built"; finish; fi

# --- a host process with epoll registrations (build/bin/epctl) ---------------
coproc EP { exec "$ROOT/build/bin/epctl"; }
ep_cmd() { echo "$1" >&"${EP[1]}"; IFS= read -r -t 10 line <&"${EP[0]}"; case "$line" in ok*) R=${line#ok}; R=${R# } ;; *) R=; echo "epctl: $1: $line" >&2; return 1 ;; esac; }
ep_cmd pid; HPID=$R
ep_cmd create; EPFD=$R
ep_cmd socketpair; S1=${R%% *}
ep_cmd "add $EPFD $S1 5 255"                   # before the tracker is loaded: found by its cold start
note "host process $HPID: epoll $EPFD holds fd $S1 (EPOLLIN|EPOLLOUT 0x5, data 0xff)"

# What the answer must be, and its JSON without the timing.
memberships() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s);console.log(JSON.stringify({source:j.source,memberships:j.memberships.map(({epollPid,epfd,tfd,events,data})=>({epollPid,epfd,tfd,events,data}))}))}catch{console.log("unparsable: "+s.trim().slice(0,300))}})'; }
expect1="{\"source\":\"bpf\",\"memberships\":[{\"epollPid\":$HPID,\"epfd\":$EPFD,\"tfd\":$S1,\"events\":29,\"data\":\"0xff\"}]}"

# --- Docker ----------------------------------------------------------------------
# The least Docker allows: Docker 20.10 (Debian 12's docker.io) knows no CAP_BPF or
# CAP_PERFMON, so CAP_SYS_ADMIN stands in for both and the default seccomp profile stays
# (it allows bpf/perf_event_open with SYS_ADMIN, kcmp with SYS_PTRACE). A Docker that
# knows CAP_BPF gets the DaemonSet's set.
if docker run --rm --cap-drop ALL --cap-add BPF --entrypoint /bin/true "$TAG" >/dev/null 2>&1; then
  CAPS=(--cap-drop ALL --cap-add BPF --cap-add PERFMON --cap-add SYS_PTRACE --security-opt seccomp=unconfined)
else
  CAPS=(--cap-drop ALL --cap-add SYS_ADMIN --cap-add SYS_PTRACE)
fi
note "docker privileges: ${CAPS[*]}"
MOUNTS=(-v /sys/fs/bpf:/sys/fs/bpf -v /sys/kernel/tracing:/sys/kernel/tracing:ro -v /run/epolltrack:/run/epolltrack)
[ -d /run/epolltrack ] || mkdir -m 0700 /run/epolltrack   # the loader makes it so too
drun() { docker run --rm --pid=host "${CAPS[@]}" "${MOUNTS[@]}" -e EPOLLTRACK_PIN_DIR="$PIN" "$TAG" "$@" 2>&1; }

out=$(drun load)
if [[ $out =~ ^loaded:\ ([a-z]+)\ mode ]]; then ok "docker: load (${BASH_REMATCH[1]} mode)"; else fail "docker: load: $out"; fi
ep_cmd socketpair; S2=${R%% *}
ep_cmd "add $EPFD $S2 1 7"                     # after the load: seen by the hooks
expect2="{\"source\":\"bpf\",\"memberships\":[{\"epollPid\":$HPID,\"epfd\":$EPFD,\"tfd\":$S2,\"events\":25,\"data\":\"0x7\"}]}"

out=$(drun status)
if [[ $out =~ ^loaded:\ [a-z]+\ mode\ at\ $PIN\ since ]]; then ok "docker: status"; else fail "docker: status: $(echo "$out" | head -3)"; fi

got=$(drun lookup "$HPID" "$S1" --json | memberships)
if [ "$got" = "$expect1" ]; then ok "docker: lookup of a host process's fd registered before the load"; else fail "docker: lookup $HPID $S1: $got (expected $expect1)"; fi
got=$(drun lookup "$HPID" "$S2" --json | memberships)
if [ "$got" = "$expect2" ]; then ok "docker: lookup of a host process's fd registered after the load"; else fail "docker: lookup $HPID $S2: $got (expected $expect2)"; fi
got=$(drun lookup "$HPID" "$S1" --json --method fdinfo | memberships)
host=$("${CLI[@]}" lookup "$HPID" "$S1" --json --method fdinfo | memberships)
if [ "$got" = "$host" ] && [ "$got" = "${expect1/\"bpf\"/\"fdinfo\"}" ]; then ok "docker: the fdinfo way in the container answers as on the host"; else fail "docker: fdinfo way: $got (host: $host)"; fi

# The daemon, as the image runs by default, on a read-only root filesystem.
t=$(date +%s)
if docker run -d --name "$NAME-daemon" --read-only --pid=host "${CAPS[@]}" "${MOUNTS[@]}" -e EPOLLTRACK_PIN_DIR="$PIN" "$TAG" >/dev/null; then
  IP=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$NAME-daemon")
  out=$(node - "http://$IP:9477" "$HPID" <<'EOF'
const [base, pid] = process.argv.slice(2);
const get = async (p) => { const r = await fetch(base + p, { signal: AbortSignal.timeout(3000) }); return { code: r.status, text: await r.text() }; };
const problems = [];
let st;
for (let i = 0; i < 60; i++) {            // up to 15 s for the daemon to listen
  try { st = await get('/api/status'); break; } catch { await new Promise((r) => setTimeout(r, 250)); }
}
if (!st) { console.log('no answer on /api/status'); process.exit(1); }
const s = JSON.parse(st.text);
if (st.code !== 200 || s.loaded !== true || !s.mode) problems.push(`/api/status ${st.code}: ${st.text.slice(0, 200)}`);
const m = await get('/metrics');
if (m.code !== 200 || !/^epolltrack_registrations \d+$/m.test(m.text)) problems.push(`/metrics ${m.code}: no epolltrack_registrations`);
let seen = false;
for (let i = 0; i < 20 && !seen; i++) {   // registrations are polled every second
  const snap = await get('/api/snapshot');
  seen = snap.code === 200 && snap.text.includes(`"pid":${pid},`);
  if (!seen) await new Promise((r) => setTimeout(r, 500));
}
if (!seen) problems.push(`/api/snapshot never listed process ${pid}`);
console.log(problems.length ? problems.join('; ') : `mode ${s.mode}`);
process.exit(problems.length ? 1 : 0);
EOF
  )
  if [ $? = 0 ]; then ok "docker: daemon answers /api/status, /metrics and /api/snapshot ($out, $(( $(date +%s) - t )) s)"; else fail "docker: daemon: $out"; docker logs "$NAME-daemon" 2>&1 | tail -5; fi
  note "daemon: $(docker stats --no-stream --format '{{.MemUsage}} memory, {{.CPUPerc}} CPU' "$NAME-daemon")"
  t=$(date +%s)
  docker stop -t 10 "$NAME-daemon" >/dev/null
  code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME-daemon")
  if [ "$code" = 0 ] && [ $(( $(date +%s) - t )) -lt 8 ]; then ok "docker: daemon stops on SIGTERM (exit 0)"; else fail "docker: daemon stop: exit $code after $(( $(date +%s) - t )) s"; fi
  docker rm "$NAME-daemon" >/dev/null
else
  fail "docker: daemon container did not start"
fi

out=$(drun unload)
if [ "$out" = "unloaded $PIN" ] && [ ! -e "$PIN" ]; then ok "docker: unload"; else fail "docker: unload: $out"; fi

# --- runc: exactly the DaemonSet's capabilities, and each one necessary --------------
mapfile -t DS_CAPS < <(node -e '
let caps;
try {
  const y = require(process.argv[1] + "/node_modules/js-yaml");
  const ds = y.loadAll(require("fs").readFileSync(process.argv[1] + "/docker/daemonset.yaml", "utf8")).find((d) => d && d.kind === "DaemonSet");
  caps = ds.spec.template.spec.containers[0].securityContext.capabilities.add;
} catch {
  const t = require("fs").readFileSync(process.argv[1] + "/docker/daemonset.yaml", "utf8");
  caps = [...t.slice(t.indexOf("add:")).split("seccompProfile")[0].matchAll(/^\s*- ([A-Z_]+)\s*$/gm)].map((m) => m[1]);
}
for (const c of caps) console.log("CAP_" + c);' "$ROOT")
note "docker/daemonset.yaml adds: ${DS_CAPS[*]:-none}"
if ! command -v runc >/dev/null; then
  fail "runc is needed for the capability checks (bash scripts/setup.sh installs it)"
elif [ ${#DS_CAPS[@]} = 0 ]; then
  fail "no capabilities found in docker/daemonset.yaml"
else
  BUNDLE=$(mktemp -d /tmp/epolltrack-oci.XXXXXX)
  mkdir "$BUNDLE/rootfs"
  cid=$(docker create "$TAG") && docker export "$cid" | tar -C "$BUNDLE/rootfs" -x; docker rm "$cid" >/dev/null
  (cd "$BUNDLE" && runc spec && mv config.json config.tmpl.json)
  n=0
  # runc_run "CAP_A CAP_B" ARGS...: the image's entrypoint in the host's pid namespace, no
  # seccomp (the DaemonSet's Unconfined), the DaemonSet's mounts, exactly these capabilities.
  runc_run() {
    local caps=$1; shift
    n=$((n + 1))
    node -e '
const fs = require("fs");
const [bundle, caps, pin, ...args] = process.argv.slice(1);
const c = JSON.parse(fs.readFileSync(bundle + "/config.tmpl.json", "utf8"));
const set = caps.split(" ").filter(Boolean);
c.process.terminal = false;
c.process.args = ["/usr/bin/tini", "-s", "--", "/usr/local/bin/epolltrack", ...args];
c.process.env.push("EPOLLTRACK_PIN_DIR=" + pin);
c.process.capabilities = { bounding: set, effective: set, permitted: set };
c.linux.namespaces = c.linux.namespaces.filter((ns) => ns.type !== "pid");
c.root.readonly = true;
c.mounts.push({ destination: "/sys/fs/bpf", type: "bind", source: "/sys/fs/bpf", options: ["rbind", "rw"] });
c.mounts.push({ destination: "/sys/kernel/tracing", type: "bind", source: "/sys/kernel/tracing", options: ["rbind", "ro"] });
c.mounts.push({ destination: "/run/epolltrack", type: "bind", source: "/run/epolltrack", options: ["rbind", "rw"] });
fs.writeFileSync(bundle + "/config.json", JSON.stringify(c));' "$BUNDLE" "$caps" "$PIN" "$@"
    runc run --bundle "$BUNDLE" "$NAME-$n" </dev/null 2>&1
  }
  all="${DS_CAPS[*]}"
  out=$(runc_run "$all" load)
  got=$(runc_run "$all" lookup "$HPID" "$S2" --json | memberships)
  fdi=$(runc_run "$all" lookup "$HPID" "$S1" --json --method fdinfo | memberships)
  un=$(runc_run "$all" unload)
  if [[ $out =~ ^loaded: ]] && [ "$got" = "$expect2" ] && [ "$fdi" = "${expect1/\"bpf\"/\"fdinfo\"}" ] && [ "$un" = "unloaded $PIN" ]; then
    ok "runc with exactly ${all// /, }: load, lookup, the fdinfo way, unload"
  else
    fail "runc with ${all}: load: ${out%%$'\n'*} / lookup: $got / fdinfo: $fdi / unload: $un"
  fi
  for drop in "${DS_CAPS[@]}"; do
    less=$(for c in "${DS_CAPS[@]}"; do [ "$c" != "$drop" ] && printf '%s ' "$c"; done)
    out=$(runc_run "$less" load)
    if [[ $out =~ ^loaded: ]]; then
      fdi=$(runc_run "$less" lookup "$HPID" "$S1" --json --method fdinfo)
      runc_run "$less" unload >/dev/null
      if [[ $fdi == *EPT_PROCESS_ACCESS* ]]; then ok "runc without $drop: the fdinfo way is refused ($drop is needed)"
      else fail "runc without $drop: everything still works: is $drop needed? (fdinfo: ${fdi:0:120})"; fi
    elif [[ $out == *EPERM* ]]; then ok "runc without $drop: load is refused (EPERM: $drop is needed)"
    else fail "runc without $drop: load: ${out:0:200}"; fi
    [ -d "$PIN" ] && "${CLI[@]}" unload --pin-dir "$PIN" >/dev/null 2>&1
  done
fi

finish
