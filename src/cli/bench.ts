/**
 * `epolltrack bench`: verified lookups through the tracker against the fdinfo
 * way, in the same run, on one process holding N fds; plus what tracking adds
 * to an epoll_ctl ADD+DEL pair and to an unrelated syscall.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_PIN_DIR } from '../kernel/names.js';
import { isLoaded, load, unload } from '../../loader/load.js';
import { packageRoot } from '../kernel/bpfobject.js';
import { EpctlChannel } from './epctl-channel.js';
import { fdinfoMemberships } from '../tracker/fdinfo.js';
import { openTracker, type Tracker } from '../tracker/tracker.js';

/** Microseconds over n runs; p5/p95 by the nearest-rank method. */
export interface Timing { median: number; min: number; max: number; p5: number; p95: number; n: number }
export interface LookupRow { fds: number; memberships: number; bpf: Timing; fdinfo: Timing; ratio: number; source: string }
export interface BenchResult {
  machine: string;
  kernel: string;
  date: string;
  mode: string;
  lookups: LookupRow[];
  /** bpf median at the largest N over the smallest (flat = 1) */
  flatness: number;
  syscalls?: { baseline: CtlCost; tracked: CtlCost; ctlPairRatio: number; getppidRatio: number } | { skipped: string };
  /** notification to response for a swapped connect with the fix-up of one registration */
  swaps?: SwapRow[];
}
export interface SwapRow { fds: number; tracker: Timing; fdinfo: Timing; none: Timing; ratio: number }
interface CtlCost { ctl_pair_ns: number; getppid_ns: number }

function timing(samples: number[]): Timing {
  const s = [...samples].sort((a, b) => a - b);
  const rank = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1], p5: rank(0.05), p95: rank(0.95), n: s.length };
}

