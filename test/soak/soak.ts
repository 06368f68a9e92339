/**
 * `npm run soak`: the seeded differential workload (test/helpers/differential.ts,
 * the randomized tracker test) for a long run in every hook mode load() accepts
 * on this kernel, plus `auto`, then lookups while another CPU writes: the churn
 * fixture (native/churn.c) churns registrations of files it shares with an epctl
 * process while that process's fds are looked up. Prints one summary line per
 * mode and exits 1 on any wrong answer. Root; pins under its own pin dir.
 *
 *   npm run soak [-- --steps N] [--seed N] [--modes auto,tracepoint] [--seconds N] [--jobs N] [--budget S] [--json]
 *
 * While the writer runs, an answer cannot be compared with fdinfo read at
 * another instant, so each answer is checked for what must hold at any
 * instant: the process's own registrations (never touched by the writer) are
 * there, exactly; every other one is the writer's (its epoll, its data tag,
 * its events). Every 200 ms the writer is stopped (SIGSTOP: no epoll_ctl in
 * flight once it is in state T) and every fd of both processes is compared
 * with the fdinfo way, exactly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  fdinfoMemberships, isNotSupported, load, MODES, openTracker, unload, type Membership, type Tracker,
} from '../../src/index.js';
import { packageRoot } from '../../src/kernel/bpfobject.js';
import { epollFdinfos } from '../../src/tracker/fdinfo.js';
import { EPOLLET, EPOLLIN, EPOLLOUT, EPOLLRDHUP, fdsOf, fmt, runDifferential, sameMemberships } from '../helpers/differential.js';
import { Epctl } from '../helpers/epctl.js';
import { testPinDir } from '../helpers/env.js';

const CHURN = join(packageRoot(), 'build', 'bin', 'churn');
const DATA_MAGIC = 0x5eedn;
const WRITER_EVENTS = new Set([EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT, EPOLLIN | EPOLLET, EPOLLIN | EPOLLRDHUP].map((e) => e >>> 0));
const MAX_DETAILS = 5;
/** SIGINT/SIGTERM: each mode stops where it is and reports what it ran (the summary says it ran short). */
let stopping = false;
/** epoll_ctl adds EPOLLERR|EPOLLHUP to every registration: compare without them. */
const asAsked = (events: number) => (events & ~0x18) >>> 0;

interface ModeResult {
  mode: string;
  /** the mode load() took (auto picks one) */
  took?: string;
  skipped?: string;
  steps: number;
  lookups: number;
  fromBpf: number;
  wrong: number;
  seconds: number;
  concurrent?: {
    seconds: number; lookups: number; fromBpf: number; quiesced: number; quiescedLookups: number;
    writerOps: number; wrong: number;
  };
  details: string[];
}

const USAGE = `usage: npm run soak -- [--steps N] [--seed N] [--modes auto,${MODES.join(',')}] [--seconds N] [--jobs N] [--json]
  --steps    differential steps per mode (default $EPOLLTRACK_STEPS or 100000)
  --seed     seed of the workload (default $EPOLLTRACK_SEED or random; printed)
  --modes    modes to run (default: auto and every mode load() knows; those this kernel refuses are reported as skipped)
  --seconds  lookups under a concurrent writer, per mode (default 60)
  --jobs     modes run at once, each in a process of its own (default 1)
  --budget   end a mode's differential run after S seconds even if short of --steps
             (the summary and the exit status say it ran short; default: no limit)
  --json     print the results as JSON`;

function die(msg: string, code = 2): never {
  console.error(`soak: ${msg}`);
  process.exit(code);
}

function intArg(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) die(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
}

