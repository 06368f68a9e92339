/**
 * `epolltrack bench`: verified lookups through the tracker against the fdinfo
 * way, in the same run, on one process holding N fds; plus what tracking adds
 * to an epoll_ctl ADD+DEL pair and to an unrelated syscall.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PIN_DIR } from '../kernel/names.js';
import { isLoaded, load, unload } from '../../loader/load.js';
import { packageRoot } from '../kernel/bpfobject.js';
import { EpctlChannel } from './epctl-channel.js';
import { cleanupOnce } from './interrupt.js';
import { fdinfoMemberships } from '../tracker/fdinfo.js';
import { openTracker, type Tracker } from '../tracker/tracker.js';
import { closeMaps, openPinnedMaps } from '../kernel/maps.js';
import { libbpf } from '../kernel/ffi.js';

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
  /** one bpf(BPF_MAP_LOOKUP_ELEM) through koffi, timed in this process: the floor of any lookup */
  floor?: Timing;
  /** verified API lookup at the largest N over the floor (target <= 4) */
  floorRatio?: number;
  /** the first lookup that meets an epoll never seen before, held at a high fd of the largest-N process */
  firstLookup?: { fds: number; epfd: number; timing: Timing; fdinfo: Timing; ratio: number; mode: string };
  /** what `epolltrack lookup PID FD --json` reports as its own time, at the largest N */
  cli?: Timing;
  /** how lookups ran: 'prog' (one BPF_PROG_RUN) or 'iter' (lookup iterator) */
  lookupPath?: string;
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
    // Only trackers with hooks attached can cost other syscalls (lazy mode attaches none).
    const hooked = existsSync(join(dir, 'links')) && readdirSync(join(dir, 'links')).length > 0;
    if (dir !== pinDir && isLoaded(dir) && hooked) out.push(dir);
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
  const unloadOwn = cleanupOnce(() => { if (ownTracker) unload({ pinDir }); });
  let tracker: Tracker | undefined;
  const fx = await fixture();
  const stopFixture = cleanupOnce(() => fx.stop());
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
    // The floor: one map lookup through koffi, in this process, now.
    const maps = openPinnedMaps(pinDir);
    let floor: Timing;
    try {
      const key = Buffer.alloc(4);
      const val = Buffer.alloc(8);
      const lk = libbpf().map_lookup;
      floor = timing(time(() => lk(maps.stats, key, val), iterations, 2000));
    } finally {
      closeMaps(maps);
    }
    const last = rows[rows.length - 1];
    const floorRatio = last.bpf.median / floor.median;

    // The first lookup meeting an epoll never seen before, at a high fd of the largest process:
    // each sample creates a new epoll (above every fd the process holds), adds the socket, looks up once.
    log(`${last.fds} fds: timing first lookups that meet an unseen epoll`);
    const firsts: number[] = [];
    let epfd = 0;
    for (let i = 0; i < 30; i++) {
      [epfd] = await fx.cmd('create');
      await fx.cmd(`add ${epfd} ${s} 1 ${100 + i}`);
      tracker.membershipsOf(fx.pid, s);
      firsts.push(tracker.lastLookup.micros);
      await fx.cmd(`close ${epfd}`);
    }
    const firstT = timing(firsts);
    const firstLookup = { fds: last.fds, epfd, timing: firstT, fdinfo: last.fdinfo, ratio: last.fdinfo.median / firstT.median, mode: tracker.mode ?? 'unknown' };

    // The CLI's own report of its lookup time.
    log(`${last.fds} fds: timing CLI lookups`);
    const cliSamples: number[] = [];
    const bin = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
    for (let i = 0; i < 5; i++) {
      const outp = execFileSync(process.execPath, [bin, 'lookup', String(fx.pid), String(s), '--json', '--pin-dir', pinDir], { encoding: 'utf8' });
      cliSamples.push((JSON.parse(outp) as { micros: number }).micros);
    }
    const cli = timing(cliSamples);
    const lookupPath = tracker.lookupPath;

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
          none: await swapTimes(n, t(tracker), false), // the same swap (copies found in the kernel) without moving registrations
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
      syscalls, floor, floorRatio, firstLookup, cli, lookupPath,
      swaps,
    };
  } finally {
    tracker?.close();
    stopFixture();
    unloadOwn();
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
  lines.push('', `tracker lookup, largest N / smallest N: ${r.flatness.toFixed(2)}x${r.lookupPath ? ` (lookups through ${r.lookupPath === 'prog' ? 'one BPF_PROG_RUN each' : 'the lookup iterator'})` : ''}`);
  if (r.floor && r.floorRatio !== undefined) {
    lines.push(`floor, one bpf(BPF_MAP_LOOKUP_ELEM) through koffi: ${us(r.floor.median)} (${us(r.floor.min)}–${us(r.floor.max)}); verified lookup at ${r.lookups[r.lookups.length - 1].fds} fds = ${r.floorRatio.toFixed(2)}x the floor (target <= 4x)`);
  }
  if (r.firstLookup) {
    const f = r.firstLookup;
    lines.push(`first lookup meeting an unseen epoll at fd ${f.epfd} of ${f.fds} (${f.mode} mode): ${us(f.timing.median)} (${us(f.timing.min)}–${us(f.timing.max)}); fdinfo way ${us(f.fdinfo.median)}: ${f.ratio.toFixed(0)}x (target >= 100x)`);
  }
  if (r.cli) lines.push(`CLI lookup, its own reported time: ${us(r.cli.median)} (${us(r.cli.min)}–${us(r.cli.max)})`);
  if (r.syscalls && 'baseline' in r.syscalls) {
    const s = r.syscalls;
    lines.push(`epoll_ctl ADD+DEL pair: ${s.baseline.ctl_pair_ns.toFixed(0)} ns -> ${s.tracked.ctl_pair_ns.toFixed(0)} ns (${s.ctlPairRatio.toFixed(2)}x, target <= 1.10x)`);
    lines.push(`getppid (unrelated):    ${s.baseline.getppid_ns.toFixed(0)} ns -> ${s.tracked.getppid_ns.toFixed(0)} ns (${s.getppidRatio.toFixed(2)}x, target <= 1.03x)`);
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

// ---- the storm: many processes, many concurrent swapped connects ----------------------

export interface StormOptions {
  processes?: number;
  /** concurrent connects per process (threads of epclient) */
  concurrent?: number;
  /** connects per thread, one after the other */
  rounds?: number;
  /** fds each process holds */
  fds?: number;
  /** each row this many times, alternating (the median run is reported) */
  runs?: number;
  /** the threads of each program share one epoll (default: an epoll per thread, an event loop each) */
  sharedEpoll?: boolean;
  pinDir?: string;
  log?: (s: string) => void;
}
export interface Latency { p50: number; p99: number; max: number; n: number }
export interface StormRow {
  fixup: boolean;
  /** every copy of the old socket looked for (the fd-table scan) */
  copies: boolean;
  swaps: number;
  failed: number;
  /** connects whose program saw its events, answer and a working MOD/DEL */
  clientOk: number;
  /** connects that got the target's answer (through epoll or, without the fix-up, by waiting on the socket) */
  answered: number;
  seconds: number;
  swapsPerSec: number;
  /** the connect() call as the program saw it, µs */
  client: Latency;
  /** the supervisor's CPU time (all its threads, user + system) per swap, µs */
  cpuPerSwap: number;
}
export interface StormResult {
  processes: number; concurrent: number; rounds: number; fds: number; runs: number; sharedEpoll: boolean;
  rows: StormRow[];
  /** the same programs with no swap: every connect goes to the target, the supervisor lets it continue (connects/s) */
  floor: StormRow;
  /** one caller alone, connect() call µs, with and without the fix-up */
  single: {
    fixup: Latency; none: Latency;
    /** with / without, the medians of the pairs of runs: connect() p50, and the supervisor's CPU per swap */
    p50: number; cpu: number;
    cpuPerSwap: { fixup: number; none: number };
  };
  /** the supervisor's CPU per swap with the fix-up over without (the cost of the fix-up): the median of the runs' pairs */
  fixupCost: number;
  /** swaps/s without the fix-up over with it: the median of the runs' pairs */
  fixupThroughput: number;
  /** the same two ratios from runs with both supervisors at once, half the programs each (medians) */
  sideBySide: { runs: SideBySide[]; cpu: number; throughput: number };
}

function latency(us: number[]): Latency {
  const s = [...us].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? 0, n: s.length };
}

/**
 * The storm's target: build/bin/echod (native/echod.c), a native epoll server in
 * a process of its own, so neither its cost nor its event loop is the supervisor's.
 */
async function echoServer(): Promise<{ port: number; stop: () => void }> {
  const child = spawn(join(packageRoot(), 'build', 'bin', 'echod'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', () => reject(new Error('the echo server did not start')));
  });
  return { port, stop: () => child.kill('SIGKILL') };
}

type RunKind = { fixup: boolean; copies: boolean } | 'floor';
type StormShape = Required<Omit<StormOptions, 'pinDir' | 'log' | 'runs'>>;

/**
 * epclient's arguments for one storm program: `concurrent` threads, each with its epoll
 * (or one shared), or one caller alone (one thread with its event loop, as each storm thread).
 * Without the fix-up the programs never get their events: they do not wait for epoll, and wait
 * on the socket itself instead (--poll-if-lost), so that every row does the same exchange.
 */
function clientArgs(o: StormShape, fixup: boolean, single: boolean, host: string, port: string): string[] {
  const wait = fixup ? ['--timeout', '5000'] : ['--timeout', '0', '--poll-if-lost'];
  const shape = single
    ? ['--et', '--epoll-per-thread', '--repeat', String(o.rounds * 40)]
    : ['--threads', String(o.concurrent), '--et', ...(o.sharedEpoll ? [] : ['--epoll-per-thread']), '--repeat', String(o.rounds)];
  return [...shape, '--fds', String(o.fds), '--quiet', ...wait, host, port];
}

/** Programs each supervisor serves in a side-by-side run: half of them. */
function sideBySideProcesses(processes: number): number {
  return Math.max(1, Math.floor(processes / 2));
}

async function stormRun(o: StormShape, to: number, tracker: Tracker | undefined, kind: RunKind, single: boolean): Promise<StormRow> {
  const { supervise } = await import('../supervise/launch.js');
  const { parseEndpoint } = await import('../supervise/seccomp.js');
  const epclient = join(packageRoot(), 'build', 'bin', 'epclient');
  const floor = kind === 'floor';
  const fixup = floor || kind.fixup;
  const copies = floor || kind.copies;
  // The floor: straight to the target, which no rule names; every connect continues in the kernel.
  const [host, port] = floor ? ['127.0.0.1', String(to)] : ['127.0.0.2', '80'];
  const args = clientArgs(o, fixup, single, host, port);
  // Each program's line to a file of its own: lines longer than a pipe's atomic write would interleave.
  const dir = mkdtempSync(join(tmpdir(), 'epolltrack-storm-'));
  const removeDir = cleanupOnce(() => rmSync(dir, { recursive: true, force: true })); // interrupted too
  const script = single
    ? `exec ${epclient} ${args.join(' ')}`
    : `for i in $(seq ${o.processes}); do ${epclient} ${args.join(' ')} > ${dir}/$i & done; wait; cat ${dir}/*`;
  let out = '';
  let first = 0n, last = 0n, swaps = 0, failed = 0;
  let cpu0 = process.cpuUsage(), cpu1 = cpu0;
  try {
    await supervise('sh', ['-c', script], {
      redirects: [{ from: parseEndpoint('127.0.0.2:80')!, to: parseEndpoint(`127.0.0.1:${to}`)! }], tracker, fixup, copies, stdio: 'pipe',
      onSpawn: (_p, child) => child.stdout!.on('data', (d: Buffer) => { out += d.toString(); }),
      onSwap: (rec) => {
        const now = process.hrtime.bigint();
        if (rec.result !== 'swapped') { failed++; return; }
        if (!swaps) { first = now; cpu0 = process.cpuUsage(); }
        last = now;
        cpu1 = process.cpuUsage();
        swaps++;
      },
    });
  } finally {
    removeDir();
  }
  const us: number[] = [];
  let ok = 0, n = 0, t0 = Infinity, t1 = 0, answered = 0;
  for (const line of out.trim().split('\n').filter(Boolean)) {
    const l = JSON.parse(line) as { n: number; ok: number; pong: number; t0: number; t1: number; us: number[] };
    ok += l.ok;
    answered += l.pong;
    n += l.n;
    t0 = Math.min(t0, l.t0);
    t1 = Math.max(t1, l.t1);
    us.push(...l.us);
  }
  if (floor) {
    // No swaps: the rate is the programs' own, from the first connect to the last.
    const seconds = (t1 - t0) / 1e6;
    return { fixup, copies, swaps: n, failed, clientOk: ok, answered, seconds, swapsPerSec: n > 1 ? n / seconds : 0, client: latency(us), cpuPerSwap: 0 };
  }
  const seconds = Number(last - first) / 1e9;
  const cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system);
  return {
    fixup, copies, swaps, failed, clientOk: ok, answered, seconds, swapsPerSec: swaps > 1 ? (swaps - 1) / seconds : 0,
    client: latency(us), cpuPerSwap: swaps > 1 ? cpu / (swaps - 1) : 0,
  };
}

