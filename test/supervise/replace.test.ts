/**
 * replaceFd for supervisors of one's own: the cases the kernel reviewers
 * raised, each against a real seccomp listener and a real caller.
 */
import { expect } from 'chai';
import { openSync, closeSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  fdinfoMemberships, launch, load, openTracker, recvNotification, replaceFd, ReplaceError, respond, unload,
  type Launched, type Notification, type Tracker,
} from '../../src/index.js';
import { closeFd, libc, pidfdGetfd, pidfdOpen } from '../../src/kernel/ffi.js';
import { POLLIN, pollAsync } from '../../src/supervise/seccomp.js';
import { EpctlChannel } from '../../src/cli/epctl-channel.js';
import { TEST_MODE, testPinDir } from '../helpers/env.js';

const EPCTL = join(process.cwd(), 'build', 'bin', 'epctl');

/** epctl under our own filter; commands answer asynchronously, since connect waits for us. */
async function caller(): Promise<{ l: Launched; cmd: (c: string) => Promise<string> }> {
  let ch: EpctlChannel | undefined;
  const l = await launch(EPCTL, [], { stdio: 'pipe', onSpawn: (_p, child) => { ch = new EpctlChannel(child); } });
  return { l, cmd: (c) => ch!.send(c) };
}

async function notification(listenerFd: number): Promise<Notification> {
  for (let i = 0; i < 50; i++) {
    if ((await pollAsync(listenerFd, POLLIN, 100)) & POLLIN) {
      const n = recvNotification(listenerFd);
      if (!('errno' in n)) return n;
    }
  }
  throw new Error('no notification');
}

const ownFds = () => readdirSync('/proc/self/fd').length;

describe('replaceFd', function () {
  const pinDir = testPinDir('replace');
  let tracker: Tracker;
  before(async () => {
    load({ pinDir, mode: TEST_MODE });
    tracker = await openTracker({ pinDir });
  });
  after(() => { tracker.close(); unload({ pinDir }); });

  async function pending() {
    const { l, cmd } = await caller();
    const pid = Number((await cmd('pid')).split(' ')[1]);
    const ep = Number((await cmd('create')).split(' ')[1]);
    const s = Number((await cmd('socket')).split(' ')[1]);
    expect(await cmd(`add ${ep} ${s} 80000001 77`)).to.equal('ok 0');
    const link = readlinkSync(`/proc/${pid}/fd/${s}`);
    const answer = cmd(`connect ${s} 127.0.0.2 9`);
    const n = await notification(l.listenerFd);
    return { l, cmd, pid, ep, s, link, answer, n };
  }

  it('a replacement that is not pollable: the connect fails with EPERM and nothing changed', async () => {
    const p = await pending();
    const regs = tracker.membershipsOf(p.pid, p.s);
    const file = openSync('/etc/hostname', 'r');
    const before = ownFds();
    try {
      const err = await replaceFd({ listenerFd: p.l.listenerFd, id: p.n.id, pid: p.n.pid, fd: p.s }, file, { tracker })
        .then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(ReplaceError);
      expect((err as ReplaceError).errno).to.equal(1);
      expect((err as Error).message).to.match(/not pollable/);
      expect(ownFds(), 'fds leaked').to.equal(before);
      respond(p.l.listenerFd, p.n.id, { error: (err as ReplaceError).errno });
      expect(await p.answer).to.equal('err 1');
      expect(readlinkSync(`/proc/${p.pid}/fd/${p.s}`)).to.equal(p.link);
      expect(tracker.membershipsOf(p.pid, p.s)).to.deep.equal(regs);
      expect(fdinfoMemberships(p.pid, p.s)).to.have.length(1);
    } finally {
      closeSync(file);
      await p.cmd('exit');
      closeFd(p.l.listenerFd);
      await p.l.exited;
    }
  });

  it('a replacement that is an epoll holding the caller\'s epoll: ELOOP, nothing changed', async () => {
    const p = await pending();
    const e2 = libc().epoll_create1(0) as number;
    const pidfd = pidfdOpen(p.pid);
    const epCopy = pidfdGetfd(pidfd, p.ep);
    const ev = Buffer.alloc(12);
    ev.writeUInt32LE(1, 0);
    expect(libc().epoll_ctl(e2, 1, epCopy, ev)).to.equal(0); // e2 watches the caller's epoll
    try {
      const err = await replaceFd({ listenerFd: p.l.listenerFd, id: p.n.id, pid: p.n.pid, fd: p.s }, e2, { tracker })
        .then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(ReplaceError);
      expect((err as ReplaceError).errno).to.equal(40);
      expect((err as Error).message).to.match(/loop/);
      respond(p.l.listenerFd, p.n.id, { error: 40 });
      expect(await p.answer).to.equal('err 40');
      expect(readlinkSync(`/proc/${p.pid}/fd/${p.s}`)).to.equal(p.link);
      expect(fdinfoMemberships(p.pid, p.s).map((m) => [m.epfd, m.tfd, m.data])).to.deep.equal([[p.ep, p.s, 77n]]);
    } finally {
      closeFd(epCopy);
      closeFd(pidfd);
      closeFd(e2);
      await p.cmd('exit');
      closeFd(p.l.listenerFd);
      await p.l.exited;
    }
  });

  it('a replacement that is an epoll (no loop) is moved in like any pollable file', async () => {
    const p = await pending();
    const e2 = libc().epoll_create1(0) as number;
    try {
      const r = await replaceFd({ listenerFd: p.l.listenerFd, id: p.n.id, pid: p.n.pid, fd: p.s }, e2, { tracker });
      respond(p.l.listenerFd, p.n.id, { val: 0 });
      expect(await p.answer).to.equal('ok 0');
      expect(r.moved).to.have.length(1);
      expect(readlinkSync(`/proc/${p.pid}/fd/${p.s}`)).to.equal('anon_inode:[eventpoll]');
      const now = fdinfoMemberships(p.pid, p.s);
      expect(now.map((m) => [m.epfd, m.tfd, m.events, m.data])).to.deep.equal([[p.ep, p.s, r.moved[0].events, 77n]]);
      expect(tracker.membershipsOf(p.pid, p.s).map((m) => [m.epfd, m.tfd, m.events, m.data])).to.deep.equal([[p.ep, p.s, r.moved[0].events, 77n]]);
    } finally {
      closeFd(e2);
      await p.cmd('exit');
      closeFd(p.l.listenerFd);
      await p.l.exited;
    }
  });

  it('a notification that is gone (caller killed): nothing is installed, nothing leaks', async () => {
    const p = await pending();
    p.l.child.kill('SIGKILL');
    await p.l.exited;
    const s2 = libc().epoll_create1(0) as number;
    const before = ownFds();
    try {
      const err = await replaceFd({ listenerFd: p.l.listenerFd, id: p.n.id, pid: p.n.pid, fd: p.s }, s2, { tracker })
        .then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(Error);
      expect(ownFds(), 'fds leaked').to.equal(before);
    } finally {
      closeFd(s2);
      closeFd(p.l.listenerFd);
    }
  });
});
