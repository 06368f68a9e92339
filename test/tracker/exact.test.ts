/**
 * Exactness of the tracker on the paths where it used to go wrong, against the
 * live kernel: the epitem snapshot racing another CPU, threads with their own
 * fd table, a zombie group leader, more than 32 epolls on one file, maps full
 * of stale entries, numbers outside the kernel's range, and copiesOf().
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, readFileSync, readlinkSync } from 'node:fs';
import { constants, release } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  BadInputError, fdinfoMemberships, kcmp, KCMP_FILE, pidfdGetfd, pidfdOpen, status,
  type Membership, type Tracker,
} from '../../src/index.js';
import { PIDFD_THREAD } from '../../src/kernel/ffi.js';
import { packageRoot } from '../../src/kernel/bpfobject.js';
import { Epctl } from '../helpers/epctl.js';
import { btfFuncs } from '../../loader/probe.js';
import { suiteTracker } from '../helpers/env.js';

const FIXTURES = join(packageRoot(), 'test', 'fixtures');
const { EINVAL } = constants.errno;

/** Is the running kernel at least major.minor? (tests only: product code probes instead) */
function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = release().split(/[.-]/).map(Number);
  return a > major || (a === major && b >= minor);
}

/** Same registrations: a bijection on (epoll instance, tfd, events, data), compared with kcmp. */
function sameMemberships(a: Membership[], b: Membership[]): boolean {
  if (a.length !== b.length) return false;
  const used = new Set<number>();
  for (const x of a) {
    const i = b.findIndex((y, j) => !used.has(j) && x.tfd === y.tfd && x.events === y.events && x.data === y.data
      && kcmp(x.epollTid ?? x.epollPid, y.epollTid ?? y.epollPid, KCMP_FILE, x.epfd, y.epfd) === 0);
    if (i < 0) return false;
    used.add(i);
  }
  return true;
}

/** Start a fixture that prints one line of numbers when ready. */
async function fixture(cmd: string, args: string[], stdio: (number | 'pipe' | 'inherit')[] = ['pipe', 'pipe', 'inherit']): Promise<{ child: ChildProcess; nums: number[] }> {
  const child = spawn(cmd, args, { stdio });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (c) => reject(new Error(`${cmd} exited (${c}) before it was ready`)));
  });
  return { child, nums: line.split(' ').map(Number) };
}