/** Lookups of `a`'s shared fds while `churn` writes; quiesce and compare exactly every 200 ms. */
async function concurrent(tracker: Tracker, seconds: number, seed: number, res: ModeResult): Promise<NonNullable<ModeResult['concurrent']>> {
  const c = { seconds: 0, lookups: 0, fromBpf: 0, quiesced: 0, quiescedLookups: 0, writerOps: 0, wrong: 0 };
  const wrong = (d: string) => {
    c.wrong++;
    if (res.details.length < MAX_DETAILS) res.details.push(`${d}\n  (answer from ${tracker.lastLookup.source}${tracker.lastLookup.reason ? `, ${tracker.lastLookup.reason}` : ''})`);
  };
  const a = await Epctl.spawn();
  let writer: ChildProcess | undefined;
  try {
    const shared: number[] = [];
    for (const what of ['pipe', 'pipe', 'eventfd', 'eventfd', 'socketpair', 'socketpair']) shared.push(...await a.cmd(what));
    const [ea] = await a.cmd('create');
    // a's own registrations: the writer never touches them, so they must be in every answer
    const own = new Map<number, { events: number; data: bigint }>();
    for (const fd of shared) {
      const events = (EPOLLIN | EPOLLOUT) >>> 0, data = 0xa000n + BigInt(fd);
      await a.cmd(`add ${ea} ${fd} ${events.toString(16)} ${data}`);
      own.set(fd, { events, data });
    }
    writer = spawn(CHURN, [String(seed), String(a.pid), ...shared.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: writer.stdout! });
    const next = () => new Promise<string>((resolve) => {
      lines.once('line', resolve);
      writer!.once('exit', () => resolve('exit'));
    });
    const ready = await next();
    if (!ready.startsWith('ready')) throw new Error(`churn did not start: ${ready}`);
    const wpid = writer.pid!;

    const state = () => { try { return readFileSync(`/proc/${wpid}/stat`, 'latin1').replace(/^.*\) /s, '')[0]; } catch { return '?'; } };
    const t0 = performance.now();
    let lastQuiesce = t0;
    while (performance.now() - t0 < seconds * 1000 && !stopping) {
      for (const fd of shared) {
        let got: Membership[];
        try {
          got = tracker.membershipsOf(a.pid, fd);
        } catch (err) {
          wrong(`concurrent: lookup ${a.pid}:${fd} threw ${(err as Error).message}`);
          continue;
        }
        c.lookups++;
        if (tracker.lastLookup.source === 'bpf') c.fromBpf++;
        const mine = own.get(fd)!;
        let ownSeen = 0;
        for (const m of got) {
          if (m.epollPid === a.pid) {
            if (m.epfd === ea && m.tfd === fd && asAsked(m.events) === mine.events && m.data === mine.data) ownSeen++;
            else wrong(`concurrent: ${a.pid}:${fd}: a registration that is not there: ${fmt(m)}`);
          } else if (m.epollPid !== wpid || (m.data >> 48n) !== DATA_MAGIC || !WRITER_EVENTS.has(asAsked(m.events))) {
            wrong(`concurrent: ${a.pid}:${fd}: not a registration the writer can have made: ${fmt(m)}`);
          }
        }
        if (ownSeen !== 1) wrong(`concurrent: ${a.pid}:${fd}: its own registration seen ${ownSeen} times: ${got.map(fmt).join('; ')}`);
      }
      if (performance.now() - lastQuiesce >= 200) {
        // Stopped in state T, the writer has no epoll_ctl in flight: compare exactly.
        process.kill(wpid, 'SIGSTOP');
        for (let i = 0; state() !== 'T'; i++) {
          if (i > 2000) throw new Error('churn did not stop');
          await sleep(1);
        }
        const pids = [a.pid, wpid];
        const snapshot = new Map(pids.map((pid) => [pid, epollFdinfos(pid)]));
        for (const pid of pids) {
          for (const { fd } of fdsOf(pid)) {
            const fast = tracker.membershipsOf(pid, fd);
            const slow = fdinfoMemberships(pid, fd, { pids, snapshot });
            c.quiescedLookups++;
            if (!sameMemberships(fast, slow)) {
              wrong(`concurrent, writer stopped: ${pid}:${fd}\n  bpf (${tracker.lastLookup.source}${tracker.lastLookup.reason ? `, ${tracker.lastLookup.reason}` : ''}): ${fast.map(fmt).join('; ')}\n  fdinfo: ${slow.map(fmt).join('; ')}`);
            }
          }
        }
        c.quiesced++;
        process.kill(wpid, 'SIGCONT');
        lastQuiesce = performance.now();
      }
      await new Promise((r) => setImmediate(r));
    }
    c.seconds = (performance.now() - t0) / 1000;
    const done = next();
    process.kill(wpid, 'SIGTERM');
    const last = await Promise.race([done, sleep(5000).then(() => 'timeout')]);
    const m = /^ops (\d+)/.exec(last);
    if (!m) throw new Error(`churn did not report its operations: ${last}`);
    c.writerOps = Number(m[1]);
    if (c.writerOps === 0) throw new Error('the writer made no epoll_ctl call');
    return c;
  } finally {
    if (writer?.pid && writer.exitCode === null) { try { process.kill(writer.pid, 'SIGKILL'); } catch { /* gone */ } }
    a.kill();
  }
}

