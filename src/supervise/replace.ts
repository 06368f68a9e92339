/**
 * replaceFd: install a new file at fd N of a process that is stopped in a
 * seccomp notification, and at every other number of that process holding
 * the same (old) file, and move the epoll registrations keyed (old file, M)
 * to (new file, M) for each such number M, same epoll instance, events, data.
 *
 * Which registrations move (the rule for shared files): a registration
 * (old, M) in epoll E means "the file at M" in the fd table of whoever uses
 * E. It is the caller's when the caller holds E: then (new, M) is added. The
 * old one is removed unless another process that also holds E still has the
 * old file at M (a fork child, say): its MOD/DEL must keep finding it.
 * Registrations in epolls the caller does not hold belong to other processes
 * and stay as they are.
 *
 * Order, so that a failure leaves nothing half-done (one native call, ept_swap):
 *   1. take a reference to the old file (pidfd_getfd), find the caller's copies
 *      and the registrations;
 *   2. ADD (new file, M) to each epoll; a failure DELs what was added;
 *   3. ADDFD with SETFD at each number; a failure at the first undoes step 2;
 *   4. DEL (old file, M) where the rule says so;
 *   5. an io_uring fixed-file slot holding the old file is updated through
 *      the ring (IORING_REGISTER_FILES_UPDATE) or reported;
 *   6. drop our references.
 */
import { constants } from 'node:os';
import { BadFdError, errnoName, NoSuchProcessError, ReplaceError } from '../kernel/errors.js';
import { fdinfoMemberships, type Membership } from '../tracker/fdinfo.js';
import {
  EPOLL_CTL_ADD, EPOLL_CTL_DEL, fdTableCopies, swapFileAsync, uringUpdate as ringUpdate, type CtlRequest, type MakeSocket, type SwapOutcome, type SwapRequest,
} from './fixup.js';
import { closeFd, KCMP_FILE, KCMP_FILES, kcmp, takeFd } from '../kernel/ffi.js';
import { fdCloexec, tgidOf } from './seccomp.js';
import type { References, Tracker } from '../tracker/tracker.js';
import { fstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

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
  /** also install at every other number of the caller holding the old file (default true) */
  copies?: boolean;
}

/** Another process's fd holding the old file: this notification cannot replace it. */
export interface SharedCopy { pid: number; fd: number }

/** The old file in an io_uring fixed-file table of the caller. */
export interface UringSlot { ringFd: number; slot: number; updated: boolean; errno?: number }