describe(`Tracker exactness (${process.env.EPOLLTRACK_MODE ?? 'auto'} mode)`, function () {
  let tracker: Tracker;
  let cleanup = () => {};
  const procs: Epctl[] = [];
  const children: ChildProcess[] = [];

  before(async function () {
    ({ tracker, cleanup } = await suiteTracker(this, 'exact'));
  });
  afterEach(() => {
    for (const p of procs.splice(0)) p.kill();
    for (const c of children.splice(0)) if (c.exitCode === null && c.pid) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
  });
  after(() => cleanup());

  it('race: a registration that never changes is in all of 20,000 answers while another CPU churns the same file in another epoll', async function () {
    const p = await Epctl.spawn();
    procs.push(p);
    const [ep] = await p.cmd('create');
    const [s] = await p.cmd('socketpair');
    await p.cmd(`add ${ep} ${s} 1 777`);
    // The churner gets the same file as its fd 3.
    const pidfd = pidfdOpen(p.pid);
    const mine = pidfdGetfd(pidfd, s);
    closeSync(pidfd);
    expect(mine).to.be.greaterThan(0);
    const { child } = await fixture(process.execPath, [join(FIXTURES, 'churn.mjs')], ['pipe', 'pipe', 'inherit', mine]);
    children.push(child);
    closeSync(mine);
    let wrong = 0;
    let both = 0;
    const n = Number(process.env.EPOLLTRACK_RACE_LOOKUPS ?? 20000);
    for (let i = 0; i < n; i++) {
      const got = tracker.membershipsOf(p.pid, s);
      const stable = got.filter((m) => m.epollPid === p.pid && m.epfd === ep && m.tfd === s && m.data === 777n);
      if (stable.length !== 1 || got.length > 2) wrong++;
      if (got.length === 2) both++;
    }
    const pairs = await new Promise<number>((resolve) => {
      createInterface({ input: child.stdout! }).once('line', (l) => resolve(Number(l)));
      child.stdin!.end();
    });
    expect(wrong, `wrong answers in ${n} (${both} saw the churned registration too)`).to.equal(0);
    // The race was really run: the churner worked during the lookups and some answers saw its registration.
    expect(pairs).to.be.greaterThan(1000);
    expect(both).to.be.greaterThan(0);
  });

  it('a thread with its own fd table: the answer names the thread (tid) and the epfd that holds in its table', async function () {
    const { child, nums: [tid, epfd, fd] } = await fixture('python3', [join(FIXTURES, 'threads.py'), 'unshare']);
    children.push(child);
    const pid = child.pid!;
    expect(tid).to.not.equal(pid);
    // The main table has a pipe where the thread has its epoll: naming (pid, epfd) would be wrong.
    expect(readlinkSync(`/proc/${pid}/fd/${epfd}`)).to.match(/^pipe:/);
    expect(readlinkSync(`/proc/${pid}/task/${tid}/fd/${epfd}`)).to.equal('anon_inode:[eventpoll]');
    for (const who of [tid, pid]) {
      const got = tracker.membershipsOf(who, fd);
      expect(got, `lookup(${who}, ${fd})`).to.have.length(1);
      expect(got[0]).to.include({ epollPid: pid, epollTid: tid, epfd, tfd: fd });
    }
    // The fdinfo way agrees, read in the thread's own table.
    expect(readFileSync(`/proc/${pid}/task/${tid}/fdinfo/${epfd}`, 'latin1')).to.match(new RegExp(`^tfd:\\s+${fd}\\s`, 'm'));
    // pidfd_getfd works on the location named: a thread pidfd (PIDFD_THREAD, v6.9+) reads its table.
    // Before v6.9 the kernel has no thread pidfds at all: that is the kernel's limit, checked as such.
    const m = tracker.membershipsOf(tid, fd)[0];
    const pidfd = pidfdOpen(m.epollTid!, m.epollTid !== m.epollPid ? PIDFD_THREAD : 0);
    if (!kernelAtLeast(6, 9)) {
      expect(pidfd, 'pidfd_open(tid, PIDFD_THREAD) before v6.9').to.equal(-EINVAL);
      return;
    }
    expect(pidfd, 'pidfd_open(tid, PIDFD_THREAD)').to.be.at.least(0);
    try {
      const got = pidfdGetfd(pidfd, m.epfd);
      expect(got).to.be.greaterThan(0);
      try {
        expect(readlinkSync(`/proc/self/fd/${got}`)).to.equal('anon_inode:[eventpoll]');
        expect(kcmp(process.pid, tid, KCMP_FILE, got, epfd)).to.equal(0);
      } finally {
        closeSync(got);
      }
    } finally {
      closeSync(pidfd);
    }
    const rows = tracker.registrations({ pid }).filter((r) => r.tfd === fd && r.epfd === epfd);
    expect(rows.map((r) => r.epollTid)).to.include(tid);
  });

  it('a zombie group leader: its process is still found through its live thread', async function () {
    const { child, nums: [tid, epfd, fd] } = await fixture('python3', [join(FIXTURES, 'threads.py'), 'zombie']);
    children.push(child);
    const pid = child.pid!;
    for (let i = 0; i < 100 && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); i++) await new Promise((r) => setTimeout(r, 20));
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).to.match(/^State:\s+Z/m);
    const got = tracker.membershipsOf(pid, fd);
    expect(got).to.have.length(1);
    expect(got[0]).to.include({ epollPid: pid, epfd, tfd: fd });
    expect(got[0].epollTid).to.equal(tid);
    expect(tracker.copiesOf(pid, fd)).to.deep.equal([fd]);
  });

  it('33+ epolls on one file (forked workers register an inherited socket): every process gets every registration', async function () {
    this.timeout(240000);
    const p = await Epctl.spawn();
    procs.push(p);
    const [s] = await p.cmd('socketpair');
    const workers: { w: Epctl; ep: number }[] = [];
    for (let i = 0; i < 34; i++) {
      const w = await p.fork();
      procs.push(w);
      const [ep] = await w.cmd('create');
      await w.cmd(`add ${ep} ${s} 1 ${1000 + i}`);
      workers.push({ w, ep });
    }
    const [own] = await p.cmd('create');
    await p.cmd(`add ${own} ${s} 4 5`);
    const pids = [p.pid, ...workers.map((x) => x.w.pid)];
    const slow = fdinfoMemberships(p.pid, s, { pids });
    expect(slow).to.have.length(35);
    for (const who of [p.pid, workers[0].w.pid, workers[33].w.pid]) {
      const got = tracker.membershipsOf(who, s);
      expect(got, `lookup(${who})`).to.have.length(35);
      expect(sameMemberships(got, slow), `lookup(${who}) vs fdinfo`).to.equal(true);
    }
    // ls lists the shared socket under every process that holds it.
    const rows = tracker.registrations().filter((r) => pids.includes(r.pid) && r.fd === s);
    expect(new Set(rows.map((r) => r.pid)).size).to.equal(35);
    expect(rows.filter((r) => r.pid === workers[5].w.pid)).to.have.length(35);
  });

  it('1,100 epolls on one file, more than the kernel side reports per file: every registration, the fdinfo way said so; walks still work', async function () {
    this.timeout(240000);
    const py = [
      'import os, select, resource, sys',
      'resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))',
      'r, w = os.pipe()',
      'eps = [select.epoll() for _ in range(1100)]',
      'for i, e in enumerate(eps): e.register(r, select.EPOLLIN)',
      'print(r, eps[0].fileno(), eps[-1].fileno(), flush=True)',
      'sys.stdin.read()',
    ].join('\n');
    const { child, nums: [r, first, last] } = await fixture('python3', ['-c', py]);
    children.push(child);
    const got = tracker.membershipsOf(child.pid!, r);
    // One answer holds 1,024 (v6.2+), the iterator 32, the host walk 512 per file:
    // past that the fast path cannot be sure, and says so.
    expect(tracker.lastLookup).to.include({ source: 'fdinfo', reason: 'truncated' });
    expect(got).to.have.length(1100);
    expect(new Set(got.map((m) => m.epfd)).size).to.equal(1100);
    expect(got.map((m) => m.epfd)).to.include.members([first, last]);
    expect(sameMemberships(got, fdinfoMemberships(child.pid!, r))).to.equal(true);
    // Such a file cannot break a host walk (one visit's output must fit the iterator's buffer).
    const rows = tracker.registrations({ pid: child.pid! }).filter((x) => x.fd === r);
    expect(rows).to.have.length(1100);
    expect(new Set(rows.map((x) => x.epfd)).size).to.equal(1100);
    expect(tracker.registrations().filter((x) => x.pid === child.pid && x.fd === r)).to.have.length(1100);
    expect(tracker.resync().registrations).to.be.at.least(512);
  });

  it('an epoll never seen before, held high in a big fd table, is found by the in-kernel scan, not the host walk', async function () {
    // The scan is the lookup program's (v6.2+). On the iterator path (v6.1) with no
    // hooks, the first lookup takes the in-kernel host walk instead: still exact,
    // still 'bpf'. With hooks the epoll was seen at creation, so no path walks.
    const walks = tracker.lookupPath === 'iter' && tracker.mode === 'lazy' ? 1 : 0;
    const p = await Epctl.spawn();
    procs.push(p);
    const [s] = await p.cmd('socketpair');
    await p.cmd('nfds 5000');
    const [ep] = await p.cmd('create');
    expect(ep).to.be.at.least(4999);
    await p.cmd(`add ${ep} ${s} 1 9`);
    const hostWalks = () => { const f = tracker.stats().fallbacks; return f.resynced + f['no-location'] + f['unverified-location'] + f.truncated; };
    const before = hostWalks();
    const got = tracker.membershipsOf(p.pid, s);
    expect(got).to.have.length(1);
    expect(got[0]).to.include({ epollPid: p.pid, epfd: ep, tfd: s });
    expect(tracker.lastLookup.source).to.equal('bpf');
    expect(hostWalks() - before, 'host walks').to.equal(walks);
    expect(sameMemberships(got, fdinfoMemberships(p.pid, s))).to.equal(true);
  });

  it('the scan (16 slots a step) finds a moved epoll at every slot of its chunk, up to the table\'s last', async function () {
    // The scan is the lookup program's (v6.2+); the iterator path (v6.1) answers such a
    // lookup from the host walk: the answers are checked on both, the walks on the first.
    const scans = tracker.lookupPath === 'prog';
    const p = await Epctl.spawn();
    procs.push(p);
    const [s] = await p.cmd('socketpair');
    await p.cmd('nfds 200'); // a table of 256 slots
    let [at] = await p.cmd('create');
    await p.cmd(`add ${at} ${s} 1 9`);
    expect(tracker.membershipsOf(p.pid, s)[0]).to.include({ epfd: at });
    const hostWalks = () => { const f = tracker.stats().fallbacks; return f.resynced + f['no-location'] + f['unverified-location'] + f.truncated; };
    const before = hostWalks();
    // Each move leaves a stale location behind (the number it was at): the lookup scans for it.
    for (let to = 220; to < 256; to++) {
      await p.cmd(`dup2 ${at} ${to}`);
      await p.cmd(`close ${at}`);
      at = to;
      const got = tracker.membershipsOf(p.pid, s);
      expect(got, `epoll at ${to}`).to.have.length(1);
      expect(got[0], `epoll at ${to}`).to.include({ epollPid: p.pid, epfd: to, tfd: s });
    }
    if (scans) expect(hostWalks() - before, 'host walks').to.equal(0);
  });

  it('takes the lookup program wherever the kernel has bpf_task_from_pid (a refused program is an error, not a silent slow path)', function () {
    const kfunc = btfFuncs(['bpf_task_from_pid']).size > 0;
    expect(tracker.lookupPath).to.equal(kfunc && process.env.EPOLLTRACK_LOOKUP !== 'iter' ? 'prog' : 'iter');
  });

  it('numbers outside the kernel\'s range are BadInputError, never a wrapped lookup', async function () {
    const p = await Epctl.spawn();
    procs.push(p);
    const [ep] = await p.cmd('create');
    const [r] = await p.cmd('pipe');
    await p.cmd(`add ${ep} ${r} 1 1`);
    for (const [pid, fd] of [[p.pid, 2 ** 32 + r], [p.pid, 2 ** 31], [p.pid, -1], [2 ** 32 + p.pid, r], [2 ** 31, r], [0, r], [-p.pid, r], [p.pid, 1.5], [Number.NaN, r]]) {
      expect(() => tracker.membershipsOf(pid, fd), `${pid}:${fd}`).to.throw(BadInputError, /must be an integer/);
      expect(() => tracker.copiesOf(pid, fd), `copies ${pid}:${fd}`).to.throw(BadInputError);
    }
    expect(tracker.membershipsOf(p.pid, r)).to.have.length(1);
  });

  it('copiesOf: every fd of the task\'s table holding the file, and no scan needed for a single reference', async function () {
    const p = await Epctl.spawn();
    procs.push(p);
    const [a] = await p.cmd('eventfd');
    expect(tracker.copiesOf(p.pid, a)).to.deep.equal([a]);
    const [b] = await p.cmd(`dup ${a}`);
    await p.cmd(`dup2 ${a} 60`);
    expect(tracker.copiesOf(p.pid, a)).to.deep.equal([a, b, 60].sort((x, y) => x - y));
    expect(tracker.copiesOf(p.pid, 60)).to.deep.equal([a, b, 60].sort((x, y) => x - y));
    // A copy in another process is another table: not listed, but it stops the early exit.
    const child = await p.fork();
    procs.push(child);
    await p.cmd(`close ${b}`);
    expect(tracker.copiesOf(p.pid, a)).to.deep.equal([a, 60]);
    expect(tracker.copiesOf(child.pid, a)).to.deep.equal([a, b, 60].sort((x, y) => x - y));
    await p.cmd('nfds 3000');
    await p.cmd(`dup2 ${a} 2999`);
    expect(tracker.copiesOf(p.pid, a)).to.deep.equal([a, 60, 2999]);
  });

  it('swapLookup: one lookup answers what membershipsOf and references would, alone or not, and `alone` stays exact without the scan', async function () {
    const p = await Epctl.spawn();
    procs.push(p);
    const [ep] = await p.cmd('create');
    const [s] = await p.cmd('socketpair');
    await p.cmd(`add ${ep} ${s} 1 42`);
    const both = (outside: number, scan = true) => {
      const got = tracker.swapLookup(p.pid, s, outside, scan);
      expect(sameMemberships(got.memberships, tracker.membershipsOf(p.pid, s)), 'memberships').to.equal(true);
      expect(got.memberships).to.have.length(1);
      return got.refs;
    };
    // The reference count comes with the lookup program (v6.2+); without it nothing is ever
    // known to be alone (the iterator path, v6.1).
    const counts = tracker.lookupPath === 'prog';
    // The table's one copy: no scan, alone. With a copy of our own (pidfd_getfd), alone when it is counted.
    expect(both(0)).to.deep.equal(tracker.references(p.pid, s, 0));
    expect(both(0).alone).to.equal(counts);
    const pidfd = pidfdOpen(p.pid);
    const mine = pidfdGetfd(pidfd, s);
    try {
      expect(both(1)).to.deep.equal(tracker.references(p.pid, s, 1));
      expect(both(1)).to.include({ alone: counts });
      expect(both(0).alone, 'our copy not counted').to.equal(false);
      // A second copy in the table: the scan finds it (as references does); without the scan, not alone.
      const [d] = await p.cmd(`dup2 ${s} 70`);
      expect(d).to.equal(70);
      expect(both(1)).to.deep.equal(tracker.references(p.pid, s, 1));
      expect(both(1).fds).to.deep.equal([s, 70]);
      expect(both(1, false)).to.include({ alone: false }).and.to.have.property('fds').that.deep.equals([s]);
      await p.cmd('close 70');
      expect(both(1, false)).to.include({ alone: counts });
      // A copy in another process (a fork child): never alone.
      const child = await p.fork();
      procs.push(child);
      expect(both(1)).to.deep.equal(tracker.references(p.pid, s, 1));
      expect(both(1).alone).to.equal(false);
      expect(both(1, false).alone).to.equal(false);
    } finally {
      closeSync(mine);
      closeSync(pidfd);
    }
  });
});