function time(fn: () => unknown, n: number, budgetMs: number): number[] {
  const out: number[] = [];
  const end = Date.now() + budgetMs;
  for (let i = 0; i < n && (i < 3 || Date.now() < end); i++) {
    const t0 = process.hrtime.bigint();
    fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return out;
}

/** A fixture process that grows to N fds with a few registrations. */
async function fixture(): Promise<{ pid: number; cmd: (c: string) => Promise<number[]>; stop: () => void }> {
  const child = spawn(join(packageRoot(), 'build', 'bin', 'epctl'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const ch = new EpctlChannel(child);
  await ch.cmd('pid');
  return { pid: child.pid!, cmd: (c) => ch.cmd(c), stop: () => { child.stdin!.end(); child.kill('SIGKILL'); } };
}

/** Pin dirs under /sys/fs/bpf, other than ours, with epolltrack links in them. */
function otherTrackers(pinDir: string): string[] {
  const out: string[] = [];
  let names: string[] = [];
  try { names = readdirSync('/sys/fs/bpf'); } catch { return out; }
  for (const n of names) {
    const dir = join('/sys/fs/bpf', n);
    if (dir !== pinDir && isLoaded(dir)) out.push(dir);
  }
  if (isLoaded(DEFAULT_PIN_DIR) && pinDir !== DEFAULT_PIN_DIR && !out.includes(DEFAULT_PIN_DIR)) out.push(DEFAULT_PIN_DIR);
  return out;
}

function ctlCost(): CtlCost {
  return JSON.parse(execFileSync(join(packageRoot(), 'build', 'bin', 'ctlbench'), ['200000'], { encoding: 'utf8' })) as CtlCost;
}

export interface BenchOptions { fds?: number[]; pinDir?: string; iterations?: number; swaps?: boolean; log?: (s: string) => void }

export async function bench(opts: BenchOptions = {}): Promise<BenchResult> {
  const log = opts.log ?? (() => {});
  const sizes = (opts.fds ?? [1000, 10000, 19000]).sort((a, b) => a - b);
  const iterations = opts.iterations ?? 2000;
  const pinDir = opts.pinDir ?? `/sys/fs/bpf/epolltrack-bench-${process.pid}`;
  const ownTracker = !isLoaded(pinDir);
  // The syscall baseline needs a kernel where no tracker is attached.
  const others = otherTrackers(pinDir);
  const otherTracker = others.length > 0;
  let baseline: CtlCost | undefined;
  if (ownTracker && !otherTracker) {
    log('measuring epoll_ctl and getppid without the tracker');
    baseline = ctlCost();
  }
  if (ownTracker) load({ pinDir });
  let tracker: Tracker | undefined;
  const fx = await fixture();
  try {
    tracker = await openTracker({ pinDir });
    // A socket in three epolls, a pipe in one.
    const [ep1] = await fx.cmd('create');
    const [ep2] = await fx.cmd('create');
    const [ep3] = await fx.cmd('create');
    const [s] = await fx.cmd('socketpair');
    const [r] = await fx.cmd('pipe');
    await fx.cmd(`add ${ep1} ${s} 5 1`);
    await fx.cmd(`add ${ep2} ${s} 1 2`);
    await fx.cmd(`add ${ep3} ${s} 80000001 3`);
    await fx.cmd(`add ${ep1} ${r} 1 4`);
    const rows: LookupRow[] = [];
    for (const n of sizes) {
      const [have] = await fx.cmd(`nfds ${n}`);
      log(`${have} fds: timing lookups`);
      const t = tracker;
      const found = t.membershipsOf(fx.pid, s);
      const source = t.lastLookup.source;
      const b = time(() => t.membershipsOf(fx.pid, s), iterations, 3000);
      const f = time(() => fdinfoMemberships(fx.pid, s), Math.max(5, Math.min(50, Math.round(200000 / n))), 8000);
      const bt = timing(b);
      const ft = timing(f);
      rows.push({ fds: have, memberships: found.length, bpf: bt, fdinfo: ft, ratio: ft.median / bt.median, source });
    }
    let syscalls: BenchResult['syscalls'];
    if (baseline) {
      log('measuring epoll_ctl and getppid with the tracker');
      const tracked = ctlCost();
      syscalls = {
        baseline, tracked,
        ctlPairRatio: tracked.ctl_pair_ns / baseline.ctl_pair_ns,
        getppidRatio: tracked.getppid_ns / baseline.getppid_ns,
      };
    } else {
      syscalls = { skipped: otherTracker ? `trackers are loaded at ${others.join(', ')}: no clean baseline` : `bench used the tracker already loaded at ${pinDir}` };
    }
    let swaps: SwapRow[] | undefined;
    if (opts.swaps !== false) {
      swaps = [];
      for (const n of [sizes[0], sizes[sizes.length - 1]]) {
        log(`${n} fds: timing swapped connects`);
        const row = {
          tracker: await swapTimes(n, t(tracker), true),
          fdinfo: await swapTimes(n, undefined, true, 8),
          none: await swapTimes(n, undefined, false),
        };
        swaps.push({ fds: n, tracker: timing(row.tracker), fdinfo: timing(row.fdinfo), none: timing(row.none), ratio: timing(row.fdinfo).median / timing(row.tracker).median });
      }
    }
    const os = await import('node:os');
    return {
      machine: `${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
      kernel: os.release(),
      date: new Date().toISOString(),
      mode: tracker.mode ?? 'unknown',
      lookups: rows,
      flatness: rows[rows.length - 1].bpf.median / rows[0].bpf.median,
      syscalls,
      swaps,
    };
  } finally {
    tracker?.close();
    fx.stop();
    if (ownTracker) unload({ pinDir });
  }
}

const t = (x: Tracker) => x;

/** Time swapped connects of a client holding `fds` fds, served by an in-process supervisor. */
async function swapTimes(fds: number, tracker: Tracker | undefined, fixup: boolean, repeat = 40): Promise<number[]> {
  const { createServer } = await import('node:net');
  const { supervise } = await import('../supervise/launch.js');
  const { parseEndpoint } = await import('../supervise/seccomp.js');
  const server = createServer((s) => s.on('data', () => s.end('pong\n')).on('error', () => {}));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const to = parseEndpoint(`127.0.0.1:${(server.address() as { port: number }).port}`)!;
    const r = await supervise(join(packageRoot(), 'build', 'bin', 'epclient'), ['--fds', String(fds), '--repeat', String(repeat + 2), '--timeout', '300', '127.0.0.2', '80'], {
      redirects: [{ from: parseEndpoint('127.0.0.2:80')!, to }], tracker, fixup, stdio: 'pipe',
    });
    return r.supervisor.swaps.slice(2).map((x) => x.micros); // the first ones start the helper
  } finally {
    server.close();
  }
}

const us = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)} ms` : `${v.toFixed(1)} µs`);

export function formatBench(r: BenchResult): string {
  const lines = [
    `epolltrack bench — ${r.machine}, kernel ${r.kernel}, ${r.mode} mode, ${r.date.slice(0, 10)}`,
    '',
    '   fds  regs  tracker median (min–max)        fdinfo median (min–max)          fdinfo/tracker',
  ];
  for (const x of r.lookups) {
    lines.push(`${String(x.fds).padStart(6)}  ${String(x.memberships).padStart(4)}  ${`${us(x.bpf.median)} (${us(x.bpf.min)}–${us(x.bpf.max)})`.padEnd(32)} ${`${us(x.fdinfo.median)} (${us(x.fdinfo.min)}–${us(x.fdinfo.max)})`.padEnd(32)} ${x.ratio.toFixed(0)}x${x.source !== 'bpf' ? ` (${x.source})` : ''}`);
  }
  lines.push('', `tracker lookup, largest N / smallest N: ${r.flatness.toFixed(2)}x`);
  if (r.syscalls && 'baseline' in r.syscalls) {
    const s = r.syscalls;
    lines.push(`epoll_ctl ADD+DEL pair: ${s.baseline.ctl_pair_ns.toFixed(0)} ns -> ${s.tracked.ctl_pair_ns.toFixed(0)} ns (${s.ctlPairRatio.toFixed(2)}x)`);
    lines.push(`getppid (unrelated):    ${s.baseline.getppid_ns.toFixed(0)} ns -> ${s.tracked.getppid_ns.toFixed(0)} ns (${s.getppidRatio.toFixed(2)}x)`);
  } else if (r.syscalls) {
    lines.push(`syscall overhead: skipped (${r.syscalls.skipped})`);
  }
  if (r.swaps) {
    lines.push('', 'swapped connect, notification to response (fix-up of 1 registration):',
      '   fds  through the tracker              through the fdinfo way           no fix-up                        fdinfo/tracker');
    for (const x of r.swaps) {
      const cell = (v: Timing) => `${us(v.median)} (${us(v.min)}–${us(v.max)})`.padEnd(32);
      lines.push(`${String(x.fds).padStart(6)}  ${cell(x.tracker)} ${cell(x.fdinfo)} ${cell(x.none)} ${x.ratio.toFixed(0)}x`);
    }
  }
  return lines.join('\n');
}
