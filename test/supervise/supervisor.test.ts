/**
 * The supervisor with real processes: a client that registers its socket in
 * epoll before connect() runs in a network namespace of the test's own and
 * reaches a server on the host's loopback only through --redirect.
 */
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fdinfoMemberships, load, openTracker, unload, type Tracker } from '../../src/index.js';
import { closeFd, pidfdGetfd, pidfdOpen } from '../../src/kernel/ffi.js';
import { c, encodeSockaddr, parseEndpoint, socketInfo, SOCK_NONBLOCK, SOCK_STREAM, AF_INET } from '../../src/supervise/seccomp.js';
import { supervise } from '../../src/supervise/launch.js';
import { EpctlChannel } from '../../src/cli/epctl-channel.js';
import type { SwapRecord } from '../../src/supervise/supervisor.js';
import { TEST_MODE, testPinDir } from '../helpers/env.js';

const BIN = join(process.cwd(), 'build', 'bin');
const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const FROM = '127.0.0.2:80';
const HANG_FROM = '127.0.0.2:81';

/** The socket options of pid:fd that a supervisor must carry over. */
function socketOptsOf(pid: number, fd: number): Record<string, number> {
  const pidfd = pidfdOpen(pid);
  const copy = pidfdGetfd(pidfd, fd);
  try {
    const info = socketInfo(copy);
    return Object.fromEntries((info?.options ?? []).map((o) => [o.label, o.value]));
  } finally {
    closeFd(copy);
    closeFd(pidfd);
  }
}

interface ClientLine { i: number; pid: number; fd: number; connect: string; out: boolean; in: boolean; reply: string; mod: number; del: number }

describe('supervisor', function () {
  const ns = `ept-sup-${process.pid}`;
  let server: Server;
  let port = 0;
  let hangFd = -1;
  let hangPort = 0;
  const fillers: number[] = [];
  let tracker: Tracker;
  const pinDir = testPinDir('supervisor');

  before(async () => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    server = createServer((s) => s.on('data', () => s.end('pong\n')).on('error', () => {}));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    // A server that never accepts, with its queue full: connects to it hang.
    hangFd = c().socket(AF_INET, SOCK_STREAM, 0) as number;
    const a = encodeSockaddr({ family: AF_INET, ip: '127.0.0.1', port: 0 });
    c().bind(hangFd, a, a.length);
    c().listen(hangFd, 0);
    const b = Buffer.alloc(16);
    c().getsockname(hangFd, b, [16]);
    hangPort = b.readUInt16BE(2);
    for (let i = 0; i < 3; i++) {
      const f = c().socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0) as number;
      const to = encodeSockaddr({ family: AF_INET, ip: '127.0.0.1', port: hangPort });
      c().connect(f, to, to.length);
      fillers.push(f);
    }
    load({ pinDir, mode: TEST_MODE });
    tracker = await openTracker({ pinDir });
  });

  after(() => {
    tracker?.close();
    unload({ pinDir });
    server?.close();
    for (const f of fillers) closeFd(f);
    closeFd(hangFd);
    spawnSync('ip', ['netns', 'delete', ns]);
  });

  const redirects = () => [
    { from: parseEndpoint(FROM)!, to: parseEndpoint(`127.0.0.1:${port}`)! },
    { from: parseEndpoint(HANG_FROM)!, to: parseEndpoint(`127.0.0.1:${hangPort}`)! },
  ];

  /** Run a command in the test netns under the in-process supervisor; collect its stdout lines and the swaps. */
  async function runSupervised(cmd: string[], fixup: boolean, during?: (child: ChildProcess) => void): Promise<{ out: string; swaps: SwapRecord[]; code: number | null }> {
    let out = '';
    const r = await supervise('ip', ['netns', 'exec', ns, ...cmd], {
      redirects: redirects(), fixup, tracker, stdio: 'pipe',
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
    const [keep] = await cmd(`dup ${s}`); // the old file stays alive: its registration must not linger
    await cmd(`add ${ep} ${s} ${(0x80000000 | 0x2000 | 0x1).toString(16)} 81985529216486895`);
    await cmd(`add ${ep2} ${s} 40000004 42`);
    await cmd(`add ${ep2} ${keep} 1 7`); // the old file under another number: stays
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
    const byEpfd = (m: { epfd: number }, n: { epfd: number }) => m.epfd - n.epfd;
    // The file at s is registered under s twice, and under keep once (same file).
    const all = tracker.membershipsOf(pid, s).sort((a, b) => a.epfd - b.epfd || a.tfd - b.tfd);
    expect(all.map((m) => [m.epfd, m.tfd, m.data])).to.deep.equal([[ep, s, 81985529216486895n], [ep2, s, 42n], [ep2, keep, 7n], [ep3, s, 3n]]);
    expect(all[3].events, 'fired EPOLLONESHOT keeps only its private bits').to.equal(0x40000000);
    const before = all.filter((m) => m.tfd === s);
    await cmd(`connect ${s} 127.0.0.2 80`); // blocking: swapped when it returns
    const after = tracker.membershipsOf(pid, s).sort(byEpfd);
    // EPOLL_CTL_ADD always arms EPOLLERR|EPOLLHUP (0x18): a fired EPOLLONESHOT comes back
    // disarmed but for those two. Every other registration is the same to the bit.
    const ERR_HUP = 0x18;
    const norm = (ms: typeof after) => ms.map(({ source, ...m }) => ({ ...m, events: m.epfd === ep3 ? (m.events & ~ERR_HUP) >>> 0 : m.events }));
    expect(norm(after)).to.deep.equal(norm(before));
    expect(after.filter((m) => m.epfd !== ep3).map(({ source, ...m }) => m)).to.deep.equal(before.filter((m) => m.epfd !== ep3).map(({ source, ...m }) => m));
    expect(after).to.deep.equal(fdinfoMemberships(pid, s).sort(byEpfd).map((m) => ({ ...m, source: after[0].source })));
    expect(after.find((m) => m.epfd === ep3)?.events, 'still disarmed (but for ERR|HUP)').to.equal(0x40000000 | ERR_HUP);
    expect(await cmd(`wait ${ep3}`), 'a disarmed EPOLLONESHOT does not fire').to.deep.equal([0]);
    expect(cloexecOf(s), 'close-on-exec kept').to.equal(true);
    const optsAfter = socketOptsOf(pid, s);
    expect(optsAfter).to.deep.equal(optsBefore);
    expect(optsAfter.SO_KEEPALIVE).to.equal(1);
    expect(optsAfter.TCP_NODELAY).to.equal(1);
    expect(optsAfter.SO_REUSEADDR).to.equal(1);
    // The old file lives on at `keep`: only its own registration is left on it.
    const old = tracker.membershipsOf(pid, keep);
    expect(old.map((m) => [m.epfd, m.tfd, m.data])).to.deep.equal([[ep2, keep, 7n]]);
    await ch().send('exit');
    const r = await done;
    expect(r.supervisor.swaps.map((x) => [x.result, x.moved])).to.deep.equal([['swapped', 3]]);
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
});
