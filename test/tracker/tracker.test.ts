/**
 * The tracker against the live kernel: a seeded random differential test
 * (membershipsOf vs the fdinfo way, every fd of every process after every
 * step), cold start, and bad input.
 */
import { expect } from 'chai';
import {
  BadFdError, fdinfoMemberships, NoSuchProcessError, BadInputError,
  type Tracker,
} from '../../src/index.js';
import { Epctl } from '../helpers/epctl.js';
import { suiteTracker } from '../helpers/env.js';
import {
  EPOLLET, EPOLLIN, EPOLLONESHOT, EPOLLOUT, runDifferential, sameMemberships,
} from '../helpers/differential.js';

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
    this.timeout(600000); // 2000 steps, each checked against fdinfo for every fd: minutes on a loaded 2-core host
    const seed = Number(process.env.EPOLLTRACK_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const steps = Number(process.env.EPOLLTRACK_STEPS ?? 2000);
    const { lookups, fromBpf } = await runDifferential({ tracker, seed, steps });
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
