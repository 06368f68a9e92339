/**
 * replaceFd: install a new file at fd N of a process that is stopped in a
 * seccomp notification, and move every epoll registration keyed (old file, N)
 * to (new file, N), same epoll instance, events and data.
 *
 * Order, so that a failure leaves nothing half-done:
 *   1. take a reference to the old file (pidfd_getfd) and read its registrations;
 *   2. ADD (new file, N) to each of those epolls (helper with its own fd table);
 *      a failure here DELs what was added and nothing else changed;
 *   3. ADDFD with SETFD puts the new file at N; a failure undoes step 2;
 *   4. DEL (old file, N) from each epoll: the old file may live on elsewhere
 *      (dup, fork, SCM_RIGHTS), and its stale registration must go;
 *   5. drop our references.
 */
import { constants } from 'node:os';
import { BadFdError, errnoName, NoSuchProcessError, ReplaceError } from '../kernel/errors.js';
import { fdinfoMemberships, type Membership } from '../tracker/fdinfo.js';
import { ctlBatch, EPOLL_CTL_ADD, EPOLL_CTL_DEL } from './fixup.js';
import { closeFd, takeFd } from '../kernel/ffi.js';
import { addFdAt, fdCloexec, tgidOf } from './seccomp.js';
import type { Tracker } from '../tracker/tracker.js';

/** A pending seccomp notification whose caller gets the new file. */
export interface ReplaceTarget {
  /** the seccomp listener fd, in this process */
  listenerFd: number;
  /** the notification id */
  id: bigint;
  /** the caller (thread id or process id) */
  pid: number;
  /** fd number in the caller to replace */
  fd: number;
}

export interface ReplaceOptions {
  /** where registrations come from; without it, the fdinfo way */
  tracker?: Tracker;
  /** move epoll registrations (default true); false shows the breakage */
  fixup?: boolean;
  /** close-on-exec for the installed fd (default: as the replaced fd) */
  cloexec?: boolean;
  /** @internal the caller's process id, when already known */
  tgid?: number;
  /** @internal a reference to the old file this process already holds (not closed here) */
  oldFd?: number;
}

export interface ReplaceResult {
  /** the registrations moved, as they were before the swap */
  moved: Membership[];
  source: 'bpf' | 'fdinfo' | 'none';
  micros: number;
  lookupMicros: number;
}

export { ReplaceError } from '../kernel/errors.js';

const { EEXIST, EINVAL, ELOOP, ENOENT, ENOSPC, EPERM, ESRCH } = constants.errno;

function whyAdd(e: number): string {
  switch (e) {
    case EPERM: return 'the replacement file is not pollable (epoll_ctl ADD: EPERM)';
    case ELOOP: return 'the replacement is an epoll whose nesting would make a loop or go too deep (ELOOP)';
    case EINVAL: return 'epoll refused the registration for the replacement (EINVAL: e.g. an epoll added to itself, or bad flags)';
    case EEXIST: return 'the epoll already holds the replacement under that fd number (EEXIST)';
    case ENOSPC: return 'the user\'s epoll watch limit is reached (ENOSPC: max_user_watches)';
    default: return `epoll_ctl ADD failed: ${errnoName(e)}`;
  }
}

export async function replaceFd(target: ReplaceTarget, newFd: number, opts: ReplaceOptions = {}): Promise<ReplaceResult> {
  const t0 = process.hrtime.bigint();
  const tgid = opts.tgid ?? tgidOf(target.pid);
  if (tgid === undefined) throw new NoSuchProcessError(`no process ${target.pid}`);
  let oldCopy = opts.oldFd ?? -1;
  let added: Membership[] = [];
  try {
    // 1. Keep the old file alive until we are done with it, and read where it is registered.
    if (oldCopy < 0) {
      oldCopy = takeFd(tgid, target.fd);
      if (oldCopy === -ESRCH) throw new NoSuchProcessError(`no process ${tgid}`);
      if (oldCopy < 0) throw new BadFdError(`process ${tgid} has no open fd ${target.fd}`);
    }
    const fixup = opts.fixup ?? true;
    let regs: Membership[] = [];
    let source: ReplaceResult['source'] = 'none';
    let cloexec = opts.cloexec;
    const l0 = process.hrtime.bigint();
    if (fixup) {
      const all = opts.tracker ? opts.tracker.membershipsOf(tgid, target.fd) : fdinfoMemberships(tgid, target.fd);
      source = opts.tracker ? opts.tracker.lastLookup.source : 'fdinfo';
      cloexec ??= opts.tracker?.lastLookup.cloexec;
      regs = all.filter((m) => m.tfd === target.fd);
    }
    const lookupMicros = Number(process.hrtime.bigint() - l0) / 1000;
    cloexec ??= fdCloexec(tgid, target.fd);

    // 2. (new file, N) into each epoll.
    const adds = ctlBatch(regs.map((m) => ({
      op: EPOLL_CTL_ADD, epoll: { pid: m.epollPid, fd: m.epfd }, file: newFd, tfd: target.fd, events: m.events, data: m.data,
    })));
    added = regs.filter((_m, i) => adds[i] === 0);
    const failed = adds.findIndex((e) => e !== 0);
    if (failed >= 0) {
      const m = regs[failed];
      throw new ReplaceError(`cannot move the epoll registration of fd ${target.fd} (epoll fd ${m.epfd} of process ${m.epollPid}): ${whyAdd(adds[failed])}`, adds[failed]);
    }

    // 3. The swap itself.
    const r = addFdAt(target.listenerFd, target.id, newFd, target.fd, cloexec);
    if (r < 0) {
      const e = -r;
      throw new ReplaceError(e === ENOENT
        ? 'the seccomp notification is gone (the caller died or was interrupted): nothing was installed'
        : `SECCOMP_IOCTL_NOTIF_ADDFD failed: ${errnoName(e)}`, e === ENOENT ? ESRCH : e);
    }
    const moved = added;
    added = []; // committed: no rollback from here on

    // 4. Drop the stale (old file, N) registrations (ENOENT: already gone with the file).
    ctlBatch(moved.map((m) => ({
      op: EPOLL_CTL_DEL, epoll: { pid: m.epollPid, fd: m.epfd }, file: oldCopy, tfd: target.fd, events: 0, data: 0n,
    })));
    for (const m of moved) opts.tracker?.noteEpoll(m.epollPid, m.epfd);
    return { moved, source, micros: Number(process.hrtime.bigint() - t0) / 1000, lookupMicros };
  } finally {
    // Roll back additions that were not committed.
    ctlBatch(added.map((m) => ({
      op: EPOLL_CTL_DEL, epoll: { pid: m.epollPid, fd: m.epfd }, file: newFd, tfd: target.fd, events: 0, data: 0n,
    })));
    if (opts.oldFd === undefined) closeFd(oldCopy);
  }
}
