/**
 * Registrations without the tracker: the fdinfo way over many processes, for
 * users who are not root (their own processes, as lsof does) and for
 * `ls --method fdinfo`. Slow: it visits every fd of every process it reads.
 */
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { BadFdError } from '../kernel/errors.js';
import { KCMP_FILE, kcmp, kcmpEpollTfd } from '../kernel/ffi.js';
import { epollFdinfos, type FdinfoEntry } from '../tracker/fdinfo.js';
import type { Registration } from '../tracker/tracker.js';
import { checkFd } from './process.js';

/** Where the file registered as `e` in pid:epfd is open in pid: tfd first, else any fd with its inode. */
function targetFd(pid: number, epfd: number, e: FdinfoEntry): number {
  if (kcmpEpollTfd(pid, e.tfd, pid, epfd, e.tfd, e.toff) === 0) return e.tfd;
  if (e.ino === -1n) return -1;
  let names: string[] = [];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return -1;
  }
  for (const n of names) {
    try {
      if (statSync(`/proc/${pid}/fd/${n}`, { bigint: true }).ino !== e.ino) continue;
    } catch {
      continue;
    }
    if (kcmpEpollTfd(pid, Number(n), pid, epfd, e.tfd, e.toff) === 0) return Number(n);
  }
  return -1;
}

/**
 * Every registration in the epoll instances of `pids`, read from
 * /proc/PID/fdinfo. An instance open in several of them (or at several fds) is
 * listed once, at its first fd. A target open in none of them has fd -1.
 */
export function fdinfoRegistrations(pids: readonly number[]): Registration[] {
  const rows: Registration[] = [];
  const seen: { pid: number; epfd: number; sig: string }[] = [];
  for (const pid of pids) {
    const byFd = [...epollFdinfos(pid).entries()].sort((a, b) => a[0] - b[0]);
    for (const [epfd, entries] of byFd) {
      const sig = entries.map((e) => `${e.tfd}/${e.events}/${e.data}/${e.ino}`).join(',');
      if (entries.length && seen.some((s) => s.sig === sig && kcmp(s.pid, pid, KCMP_FILE, s.epfd, epfd) === 0)) continue;
      seen.push({ pid, epfd, sig });
      for (const e of entries) {
        rows.push({ pid, fd: targetFd(pid, epfd, e), epollPid: pid, epfd, tfd: e.tfd, events: e.events, data: e.data });
      }
    }
  }
  rows.sort((a, b) => a.pid - b.pid || a.fd - b.fd || a.epollPid - b.epollPid || a.epfd - b.epfd);
  return rows;
}

/** Throws unless fd `fd` of `pid` is an epoll instance (NoSuchProcessError, ProcessAccessError, BadFdError). */
export function checkEpoll(pid: number, fd: number): void {
  checkFd(pid, fd);
  let link = '';
  try {
    link = readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch { /* closed meanwhile: checkFd said it was open */ }
  if (link !== 'anon_inode:[eventpoll]') throw new BadFdError(`fd ${fd} of process ${pid} is not an epoll instance (it is ${link || 'closed'})`);
}
