#!/usr/bin/env node
// Waiting that scales, measured: one blocking connect through `epolltrack agent`
// (client side, socket() to close(), build/bin/ocisend --time) with no other
// container, with 64 idle containers, and with 10 connects stuck on a target
// whose backlog is full; the same two ways under `epolltrack supervise`; then
// the agent's RSS, fd and thread counts over 200 containers run one after
// another. Ratios are against the baseline of the same run.
//   node scripts/agent-bench.mjs [--idle 64] [--stuck 10] [--connects 200] [--containers 200] [--json]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { c, encodeSockaddr, AF_INET, SOCK_STREAM, SOCK_NONBLOCK } from '../dist/src/supervise/seccomp.js';
import { closeFd } from '../dist/src/kernel/ffi.js';

const root = join(import.meta.dirname, '..');
const CLI = process.env.EPOLLTRACK_CLI ?? join(root, 'dist', 'src', 'cli', 'main.js'); // another build to compare with
const OCISEND = join(root, 'build', 'bin', 'ocisend');
const { values: o } = parseArgs({ options: {
  idle: { type: 'string', default: '64' }, stuck: { type: 'string', default: '10' },
  connects: { type: 'string', default: '200' }, containers: { type: 'string', default: '200' }, json: { type: 'boolean', default: false },
} });
const IDLE = Number(o.idle), STUCK = Number(o.stuck), N = Number(o.connects), CONTAINERS = Number(o.containers);

const tmp = mkdtempSync(join(tmpdir(), 'ept-agentbench-'));
const sock = join(tmp, 'agent.sock');
const kids = [];
const log = (s) => { if (!o.json) process.stderr.write(`${s}\n`); };

function run(cmd, args) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('close', (code) => resolve({ code, out }));
  });
}
function stats(us) {
  const s = [...us].sort((a, b) => a - b);
  const q = (f) => s[Math.min(s.length - 1, Math.floor(f * s.length))];
  return { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1] };
}
async function timed(args) {
  const r = await run(OCISEND, ['--time', String(N), ...args]);
  const j = JSON.parse(r.out.trim().split('\n').pop());
  if (j.errors) throw new Error(`${j.errors} of ${N} connects failed (${j.errno})`);
  return stats(j.us);
}
function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssKiB: Number(/VmRSS:\s+(\d+)/.exec(s)[1]), threads: Number(/Threads:\s+(\d+)/.exec(s)[1]), fds: readdirSync(`/proc/${pid}/fd`).length };
}

// Targets: a server answering, and one whose queue is full (connects to it hang).
const server = createServer((s) => s.on('error', () => {}).end());
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;
const hang = c().socket(AF_INET, SOCK_STREAM, 0);
c().bind(hang, encodeSockaddr({ family: AF_INET, ip: '127.0.0.1', port: 0 }), 16);
c().listen(hang, 0);
const hb = Buffer.alloc(16);
c().getsockname(hang, hb, [16]);
const hangPort = hb.readUInt16BE(2);
const fillers = [];
for (let i = 0; i < 3; i++) {
  const f = c().socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  const to = encodeSockaddr({ family: AF_INET, ip: '127.0.0.1', port: hangPort });
  c().connect(f, to, to.length);
  fillers.push(f);
}
const redirects = ['--redirect', `127.0.0.2:7000=127.0.0.1:${port}`, '--redirect', `127.0.0.2:7001=127.0.0.1:${hangPort}`];

