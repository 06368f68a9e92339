/**
 * `epolltrack demo`: until the supervisor lands, a lookup showcase on a live
 * process: registrations before and after changes, tracker vs fdinfo timing.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { isLoaded, load, unload } from '../loader/load.js';
import { packageRoot } from './bpfobject.js';
import { decodeEvents } from './events.js';
import { fdinfoMemberships } from './fdinfo.js';
import { openTracker } from './tracker.js';

export async function demo(out: (s: string) => void): Promise<void> {
  const pinDir = `/sys/fs/bpf/epolltrack-demo-${process.pid}`;
  const own = !isLoaded(pinDir);
  if (own) load({ pinDir });
  const child = spawn(join(packageRoot(), 'build', 'bin', 'epctl'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout! });
  const waiters: ((l: string) => void)[] = [];
  rl.on('line', (l) => waiters.shift()?.(l));
  const cmd = (c: string) => new Promise<number[]>((res, rej) => {
    waiters.push((l) => (l.startsWith('ok') ? res(l.split(' ').slice(1).map(Number)) : rej(new Error(`${c}: ${l}`))));
    child.stdin!.write(`${c}\n`);
  });
  const tracker = await openTracker({ pinDir });
  try {
    const [ep] = await cmd('create');
    const [s] = await cmd('socketpair');
    await cmd(`add ${ep} ${s} 80000005 48879`);
    const show = (what: string) => {
      const m = tracker.membershipsOf(child.pid!, s);
      out(`${what}: fd ${s} of pid ${child.pid} is in ${m.length} epoll instance(s)${m.map((x) => ` [epfd ${x.epfd} tfd ${x.tfd} ${decodeEvents(x.events)} data 0x${x.data.toString(16)}]`).join('')} (${tracker.lastLookup.source}, ${tracker.lastLookup.micros.toFixed(1)} µs)`);
    };
    show('after EPOLL_CTL_ADD');
    const [n] = await cmd('nfds 19000');
    show(`with ${n} fds open`);
    const t0 = process.hrtime.bigint();
    fdinfoMemberships(child.pid!, s);
    out(`the fdinfo way for the same question: ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`);
    await cmd(`del ${ep} ${s}`);
    show('after EPOLL_CTL_DEL');
  } finally {
    tracker.close();
    child.kill('SIGKILL');
    if (own) unload({ pinDir });
  }
}