/** CPU time of process `pid` (all its threads, live and gone), µs: utime + stime of /proc/PID/stat. */
function processCpu(pid: number, tick: number): number {
  const st = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * tick;
}

/** One side-by-side run: two supervisors at once, with and without the fix-up, each serving half the programs. */
export interface SideBySide { fixup: { swaps: number; cpuPerSwap: number; swapsPerSec: number }; none: { swaps: number; cpuPerSwap: number; swapsPerSec: number } }

/**
 * The fix-up's cost with both supervisors running at the same time: two
 * `epolltrack supervise` processes, one with --no-epoll-fixup, each serving
 * half the programs, released at the same instant. Both share the machine's
 * pace of that moment, which a pair of runs one after the other does not on
 * a machine whose pace drifts. Each one's CPU (/proc/PID/stat) is read when
 * its programs are released and when they are done.
 */
async function sideBySide(o: StormShape, to: number, pinDir: string, tick: number): Promise<SideBySide> {
  const epclient = join(packageRoot(), 'build', 'bin', 'epclient');
  const main = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
  const dir = mkdtempSync(join(tmpdir(), 'epolltrack-sbs-'));
  const half = sideBySideProcesses(o.processes);
  const side = (fixup: boolean) => {
    const name = fixup ? 'with' : 'none';
    const args = clientArgs(o, fixup, false, '127.0.0.2', '80');
    // Ready, wait for the start, run, report, then wait to be let go (the supervisor's CPU is read
    // meanwhile). The run's directory gone (the bench interrupted) ends either wait.
    const script = `echo ready; until [ -e ${dir}/go ] || [ ! -d ${dir} ]; do sleep 0.01; done; [ -d ${dir} ] || exit 0; `
      + `for i in $(seq ${half}); do ${epclient} ${args.join(' ')} > ${dir}/${name}-out.$i & done; wait; cat ${dir}/${name}-out.*; echo done; `
      + `until [ -e ${dir}/end ] || [ ! -d ${dir} ]; do sleep 0.01; done`;
    const child = spawn(process.execPath, [main, 'supervise', '--pin-dir', pinDir, '--redirect', `127.0.0.2:80=127.0.0.1:${to}`, ...(fixup ? [] : ['--no-epoll-fixup']), '--', 'sh', '-c', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, EPOLLTRACK_SWAPS_LOG: join(dir, `${name}.swaps.jsonl`) }, // each its own, removed with the run
    });
    let out = '';
    const seen = (word: string) => {
      const p = new Promise<void>((resolve, reject) => {
        const check = () => { if (out.split('\n').includes(word)) resolve(); };
        child.stdout!.on('data', check);
        child.once('exit', (c) => reject(new Error(`the ${name} supervisor exited (${c}) early`)));
        check();
      });
      p.catch(() => {}); // awaited where it matters; one not awaited yet must not end the process
      return p;
    };
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    return { child, ready: seen('ready'), done: seen('done'), out: () => out, cpu0: 0, cpu1: 0, t0: 0n, t1: 0n };
  };
  const sides: ReturnType<typeof side>[] = [];
  // Interrupted, or failed: the two supervisors (ours, by pid) and the run's directory go; the
  // scripts they run see it gone and end, and their programs' connects fail without a supervisor.
  const stop = cleanupOnce(() => {
    for (const x of sides) if (x.child.exitCode === null && x.child.signalCode === null) x.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  sides.push(side(true), side(false));
  const exited = sides.map((x) => new Promise<void>((resolve) => x.child.once('exit', () => resolve())));
  try {
    await Promise.all(sides.map((x) => x.ready));
    for (const x of sides) { x.cpu0 = processCpu(x.child.pid!, tick); x.t0 = process.hrtime.bigint(); }
    writeFileSync(join(dir, 'go'), '');
    await Promise.all(sides.map((x) => x.done.then(() => { x.cpu1 = processCpu(x.child.pid!, tick); x.t1 = process.hrtime.bigint(); })));
    writeFileSync(join(dir, 'end'), '');
    await Promise.all(exited);
    const result = (x: typeof sides[number]) => {
      let n = 0;
      for (const line of x.out().split('\n')) if (line.startsWith('{')) n += (JSON.parse(line) as { n: number }).n;
      return { swaps: n, cpuPerSwap: n ? (x.cpu1 - x.cpu0) / n : 0, swapsPerSec: n / (Number(x.t1 - x.t0) / 1e9) };
    };
    return { fixup: result(sides[0]), none: result(sides[1]) };
  } finally {
    stop();
  }
}

/** The row of median swaps/s among runs of one kind. */
function medianRow(rows: StormRow[]): StormRow {
  return [...rows].sort((a, b) => a.swapsPerSec - b.swapsPerSec)[Math.floor(rows.length / 2)];
}

/** The storm: `processes` programs × `concurrent` connects at once, each holding `fds` fds, served by one supervisor. */
export async function storm(opts: StormOptions = {}): Promise<StormResult> {
  const o = { processes: opts.processes ?? 32, concurrent: opts.concurrent ?? 30, rounds: opts.rounds ?? 5, fds: opts.fds ?? 500, sharedEpoll: opts.sharedEpoll ?? false };
  const runs = opts.runs ?? 3;
  const log = opts.log ?? (() => {});
  const pinDir = opts.pinDir ?? `/sys/fs/bpf/epolltrack-bench-${process.pid}`;
  const ownTracker = !isLoaded(pinDir);
  if (ownTracker) load({ pinDir });
  const unloadOwn = cleanupOnce(() => { if (ownTracker) unload({ pinDir }); });
  const server = await echoServer();
  const stopServer = cleanupOnce(() => server.stop());
  let tracker: Tracker | undefined;
  try {
    tracker = await openTracker({ pinDir });
    // Warm-up (first swaps start the fix-up library and the thread pool), then the kinds in turn, `runs` times.
    await stormRun({ ...o, processes: 2, rounds: 1 }, server.port, tracker, { fixup: true, copies: true }, false);
    const kinds: RunKind[] = [{ fixup: true, copies: true }, { fixup: false, copies: true }, { fixup: true, copies: false }, { fixup: false, copies: false }, 'floor'];
    const got = kinds.map(() => [] as StormRow[]);
    for (let r = 0; r < runs; r++) {
      // Each pair (with, without) in turn the other way round: a drift in the machine's pace
      // during a pair then favours neither.
      const order = r % 2 ? [1, 0, 3, 2, 4] : [0, 1, 2, 3, 4];
      for (const i of order) {
        const kind = kinds[i];
        log(`storm ${r + 1}/${runs}: ${o.processes} processes x ${o.concurrent} concurrent connects x ${o.rounds} rounds, ${o.fds} fds each, ${kind === 'floor' ? 'no swap (the floor)' : `${kind.fixup ? 'with' : 'without'} the fix-up${kind.copies ? '' : ', one number only'}`}`);
        // The tracker serves every kind: without the fix-up it still finds the copies (in the kernel), so the
        // difference between the rows is the fix-up alone (lookup, ADD, DEL).
        const row = await stormRun(o, server.port, tracker, kind, false);
        got[i].push(row);
        log(`  ${row.swapsPerSec.toFixed(0)} ${kind === 'floor' ? 'connects' : 'swaps'}/s${kind === 'floor' ? '' : `, ${row.cpuPerSwap.toFixed(0)} µs supervisor CPU per swap`}`);
      }
    }
    const rows = got.slice(0, 4).map(medianRow);
    const floor = medianRow(got[4]);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    // One caller, one connect at a time: the swap alone, with no other swap to share the supervisor's
    // turn with. Pairs with and without, the other way round every other run.
    const alone = { fixup: [] as StormRow[], none: [] as StormRow[] };
    for (let r = 0; r < runs; r++) {
      log(`storm ${r + 1}/${runs}: one caller alone, with and without the fix-up`);
      for (const fixup of r % 2 ? [false, true] : [true, false]) {
        alone[fixup ? 'fixup' : 'none'].push(await stormRun(o, server.port, tracker, { fixup, copies: true }, true));
      }
    }
    const single = {
      fixup: medianRow(alone.fixup).client,
      none: medianRow(alone.none).client,
      p50: median(alone.fixup.map((x, i) => x.client.p50 / alone.none[i].client.p50)),
      cpu: median(alone.fixup.map((x, i) => x.cpuPerSwap / alone.none[i].cpuPerSwap)),
      cpuPerSwap: { fixup: median(alone.fixup.map((x) => x.cpuPerSwap)), none: median(alone.none.map((x) => x.cpuPerSwap)) },
    };
    // The fix-up's cost: each run with it against the run without it next to it (the machine's
    // pace drifts between runs; a pair shares it), the median of those ratios.
    const fixupCost = median(got[0].map((x, i) => x.cpuPerSwap / got[1][i].cpuPerSwap));
    const fixupThroughput = median(got[0].map((x, i) => got[1][i].swapsPerSec / x.swapsPerSec));
    // The same cost with both supervisors running at once (half the programs each).
    const tick = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    const together: SideBySide[] = [];
    for (let r = 0; r < runs; r++) {
      log(`storm ${r + 1}/${runs}: side by side, two supervisors at once (with and without the fix-up), ${sideBySideProcesses(o.processes)} processes each`);
      const x = await sideBySide(o, server.port, pinDir, tick);
      together.push(x);
      log(`  with: ${x.fixup.swapsPerSec.toFixed(0)} swaps/s, ${x.fixup.cpuPerSwap.toFixed(0)} µs CPU per swap; without: ${x.none.swapsPerSec.toFixed(0)} swaps/s, ${x.none.cpuPerSwap.toFixed(0)} µs`);
    }
    const sideBySideCost = {
      runs: together,
      cpu: median(together.map((x) => x.fixup.cpuPerSwap / x.none.cpuPerSwap)),
      throughput: median(together.map((x) => x.none.swapsPerSec / x.fixup.swapsPerSec)),
    };
    return { ...o, runs, rows, floor, single, fixupCost, fixupThroughput, sideBySide: sideBySideCost };
  } finally {
    tracker?.close();
    stopServer();
    unloadOwn();
  }
}

export function formatStorm(r: StormResult): string {
  const u = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)} ms` : `${v.toFixed(0)} µs`);
  const row = (name: string, x: StormRow, cpu: string) =>
    `${name.padEnd(26)} ${String(x.swaps).padStart(6)}  ${String(x.failed).padStart(6)}  ${String(x.clientOk).padStart(10)}  ${String(x.answered).padStart(8)}  ${x.swapsPerSec.toFixed(0).padStart(10)}   ${u(x.client.p50).padEnd(14)} ${u(x.client.p99).padEnd(9)} ${u(x.client.max).padEnd(9)} ${`${(x.client.p99 / x.client.p50).toFixed(1)}x`.padEnd(8)} ${cpu}`;
  const lines = [
    `storm: ${r.processes} processes x ${r.concurrent} concurrent connects x ${r.rounds} rounds, ${r.fds} fds each, ${r.sharedEpoll ? 'one epoll shared by the threads of each' : 'an epoll per thread'}, one supervisor; target: echod (native)`,
    `each row: the median of ${r.runs} runs by swaps/s, the kinds taking turns`,
    '                            swaps  failed  program ok  answered     swaps/s   connect() p50    p99       max       p99/p50  supervisor CPU/swap',
  ];
  for (const x of r.rows) lines.push(row(`${x.fixup ? 'with fix-up' : 'no fix-up'}${x.copies ? ', all copies' : ', one number'}`, x, u(x.cpuPerSwap)));
  lines.push(row('no swap (the floor)', r.floor, '-'));
  lines.push('  the floor: the same programs connect straight to the target, and the supervisor lets every connect continue');
  lines.push(`swaps/s with the fix-up / the floor's connects/s = ${(r.rows[0].swapsPerSec / r.floor.swapsPerSec).toFixed(2)}`);
  lines.push(`one caller alone, connect() p50: ${u(r.single.fixup.p50)} with the fix-up, ${u(r.single.none.p50)} without (p99 ${u(r.single.fixup.p99)} / ${u(r.single.none.p99)});`);
  lines.push(`  supervisor CPU per swap ${u(r.single.cpuPerSwap.fixup)} with, ${u(r.single.cpuPerSwap.none)} without`);
  lines.push(`fix-up cost, one caller alone (the median of ${r.runs} pairs of runs): connect() p50 with / without = ${r.single.p50.toFixed(2)}x, supervisor CPU per swap with / without = ${r.single.cpu.toFixed(2)}x (target <= 1.10x)`);
  lines.push(`fix-up cost under the storm (all copies; the median of ${r.runs} pairs of runs): supervisor CPU per swap with / without = ${r.fixupCost.toFixed(2)}x (target <= 1.10x)`);
  lines.push(`  swaps/s without / with = ${r.fixupThroughput.toFixed(2)}x`);
  lines.push(`fix-up cost side by side (two supervisors at once, with and without, ${sideBySideProcesses(r.processes)} processes each; the median of ${r.sideBySide.runs.length} runs):`);
  lines.push(`  supervisor CPU per swap with / without = ${r.sideBySide.cpu.toFixed(2)}x (target <= 1.10x); swaps/s without / with = ${r.sideBySide.throughput.toFixed(2)}x`);
  lines.push('  program ok: the program got its events through epoll, the answer, and a working MOD/DEL; answered: it got the');
  lines.push('  answer (without the fix-up epoll never reports the socket: those programs wait on the socket itself, so every row does the same exchange)');
  return lines.join('\n');
}