async function runMode(mode: string, steps: number, seed: number, seconds: number, budget: number): Promise<ModeResult> {
  const res: ModeResult = { mode, steps: 0, lookups: 0, fromBpf: 0, wrong: 0, seconds: 0, details: [] };
  const pinDir = testPinDir(`soak-${mode}`);
  try {
    load({ mode: mode as 'auto', pinDir });
  } catch (err) {
    if (!isNotSupported(err)) throw err;
    res.skipped = (err as Error).message;
    return res;
  }
  const t0 = performance.now();
  let tracker: Tracker | undefined;
  try {
    tracker = await openTracker({ pinDir });
    res.took = tracker.mode;
    let lastPrint = t0;
    const d = await runDifferential({
      tracker, seed, steps, progressEvery: 1000,
      shouldStop: () => stopping || (budget > 0 && performance.now() - t0 > budget * 1000),
      onWrong: (detail) => {
        if (res.details.length < MAX_DETAILS) res.details.push(detail);
        console.error(`soak: ${mode}: WRONG: ${detail}`); // at once: a long run may be stopped before its summary
      },
      onProgress: (r) => {
        const now = performance.now();
        if (now - lastPrint > 30_000) {
          lastPrint = now;
          console.error(`soak: ${mode}: step ${r.steps}/${steps}, ${r.lookups} lookups, ${r.wrong} wrong, ${((now - t0) / 1000).toFixed(0)} s`);
        }
      },
    });
    Object.assign(res, { steps: d.steps, lookups: d.lookups, fromBpf: d.fromBpf, wrong: d.wrong });
    if (seconds > 0 && !stopping) res.concurrent = await concurrent(tracker, seconds, seed, res);
  } finally {
    res.seconds = (performance.now() - t0) / 1000;
    tracker?.close();
    try { unload({ pinDir }); } catch { /* nothing pinned */ }
  }
  return res;
}

