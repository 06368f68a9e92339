/**
 * The seeded differential workload: random epoll life (create, pipes, eventfds,
 * socketpairs, add/mod/del, close, dup, dup2, write/read/wait, fork, exit) in
 * several epctl processes, and after every step every fd of every process
 * looked up through the tracker and compared with the fdinfo way. Shared by the
 * tracker suite (a short run) and `npm run soak` (long runs, every mode).
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { BadFdError, fdinfoMemberships, kcmp, KCMP_FILE, type Membership, type Tracker } from '../../src/index.js';
import { epollFdinfos } from '../../src/tracker/fdinfo.js';
import { Epctl, EpctlError } from './epctl.js';
import { rng } from './env.js';

export const EPOLLIN = 0x1, EPOLLPRI = 0x2, EPOLLOUT = 0x4, EPOLLRDHUP = 0x2000;
export const EPOLLEXCLUSIVE = 2 ** 28, EPOLLONESHOT = 2 ** 30, EPOLLET = 2 ** 31;

/** The fds of a process (its stdio left out), and which are epoll instances. */
export function fdsOf(pid: number): { fd: number; epoll: boolean }[] {
  const out: { fd: number; epoll: boolean }[] = [];
  for (const n of readdirSync(`/proc/${pid}/fd`)) {
    const fd = Number(n);
    if (fd <= 2) continue; // the fixture's own stdio
    let link = '';
    try { link = readlinkSync(`/proc/${pid}/fd/${n}`); } catch { continue; }
    out.push({ fd, epoll: link === 'anon_inode:[eventpoll]' });
  }
  return out;
}

export const fmt = (m: Membership) => `${m.epollPid}:${m.epfd} tfd=${m.tfd} ev=0x${m.events.toString(16)} data=${m.data}`;

/** Same registrations: a bijection on (epoll instance, tfd, events, data). */
export function sameMemberships(a: Membership[], b: Membership[]): boolean {
  if (a.length !== b.length) return false;
  const used = new Set<number>();
  for (const x of a) {
    const i = b.findIndex((y, j) => !used.has(j) && x.tfd === y.tfd && x.events === y.events && x.data === y.data
      && kcmp(x.epollPid, y.epollPid, KCMP_FILE, x.epfd, y.epfd) === 0);
    if (i < 0) return false;
    used.add(i);
  }
  return true;
}

export interface DifferentialOptions {
  tracker: Tracker;
  seed: number;
  steps: number;
  /**
   * A wrong answer (with the steps that led to it and how to reproduce). Default:
   * throw, which ends the run (the test). The soak counts and goes on.
   */
  onWrong?: (detail: string) => void;
  /** Called every `progressEvery` steps (default 1000). */
  onProgress?: (r: DifferentialResult) => void;
  progressEvery?: number;
  /** Checked before each step: true ends the run early (the result says how many steps ran). */
  shouldStop?: () => boolean;
}

export interface DifferentialResult {
  seed: number;
  steps: number;
  /** lookups compared with the fdinfo way */
  lookups: number;
  /** of those, answered by the BPF path (not the fdinfo fallback) */
  fromBpf: number;
  wrong: number;
}