export interface ReplaceResult {
  /** the registrations moved, as they were before the swap */
  moved: Membership[];
  source: 'bpf' | 'fdinfo' | 'none';
  micros: number;
  lookupMicros: number;
  /** the caller's numbers that now hold the new file (the replaced fd first) */
  copies: number[];
  /** numbers of the caller that held the old file and could not be replaced (errno each) */
  failedCopies: { fd: number; errno: number }[];
  /** copies held by other processes (found among the caller's relatives and the epolls' holders) */
  shared: SharedCopy[];
  /** registrations left on the old file: in epolls the caller does not hold, or kept for a process sharing it */
  kept: number;
  /** io_uring fixed-file slots of the caller that held the old file */
  uring: UringSlot[];
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



/** The main thread's children, parent, of a process (cheap: two small /proc reads). */
function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
function parentOf(pid: number): number {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/** Does process `pid` hold the epoll at epollPid:epfd (any number)? */
function holdsEpoll(pid: number, epollPid: number, epfd: number): boolean {
  if (pid === epollPid || kcmp(pid, epollPid, KCMP_FILES, 0, 0) === 0) return true;
  if (kcmp(epollPid, pid, KCMP_FILE, epfd, epfd) === 0) return true; // inherited at the same number
  let names: string[] = [];
  try { names = readdirSync(`/proc/${pid}/fd`); } catch { return false; }
  for (const n of names) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${n}`) === 'anon_inode:[eventpoll]' && kcmp(epollPid, pid, KCMP_FILE, epfd, Number(n)) === 0) return true;
    } catch { /* closed meanwhile */ }
  }
  return false;
}

/**
 * Other processes holding the caller's old file at one of `numbers`: the
 * caller's relatives (ancestors while they hold it, and the main-thread
 * children of each holder, recursively) and the processes named as epoll
 * locations. A copy sent to an unrelated process (SCM_RIGHTS, pidfd_getfd)
 * under a number it is not registered with is not looked for.
 */
function otherHolders(tgid: number, numbers: number[], epollPids: number[]): SharedCopy[] {
  const out: SharedCopy[] = [];
  const seen = new Set<number>([tgid, process.pid]);
  const holds = (p: number) => {
    const found = numbers.filter((n) => kcmp(tgid, p, KCMP_FILE, n, n) === 0);
    for (const fd of found) out.push({ pid: p, fd });
    return found.length > 0;
  };
  const down = (p: number) => {
    for (const ch of children(p)) {
      if (seen.has(ch)) continue;
      seen.add(ch);
      if (holds(ch)) down(ch);
    }
  };
  down(tgid);
  for (let p = parentOf(tgid); p > 1 && !seen.has(p); p = parentOf(p)) {
    seen.add(p);
    if (!holds(p)) break;
    down(p);
  }
  for (const p of epollPids) {
    if (seen.has(p)) continue;
    seen.add(p);
    if (kcmp(tgid, p, KCMP_FILES, 0, 0) !== 0) holds(p);
  }
  return out;
}

/** The caller's io_uring fixed-file slots holding the file with inode `ino` (rings found through /proc/PID/maps). */
function uringSlots(tgid: number, ino: bigint): { ringFd: number; slot: number }[] {
  let maps = '';
  try { maps = readFileSync(`/proc/${tgid}/maps`, 'latin1'); } catch { return []; }
  if (!maps.includes('[io_uring]')) return [];
  const out: { ringFd: number; slot: number }[] = [];
  const want = `socket:[${ino}]`;
  for (const n of readdirSync(`/proc/${tgid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${tgid}/fd/${n}`) !== 'anon_inode:[io_uring]') continue;
      const info = readFileSync(`/proc/${tgid}/fdinfo/${n}`, 'latin1');
      const at = info.indexOf('UserFiles:');
      if (at < 0) continue;
      for (const line of info.slice(at).split('\n').slice(1)) {
        const m = /^\s*(\d+):\s(.*)$/.exec(line);
        if (!m) break;
        if (m[2] === want) out.push({ ringFd: Number(n), slot: Number(m[1]) });
      }
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/** Put `newFd` into slot `slot` of the ring at tgid:ringFd (IORING_REGISTER_FILES_UPDATE). 0 or errno. */
function uringUpdate(tgid: number, ringFd: number, slot: number, newFd: number): number {
  const ring = takeFd(tgid, ringFd);
  if (ring < 0) return -ring;
  try {
    return ringUpdate(ring, slot, newFd);
  } finally {
    closeFd(ring);
  }
}

/** Steps 1-2 decided: what the one native call does, and what the result reports. */
interface Plan {
  t0: bigint;
  tgid: number;
  oldCopy: number;
  /** the old file's copy is ours to close */
  ownOld: boolean;
  alone: boolean;
  numbers: number[];
  mine: Membership[];
  shared: SharedCopy[];
  kept: number;
  source: ReplaceResult['source'];
  lookupMicros: number;
  request: SwapRequest;
}

export async function replaceFd(target: ReplaceTarget, newFd: number, opts: ReplaceOptions = {}): Promise<ReplaceResult> {
  const plan = planReplace(target, newFd, opts);
  try {
    return finishReplace(plan, await swapFileAsync(plan.request), newFd, opts);
  } finally {
    if (plan.ownOld) closeFd(plan.oldCopy);
  }
}

/**
 * The supervisor's swap for a non-blocking caller: the lookups here; making
 * the replacement (set up like the old socket), its connect and the swap in
 * one native call on libuv's pool, so the event loop serves other
 * notifications meanwhile (ADDFD waits for the caller to run). A socket or
 * connect that fails is a ReplaceError with its errno. The result has the
 * connect's errno (0 or EINPROGRESS), the new socket's inode and the labels
 * of the options that could not be set.
 */
export async function connectAndReplace(target: ReplaceTarget, make: MakeSocket, opts: ReplaceOptions = {}): Promise<ReplaceResult & { connectErr: number; ino: bigint; unset: bigint }> {
  const plan = planReplace(target, -1, opts);
  let made = -1;
  try {
    plan.request.make = make;
    const out = await swapFileAsync(plan.request);
    made = out.made?.fd ?? -1;
    if (out.stage === 3) {
      const e = out.connectErr || EINVAL;
      throw new ReplaceError(`the replacement could not be made or connected: ${errnoName(e)}`, e);
    }
    return { ...finishReplace(plan, out, made, opts), connectErr: out.connectErr ?? 0, ino: out.made?.ino ?? 0n, unset: out.made?.unset ?? 0n };
  } finally {
    closeFd(made);
    if (plan.ownOld) closeFd(plan.oldCopy);
  }
}

function planReplace(target: ReplaceTarget, newFd: number, opts: ReplaceOptions): Plan {
  const t0 = process.hrtime.bigint();
  const tgid = opts.tgid ?? tgidOf(target.pid);
  if (tgid === undefined) throw new NoSuchProcessError(`no process ${tgid ?? target.pid}`);
  let oldCopy = opts.oldFd ?? -1;
  const ownOld = oldCopy < 0;
  try {
    // 1. Keep the old file alive until we are done with it; find its copies and registrations.
    if (oldCopy < 0) {
      oldCopy = takeFd(tgid, target.fd);
      if (oldCopy === -ESRCH) throw new NoSuchProcessError(`no process ${tgid}`);
      if (oldCopy < 0) throw new BadFdError(`process ${tgid} has no open fd ${target.fd}`);
    }
    const fixup = opts.fixup ?? true;
    const tracker = opts.tracker;
    const l0 = process.hrtime.bigint();
    // The file's reference count: when the caller's copies and ours are all of
    // them, nothing else can hold it (no other process, ring or message in flight).
    // With the fix-up, the registrations come from the same lookup.
    let all: Membership[] | undefined;
    let refs: References | undefined;
    if (tracker && fixup) ({ memberships: all, refs } = tracker.swapLookup(tgid, target.fd, 1, opts.copies !== false));
    else if (tracker && opts.copies !== false) refs = tracker.references(tgid, target.fd, 1);
    const alone = refs?.alone ?? false;
    const numbers = opts.copies === false ? [target.fd]
      : [target.fd, ...(refs ? refs.fds : (fdTableCopies(tgid, target.fd) ?? [target.fd]))
        .filter((n) => n !== target.fd)];
    let regs: Membership[] = [];
    let source: ReplaceResult['source'] = 'none';
    let cloexec = opts.cloexec ?? refs?.cloexec;
    if (fixup) {
      all ??= tracker ? tracker.membershipsOf(tgid, target.fd) : fdinfoMemberships(tgid, target.fd);
      source = tracker ? tracker.lastLookup.source : 'fdinfo';
      cloexec ??= tracker?.lastLookup.cloexec;
      regs = all.filter((m) => numbers.includes(m.tfd));
    }
    const lookupMicros = Number(process.hrtime.bigint() - l0) / 1000;
    cloexec ??= fdCloexec(tgid, target.fd);

    // Whose registrations are these? (the rule for shared files, above)
    const foreign: number[] = [];
    for (const m of regs) if (m.epollPid !== tgid && !foreign.includes(m.epollPid)) foreign.push(m.epollPid);
    const shared = !alone && numbers.length && (foreign.length || regs.length) ? otherHolders(tgid, numbers, foreign) : [];
    const mine: Membership[] = [];
    const dels: Membership[] = [];
    let kept = 0;
    const holdsCache = new Map<string, boolean>();
    const holds = (pid: number, m: Membership) => {
      if (pid === m.epollPid) return true; // the usual case: the caller's own epoll
      const k = `${pid}/${m.epollPid}:${m.epfd}`;
      let v = holdsCache.get(k);
      if (v === undefined) holdsCache.set(k, v = holdsEpoll(pid, m.epollPid, m.epfd));
      return v;
    };
    for (const m of regs) {
      if (!holds(tgid, m)) { kept++; continue; }
      mine.push(m);
      if (shared.some((h) => h.fd === m.tfd && holds(h.pid, m))) kept++;
      else dels.push(m);
    }

    // 2-4. ADD, ADDFD at every number, DEL: one native call.
    const ctl = (op: number, file: number, m: Membership): CtlRequest => ({
      op, epoll: { pid: m.epollPid, fd: m.epfd }, file, tfd: m.tfd, events: op === EPOLL_CTL_ADD ? m.events : 0, data: op === EPOLL_CTL_ADD ? m.data : 0n,
    });
    const at = numbers.map((n) => ({ fd: n, cloexec: n === target.fd ? cloexec! : fdCloexec(tgid, n) }));
    const request: SwapRequest = {
      listenerFd: target.listenerFd, id: target.id, newFd, at,
      adds: mine.map((m) => ctl(EPOLL_CTL_ADD, newFd, m)), dels: dels.map((m) => ctl(EPOLL_CTL_DEL, oldCopy, m)),
    };
    return { t0, tgid, oldCopy, ownOld, alone, numbers, mine, shared, kept, source, lookupMicros, request };
  } catch (err) {
    if (ownOld) closeFd(oldCopy);
    throw err;
  }
}

function finishReplace(plan: Plan, out: SwapOutcome, newFd: number, opts: ReplaceOptions): ReplaceResult {
  const { tgid, mine, numbers } = plan;
  if (out.stage === 1) {
    const i = out.adds.findIndex((e) => e !== 0);
    const m = mine[i];
    throw new ReplaceError(`cannot move the epoll registration of fd ${m.tfd} (epoll fd ${m.epfd} of process ${m.epollPid}): ${whyAdd(out.adds[i])}`, out.adds[i]);
  }
  if (out.stage === 2) {
    const e = out.installs[0];
    // ENOENT: the notification is gone. ESRCH: the caller was interrupted (a signal, kernels
    // without WAIT_KILLABLE_RECV) while the ADDFD waited for it; the kernel fails pending ADDFDs so.
    throw new ReplaceError(e === ENOENT || e === ESRCH
      ? 'the seccomp notification is gone (the caller died or was interrupted): nothing was installed'
      : `SECCOMP_IOCTL_NOTIF_ADDFD failed: ${errnoName(e)}`, e === ENOENT ? ESRCH : e);
  }
  for (const m of mine) opts.tracker?.noteEpoll(m.epollPid, m.epfd);

  // 5. io_uring fixed files holding the old file.
  const uring: UringSlot[] = [];
  if (opts.copies !== false && !plan.alone) {
    for (const u of uringSlots(tgid, fstatSync(plan.oldCopy, { bigint: true }).ino)) {
      const e = uringUpdate(tgid, u.ringFd, u.slot, newFd);
      uring.push(e ? { ...u, updated: false, errno: e } : { ...u, updated: true });
    }
  }
  return {
    moved: mine, source: plan.source, micros: Number(process.hrtime.bigint() - plan.t0) / 1000, lookupMicros: plan.lookupMicros,
    copies: numbers.filter((_n, i) => out.installs[i] === 0),
    failedCopies: numbers.map((fd, i) => ({ fd, errno: out.installs[i] })).filter((x) => x.errno !== 0),
    shared: plan.shared, kept: plan.kept, uring,
  };
}