/** Runs one mode in a child process (this script with --child): results come back as JSON. */
function runChild(mode: string, steps: number, seed: number, seconds: number, budget: number, children: Set<ChildProcess>): Promise<ModeResult> {
  return new Promise((resolve) => {
    // Through a shell that closes every inherited fd above 2 first: a file the
    // caller leaked into us (no close-on-exec) would reach every epctl of every
    // mode, get registered by the workloads of two modes running at once, and
    // make one mode's lookups find the other's processes' epolls.
    // (No redirection around the loop: bash would park stderr on an fd the loop closes.)
    const closeInherited = 'for f in /proc/$$/fd/*; do n=${f##*/}; [ "$n" -gt 2 ] && exec {n}>&-; done; exec "$@"';
    const child = spawn('/bin/bash', ['-c', closeInherited, 'soak', process.execPath, fileURLToPath(import.meta.url), '--child', '--modes', mode,
      '--steps', String(steps), '--seed', String(seed), '--seconds', String(seconds), '--budget', String(budget)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    child.on('exit', (code, sig) => {
      children.delete(child);
      try {
        resolve(JSON.parse(out) as ModeResult);
      } catch {
        resolve({ mode, steps: 0, lookups: 0, fromBpf: 0, wrong: 1, seconds: 0, details: [`soak of ${mode} died (exit ${code ?? sig})`] });
      }
    });
  });
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        steps: { type: 'string' }, seed: { type: 'string' }, modes: { type: 'string' }, seconds: { type: 'string' },
        jobs: { type: 'string' }, budget: { type: 'string' }, json: { type: 'boolean' }, child: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    die(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.help) { console.log(USAGE); return; }
  if (process.getuid?.() !== 0) die('must run as root (it loads the BPF tracker): sudo npm run soak', 1);
  const steps = intArg('steps', values.steps ?? process.env.EPOLLTRACK_STEPS, 100_000);
  const seed = intArg('seed', values.seed ?? process.env.EPOLLTRACK_SEED, Math.floor(Math.random() * 2 ** 31));
  const seconds = intArg('seconds', values.seconds, 60);
  const jobs = Math.max(1, intArg('jobs', values.jobs, 1));
  const budget = intArg('budget', values.budget, 0);
  const known = ['auto', ...MODES];
  const modes = values.modes ? values.modes.split(',').map((m) => m.trim()).filter(Boolean) : known;
  for (const m of modes) if (!known.includes(m)) die(`unknown mode '${m}' in --modes: use ${known.join(', ')}`);

  const children = new Set<ChildProcess>();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (!values.child && !stopping) console.error(`soak: ${sig}: stopping every mode where it is`);
      stopping = true;
      for (const c of children) c.kill('SIGTERM');
    });
  }
  if (values.child) {
    const r = await runMode(modes[0], steps, seed, seconds, budget);
    process.stdout.write(JSON.stringify(r));
    return;
  }
  console.error(`soak: seed ${seed}, ${steps} steps${budget ? ` (at most ${budget} s)` : ''} and ${seconds} s under a concurrent writer per mode; modes ${modes.join(', ')}; ${jobs} at a time`);
  const t0 = performance.now();
  const results: ModeResult[] = new Array(modes.length);
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(jobs, modes.length) }, async () => {
    while (i < modes.length && !stopping) {
      const k = i++;
      results[k] = await runChild(modes[k], steps, seed, seconds, budget, children);
      const r = results[k];
      console.error(`soak: ${r.mode}: ${r.skipped ? `skipped (${r.skipped})` : `done, ${r.wrong + (r.concurrent?.wrong ?? 0)} wrong, ${r.seconds.toFixed(0)} s`}`);
    }
  }));
  const total = (performance.now() - t0) / 1000;
  const notRun = modes.filter((_, k) => !results[k]);
  for (let k = 0; k < modes.length; k++) {
    results[k] ??= { mode: modes[k], skipped: 'not started (stopped)', steps: 0, lookups: 0, fromBpf: 0, wrong: 0, seconds: 0, details: [] };
  }
  const ran = results.filter((r) => !r.skipped);
  const wrong = results.reduce((s, r) => s + r.wrong + (r.concurrent?.wrong ?? 0), 0);
  const short = ran.filter((r) => r.steps < steps);
  if (values.json) {
    console.log(JSON.stringify({ seed, steps, seconds, modes: results, wrong, totalSeconds: total }, null, 2));
  } else {
    console.log(`seed ${seed}`);
    console.log(`${'mode'.padEnd(11)} ${'took'.padEnd(11)} ${'steps'.padStart(8)} ${'lookups'.padStart(10)} ${'bpf%'.padStart(6)} ${'wrong'.padStart(6)} | ${'concurrent'.padStart(10)} ${'lookups'.padStart(9)} ${'stopped'.padStart(8)} ${'writer ops'.padStart(11)} ${'wrong'.padStart(6)} | ${'seconds'.padStart(8)}`);
    for (const r of results) {
      if (r.skipped) { console.log(`${r.mode.padEnd(11)} skipped: ${r.skipped}`); continue; }
      const c = r.concurrent;
      const pct = r.lookups ? (100 * r.fromBpf / r.lookups).toFixed(1) : '-';
      console.log(`${r.mode.padEnd(11)} ${(r.took ?? '?').padEnd(11)} ${String(r.steps).padStart(8)} ${String(r.lookups).padStart(10)} ${pct.padStart(6)} ${String(r.wrong).padStart(6)} | ${(c ? `${c.seconds.toFixed(0)} s` : '-').padStart(10)} ${String(c?.lookups ?? '-').padStart(9)} ${String(c ? `${c.quiesced}x${Math.round(c.quiescedLookups / Math.max(1, c.quiesced))}` : '-').padStart(8)} ${String(c?.writerOps ?? '-').padStart(11)} ${String(c?.wrong ?? '-').padStart(6)} | ${r.seconds.toFixed(0).padStart(8)}`);
    }
    for (const r of results) for (const d of r.details) console.log(`\n${r.mode}: ${d}`);
    console.log(`\nsoak: ${ran.length} modes, ${wrong} wrong answers, ${total.toFixed(0)} s`);
  }
  if (!ran.length) die('no mode could be loaded here', 1);
  // The mode auto takes loads here: asked for by name too, it must not be skipped.
  const flaky = results.filter((r) => r.skipped && results.some((a) => a.mode === 'auto' && a.took === r.mode));
  if (flaky.length) die(`${flaky.map((r) => r.mode).join(', ')} failed to load although auto took it: ${flaky[0].skipped}`, 1);
  if (notRun.length) die(`${notRun.join(', ')} not run (stopped)`, 1);
  if (short.length) die(`${short.map((r) => r.mode).join(', ')} ran fewer than ${steps} steps`, 1);
  if (wrong) process.exit(1);
}

main().catch((err: unknown) => {
  console.error(`soak: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exit(1);
});