const result = {};
try {
  // ---- agent ----
  const agent = spawn(process.execPath, [CLI, 'agent', '--socket', sock, '--no-epoll-fixup', '--verbose', ...redirects], { stdio: ['ignore', 'ignore', 'pipe'] });
  kids.push(agent);
  let alog = '';
  agent.stderr.on('data', (d) => { alog += d; });
  const until = async (pred, what) => {
    for (let i = 0; i < 600 && !pred(); i++) await new Promise((r) => setTimeout(r, 50));
    if (!pred()) throw new Error(`agent: no ${what}\n${alog}`);
  };
  const count = (re) => (alog.match(re) ?? []).length;
  await until(() => alog.includes('agent listening'), 'start');
  await timed([sock, '127.0.0.2', '7000']); // warm-up
  const t0 = procStatus(agent.pid);
  result.agentNone = await timed([sock, '127.0.0.2', '7000']);
  log(`agent, no other container:        ${JSON.stringify(result.agentNone)}`);
  for (let i = 0; i < IDLE; i++) kids.push(spawn(OCISEND, [sock, 'sleep', '600'], { stdio: 'ignore' }));
  const served = () => count(/serving container/g);
  const base = served();
  await until(() => served() >= base + IDLE, `${IDLE} idle containers`);
  const tIdle = procStatus(agent.pid);
  result.agentIdle = await timed([sock, '127.0.0.2', '7000']);
  result.agentIdleRatio = result.agentIdle.p50 / result.agentNone.p50;
  log(`agent, ${IDLE} idle containers:        ${JSON.stringify(result.agentIdle)}  p50 ${result.agentIdleRatio.toFixed(2)}x`);
  const stuck = [];
  for (let i = 0; i < STUCK; i++) {
    const p = spawn(OCISEND, [sock, OCISEND, '--time', '1', '-', '127.0.0.2', '7001'], { stdio: 'ignore' });
    kids.push(p);
    stuck.push(p);
  }
  await until(() => served() >= base + IDLE + STUCK, 'stuck containers');
  await new Promise((r) => setTimeout(r, 300));
  result.agentStuck = await timed([sock, '127.0.0.2', '7000']);
  result.agentStuckRatio = result.agentStuck.p50 / result.agentNone.p50;
  result.stuckStillWaiting = stuck.filter((p) => p.exitCode === null).length;
  log(`agent, ${IDLE} idle + ${STUCK} stuck connects:  ${JSON.stringify(result.agentStuck)}  p50 ${result.agentStuckRatio.toFixed(2)}x (${result.stuckStillWaiting} still stuck)`);
  result.threads = { none: t0.threads, idle: tIdle.threads };
  log(`agent threads: ${t0.threads} with no container, ${tIdle.threads} with ${IDLE}`);
  for (const k of kids.splice(1)) k.kill('SIGKILL');
  const gone = () => count(/gone: its listener closed/g);
  if (CONTAINERS) await until(() => gone() >= served(), 'idle containers dropped');

  // 200 containers one after another: RSS, fds, threads.
  const samples = [];
  for (let i = 1; i <= CONTAINERS; i++) {
    const r = await run(OCISEND, ['--time', '1', sock, '127.0.0.2', '7000']);
    if (!r.out.includes('"errors":0')) throw new Error(`container ${i}: ${r.out}`);
    if (i === 10 || i % 50 === 0) {
      await until(() => gone() >= served(), 'containers dropped');
      samples.push({ containers: i, ...procStatus(agent.pid) });
    }
  }
  result.containers = samples;
  log(`over ${CONTAINERS} containers one after another (after each sample's containers were dropped):`);
  for (const s of samples) log(`  ${String(s.containers).padStart(4)}  RSS ${(s.rssKiB / 1024).toFixed(1)} MiB  fds ${s.fds}  threads ${s.threads}`);
  result.agentExited = agent.exitCode !== null;
  agent.kill('SIGTERM');

  // ---- supervise: 10 stuck blocking connects and an unrelated one, one process tree ----
  const sup = async (stuckN) => {
    const script = `for i in $(seq ${stuckN}); do ${OCISEND} --time 1 - 127.0.0.2 7001 >/dev/null & done; sleep 0.5; ${OCISEND} --time ${N} - 127.0.0.2 7000; kill $(jobs -p) 2>/dev/null; exit 0`;
    const r = await run(process.execPath, [CLI, 'supervise', '--no-epoll-fixup', ...redirects, '--', 'sh', '-c', script]);
    const j = JSON.parse(r.out.trim().split('\n').pop());
    if (j.errors) throw new Error(`supervise: ${j.errors} connects failed (${j.errno})`);
    return stats(j.us);
  };
  result.superviseNone = await sup(0);
  result.superviseStuck = await sup(STUCK);
  result.superviseStuckRatio = result.superviseStuck.p50 / result.superviseNone.p50;
  log(`supervise, no other connect:      ${JSON.stringify(result.superviseNone)}`);
  log(`supervise, ${STUCK} stuck connects:     ${JSON.stringify(result.superviseStuck)}  p50 ${result.superviseStuckRatio.toFixed(2)}x`);
  if (o.json) process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  for (const k of kids) k.kill('SIGKILL');
  server.close();
  for (const f of fillers) closeFd(f);
  closeFd(hang);
  rmSync(tmp, { recursive: true, force: true });
}
