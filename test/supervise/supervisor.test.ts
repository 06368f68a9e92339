/**
 * The supervisor with real processes: a client that registers its socket in
 * epoll before connect() runs in a network namespace of the test's own and
 * reaches a server on the host's loopback only through --redirect.
 */
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fdinfoMemberships, load, openTracker, unload, type Tracker } from '../../src/index.js';
import { closeFd, KCMP_FILE, kcmp, pidfdGetfd, pidfdOpen } from '../../src/kernel/ffi.js';
import { parseEndpoint, socketInfo } from '../../src/supervise/seccomp.js';
import { supervise } from '../../src/supervise/launch.js';
import { packageRoot } from '../../src/kernel/bpfobject.js';
import { EpctlChannel } from '../../src/cli/epctl-channel.js';
import type { SupervisorOptions, SwapRecord } from '../../src/supervise/supervisor.js';
import { createSocket, type Socket } from 'node:dgram';
import { TEST_MODE, testPinDir } from '../helpers/env.js';
import { hangingServer, type HangingServer } from '../helpers/hang.js';

const BIN = join(process.cwd(), 'build', 'bin');
const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const FROM = '127.0.0.2:80';
const HANG_FROM = '127.0.0.2:81';
const SILENT_FROM = '127.0.0.2:82';
const UDP_FROM = '127.0.0.2:53';

/** The socket options of pid:fd that a supervisor must carry over: those set by the program, or those named. */
function socketOptsOf(pid: number, fd: number, labels?: string[]): Record<string, number> {
  const pidfd = pidfdOpen(pid);
  const copy = pidfdGetfd(pidfd, fd);
  try {
    const info = socketInfo(copy);
    const pick = labels ? (info?.options ?? []).filter((o) => labels.includes(o.label)) : (info?.changed ?? []);
    return Object.fromEntries(pick.map((o) => [o.label, o.value]));
  } finally {
    closeFd(copy);
    closeFd(pidfd);
  }
}

interface ClientLine { i: number; pid: number; fd: number; connect: string; out: boolean; in: boolean; reply: string; mod: number; del: number }

