/**
 * The tracker against the live kernel: a seeded random differential test
 * (membershipsOf vs the fdinfo way, every fd of every process after every
 * step), cold start, and bad input.
 */
import { expect } from 'chai';
import { readdirSync, readlinkSync } from 'node:fs';
import {
  BadFdError, fdinfoMemberships, kcmp, KCMP_FILE, NoSuchProcessError, BadInputError,
  type Membership, type Tracker,
} from '../../src/index.js';
import { epollFdinfos } from '../../src/tracker/fdinfo.js';
import { Epctl, EpctlError } from '../helpers/epctl.js';
import { rng, suiteTracker } from '../helpers/env.js';

const EPOLLIN = 0x1, EPOLLPRI = 0x2, EPOLLOUT = 0x4, EPOLLRDHUP = 0x2000;
const EPOLLEXCLUSIVE = 2 ** 28, EPOLLONESHOT = 2 ** 30, EPOLLET = 2 ** 31;

function fdsOf(pid: number): { fd: number; epoll: boolean }[] {
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

const fmt = (m: Membership) => `${m.epollPid}:${m.epfd} tfd=${m.tfd} ev=0x${m.events.toString(16)} data=${m.data}`;

/** Same registrations: a bijection on (epoll instance, tfd, events, data). */
function sameMemberships(a: Membership[], b: Membership[]): boolean {
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

describe(`Tracker (${process.env.EPOLLTRACK_MODE ?? 'auto'} mode)`, function () {
  let tracker: Tracker;
  let cleanup = () => {};
  const procs: Epctl[] = [];

  before(async function () {
    ({ tracker, cleanup } = await suiteTracker(this, 'tracker'));
    if (process.env.EPOLLTRACK_MODE) expect(tracker.mode).to.equal(process.env.EPOLLTRACK_MODE);
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) p.kill();
  });
  after(() => cleanup());

  it('answers a simple registration from the map, verified, with events as fdinfo shows them', async () => {
    const p = await Epctl.spawn();
    procs.push(p);
    const [ep] = await p.cmd('create');
    const [r] = await p.cmd('pipe');
    await p.cmd(`add ${ep} ${r} ${((EPOLLIN | EPOLLET) >>> 0).toString(16)} 12345678901234`);
    const got = tracker.membershipsOf(p.pid, r);
    expect(tracker.lastLookup.source).to.equal('bpf');
    expect(got).to.have.length(1);
    expect(got[0]).to.include({ epollPid: p.pid, epfd: ep, tfd: r, source: 'bpf' });
    expect(got[0].data).to.equal(12345678901234n);
    expect(sameMemberships(got, fdinfoMemberships(p.pid, r))).to.equal(true);
  });

  it('reports EPOLLONESHOT masks after they fired, with no syscall to see', async () => {
    const p = await Epctl.spawn();
    procs.push(p);
    const [ep] = await p.cmd('create');
    const [efd] = await p.cmd('eventfd');
    await p.cmd(`add ${ep} ${efd} ${(EPOLLIN | EPOLLONESHOT).toString(16)} 7`);
    const before = tracker.membershipsOf(p.pid, efd)[0].events;
    await p.cmd(`write ${efd}`);
    expect(await p.cmd(`wait ${ep}`)).to.deep.equal([1]);
    const after = tracker.membershipsOf(p.pid, efd);
    expect(after[0].events).to.not.equal(before);
    expect(after[0].events & EPOLLIN).to.equal(0);
    expect(sameMemberships(after, fdinfoMemberships(p.pid, efd))).to.equal(true);
  });

  it('finds an epoll held only by another process (fork) and verifies it there', async () => {
    const p = await Epctl.spawn();
    procs.push(p);
    const [s] = await p.cmd('socketpair');
    const child = await p.fork();
    procs.push(child);
    const [ep] = await child.cmd('create');
    await child.cmd(`add ${ep} ${s} 1 99`);
    await child.cmd(`close ${s}`); // the parent still holds the socket: the registration stays
    const got = tracker.membershipsOf(p.pid, s);
    expect(got).to.have.length(1);
    expect(got[0]).to.include({ epollPid: child.pid, epfd: ep, tfd: s });
    expect(sameMemberships(got, fdinfoMemberships(p.pid, s, { pids: [child.pid] }))).to.equal(true);
  });

  it('sees registrations made through io_uring (IORING_OP_EPOLL_CTL), which bypass the epoll_ctl syscall', async () => {
    const p = await Epctl.spawn();
    procs.push(p);
    const [ep] = await p.cmd('create');
    const [s] = await p.cmd('socketpair');
    await p.cmd(`uadd ${ep} ${s} 5 4242`);
    const got = tracker.membershipsOf(p.pid, s);
    expect(got.map((m) => [m.epfd, m.tfd, m.data])).to.deep.equal([[ep, s, 4242n]]);
    expect(sameMemberships(got, fdinfoMemberships(p.pid, s))).to.equal(true);
  });

  it('fd not in any epoll: empty answer; closed fd and unknown pid: clear errors', async () => {
    const p = await Epctl.spawn();
    procs.push(p);
    const [efd] = await p.cmd('eventfd');
    expect(tracker.membershipsOf(p.pid, efd)).to.deep.equal([]);
    await p.cmd(`close ${efd}`);
    expect(() => tracker.membershipsOf(p.pid, efd)).to.throw(BadFdError, /no open fd/);
    expect(() => fdinfoMemberships(p.pid, efd)).to.throw(BadFdError, /no open fd/);
    await p.exit();
    expect(() => tracker.membershipsOf(p.pid, efd)).to.throw(NoSuchProcessError, /no process/);
    expect(() => tracker.membershipsOf(-1, 0)).to.throw(BadInputError);
    expect(() => fdinfoMemberships(p.pid, 0)).to.throw(NoSuchProcessError);
  });

  it('differential: random epoll life in several processes matches the fdinfo way at every step', async function () {
    const seed = Number(process.env.EPOLLTRACK_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const steps = Number(process.env.EPOLLTRACK_STEPS ?? 2000);
    const rand = rng(seed);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const log: string[] = [];
    const live: Epctl[] = [];
    for (let i = 0; i < 3; i++) live.push(await Epctl.spawn());
    procs.push(...live);
    let lookups = 0;
    let fromBpf = 0;
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
        procs.push(c);
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
          lookups++;
          if (tracker.lastLookup.source === 'bpf') fromBpf++;
          const slow = fdinfoMemberships(p.pid, fd, { pids, snapshot });
          if (!sameMemberships(fast, slow)) {
            throw new Error(`seed ${seed} step ${step}: pid ${p.pid} fd ${fd}\n  bpf (${tracker.lastLookup.source}${tracker.lastLookup.reason ? `, ${tracker.lastLookup.reason}` : ''}): ${fast.map(fmt).join('; ')}\n  fdinfo: ${slow.map(fmt).join('; ')}\n  last steps:\n    ${log.slice(-15).join('\n    ')}\n  reproduce: EPOLLTRACK_SEED=${seed} EPOLLTRACK_STEPS=${steps}`);
          }
        }
      }
    };

    for (let step = 0; step < steps; step++) {
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
      check(step);
      if (process.env.EPOLLTRACK_DEBUG && step % 100 === 0) {
        console.error(`step ${step}: ${live.length} procs, ${live.map((q) => fdsOf(q.pid).length).join('/')} fds, ${lookups} lookups, ${fromBpf} bpf, ${JSON.stringify(tracker.stats().fallbacks)}`);
      }
    }
    // The fast path must really be the one answering, or this test proves nothing.
    expect(lookups).to.be.greaterThan(steps);
    expect(fromBpf / lookups, `share answered by bpf (seed ${seed})`).to.be.greaterThan(0.9);
  });
});

