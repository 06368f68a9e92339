/**
 * `epolltrack demo`: the fd-swap scenario end to end on one machine. A program
 * in a network namespace of its own registers a socket in epoll, then
 * connects to 127.0.0.2:80; the supervisor serves that connect with a socket
 * made in the host's namespace, connected to a server on the host's loopback,
 * and swaps it in with SECCOMP_ADDFD_FLAG_SETFD. Once with the epoll fix-up,
 * once without.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { isLoaded, load, unload } from '../../loader/load.js';
import { packageRoot } from '../kernel/bpfobject.js';
import { errnoName } from '../kernel/errors.js';
import { EpctlChannel } from './epctl-channel.js';
import { cleanupOnce } from './interrupt.js';
import { decodeEvents } from '../kernel/events.js';
import { fdinfoMemberships, type Membership } from '../tracker/fdinfo.js';
import { supervise } from '../supervise/launch.js';
import { parseEndpoint } from '../supervise/seccomp.js';
import { openTracker, type Tracker } from '../tracker/tracker.js';

const bin = (n: string) => join(packageRoot(), 'build', 'bin', n);
const fmt = (m: Membership[]) => (m.length
  ? m.map((x) => `epoll fd ${x.epfd} holds fd ${x.tfd} for ${decodeEvents(x.events)}, data 0x${x.data.toString(16)}`).join('; ')
  : 'in no epoll instance');

interface ClientLine { connect: string; out: boolean; in: boolean; reply: string; mod: number; del: number }

/** A supervised epctl: the steps of the scenario, one by one, so the tracker can look between them. */
async function registrations(tracker: Tracker, ns: string, redirect: { from: string; to: string }, fixup: boolean, out: (s: string) => void): Promise<void> {
  let ch: EpctlChannel | undefined;
  const done = supervise('ip', ['netns', 'exec', ns, bin('epctl')], {
    redirects: [{ from: parseEndpoint(redirect.from)!, to: parseEndpoint(redirect.to)! }], fixup, tracker, stdio: 'pipe',
    onSpawn: (_p, child) => { ch = new EpctlChannel(child); },
  });
  const cmd = (c: string) => ch!.cmd(c);
  const [pid] = await cmd('pid');
  const [ep] = await cmd('create');
  const [s] = await cmd('socket');
  await cmd(`add ${ep} ${s} 80002005 ${0xcafe}`);
  out(`  before connect: fd ${s} ${fmt(tracker.membershipsOf(pid, s))}`);
  await cmd(`connect ${s} ${redirect.from.replace(':', ' ')}`);
  const after = tracker.membershipsOf(pid, s);
  out(`  after the swap: fd ${s} ${fmt(after)} (${tracker.lastLookup.source}, ${tracker.lastLookup.micros.toFixed(1)} µs)`);
  const reply = await ch!.send(`mod ${ep} ${s} 1 0`);
  out(`  the program's EPOLL_CTL_MOD on fd ${s}: ${reply === 'ok 0' ? 'ok' : reply === 'err 2' ? 'fails with ENOENT' : reply}`);
  await ch!.send('exit');
  await done;
}

export async function demo(out: (s: string) => void): Promise<void> {
  const pinDir = `/sys/fs/bpf/epolltrack-demo-${process.pid}`;
  const own = !isLoaded(pinDir);
  const ns = `epolltrack-demo-${process.pid}`;
  const server = createServer((sock) => sock.on('data', () => sock.end('hello from the host\n')).on('error', () => {}));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const to = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const from = '127.0.0.2:80';
  if (own) load({ pinDir });
  const teardown = cleanupOnce(() => {
    if (own) unload({ pinDir });
    spawnSync('ip', ['netns', 'delete', ns]);
  });
  const tracker = await openTracker({ pinDir });
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    out(`epolltrack demo: tracker in ${tracker.mode} mode; a server on ${to} in the host's network namespace;`);
    out(`programs run in network namespace ${ns}, where only 127.0.0.2:80 leads there (--redirect ${from}=${to}).`);
    out('');
    for (const fixup of [true, false]) {
      out(fixup ? '1. With the epoll fix-up' : '2. Without it (--no-epoll-fixup): the swap breaks epoll');
      await registrations(tracker, ns, { from, to }, fixup, out);
      let text = '';
      let swapLine = '';
      await supervise('ip', ['netns', 'exec', ns, bin('epclient'), '--et', '--timeout', '2000', '127.0.0.2', '80'], {
        redirects: [{ from: parseEndpoint(from)!, to: parseEndpoint(to)! }], fixup, tracker, stdio: 'pipe',
        onSpawn: (_p, ch) => ch.stdout!.on('data', (d: Buffer) => { text += d.toString(); }),
        onSwap: (r) => { swapLine = `${r.moved} registration${r.moved === 1 ? '' : 's'} moved in ${r.micros.toFixed(0)} µs (registrations from ${r.source})`; },
      });
      const c = JSON.parse(text.trim().split('\n')[0] ?? '{}') as ClientLine;
      out(`  a client (socket, EPOLL_CTL_ADD, non-blocking connect, wait for EPOLLOUT, request, answer): connect ${c.connect === 'ok' ? 'returned 0' : `said ${c.connect}`}; swap: ${swapLine}`);
      out(c.out && c.in
        ? `  -> it got EPOLLOUT, sent its request and read the answer "${c.reply}"; its EPOLL_CTL_MOD and DEL ${c.mod === 0 && c.del === 0 ? 'succeeded' : 'failed'}`
        : `  -> ${c.out ? 'it saw EPOLLOUT' : 'EPOLLOUT never came (it would hang forever; gave up after 2 s)'}, ${c.in ? 'answer read' : 'no answer read'}; EPOLL_CTL_MOD: ${c.mod ? errnoName(c.mod) : 0}, EPOLL_CTL_DEL: ${c.del ? errnoName(c.del) : 0}`);
      out('');
    }
    // Why the tracker: the same question about a process with many fds.
    out('3. Finding the registrations of one fd in a process with 19000 fds:');
    const big = spawn(bin('epctl'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
    const killBig = cleanupOnce(() => big.kill('SIGKILL'));
    const bigCh = new EpctlChannel(big);
    try {
      for (const c of ['create', 'socket', 'add 3 4 5 1', 'nfds 19000']) await bigCh.cmd(c);
      const times: number[] = [];
      for (let i = 0; i < 200; i++) { tracker.membershipsOf(big.pid!, 4); times.push(tracker.lastLookup.micros); }
      times.sort((a, b) => a - b);
      const t0 = process.hrtime.bigint();
      fdinfoMemberships(big.pid!, 4);
      const slow = Number(process.hrtime.bigint() - t0) / 1000;
      const fast = times[100];
      out(`  through the tracker: ${fast.toFixed(1)} µs (median of 200); the fdinfo way: ${(slow / 1000).toFixed(1)} ms: ${Math.round(slow / fast)}x`);
    } finally {
      killBig();
    }
  } finally {
    tracker.close();
    teardown();
    server.close();
  }
}