describe('supervisor', function () {
  const ns = `h10swap-sup-${process.pid}`;
  let server: Server;
  let port = 0;
  let hang: HangingServer | undefined;
  let hangPort = 0;
  let tracker: Tracker;
  const pinDir = testPinDir('supervisor');
  let silent: Server;
  let silentPort = 0;
  let udp: Socket;
  let udpPort = 0;

  before(async () => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    server = createServer((s) => s.on('data', () => s.end('pong\n')).on('error', () => {}));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    hang = hangingServer(); // connects to it hang
    hangPort = hang.port;
    // A server that accepts and never writes (SO_RCVTIMEO), and a UDP echo server.
    silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentPort = (silent.address() as { port: number }).port;
    udp = createSocket('udp4');
    udp.on('message', (_m, rinfo) => udp.send('pong\n', rinfo.port, rinfo.address));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    udpPort = udp.address().port;
    load({ pinDir, mode: TEST_MODE });
    tracker = await openTracker({ pinDir });
  });

  after(() => {
    tracker?.close();
    unload({ pinDir });
    server?.close();
    silent?.close();
    udp?.close();
    hang?.close();
    spawnSync('ip', ['netns', 'delete', ns]);
  });

  const redirects = () => [
    { from: parseEndpoint(FROM)!, to: parseEndpoint(`127.0.0.1:${port}`)! },
    { from: parseEndpoint(HANG_FROM)!, to: parseEndpoint(`127.0.0.1:${hangPort}`)! },
    { from: parseEndpoint(SILENT_FROM)!, to: parseEndpoint(`127.0.0.1:${silentPort}`)! },
    { from: parseEndpoint(UDP_FROM)!, to: parseEndpoint(`127.0.0.1:${udpPort}`)!, proto: 'udp' as const },
  ];

  /** Run a command in the test netns under the in-process supervisor; collect its stdout lines and the swaps. */
  async function runSupervised(cmd: string[], fixup: boolean, during?: (child: ChildProcess) => void, extra: Partial<SupervisorOptions> = {}): Promise<{ out: string; swaps: SwapRecord[]; code: number | null }> {
    let out = '';
    const r = await supervise('ip', ['netns', 'exec', ns, ...cmd], {
      ...extra, redirects: redirects(), fixup, tracker, stdio: 'pipe',
      onSpawn: (_pid, child) => { child.stdout!.on('data', (d: Buffer) => { out += d.toString(); }); during?.(child); },
    });
    return { out, swaps: r.supervisor.swaps, code: r.code };
  }

  /** epctl in the test netns under the in-process supervisor, commanded step by step. */
  function supervisedEpctl() {
    let channel: EpctlChannel | undefined;
    const done = supervise('ip', ['netns', 'exec', ns, join(BIN, 'epctl')], {
      redirects: redirects(), tracker, stdio: 'pipe',
      onSpawn: (_pid, child) => { channel = new EpctlChannel(child); },
    });
    return { ch: () => channel!, cmd: (c: string) => channel!.cmd(c), done };
  }

  const client = (...opts: string[]) => [join(BIN, 'epclient'), ...opts, '127.0.0.2', '80'];
  const lines = (out: string) => out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as ClientLine);

  const scenarios: [string, string[], number][] = [
    ['non-blocking', [], 1],
    ['blocking', ['--block'], 1],
    ['EPOLLET', ['--et'], 1],
    ['EPOLLONESHOT', ['--oneshot'], 1],
    ['EPOLLEXCLUSIVE', ['--exclusive'], 1],
    ['two epolls', ['--epolls', '2'], 1],
    ['a dup\'d fd (old file stays alive)', ['--dup'], 1],
    ['an epoll shared with a forked child', ['--fork'], 1],
    ['8 threads connecting at once', ['--threads', '8', '--et'], 8],
  ];

  for (const [name, opts, n] of scenarios) {
    it(`${name}: with the fix-up the program gets its events and MOD/DEL work; without it, it breaks`, async () => {
      const fixed = await runSupervised(client(...opts), true);
      const got = lines(fixed.out);
      expect(got, fixed.out).to.have.length(n);
      for (const l of got) {
        expect(l, JSON.stringify(l)).to.include({ out: true, in: true, reply: 'pong', mod: 0, del: 0 });
      }
      expect(fixed.swaps.filter((s) => s.result === 'swapped')).to.have.length(n);
      for (const s of fixed.swaps) expect(s.moved, JSON.stringify(s)).to.equal(opts.includes('2') && opts[0] === '--epolls' ? 2 : 1);

      const broken = await runSupervised(client(...opts, '--timeout', '500'), false);
      const bl = lines(broken.out);
      expect(bl).to.have.length(n);
      for (const l of bl) expect(l.out && l.in && l.mod === 0 && l.del === 0, `breakage not seen: ${JSON.stringify(l)}`).to.equal(false);
    });
  }

  it('moves the registration exactly: same epoll, fd, events and data; the old one is gone', async () => {
    // epctl drives the steps, so the test can look between them.
    const { ch, cmd, done } = supervisedEpctl();
    const [pid] = await cmd('pid');
    const [ep] = await cmd('create');
    const [ep2] = await cmd('create');
    const [s] = await cmd('socket');
    const [keep] = await cmd(`dup ${s}`); // a copy of the old file: it gets the new one too (issue 10), registration and all
    await cmd(`add ${ep} ${s} ${(0x80000000 | 0x2000 | 0x1).toString(16)} 81985529216486895`);
    await cmd(`add ${ep2} ${s} 40000004 42`);
    await cmd(`add ${ep2} ${keep} 1 7`); // the old file under another number: moves with its number
    await cmd(`sockopts ${s}`);
    await cmd(`cloexec ${s}`);
    const cloexecOf = (fd: number) => (parseInt(/^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'))![1], 8) & 0o2000000) !== 0;
    expect(cloexecOf(s)).to.equal(true);
    expect(cloexecOf(keep)).to.equal(false);
    // A third epoll whose EPOLLONESHOT registration already fired: it must stay disarmed.
    const [ep3] = await cmd('create');
    await cmd(`add ${ep3} ${s} 40000004 3`);
    expect(await cmd(`wait ${ep3}`)).to.deep.equal([1]); // an unconnected TCP socket is writable: fires
    const optsBefore = socketOptsOf(pid, s);
    // The file at s is registered under s twice, and under keep once (same file).
    const all = tracker.membershipsOf(pid, s).sort((a, b) => a.epfd - b.epfd || a.tfd - b.tfd);
    expect(all.map((m) => [m.epfd, m.tfd, m.data])).to.deep.equal([[ep, s, 81985529216486895n], [ep2, s, 42n], [ep2, keep, 7n], [ep3, s, 3n]]);
    expect(all[3].events, 'fired EPOLLONESHOT keeps only its private bits').to.equal(0x40000000);
    const before = all;
    await cmd(`connect ${s} 127.0.0.2 80`); // blocking: swapped when it returns
    const after = tracker.membershipsOf(pid, s).sort((a, b) => a.epfd - b.epfd || a.tfd - b.tfd);
    // EPOLL_CTL_ADD always arms EPOLLERR|EPOLLHUP (0x18): a fired EPOLLONESHOT comes back
    // disarmed but for those two. Every other registration is the same to the bit.
    const ERR_HUP = 0x18;
    const norm = (ms: typeof after) => ms.map(({ source, ...m }) => ({ ...m, events: m.epfd === ep3 ? (m.events & ~ERR_HUP) >>> 0 : m.events }));
    expect(norm(after)).to.deep.equal(norm(before));
    expect(after.filter((m) => m.epfd !== ep3).map(({ source, ...m }) => m)).to.deep.equal(before.filter((m) => m.epfd !== ep3).map(({ source, ...m }) => m));
    expect(after).to.deep.equal(fdinfoMemberships(pid, s).sort((a, b) => a.epfd - b.epfd || a.tfd - b.tfd).map((m) => ({ ...m, source: after[0].source })));
    expect(after.find((m) => m.epfd === ep3)?.events, 'still disarmed (but for ERR|HUP)').to.equal(0x40000000 | ERR_HUP);
    expect(await cmd(`wait ${ep3}`), 'a disarmed EPOLLONESHOT does not fire').to.deep.equal([0]);
    expect(cloexecOf(s), 'close-on-exec kept').to.equal(true);
    const optsAfter = socketOptsOf(pid, s, Object.keys(optsBefore));
    expect(optsAfter).to.deep.equal(optsBefore);
    expect(optsAfter.SO_KEEPALIVE).to.equal(1);
    expect(optsAfter.TCP_NODELAY).to.equal(1);
    expect(optsAfter.SO_REUSEADDR).to.equal(1);
    // The copy at `keep` holds the new file too, with its own registration moved.
    expect(kcmp(pid, pid, KCMP_FILE, s, keep), 'keep holds the new socket').to.equal(0);
    expect(await ch().send(`peer ${keep}`)).to.equal('ok 1');
    const atKeep = tracker.membershipsOf(pid, keep).filter((m) => m.tfd === keep);
    expect(atKeep.map((m) => [m.epfd, m.tfd, m.data])).to.deep.equal([[ep2, keep, 7n]]);
    await ch().send('exit');
    const r = await done;
    expect(r.supervisor.swaps.map((x) => [x.result, x.moved, x.copies])).to.deep.equal([['swapped', 4, [s, keep].sort((a, b) => a - b)]]);
  });

  it('a non-blocking connect: the options the program set are carried over (read and set on the pool thread), the registration moved', async () => {
    const { ch, cmd, done } = supervisedEpctl();
    const [pid] = await cmd('pid');
    const [ep] = await cmd('create');
    const [s] = await cmd('socket');
    await cmd(`sockopts ${s}`);
    await cmd(`nonblock ${s}`);
    await cmd(`add ${ep} ${s} 5 9`);
    const optsBefore = socketOptsOf(pid, s);
    expect(optsBefore).to.include({ SO_KEEPALIVE: 1, SO_REUSEADDR: 1, TCP_NODELAY: 1 });
    expect(await ch().send(`connect ${s} 127.0.0.2 80`)).to.match(/EINPROGRESS|115/);
    expect(await cmd(`wait ${ep}`)).to.deep.equal([1]);
    expect(await ch().send(`peer ${s}`)).to.equal('ok 1');
    expect(socketOptsOf(pid, s, Object.keys(optsBefore))).to.deep.equal(optsBefore);
    expect(tracker.membershipsOf(pid, s).map((m) => [m.epfd, m.tfd, m.data])).to.deep.equal([[ep, s, 9n]]);
    await ch().send('exit');
    const r = await done;
    expect(r.supervisor.swaps.map((x) => [x.result, x.moved, x.unset])).to.deep.equal([['swapped', 1, undefined]]);
  });

  it('moves a registration that was made through io_uring', async () => {
    const { ch, cmd, done } = supervisedEpctl();
    const [pid] = await cmd('pid');
    const [ep] = await cmd('create');
    const [s] = await cmd('socket');
    await cmd(`uadd ${ep} ${s} 5 31337`);
    const before = tracker.membershipsOf(pid, s);
    expect(before.map((m) => [m.epfd, m.tfd, m.data])).to.deep.equal([[ep, s, 31337n]]);
    await cmd(`connect ${s} 127.0.0.2 80`);
    const after = tracker.membershipsOf(pid, s);
    expect(after.map(({ source, ...m }) => m)).to.deep.equal(before.map(({ source, ...m }) => m));
    expect(await ch().send(`mod ${ep} ${s} 1 0`)).to.equal('ok 0');
    await ch().send('exit');
    await done;
  });

  it('two threads connecting the same socket at once: one swap, the other gets what the kernel says', async () => {
    const r = await runSupervised([join(BIN, 'badconnect'), 'race', '127.0.0.2', '80'], true);
    const got = r.out.trim().split('\n').map((l) => JSON.parse(l) as { ret: number; errno: string });
    expect(got).to.have.length(2);
    const ok = got.filter((g) => g.ret === 0);
    const other = got.filter((g) => g.ret !== 0);
    expect(ok, r.out).to.have.length(1);
    expect(['EISCONN', 'EALREADY']).to.include(other[0].errno);
    expect(r.swaps.filter((x) => x.result === 'swapped' && !x.error)).to.have.length(1);
  });

  it('two threads connecting one socket through two numbers (a dup) at once: one swap installs it at both, the other connect gets what the kernel says', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await runSupervised([join(BIN, 'badconnect'), 'racedup', '127.0.0.2', '80'], true);
      const got = r.out.trim().split('\n').map((l) => JSON.parse(l) as { mode: string; ret: number; errno: string; same?: number; peer?: number });
      const races = got.filter((g) => g.mode === 'race');
      expect(races, r.out).to.have.length(2);
      expect(races.filter((g) => g.ret === 0), r.out).to.have.length(1);
      expect(['EISCONN', 'EALREADY'], r.out).to.include(races.find((g) => g.ret !== 0)!.errno);
      // Both numbers hold the one replacement, connected: no number was left with the old socket
      // or given a second replacement.
      expect(got.find((g) => g.mode === 'after'), r.out).to.include({ same: 1, peer: 1 });
      const swapped = r.swaps.filter((x) => x.result === 'swapped' && !x.error);
      expect(swapped, JSON.stringify(r.swaps)).to.have.length(1);
      expect(swapped[0].copies, JSON.stringify(swapped)).to.have.length(2);
    }
  });

  it('a storm of 240 concurrent connects: every program served right, and the supervisor holds few fds at any moment', async function () {
    this.timeout(120000);
    // Sampled from another thread, so that a pile-up inside one run of the event loop shows too.
    const sampler = new Worker(`
      const { readdirSync } = require('node:fs');
      const { parentPort, workerData } = require('node:worker_threads');
      const nap = new Int32Array(new SharedArrayBuffer(4));
      let max = 0, stop = false;
      parentPort.on('message', () => { stop = true; });
      (function loop() {
        for (let i = 0; i < 200 && !stop; i++) {
          max = Math.max(max, readdirSync('/proc/' + workerData + '/fd').length);
          Atomics.wait(nap, 0, 0, 1);
        }
        if (stop) parentPort.postMessage(max); else setImmediate(loop);
      })();`, { eval: true, workerData: process.pid });
    // The target in a process of its own: its connections are not the supervisor's fds.
    const echod = spawn(join(BIN, 'echod'), [], { stdio: ['ignore', 'pipe', 'inherit'] });
    const echoPort = await new Promise<number>((resolve) => echod.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    let out = '';
    const base = readdirSync('/proc/self/fd').length;
    const cmd = `for i in $(seq 8); do ${[join(BIN, 'epclient'), '--threads', '30', '--et', '--repeat', '3', '--fds', '300', '--quiet', '--timeout', '5000', '127.0.0.2', '83'].join(' ')} & done; wait`;
    const r = await supervise('ip', ['netns', 'exec', ns, 'sh', '-c', cmd], {
      redirects: [{ from: parseEndpoint('127.0.0.2:83')!, to: parseEndpoint(`127.0.0.1:${echoPort}`)! }], tracker, stdio: 'pipe',
      onSpawn: (_pid, child) => { child.stdout!.on('data', (d: Buffer) => { out += d.toString(); }); },
    }).finally(() => echod.kill('SIGKILL'));
    sampler.postMessage('stop');
    const max = await new Promise<number>((resolve) => sampler.once('message', resolve));
    await sampler.terminate();
    const got = out.trim().split('\n').map((l) => JSON.parse(l) as { n: number; ok: number });
    expect(got, out).to.have.length(8);
    for (const g of got) expect(g, out).to.include({ n: 90, ok: 90 });
    const swaps = r.supervisor.swaps;
    expect(swaps.filter((x) => x.result === 'swapped' && !x.error)).to.have.length(720);
    // A few swaps under way at once (each holds the old socket, its replacement and an epoll),
    // the tracker's per-process iterator links: never an fd per pending notification.
    expect(max - base, `${base} fds before, at most ${max} during`).to.be.at.most(48);
  });

  it('a blocking connect whose number gets another file meanwhile (dup2): the connect\'s answer, and nothing installed over the other file', async () => {
    const r = await runSupervised(['python3', join(packageRoot(), 'test', 'fixtures', 'connect-dup2.py'), '127.0.0.2', HANG_FROM.split(':')[1]], true);
    const got = JSON.parse(r.out) as { fd: number; connect: string; other: number; after: number };
    // As the kernel alone: the old socket's connect ends at SO_SNDTIMEO with EINPROGRESS,
    // and the number keeps what the program put there.
    expect(got, r.out).to.include({ connect: 'EINPROGRESS' });
    expect(got.after, r.out).to.equal(got.other);
    expect(r.swaps, JSON.stringify(r.swaps)).to.have.length(1);
    expect(r.swaps[0].error, JSON.stringify(r.swaps)).to.match(/got another file while connecting: answered, nothing installed/);
  });

  it('a fix-up that fails inside the supervisor gives the caller an errno, not a hang', async () => {
    const broken = await openTracker({ pinDir });
    broken.close(); // every lookup through it now throws
    let out = '';
    const r = await supervise('ip', ['netns', 'exec', ns, ...client('--timeout', '300')], {
      redirects: redirects(), tracker: broken, stdio: 'pipe',
      onSpawn: (_p, child) => child.stdout!.on('data', (d: Buffer) => { out += d.toString(); }),
    });
    const got = lines(out);
    expect(got).to.have.length(1);
    expect(got[0].connect).to.not.equal('ok');
    expect(got[0].connect).to.not.equal('Operation now in progress');
    expect(r.supervisor.swaps[0]).to.include({ result: 'failed' });
  });

  it('connect() with bad arguments gets what the kernel would answer', async () => {
    for (const mode of ['badptr', 'unmapped', 'biglen', 'neglen', 'shortlen', 'notsock', 'badfd']) {
      const plain = spawnSync('ip', ['netns', 'exec', ns, join(BIN, 'badconnect'), mode, '127.0.0.2', '80'], { encoding: 'utf8' });
      const kernel = JSON.parse(plain.stdout) as { errno: string };
      const sup = await runSupervised([join(BIN, 'badconnect'), mode, '127.0.0.2', '80'], true);
      const got = JSON.parse(sup.out) as { errno: string };
      expect(got.errno, mode).to.equal(kernel.errno);
      expect(got.errno, mode).to.not.equal('');
    }
  });

  it('the supervisor killed while a connect is pending: the caller gets an error, it does not hang', async () => {
    const sup = spawn(process.execPath, [CLI, 'supervise', '--pin-dir', pinDir, '--redirect', `${HANG_FROM}=127.0.0.1:${hangPort}`, '--',
      'ip', 'netns', 'exec', ns, join(BIN, 'badconnect'), 'block', '127.0.0.2', '81'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    sup.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    await new Promise((r) => setTimeout(r, 1500));
    expect(out, 'the connect should still be pending').to.equal('');
    sup.kill('SIGKILL');
    const t0 = Date.now();
    while (!out.includes('\n') && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    const r = JSON.parse(out) as { ret: number; errno: string };
    expect(r.ret).to.equal(-1);
    expect(r.errno).to.equal('ENOSYS');
  });

  it('the caller killed while its connect is handled: the supervisor goes on serving', async () => {
    const script = `${join(BIN, 'badconnect')} block 127.0.0.2 81 & p=$!; sleep 0.5; kill -9 $p; ${client().join(' ')}`;
    const r = await runSupervised(['sh', '-c', script], true);
    const got = lines(r.out.split('\n').filter((l) => l.startsWith('{"i"')).join('\n'));
    expect(got).to.have.length(1);
    expect(got[0]).to.include({ out: true, in: true, reply: 'pong', mod: 0, del: 0 });
    expect(r.swaps.some((s) => s.to.endsWith(`:${hangPort}`))).to.equal(true);
    void readFileSync;
    void fdinfoMemberships;
  });

  // ---- issue 10: shared files, copies, connect semantics ----------------------

  for (const who of ['parent', 'child'] as const) {
    it(`a socket shared with a fork: the ${who} connects, and both processes' MOD/DEL keep working in both epolls`, async () => {
      const r = await runSupervised([join(BIN, 'forkconnect'), who, '127.0.0.2', '80'], true);
      const got = r.out.trim().split('\n').map((l) => JSON.parse(l) as { who: string; connector: boolean; connect: number; peer: boolean; modOwn: number; modShared: number; delOwn: number; delShared: number });
      expect(got, r.out).to.have.length(2);
      for (const g of got) {
        expect(g, JSON.stringify(g)).to.include({ modOwn: 0, modShared: 0, delOwn: 0, delShared: 0 });
      }
      const c = got.find((g) => g.connector)!;
      expect(c).to.include({ who, connect: 0, peer: true });
      const other = got.find((g) => !g.connector)!;
      // seccomp cannot replace the other process's fd: it keeps the old socket, and says so.
      expect(other.peer).to.equal(false);
      const swapped = r.swaps.filter((x) => x.result === 'swapped');
      expect(swapped).to.have.length(1);
      expect(swapped[0].moved, JSON.stringify(swapped[0])).to.equal(2); // its own epoll and the shared one
      expect(swapped[0].kept, 'the other process\'s own and shared registrations stay').to.equal(2);
      expect(swapped[0].shared?.map((x) => x.fd)).to.deep.equal([swapped[0].fd]);
    });
  }

  it('dup2 copies: every number of the caller holding the old socket gets the new one, registrations moved', async () => {
    const { ch, cmd, done } = supervisedEpctl();
    const [pid] = await cmd('pid');
    const [ep] = await cmd('create');
    const [s] = await cmd('socket');
    await cmd(`dup2 ${s} 100`);
    await cmd(`add ${ep} ${s} 5 1`);
    await cmd(`add ${ep} 100 1 100`);
    await cmd(`connect ${s} 127.0.0.2 80`);
    expect(await ch().send(`peer ${s}`)).to.equal('ok 1');
    expect(await ch().send('peer 100'), 'fd 100 sees the connected socket').to.equal('ok 1');
    expect(kcmp(pid, pid, KCMP_FILE, s, 100)).to.equal(0);
    const regs = tracker.membershipsOf(pid, s).map((m) => [m.epfd, m.tfd, m.data]).sort((a, b) => Number(a[1]) - Number(b[1]));
    expect(regs).to.deep.equal([[ep, s, 1n], [ep, 100, 100n]]);
    expect(await ch().send(`mod ${ep} 100 1 0`)).to.equal('ok 0');
    expect(await ch().send(`del ${ep} 100`)).to.equal('ok 0');
    expect(await ch().send(`del ${ep} ${s}`)).to.equal('ok 0');
    await ch().send('exit');
    const r = await done;
    expect(r.supervisor.swaps.map((x) => [x.result, x.moved, x.copies])).to.deep.equal([['swapped', 2, [s, 100]]]);
  });

  it('an io_uring fixed file holding the old socket is found and updated through the ring', async () => {
    const { ch, cmd, done } = supervisedEpctl();
    const [pid] = await cmd('pid');
    const [s] = await cmd('socket');
    const [ring] = await cmd(`ureg ${s}`);
    const slotOf = () => /UserFiles:\s*\d+\n\s*0: (.*)\n/.exec(readFileSync(`/proc/${pid}/fdinfo/${ring}`, 'latin1'))?.[1];
    expect(slotOf()).to.equal(readlinkSync(`/proc/${pid}/fd/${s}`));
    await cmd(`connect ${s} 127.0.0.2 80`);
    const now = readlinkSync(`/proc/${pid}/fd/${s}`);
    expect(slotOf(), 'the ring\'s slot 0 holds the new socket').to.equal(now);
    await ch().send('exit');
    const r = await done;
    expect(r.supervisor.swaps[0].uring).to.deep.equal([{ ringFd: ring, slot: 0, updated: true }]);
  });

  it('SO_RCVTIMEO and SO_SNDTIMEO behave as without a supervisor', async () => {
    const plain = (args: string[]) => JSON.parse(execFileSync(join(BIN, 'timeoconnect'), args, { encoding: 'utf8' })) as { connect: string; connectMs: number; read: string; readMs: number };
    const sup = async (args: string[]) => JSON.parse((await runSupervised([join(BIN, 'timeoconnect'), ...args], true)).out) as ReturnType<typeof plain>;
    // read() on a connected socket with SO_RCVTIMEO 500 ms: EAGAIN after 500 ms.
    const k1 = plain(['--rcvtimeo', '500', '127.0.0.1', String(silentPort)]);
    const s1 = await sup(['--rcvtimeo', '500', '127.0.0.2', '82']);
    expect(k1).to.include({ connect: 'ok', read: 'EAGAIN' });
    expect(s1).to.include({ connect: k1.connect, read: k1.read });
    expect(s1.readMs).to.be.within(400, 3000);
    // A blocking connect that cannot finish, with SO_SNDTIMEO 700 ms: EINPROGRESS after 700 ms.
    const k2 = plain(['--sndtimeo', '700', '127.0.0.1', String(hangPort)]);
    const s2 = await sup(['--sndtimeo', '700', '127.0.0.2', '81']);
    expect(k2.connect).to.equal('EINPROGRESS');
    expect(s2.connect).to.equal(k2.connect);
    expect(s2.connectMs).to.be.within(600, 5000);
  });

  for (const [block, restart] of [[false, true], [true, true], [false, false], [true, false]]) {
    const flags = [...(block ? ['--block'] : []), ...(restart ? ['--restart'] : [])];
    it(`signals during swapped connects (${block ? 'blocking' : 'non-blocking'}, ${restart ? 'SA_RESTART' : 'no SA_RESTART'}): what the kernel alone would answer`, async () => {
      const n = 100;
      const k = JSON.parse(execFileSync(join(BIN, 'sigconnect'), [...flags, '--n', String(n), '127.0.0.1', String(port)], { encoding: 'utf8' })) as Record<string, number>;
      const r = await runSupervised([join(BIN, 'sigconnect'), ...flags, '--n', String(n), '127.0.0.2', '80'], true);
      const got = JSON.parse(r.out) as Record<string, number>;
      expect(k.connected, JSON.stringify(k)).to.equal(n);
      const failed = r.swaps.filter((x) => x.result === 'failed');
      expect(failed, JSON.stringify(failed.slice(0, 3))).to.have.length(0);
      for (const e of ['ealready', 'eisconn', 'other']) expect(got[e], `${e}: ${JSON.stringify(got)} vs ${JSON.stringify(k)}`).to.equal(k[e]);
      if (restart) {
        // Restarted before the supervisor took it, or not interrupted at all once it did.
        expect(got, `${JSON.stringify(got)} vs ${JSON.stringify(k)}`).to.deep.equal(k);
        expect(r.swaps.filter((x) => x.result === 'swapped')).to.have.length(n);
      } else {
        // Without SA_RESTART a signal that lands before the supervisor has received the
        // notification fails connect with EINTR (seccomp's wait is interruptible until then):
        // nothing was swapped for those, and every other connect is exactly as the kernel's.
        expect(got.connected + got.eintr, JSON.stringify(got)).to.equal(n);
        expect(got.ok + got.einprogress + got.eintr).to.equal(n);
        expect(r.swaps.filter((x) => x.result === 'swapped')).to.have.length(n - got.eintr);
      }
    });
  }

  it('without WAIT_KILLABLE_RECV (kernels < 5.19): a connect restarted after its swap gets the answer it should have had', async function () {
    // Without the flag every signal cancels the notification and restarts the connect. Signals
    // every 20 µs (the test with the flag) would then starve any supervisor, whose swap takes
    // longer than that: the kernel's own livelock, the reason 5.19 added the flag. Every 400 µs
    // many connects are still interrupted after their swap, and each can finish.
    this.timeout(300000);
    process.env.EPOLLTRACK_NO_WAIT_KILLABLE = '1';
    try {
      let lost = 0;
      for (const flags of [['--restart'], ['--block', '--restart']]) {
        const n = 60;
        const args = [...flags, '--n', String(n), '--every', '400'];
        const k = JSON.parse(execFileSync(join(BIN, 'sigconnect'), [...args, '127.0.0.1', String(port)], { encoding: 'utf8' })) as Record<string, number>;
        const r = await runSupervised([join(BIN, 'sigconnect'), ...args, '127.0.0.2', '80'], true);
        const got = JSON.parse(r.out) as Record<string, number>;
        const what = `${flags.join(' ')}: ${JSON.stringify(got)} vs ${JSON.stringify(k)}`;
        // Every connect ends connected; none fails, is interrupted or sees EALREADY. Known gap,
        // kernels < 5.19 only: a reply that races the signal can be lost inside the kernel's
        // interruptible wait although respond() succeeded (user space cannot tell); its restart
        // then finds the connection made: 0 where EINPROGRESS was due, or EISCONN for a blocking
        // connect (1 in 60 seen here). README, Limitations. Such losses stay rare.
        for (const e of ['eintr', 'ealready', 'other', 'connected']) expect(got[e], `${e}: ${what}`).to.equal(k[e]);
        expect(got.ok + got.einprogress + got.eisconn, what).to.equal(k.ok + k.einprogress + k.eisconn);
        expect(got.eisconn - k.eisconn, `answers lost inside the kernel: ${what}`).to.be.at.most(n / 10);
        // Interrupted answers are in the log as failed, honestly; each one's restart was answered.
        const failed = r.swaps.filter((x) => x.result === 'failed');
        for (const f of failed) expect(f.error).to.match(/interrupted/);
        lost += failed.length;
      }
      expect(lost, 'answers lost to a signal: the restart path ran').to.be.greaterThan(0);
    } finally {
      delete process.env.EPOLLTRACK_NO_WAIT_KILLABLE;
    }
  });

  it('a thread with an fd table of its own (unshare(CLONE_FILES)): the swap works on that table, not the process\'s', async function () {
    const [host, p] = FROM.split(':');
    const r = await runSupervised(['python3', join(packageRoot(), 'test', 'fixtures', 'thread-connect.py'), host, p], true);
    const got = JSON.parse(r.out) as Record<string, string | number | boolean>;
    expect(got.main, 'the process\'s table keeps its pipe at that number').to.match(/^pipe:/);
    expect(got, r.out).to.include({ connect: 'EINPROGRESS', out: true, peer: `127.0.0.1:${port}`, reply: 'pong', mod: 0, del: 0 });
    const swapped = r.swaps.filter((x) => x.result === 'swapped' && !x.error);
    expect(swapped, JSON.stringify(r.swaps)).to.have.length(1);
    expect(swapped[0]).to.include({ tid: got.tid, moved: 1 });
  });

  it('a forking program: what the supervisor remembers of processes that are gone is swept, not kept forever', async function () {
    this.timeout(300000);
    const n = 1100; // past the sweep's first threshold (1,024 entries)
    const r = await supervise('ip', ['netns', 'exec', ns, 'sh', '-c', `for i in $(seq ${n}); do ${client('--timeout', '300', '--quiet').join(' ')} >/dev/null; done`], {
      redirects: redirects(), tracker, stdio: 'pipe',
    });
    expect(r.code).to.equal(0);
    expect(r.supervisor.swaps.filter((x) => x.result === 'swapped')).to.have.length(1000); // the last 1,000 are kept
    // One entry per swapped process without the sweep; after it, only those since.
    expect(r.supervisor.remembered).to.be.below(n - 1000);
  });

  it('an answer that cannot be delivered is recorded as failed, not swapped', async () => {
    const r = await runSupervised(client('--block', '--timeout', '300'), true, undefined, {
      beforeAnswer: async (pid) => {
        process.kill(pid, 'SIGKILL');
        // Until it has left the seccomp wait: a zombie (or gone).
        const gone = () => { try { return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'latin1')); } catch { return true; } };
        for (let i = 0; i < 200 && !gone(); i++) await new Promise((r) => setTimeout(r, 10));
      },
    });
    expect(r.out).to.equal('');
    expect(r.swaps).to.have.length(1);
    expect(r.swaps[0]).to.include({ result: 'failed', errno: 2 });
    expect(r.swaps[0].error).to.match(/interrupted before the answer/);
  });

  it('UDP connect() on a udp: rule is redirected, with the fix-up; a TCP rule leaves UDP alone', async () => {
    const r = await runSupervised([join(BIN, 'udpclient'), '127.0.0.2', '53'], true);
    expect(JSON.parse(r.out)).to.deep.equal({ connect: 0, peer: true, in: true, reply: 'pong', mod: 0, del: 0 });
    expect(r.swaps.map((x) => [x.result, x.proto, x.moved])).to.deep.equal([['swapped', 'udp', 1]]);
    const broken = await runSupervised([join(BIN, 'udpclient'), '127.0.0.2', '53'], false);
    expect(JSON.parse(broken.out)).to.include({ in: false });
    // A TCP rule for the same address does not take a UDP connect.
    const tcpOnly = await runSupervised([join(BIN, 'udpclient'), '127.0.0.2', '80'], true);
    expect(JSON.parse(tcpOnly.out)).to.include({ connect: 0, reply: '' }); // nobody answers at 127.0.0.2:80 in the netns
    expect(tcpOnly.swaps.every((x) => x.error === 'left to the kernel')).to.equal(true);
  });
});