describe('Tracker cold start', function () {
  const procs: Epctl[] = [];
  let cleanup = () => {};
  after(() => { for (const p of procs) p.kill(); cleanup(); });

  it('finds registrations made before the tracker was loaded', async function () {
    const p = await Epctl.spawn();
    procs.push(p);
    const [ep] = await p.cmd('create');
    const [r] = await p.cmd('pipe');
    const [s] = await p.cmd('socketpair');
    await p.cmd(`add ${ep} ${r} 1 5`);
    await p.cmd(`add ${ep} ${s} ${((EPOLLIN | EPOLLOUT | EPOLLET) >>> 0).toString(16)} 6`);
    const [dupEp] = await p.cmd(`dup ${ep}`);
    await p.cmd(`close ${ep}`); // only the dup remains: the location must come from the walk
    const suite = await suiteTracker(this, 'cold');
    cleanup = suite.cleanup;
    for (const fd of [r, s]) {
      const got = suite.tracker.membershipsOf(p.pid, fd);
      expect(suite.tracker.lastLookup.source, `fd ${fd}`).to.equal('bpf');
      expect(got).to.have.length(1);
      expect(got[0]).to.include({ epollPid: p.pid, epfd: dupEp, tfd: fd });
      expect(sameMemberships(got, fdinfoMemberships(p.pid, fd))).to.equal(true);
    }
    const rows = suite.tracker.registrations({ pid: p.pid });
    expect(rows.map((x) => [x.fd, x.tfd, x.epfd])).to.deep.equal([[r, r, dupEp], [s, s, dupEp]]);
  });
});

describe('Tracker with full maps', function () {
  const procs: Epctl[] = [];
  let cleanup = () => {};
  after(() => { for (const p of procs) p.kill(); cleanup(); });

  it('maps far too small for the workload: they evict instead of refusing, and lookups stay exact', async function () {
    const suite = await suiteTracker(this, 'full', { maxRegs: 4, maxEpolls: 2 });
    cleanup = suite.cleanup;
    const p = await Epctl.spawn();
    procs.push(p);
    const eps: number[] = [];
    for (let i = 0; i < 4; i++) eps.push((await p.cmd('create'))[0]);
    const targets: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [r] = await p.cmd('pipe');
      targets.push(r);
      for (const ep of eps) await p.cmd(`add ${ep} ${r} 1 ${ep * 100 + r}`);
    }
    const st = suite.tracker.stats().kernel;
    // LRU maps: a full map evicts its oldest entry, it never refuses one.
    expect(Number(st.regsFull), 'regs full').to.equal(0);
    expect(Number(st.epollsFull), 'epolls full').to.equal(0);
    for (const r of [...targets, ...targets]) {
      const got = suite.tracker.membershipsOf(p.pid, r);
      expect(sameMemberships(got, fdinfoMemberships(p.pid, r)), `fd ${r} (${suite.tracker.lastLookup.source})`).to.equal(true);
      expect(got).to.have.length(4);
    }
  });
});
