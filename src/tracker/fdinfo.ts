/**
 * The fdinfo way: visit every fd of a process in /proc, parse the `tfd:` lines
 * of its epoll fds' /proc/PID/fdinfo, and confirm each candidate with
 * kcmp(KCMP_EPOLL_TFD). This is the known userspace method epolltrack is
 * compared against, and the fallback when the fast path cannot be sure.
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { BadFdError, BadInputError, NoSuchProcessError, PermissionError } from '../kernel/errors.js';
import { KCMP_FILE, kcmp, kcmpEpollTfd } from '../kernel/ffi.js';

export type Source = 'bpf' | 'fdinfo';

/** One epoll registration of a target fd. */
export interface Membership {
  /** a process that has the epoll instance open ... */
  epollPid: number;
  /**
   * ... in the fd table of this thread, when it is a thread of epollPid with a
   * table of its own (unshare(CLONE_FILES)); absent when the table is the
   * process's. Open it with pidfd_open(epollTid, PIDFD_THREAD) for pidfd_getfd.
   */
  epollTid?: number;
  /** ... at this fd number, right now */
  epfd: number;
  /** fd number the registration is keyed by (the caller's fd at EPOLL_CTL_ADD) */
  tfd: number;
  /** live event mask, as /proc/PID/fdinfo shows it */
  events: number;
  /** epoll_event.data */
  data: bigint;
  source: Source;
}

export interface FdinfoEntry { tfd: number; events: number; data: bigint; ino: bigint; toff: number }

const TFD_RE = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)(?:\s+pos:\s*\d+\s+ino:\s*([0-9a-f]+))?/i;

/** Parse the registrations listed in one epoll fd's fdinfo text (CRIU accepts 3 or 6 fields too). */
export function parseEpollFdinfo(text: string): FdinfoEntry[] {
  const out: FdinfoEntry[] = [];
  const seen = new Map<number, number>();
  for (const line of text.split('\n')) {
    const m = TFD_RE.exec(line);
    if (!m) continue;
    const tfd = Number(m[1]);
    const toff = seen.get(tfd) ?? 0;
    seen.set(tfd, toff + 1);
    out.push({ tfd, events: parseInt(m[2], 16) >>> 0, data: BigInt(`0x${m[3]}`), ino: m[4] ? BigInt(`0x${m[4]}`) : -1n, toff });
  }
  return out;
}

function checkInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new BadInputError(`${name} must be a non-negative integer, got ${v}`);
}

/** Throws the right error when pid or pid:fd does not exist or cannot be read. Returns the target's inode. */
export function checkTarget(pid: number, fd: number): bigint {
  checkInt('pid', pid);
  checkInt('fd', fd);
  try {
    statSync(`/proc/${pid}/fdinfo`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new PermissionError(`cannot read /proc/${pid}: permission denied; run as root`, { cause: err });
    throw new NoSuchProcessError(`no process ${pid}`, { cause: err });
  }
  try {
    return statSync(`/proc/${pid}/fd/${fd}`, { bigint: true }).ino;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new PermissionError(`cannot read /proc/${pid}/fd: permission denied; run as root`, { cause: err });
    throw new BadFdError(`process ${pid} has no open fd ${fd}`, { cause: err });
  }
}

/**
 * All registrations in every epoll fd of `pid`, by fd. Visits every fd of the
 * process: readlink /proc/PID/fd/N (cheaper than reading every fdinfo file, and
 * the fastest form of the fdinfo way measured here), then reads the fdinfo of
 * the epoll fds only.
 */
export function epollFdinfos(pid: number): Map<number, FdinfoEntry[]> {
  const out = new Map<number, FdinfoEntry[]>();
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const name of names) {
    let text: string;
    try {
      if (readlinkSync(`/proc/${pid}/fd/${name}`) !== 'anon_inode:[eventpoll]') continue;
      text = readFileSync(`/proc/${pid}/fdinfo/${name}`, 'latin1');
    } catch {
      continue; // closed meanwhile
    }
    out.set(Number(name), parseEpollFdinfo(text));
  }
  return out;
}

export interface FdinfoOptions {
  /** processes whose epoll fds are searched (default: just `pid`) */
  pids?: number[];
  /** fdinfo already read, by pid (epollFdinfos() of each), to answer many lookups from one reading */
  snapshot?: Map<number, Map<number, FdinfoEntry[]>>;
}

/**
 * Which epoll instances hold fd `fd` of process `pid`, the fdinfo way. Each
 * instance is reported once, at its first fd found (pids in order, then fd order).
 */
export function fdinfoMemberships(pid: number, fd: number, opts: FdinfoOptions = {}): Membership[] {
  const ino = checkTarget(pid, fd);
  const found: Membership[] = [];
  for (const p of opts.pids ?? [pid]) {
    const byFd = [...(opts.snapshot?.get(p) ?? epollFdinfos(p)).entries()].sort((a, b) => a[0] - b[0]);
    for (const [epfd, entries] of byFd) {
      for (const e of entries) {
        if (e.ino !== -1n && e.ino !== ino) continue;
        if (kcmpEpollTfd(pid, fd, p, epfd, e.tfd, e.toff) !== 0) continue;
        // One answer per (instance, tfd): skip an instance already found through another fd.
        const dup = found.some((m) => m.tfd === e.tfd && kcmp(m.epollPid, p, KCMP_FILE, m.epfd, epfd) === 0);
        if (!dup) found.push({ epollPid: p, epfd, tfd: e.tfd, events: e.events, data: e.data, source: 'fdinfo' });
      }
    }
  }
  return found;
}