describe('Tracker with maps full of stale entries', function () {
  const procs: Epctl[] = [];
  let cleanup = () => {};
  after(() => { for (const p of procs) p.kill(); cleanup(); });

  it('stale entries are bounded (LRU) and the first lookup after a churn is exact', async function () {
    this.timeout(240000);
    const suite = await suiteTracker(this, 'stale', { maxRegs: 64, maxEpolls: 32 });
    cleanup = suite.cleanup;
    // Churn: processes that register and exit (no close(2): nothing removes their entries).
    for (let round = 0; round < 6; round++) {
      const q = await Epctl.spawn();
      for (let i = 0; i < 12; i++) {
        const [ep] = await q.cmd('create');
        const [r] = await q.cmd('pipe');
        await q.cmd(`add ${ep} ${r} 1 ${i}`);
        suite.tracker.membershipsOf(q.pid, r); // lookups teach the maps too
      }
      await q.exit();
    }
    const st = status({ pinDir: suite.pinDir });
    expect(st.maps!.regs.entries).to.be.at.most(64);
    expect(st.maps!.epolls.entries).to.be.at.most(32);
    const p = await Epctl.spawn();
    procs.push(p);
    const [ep] = await p.cmd('create');
    const [r] = await p.cmd('pipe');
    await p.cmd(`add ${ep} ${r} 1 4242`);
    const got = suite.tracker.membershipsOf(p.pid, r);
    expect(got).to.have.length(1);
    expect(got[0]).to.include({ epollPid: p.pid, epfd: ep, tfd: r, data: 4242n });
    expect(sameMemberships(got, fdinfoMemberships(p.pid, r))).to.equal(true);
  });
});