/** Runs the workload; the processes it starts are killed when it ends, however it ends. */
export async function runDifferential(opts: DifferentialOptions): Promise<DifferentialResult> {
  const { tracker, seed, steps } = opts;
  const onWrong = opts.onWrong ?? ((detail: string) => { throw new Error(detail); });
  const every = opts.progressEvery ?? 1000;
  const rand = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const log: string[] = [];
  const live: Epctl[] = [];
  const started: Epctl[] = [];
  const res: DifferentialResult = { seed, steps: 0, lookups: 0, fromBpf: 0, wrong: 0 };
  try {
    for (let i = 0; i < 3; i++) live.push(await Epctl.spawn());
    started.push(...live);
    const evChoices = [EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT, EPOLLIN | EPOLLET, EPOLLIN | EPOLLONESHOT,
      EPOLLOUT | EPOLLONESHOT | EPOLLET, EPOLLIN | EPOLLRDHUP | EPOLLPRI, EPOLLIN | EPOLLEXCLUSIVE].map((e) => e >>> 0);
    const ops: [number, (p: Epctl) => Promise<string>][] = [
      [10, async (p) => `create -> ${await p.cmd('create')}`],
      [6, async (p) => `pipe -> ${await p.cmd('pipe')}`],
      [5, async (p) => `eventfd -> ${await p.cmd('eventfd')}`],
      [4, async (p) => `socketpair -> ${await p.cmd('socketpair')}`],
      [28, async (p) => {
        const fds = fdsOf(p.pid);
        const eps = fds.filter((f) => f.epoll);
        if (!eps.length || !fds.length) return 'add: nothing';
        const c = `add ${pick(eps).fd} ${pick(fds).fd} ${pick(evChoices).toString(16)} ${Math.floor(rand() * 2 ** 52)}`;
        await p.cmd(c);
        return c;
      }],
      [8, async (p) => {
        const fds = fdsOf(p.pid);
        const eps = fds.filter((f) => f.epoll);
        if (!eps.length) return 'mod: nothing';
        const c = `mod ${pick(eps).fd} ${pick(fds).fd} ${pick(evChoices.slice(0, 7)).toString(16)} ${Math.floor(rand() * 1000)}`;
        await p.cmd(c);
        return c;
      }],
      [7, async (p) => {
        const fds = fdsOf(p.pid);
        const eps = fds.filter((f) => f.epoll);
        if (!eps.length) return 'del: nothing';
        const c = `del ${pick(eps).fd} ${pick(fds).fd}`;
        await p.cmd(c);
        return c;
      }],
      [9, async (p) => { const f = fdsOf(p.pid); if (!f.length) return 'close: nothing'; const c = `close ${pick(f).fd}`; await p.cmd(c); return c; }],
      [4, async (p) => { const f = fdsOf(p.pid); if (!f.length) return 'dup: nothing'; const c = `dup ${pick(f).fd}`; return `${c} -> ${await p.cmd(c)}`; }],
      [6, async (p) => {
        const f = fdsOf(p.pid);
        if (f.length < 2) return 'dup2: nothing';
        const c = `dup2 ${pick(f).fd} ${rand() < 0.8 ? pick(f).fd : 3 + Math.floor(rand() * 40)}`;
        await p.cmd(c);
        return c;
      }],
      [7, async (p) => { const f = fdsOf(p.pid); if (!f.length) return 'write: nothing'; const c = `write ${pick(f).fd}`; await p.cmd(c); return c; }],
      [6, async (p) => { const e = fdsOf(p.pid).filter((x) => x.epoll); if (!e.length) return 'wait: nothing'; const c = `wait ${pick(e).fd}`; return `${c} -> ${await p.cmd(c)}`; }],
      [2, async (p) => { const f = fdsOf(p.pid); if (!f.length) return 'read: nothing'; const c = `read ${pick(f).fd}`; await p.cmd(c); return c; }],
      [2, async (p) => {
        if (live.length >= 6) return 'fork: enough';
        const c = await p.fork();
        live.push(c);
        started.push(c);
        return `fork -> ${c.pid}`;
      }],
      [1, async (p) => {
        if (live.length <= 2) return 'exit: keep';
        live.splice(live.indexOf(p), 1);
        await p.exit();
        return 'exit';
      }],
    ];
    const total = ops.reduce((s, [w]) => s + w, 0);

    const check = (step: number) => {
      const pids = live.map((p) => p.pid);
      const snapshot = new Map(pids.map((pid) => [pid, epollFdinfos(pid)]));
      for (const p of live) {
        for (const { fd } of fdsOf(p.pid)) {
          let fast: Membership[];
          try {
            fast = tracker.membershipsOf(p.pid, fd);
          } catch (err) {
            if (err instanceof BadFdError) continue; // raced with nothing: fds only change on command
            throw err;
          }
          res.lookups++;
          if (tracker.lastLookup.source === 'bpf') res.fromBpf++;
          const slow = fdinfoMemberships(p.pid, fd, { pids, snapshot });
          if (!sameMemberships(fast, slow)) {
            res.wrong++;
            onWrong(`seed ${seed} step ${step}: pid ${p.pid} fd ${fd}\n  bpf (${tracker.lastLookup.source}${tracker.lastLookup.reason ? `, ${tracker.lastLookup.reason}` : ''}): ${fast.map(fmt).join('; ')}\n  fdinfo: ${slow.map(fmt).join('; ')}\n  last steps:\n    ${log.slice(-15).join('\n    ')}\n  reproduce: EPOLLTRACK_SEED=${seed} EPOLLTRACK_STEPS=${steps}`);
          }
        }
      }
    };

    for (let step = 0; step < steps && !opts.shouldStop?.(); step++) {
      let x = rand() * total;
      const p = pick(live);
      if (process.env.EPOLLTRACK_DEBUG === '2') console.error(`step ${step} on ${p.pid}`);
      // Keep fd tables small enough that checking every fd after every step stays quick.
      const crowded = fdsOf(p.pid).length > 24 && rand() < 0.5;
      const op = crowded ? ops[7][1] : ops.find(([w]) => (x -= w) < 0)![1];
      let what: string;
      try {
        what = await op(p);
      } catch (err) {
        if (!(err instanceof EpctlError)) throw err;
        what = `${err.cmd} -> errno ${err.errno}`;
      }
      log.push(`${step} [${p.pid}] ${what}`);
      if (log.length > 100) log.splice(0, log.length - 20);
      check(step);
      res.steps = step + 1;
      if (process.env.EPOLLTRACK_DEBUG && step % 100 === 0) {
        console.error(`step ${step}: ${live.length} procs, ${live.map((q) => fdsOf(q.pid).length).join('/')} fds, ${res.lookups} lookups, ${res.fromBpf} bpf, ${JSON.stringify(tracker.stats().fallbacks)}`);
      }
      if (opts.onProgress && res.steps % every === 0) opts.onProgress(res);
    }
    return res;
  } finally {
    for (const p of started) p.kill();
  }
}
