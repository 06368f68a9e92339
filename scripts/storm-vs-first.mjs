#!/usr/bin/env node
// The storm against the first release's supervisor, in one session: issue 10's
// throughput target is relative to it ("today on this machine: 1,609 swaps/s").
// Builds the first release (git commit FIRST below) in a worktree under /tmp,
// then runs the same storm row (32 processes x 30 concurrent connects, 500 fds
// each, an epoll per thread unless --shared-epoll, the fix-up on, this build's epclient and target server) under each
// supervisor in turn, `--runs` times, and prints the medians and their ratio.
//   node scripts/storm-vs-first.mjs [--runs 5] [--rounds 20] [--target echod|node] [--shared-epoll] [--json]
// One row:  node scripts/storm-vs-first.mjs --row DIST_ROOT  (prints one JSON line)
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const FIRST = '1ae4651'; // the last commit before issue 10's work: the first release's supervisor
const root = join(import.meta.dirname, '..');
const { values: o } = parseArgs({ options: {
  runs: { type: 'string', default: '5' }, rounds: { type: 'string', default: '20' }, target: { type: 'string', default: 'echod' },
  row: { type: 'string' }, json: { type: 'boolean', default: false }, 'shared-epoll': { type: 'boolean', default: false },
} });
const ROUNDS = Number(o.rounds);

/** The target server: this build's echod, or a Node.js one (what the first release's bench used). */
function target(kind) {
  const child = kind === 'node'
    ? spawn(process.execPath, ['-e', `require('net').createServer((s) => s.on('data', () => s.end('pong\\n')).on('error', () => {})).listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, function () { console.log(this.address().port); })`], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(join(root, 'build', 'bin', 'echod'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => child.stdout.once('data', (d) => resolve({ port: Number(d), stop: () => child.kill('SIGKILL') })));
}

/** One storm row under the supervisor of the build at `dist` (its own layout: the first release had a flat src/). */
async function row(dist) {
  const flat = existsSync(join(dist, 'src', 'launch.js'));
  const mod = (p) => import(join(dist, 'src', flat ? p.split('/').pop() : p));
  const { supervise } = await mod('supervise/launch.js');
  const { parseEndpoint } = await mod('supervise/seccomp.js');
  const { openTracker } = await mod('tracker/tracker.js');
  const { load, unload } = await import(join(dist, 'loader', 'load.js'));
  const pinDir = `/sys/fs/bpf/epolltrack-bench-${process.pid}`;
  load({ pinDir });
  const tracker = await openTracker({ pinDir });
  const server = await target(o.target);
  const dir = mkdtempSync(join(tmpdir(), 'epolltrack-storm-'));
  try {
    const epclient = join(root, 'build', 'bin', 'epclient');
    const run = async (procs, rounds) => {
      const args = ['--threads', '30', '--et', ...(o['shared-epoll'] ? [] : ['--epoll-per-thread']), '--repeat', String(rounds), '--fds', '500', '--quiet', '--timeout', '5000', '127.0.0.2', '80'];
      let swaps = 0, first = 0n, last = 0n, cpu0 = process.cpuUsage(), cpu1 = cpu0;
      await supervise('sh', ['-c', `for i in $(seq ${procs}); do ${epclient} ${args.join(' ')} > ${dir}/$i & done; wait`], {
        redirects: [{ from: parseEndpoint('127.0.0.2:80'), to: parseEndpoint(`127.0.0.1:${server.port}`) }], tracker, stdio: 'ignore',
        onSwap: (r) => {
          if (r.result !== 'swapped') return;
          const now = process.hrtime.bigint();
          if (!swaps) { first = now; cpu0 = process.cpuUsage(); }
          last = now;
          cpu1 = process.cpuUsage();
          swaps++;
        },
      });
      let ok = 0;
      for (const f of readdirSync(dir)) ok += JSON.parse(readFileSync(join(dir, f), 'utf8')).ok;
      const cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system);
      return { swaps, ok, swapsPerSec: (swaps - 1) / (Number(last - first) / 1e9), cpuPerSwap: cpu / (swaps - 1) };
    };
    await run(2, 1); // warm-up
    return await run(32, ROUNDS);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    server.stop();
    tracker.close();
    unload({ pinDir });
  }
}

if (o.row) {
  process.stdout.write(`${JSON.stringify(await row(o.row))}\n`);
  process.exit(0);
}

const log = (s) => { if (!o.json) process.stderr.write(`${s}\n`); };
const hash = execFileSync('git', ['-C', root, 'rev-parse', '--short', FIRST], { encoding: 'utf8' }).trim();
const firstDir = join(tmpdir(), `epolltrack-first-${hash}`);
if (!existsSync(join(firstDir, 'dist', 'loader', 'load.js'))) {
  log(`building the first release (${hash}) in ${firstDir}`);
  rmSync(firstDir, { recursive: true, force: true });
  execFileSync('git', ['-C', root, 'worktree', 'add', '--force', '--detach', firstDir, FIRST], { stdio: 'ignore' });
  symlinkSync(join(root, 'node_modules'), join(firstDir, 'node_modules'));
  for (const dir of ['bpf', 'native']) execFileSync('make', ['-C', join(firstDir, dir)], { stdio: 'ignore' });
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', firstDir], { stdio: 'inherit' });
}
const builds = { this: join(root, 'dist'), first: join(firstDir, 'dist') };
const got = { this: [], first: [] };
for (let i = 0; i < Number(o.runs); i++) {
  for (const [name, dist] of Object.entries(builds)) {
    const out = execFileSync(process.execPath, [import.meta.filename, '--row', dist, '--rounds', String(ROUNDS), '--target', o.target, ...(o['shared-epoll'] ? ['--shared-epoll'] : [])], { encoding: 'utf8' });
    const r = JSON.parse(out);
    got[name].push(r);
    log(`run ${i + 1}: ${name.padEnd(5)} ${r.swapsPerSec.toFixed(0)} swaps/s, ${r.ok}/${r.swaps} programs ok, supervisor CPU ${r.cpuPerSwap.toFixed(0)} µs/swap`);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const m = (name, k) => median(got[name].map((r) => r[k]));
const result = {
  first: FIRST, target: o.target, sharedEpoll: o['shared-epoll'], runs: Number(o.runs), rounds: ROUNDS,
  thisSwapsPerSec: m('this', 'swapsPerSec'), firstSwapsPerSec: m('first', 'swapsPerSec'),
  thisCpuPerSwap: m('this', 'cpuPerSwap'), firstCpuPerSwap: m('first', 'cpuPerSwap'),
};
result.ratio = result.thisSwapsPerSec / result.firstSwapsPerSec;
if (o.json) console.log(JSON.stringify(result));
else {
  console.log(`storm (32 x 30 concurrent connects x ${ROUNDS} rounds, 500 fds each, ${o['shared-epoll'] ? 'one epoll shared by the threads' : 'an epoll per thread'}, fix-up on, target ${o.target}), medians of ${o.runs} runs taking turns:`);
  console.log(`  this build:          ${result.thisSwapsPerSec.toFixed(0)} swaps/s, supervisor CPU ${result.thisCpuPerSwap.toFixed(0)} µs/swap`);
  console.log(`  first release ${hash}: ${result.firstSwapsPerSec.toFixed(0)} swaps/s, supervisor CPU ${result.firstCpuPerSwap.toFixed(0)} µs/swap`);
  console.log(`  this / first: ${result.ratio.toFixed(2)}x swaps/s (target >= 2x)`);
}
