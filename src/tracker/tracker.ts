/**
 * The Tracker answers "which epoll instances hold fd N of process P" from live
 * kernel state, in time independent of P's fd count:
 *   1. one BPF_PROG_RUN of the lookup program (SEC("syscall"), v6.2+) resolves
 *      (P, N) to the kernel file, reads that file's live epitems in one pass
 *      and verifies each epoll's cached location in-kernel (in any process);
 *      an epoll it does not know is looked for in P's own fd table, lowest fds
 *      first, and the location learned;
 *   2. an epoll still not located: the in-kernel walk over every task's files
 *      (exact, host-wide), then the answer again;
 *   3. kernels without bpf_task_from_pid (< v6.2): the lookup iterator bound to
 *      P (one pass over the epitems too), and the same host walk when it cannot
 *      be sure. The tracker never reads fdinfo: that is the CLI's
 *      `--method fdinfo`, for hosts where BPF cannot run at all.
 * Kernel pointers stay inside this object.
 */
import { readdirSync } from 'node:fs';
import koffi from 'koffi';
import { DEFAULT_PIN_DIR, ITER_PROG, MAP, SYS_PROG, type Mode } from '../kernel/names.js';
import { isLoaded, load, readState, requireRoot, type LoadOptions } from '../../loader/load.js';
import { btfFuncs } from '../../loader/probe.js';
import { BpfObject, destroyLink, readIter } from '../kernel/bpfobject.js';
import { BadFdError, BadInputError, BpfError, BuildError, ClosedError, NoSuchProcessError, NotLoadedError } from '../kernel/errors.js';
import { checkTarget, fdinfoMemberships, type Membership } from './fdinfo.js';
import {
  decodeLookupHdr, decodeLookupItem, decodeSysHdr, encodeSysIn, encodeSysQuestion, LK_CLOEXEC, LK_STATUS, LK_TRUNCATED, LOC_STATE,
  LOOKUP_HDR_SIZE, LOOKUP_ITEM_SIZE, SYS_BIG, SYS_CLOEXEC, SYS_HDR_SIZE, SYS_OP, SYS_STATUS, SYS_UNLOCATED,
  ANSWER_SIZE, type LookupHdr, type LookupItem, type SysHdr,
} from '../kernel/layout.js';
import {
  closeMaps, dumpEpolls, dumpRegs, IterInput, learnEpollFops, walkKernel, openPinnedMaps, putLoc, readStats, seedMaps,
  type MapFds, type SeedResult, type SeedWalk,
} from '../kernel/maps.js';
import { bpfError } from '../kernel/bpfobject.js';
import { closeFd, errno, kcmp, KCMP_FILE, libbpf, libc, TestRunOpts, type Pointer } from '../kernel/ffi.js';

/** Why an answer took the slow way: resynced (kernel walk, still bpf) or fell back to fdinfo. */
export type FallbackReason = 'truncated' | 'no-location' | 'unverified-location' | 'resynced';

export interface LookupInfo {
  source: 'bpf' | 'fdinfo';
  reason?: FallbackReason;
  micros: number;
  /** the fd's close-on-exec flag, read from the fd table with the answer */
  cloexec?: boolean;
  /** how the answer was found: 'prog' (one BPF_PROG_RUN), 'iter' (lookup iterator, < v6.2) */
  path?: 'prog' | 'iter';
  /** registrations that are live but whose epoll no task holds at an fd (left out: no location to name) */
  unlocated?: number;
}

export interface TrackerOptions {
  pinDir?: string;
  /** load the tracker first when it is not loaded (options passed to load) */
  load?: boolean | LoadOptions;
  /** how many per-process iterator links to keep (default 64) */
  linkCache?: number;
}

/** A registration as listed by `ls`: the target's process and fd, and where the epoll is. */
export interface Registration {
  pid: number;
  /** task whose fd table holds `fd` (== pid unless a thread has a table of its own; tracker rows only) */
  tid?: number;
  fd: number;
  /** where the epoll is open: process, table owner, fd (0, 0, -1: open at no fd) */
  epollPid: number;
  epollTid?: number;
  epfd: number;
  tfd: number;
  events: number;
  data: bigint;
}

interface RawLookup { hdr: LookupHdr; items: LookupItem[] }

/** Bad numbers are refused before they reach the kernel (where they would wrap). */
function checkRange(pid: number, fd: number): void {
  if (!Number.isInteger(pid) || pid <= 0 || pid > 0x7fffffff) {
    throw new BadInputError(`pid must be an integer from 1 to 2147483647, got ${pid}`);
  }
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
    throw new BadInputError(`fd must be an integer from 0 to 2147483647, got ${fd}`);
  }
}

/** Live threads of process `pid` other than itself (a zombie leader's table is gone; theirs are not). */
function otherThreads(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number).filter((t) => t !== pid);
  } catch {
    return [];
  }
}

interface SysAnswer { hdr: SysHdr; items: LookupItem[] }

/** Tracker.references(): the numbers holding a file, and whether they are all of its references. */
export interface References { fds: number[]; refs?: number; alone: boolean; cloexec?: boolean }

/**
 * The lookup program: its 80-byte context (the kernel copies it back into
 * `ctx`) and its answer[] global, mapped into this process (reading the items
 * is a memory read, not a syscall).
 */
class SysProg {
  /** native memory: the context, then struct bpf_test_run_opts pointing at it, encoded once */
  private readonly native: unknown;
  private readonly opts: bigint;
  private readonly ctx: Buffer;
  private readonly mapped: unknown;
  private readonly items: Buffer;
  private readonly runRaw = libbpf().prog_test_run_raw;
  /** epoll_fops (and cap) as last written into ctx: the program never changes them */
  private fops: bigint | undefined;

  constructor(private readonly progFd: number, answerFd: number) {
    const optsSize = koffi.sizeof(TestRunOpts);
    this.native = koffi.alloc('uint8_t', SYS_HDR_SIZE + optsSize);
    this.ctx = Buffer.from(koffi.view(this.native, SYS_HDR_SIZE + optsSize)).subarray(0, SYS_HDR_SIZE);
    this.ctx.fill(0);
    // opts sit right after the 80-byte context: encode them there once.
    const optsAt = Buffer.from(koffi.view(this.native, SYS_HDR_SIZE + optsSize)).subarray(SYS_HDR_SIZE);
    optsAt.fill(0);
    optsAt.writeBigUInt64LE(BigInt(optsSize), koffi.offsetof(TestRunOpts, 'sz'));
    optsAt.writeBigUInt64LE(koffi.address(this.native), koffi.offsetof(TestRunOpts, 'ctx_in'));
    optsAt.writeUInt32LE(SYS_HDR_SIZE, koffi.offsetof(TestRunOpts, 'ctx_size_in'));
    this.opts = koffi.address(this.native) + BigInt(SYS_HDR_SIZE);
    const p = libc().mmap(null, ANSWER_SIZE, 1 /* PROT_READ */, 1 /* MAP_SHARED */, answerFd, 0);
    if (!p || koffi.address(p) === 0xffffffffffffffffn) throw bpfError('mapping the lookup answer', -errno());
    this.mapped = p;
    this.items = Buffer.from(koffi.view(p, ANSWER_SIZE));
  }

  run(op: number, pid: number, fd: number, epollFops: bigint, outside = 0): SysAnswer {
    if (epollFops !== this.fops) {
      encodeSysIn(this.ctx, op, pid, fd, SYS_BIG, epollFops);
      this.fops = epollFops;
    }
    encodeSysQuestion(this.ctx, op, pid, fd, outside);
    const r = this.runRaw(this.progFd, this.opts);
    if (r < 0) throw bpfError('running the lookup program (BPF_PROG_RUN)', r < -1 ? r : -errno());
    const hdr = decodeSysHdr(this.ctx);
    const items: LookupItem[] = [];
    for (let i = 0; i < hdr.nitems; i++) {
      const it = decodeLookupItem(this.items, i * LOOKUP_ITEM_SIZE);
      if (it.locState !== LOC_STATE.dying) items.push(it);
    }
    return { hdr, items };
  }

  close(): void {
    libc().munmap(this.mapped, ANSWER_SIZE);
    koffi.free(this.native);
  }
}

export class Tracker {
  readonly pinDir: string;
  readonly mode: Mode | undefined;
  /** how the last membershipsOf() was answered */
  lastLookup: LookupInfo = { source: 'bpf', micros: 0 };
  private readonly obj: BpfObject;
  private readonly input: IterInput;
  private readonly fds: MapFds;
  private readonly links = new Map<number, Pointer>();
  private readonly linkCache: number;
  private readonly buf = Buffer.alloc(1 << 14);
  private epollFops = 0n;
  /** the lookup programs, when this kernel runs them (probed by loading them) */
  private readonly sys?: SysProg;
  private readonly fallbacks: Record<FallbackReason, number> = { truncated: 0, 'no-location': 0, 'unverified-location': 0, resynced: 0 };
  private closed = false;

  /** @internal use openTracker() */
  constructor(pinDir: string, obj: BpfObject, fds: MapFds, linkCache: number, withSys: boolean) {
    this.pinDir = pinDir;
    this.obj = obj;
    this.fds = fds;
    this.linkCache = linkCache;
    this.input = new IterInput(obj);
    this.mode = readState(pinDir)?.mode;
    if (withSys) {
      this.sys = new SysProg(obj.progFd(SYS_PROG.lookup), obj.mapFd(MAP.answer));
    }
  }

  /** How lookups run here: 'prog' (one BPF_PROG_RUN each) or 'iter' (the lookup iterator, kernels < v6.2). */
  get lookupPath(): 'prog' | 'iter' {
    return this.sys ? 'prog' : 'iter';
  }

  /**
   * Run the lookup program on pid:fd, with room for every item. A zombie group
   * leader has no fd table: its process is answered through a live thread.
   */
  private sysRun(op: number, pid: number, fd: number, partialOk = false, outside = 0): SysAnswer {
    const sys = this.sys!;
    let a = sys.run(op, pid, fd, this.epollFops, outside);
    if (a.hdr.status === SYS_STATUS.noFiles && a.hdr.tgid === pid) {
      for (const tid of otherThreads(pid)) {
        const b = sys.run(op, tid, fd, this.epollFops, outside);
        if (b.hdr.status !== SYS_STATUS.noTask && b.hdr.status !== SYS_STATUS.noFiles && b.hdr.tgid === pid) {
          a = b;
          pid = tid;
          break;
        }
      }
    }
    if (a.hdr.status === SYS_STATUS.noTask || a.hdr.status === SYS_STATUS.noFiles) throw new NoSuchProcessError(`no process ${pid}`);
    if (a.hdr.status === SYS_STATUS.badFd) throw new BadFdError(`process ${pid} has no open fd ${fd}`);
    if (a.hdr.total > a.hdr.nitems && !partialOk) {
      throw new BpfError(`fd ${fd} of process ${pid}: ${a.hdr.total} entries, more than the ${SYS_BIG} one lookup reads`);
    }
    return a;
  }

  /** Membership lookup through the lookup program (v6.2+), with the header of its first run (the file's reference count). */
  private membershipsSys(pid: number, fd: number, t0: bigint): { out: Membership[]; first: SysHdr } {
    let a = this.sysRun(SYS_OP.lookup, pid, fd, true);
    const first = a.hdr;
    if (a.hdr.total > a.hdr.nitems) {
      // More epitems than one answer holds (ET_SYS_BIG): answer from the walk.
      const { out, source } = this.answerByWalk(a.hdr.file, a.hdr.tgid, a.hdr.tid || pid, fd);
      this.fallbacks.truncated++;
      this.lastLookup = {
        source, reason: 'truncated', micros: Number(process.hrtime.bigint() - t0) / 1000,
        cloexec: (a.hdr.flags & SYS_CLOEXEC) !== 0, path: 'prog', unlocated: 0,
      };
      return { out, first };
    }
    let reason: FallbackReason | undefined;
    let walk: SeedWalk | undefined;
    const unresolved = (x: SysAnswer) => x.items.filter((it) => it.locState !== LOC_STATE.verified);
    if (a.hdr.flags & SYS_UNLOCATED) {
      // An epoll that is in no cached location and not in this task's table:
      // walk every task's files in the kernel, learn where each epoll is, ask again.
      walk = walkKernel(this.obj, this.epollFops);
      seedMaps(this.obj, this.fds, this.epollFops, this.mode !== 'lazy', walk);
      this.fallbacks.resynced++;
      reason = 'resynced';
      a = this.sysRun(SYS_OP.lookup, pid, fd);
    }
    let unlocated = 0;
    const verifiedAt = new Map<bigint, { tgid: number; tid: number; fd: number }>();
    for (const it of unresolved(a)) {
      // The map may have evicted what the walk taught it (full LRU): verify the walk's own candidates.
      for (const l of walk?.locs.get(it.ep) ?? []) {
        try {
          const b = this.sys!.run(SYS_OP.lookup, l.tid, l.fd, this.epollFops);
          if (b.hdr.status === SYS_STATUS.ok && b.hdr.priv === it.ep && b.hdr.tid === l.tid) {
            verifiedAt.set(it.ep, { tgid: b.hdr.tgid, tid: l.tid, fd: l.fd });
            break;
          }
        } catch { /* gone meanwhile */ }
      }
      if (!verifiedAt.has(it.ep)) unlocated++;
    }
    const out: Membership[] = [];
    for (const it of a.items) {
      let loc = it.locState === LOC_STATE.verified ? { tgid: it.locTgid, tid: it.locTid, fd: it.locFd } : verifiedAt.get(it.ep);
      if (!loc) continue;
      out.push({ epollPid: loc.tgid, ...tidOf(loc.tgid, loc.tid), epfd: loc.fd, tfd: it.tfd, events: it.events, data: it.data, source: 'bpf' });
    }
    this.lastLookup = {
      source: 'bpf', reason, micros: Number(process.hrtime.bigint() - t0) / 1000,
      cloexec: (a.hdr.flags & SYS_CLOEXEC) !== 0, path: 'prog', unlocated,
    };
    return { out, first };
  }

  /**
   * Every fd number in the fd table of task `pid` that holds the same file as
   * `fd` (fd included), ascending. A file with a single reference has no other
   * copy and costs no scan; otherwise the table is scanned in the kernel until
   * every reference is found. Needs the lookup program (v6.2+); older kernels
   * read /proc/PID/fd.
   */
  copiesOf(pid: number, fd: number): number[] {
    return this.references(pid, fd).fds;
  }

  /**
   * copiesOf, with what the file's reference count says: `alone` is true when
   * the copies found plus the `outside` references the caller knows of (its
   * own copy, taken with pidfd_getfd) are every reference the file has. Then
   * no other process, io_uring fixed-file table or message in flight holds
   * it, and the scan stopped at the last copy. False when it cannot be sure
   * (other references, or no lookup program: v6.2+).
   */
  references(pid: number, fd: number, outside = 0): References {
    this.assertOpen();
    checkRange(pid, fd);
    if (!this.sys) return { fds: copiesFromProc(pid, fd), alone: false };
    const a = this.sysRun(SYS_OP.copies, pid, fd, false, outside);
    const fds = a.items.map((it) => it.tfd).sort((x, y) => x - y);
    return { fds, refs: a.hdr.refs, alone: a.hdr.refs === fds.length + outside, cloexec: (a.hdr.flags & SYS_CLOEXEC) !== 0 };
  }

  /**
   * What a swap asks, in one run of the lookup program where it can:
   * membershipsOf(pid, fd) and references(pid, fd, outside). The lookup
   * reads the file's reference count too; when it leaves no room for a
   * second copy in the table (refs - outside <= 1, the usual case) the
   * copies are just `fd` and no scan runs, as references() would answer.
   * Otherwise, and without the lookup program, both run. With `scan` false
   * the table is never scanned: `fds` is just `fd`, `alone` still exact.
   */
  swapLookup(pid: number, fd: number, outside = 0, scan = true): { memberships: Membership[]; refs: References } {
    this.assertOpen();
    checkRange(pid, fd);
    if (!this.sys) {
      return { memberships: this.membershipsOf(pid, fd), refs: scan ? this.references(pid, fd, outside) : { fds: [fd], alone: false } };
    }
    const { out: memberships, first: hdr } = this.membershipsSys(pid, fd, process.hrtime.bigint());
    if (hdr.refs > outside + 1 && scan) return { memberships, refs: this.references(pid, fd, outside) };
    return { memberships, refs: { fds: [fd], refs: hdr.refs, alone: hdr.refs === outside + 1, cloexec: (hdr.flags & SYS_CLOEXEC) !== 0 } };
  }

  private link(pid: number, fresh: boolean): Pointer {
    let l = this.links.get(pid);
    if (l && fresh) {
      destroyLink(l);
      this.links.delete(pid);
      l = undefined;
    }
    if (!l) {
      if (this.links.size >= this.linkCache) {
        const [oldPid, old] = this.links.entries().next().value as [number, Pointer];
        destroyLink(old);
        this.links.delete(oldPid);
      }
      l = this.obj.attachIter(ITER_PROG.lookup, pid);
    } else {
      this.links.delete(pid); // re-insert: most recently used last
    }
    this.links.set(pid, l);
    return l;
  }

  /** Run the lookup iterator on pid:fd. undefined when no such task. */
  private raw(pid: number, fd: number): RawLookup | undefined {
    this.input.set(this.epollFops, fd);
    for (const fresh of [false, true]) {
      const out = readIter(this.link(pid, fresh), this.buf);
      if (out.length < LOOKUP_HDR_SIZE) continue; // stale cached link (process gone): retry once fresh
      // Items first, the header last: the iterator walks the epitem list once.
      const hdr = decodeLookupHdr(out, out.length - LOOKUP_HDR_SIZE);
      if (!hdr) throw new BpfError('lookup iterator output is malformed: the BPF object does not fit this build, run `npm run build`');
      const items: LookupItem[] = [];
      for (let i = 0; i < hdr.nitems && (i + 1) * LOOKUP_ITEM_SIZE <= out.length - LOOKUP_HDR_SIZE; i++) {
        items.push(decodeLookupItem(out, i * LOOKUP_ITEM_SIZE));
      }
      return { hdr, items };
    }
    const l = this.links.get(pid);
    if (l) destroyLink(l);
    this.links.delete(pid);
    return undefined;
  }

  /**
   * Every epoll registration of fd `fd` of process `pid`, live and verified.
   * Throws NoSuchProcessError / BadFdError for a pid or fd that does not exist.
   */
  membershipsOf(pid: number, fd: number): Membership[] {
    this.assertOpen();
    const t0 = process.hrtime.bigint();
    let cloexec: boolean | undefined;
    const done = (out: Membership[], source: 'bpf' | 'fdinfo', reason?: FallbackReason) => {
      this.lastLookup = { source, reason, micros: Number(process.hrtime.bigint() - t0) / 1000, cloexec };
      if (reason) this.fallbacks[reason]++;
      return out;
    };
    checkRange(pid, fd);
    if (this.sys) return this.membershipsSys(pid, fd, t0).out;
    // The iterator path (kernels without bpf_task_from_pid, < v6.2).
    let r = this.raw(pid, fd);
    if (r?.hdr.status === LK_STATUS.noFiles && r.hdr.tgid === pid) {
      // A zombie group leader has no fd table: ask a live thread of it.
      for (const tid of otherThreads(pid)) {
        const t = this.raw(tid, fd);
        if (t && t.hdr.status !== LK_STATUS.noFiles && t.hdr.tgid === pid) { r = t; break; }
      }
    }
    if (!r || r.hdr.status === LK_STATUS.noFiles) throw new NoSuchProcessError(`no process ${pid}`);
    if (r.hdr.status === LK_STATUS.badFd) throw new BadFdError(`process ${pid} has no open fd ${fd}`);
    cloexec = (r.hdr.flags & LK_CLOEXEC) !== 0;
    let uncertain: FallbackReason | undefined = (r.hdr.flags & LK_TRUNCATED) ? 'truncated' : undefined;
    const out: Membership[] = [];
    for (const it of uncertain ? [] : r.items) {
      let ok = it.locState === LOC_STATE.verified;
      let tgid = it.locTgid;
      if (!ok && it.locState === LOC_STATE.remote) {
        const at = this.raw(it.locTid, it.locFd);
        ok = !!at && at.hdr.status === LK_STATUS.ok && at.hdr.priv === it.ep;
        tgid = at?.hdr.tgid ?? 0;
      }
      if (!ok) {
        uncertain = it.locState === LOC_STATE.none ? 'no-location' : 'unverified-location';
        break;
      }
      out.push({ epollPid: tgid, ...tidOf(tgid, it.locTid), epfd: it.locFd, tfd: it.tfd, events: it.events, data: it.data, source: 'bpf' });
    }
    if (!uncertain) return done(out, 'bpf');
    const { out: walked, source } = this.answerByWalk(r.hdr.file, r.hdr.tgid, pid, fd);
    return done(walked, source, uncertain);
  }

  /**
   * When the fast path cannot be sure: the in-kernel walk over every task's
   * files is exact and host-wide. Answer from it for `file` (held at pid:fd,
   * in process tgid) and teach the maps what it saw. A file with more
   * registrations than the walk reports per file takes the fdinfo way.
   */
  private answerByWalk(file: bigint, tgid: number, pid: number, fd: number): { out: Membership[]; source: 'bpf' | 'fdinfo' } {
    const walk = walkKernel(this.obj, this.epollFops);
    seedMaps(this.obj, this.fds, this.epollFops, this.mode !== 'lazy', walk);
    return walk.truncated.has(file)
      ? { out: fdinfoOfTruncated(walk, pid, fd), source: 'fdinfo' }
      : { out: answerFromWalk(walk, file, tgid), source: 'bpf' };
  }

  /**
   * Record that the epoll instance at pid:fd can be found there (after a helper
   * process touched it, its own short-lived fd would otherwise be the location:
   * the hooks record whoever calls epoll_ctl). Lazy mode has no hooks: nothing
   * recorded the helper, and the location the lookup found stands.
   */
  noteEpoll(pid: number, fd: number): void {
    this.assertOpen();
    if (this.mode === 'lazy') return;
    if (this.sys) {
      try {
        const a = this.sys.run(SYS_OP.lookup, pid, fd, this.epollFops);
        if (a.hdr.status === SYS_STATUS.ok && a.hdr.fOp === this.epollFops) putLoc(this.fds.epolls, a.hdr.priv, { tid: a.hdr.tid, fd });
      } catch { /* a hint only */ }
      return;
    }
    const r = this.raw(pid, fd);
    if (r && r.hdr.status === LK_STATUS.ok && r.hdr.fOp === this.epollFops) putLoc(this.fds.epolls, r.hdr.priv, { tid: pid, fd });
  }

  /** Reconcile the maps with the kernel (cold start, and removals the hooks cannot see). */
  resync(): SeedResult {
    this.assertOpen();
    return seedMaps(this.obj, this.fds, this.epollFops, this.mode !== 'lazy');
  }

  /**
   * Every live registration on the host (or of one process), read from the
   * kernel now by one walk over every task's files. A file held by several
   * processes (fork, SCM_RIGHTS, pidfd_getfd) or several fds is listed under
   * every (process, fd) holding it. The epoll's location is one the same walk
   * saw open (in the same process when it has one), or none (epfd -1).
   */
  registrations(opts: { pid?: number } = {}): Registration[] {
    this.assertOpen();
    const walk = walkKernel(this.obj, this.epollFops);
    const { locs, holders, truncated } = walk;
    const rows: Registration[] = [];
    const seen = new Set<string>();
    // Files the walk could not report whole: their holders, each given the fdinfo way's answer below.
    const bigHolders = new Map<bigint, Map<string, { tgid: number; tid: number; fd: number }>>();
    for (const h of holders) {
      if (opts.pid !== undefined && h.tgid !== opts.pid) continue;
      if (truncated.has(h.key.file)) {
        const m = bigHolders.get(h.key.file) ?? new Map();
        m.set(`${h.tid}:${h.fd}`, { tgid: h.tgid, tid: h.tid, fd: h.fd });
        bigHolders.set(h.key.file, m);
        continue;
      }
      const id = `${h.tid}:${h.fd}:${h.key.ep}:${h.key.tfd}`;
      if (seen.has(id)) continue;
      seen.add(id);
      const l = locs.get(h.key.ep) ?? [];
      const loc = l.find((x) => x.tid === h.tid) ?? l.find((x) => x.tgid === h.tgid) ?? l[0];
      rows.push({
        pid: h.tgid, tid: h.tid, fd: h.fd, epollPid: loc?.tgid ?? 0, epollTid: loc?.tid ?? 0, epfd: loc?.fd ?? -1,
        tfd: h.key.tfd, events: h.events, data: h.data,
      });
    }
    for (const hs of bigHolders.values()) {
      const all = [...hs.values()];
      let regs: Membership[] = [];
      for (const h of all) {
        try { regs = fdinfoOfTruncated(walk, h.tid, h.fd); break; } catch { /* that holder is gone: the next */ }
      }
      for (const h of all) {
        for (const m of regs) rows.push({ pid: h.tgid, tid: h.tid, fd: h.fd, epollPid: m.epollPid, epollTid: m.epollPid, epfd: m.epfd, tfd: m.tfd, events: m.events, data: m.data });
      }
    }
    rows.sort((a, b) => a.pid - b.pid || (a.tid ?? 0) - (b.tid ?? 0) || a.fd - b.fd || a.epollPid - b.epollPid || a.epfd - b.epfd || a.tfd - b.tfd);
    return rows;
  }

  /** Kernel-side counters and map fill, plus this tracker's fallbacks. */
  stats(): { kernel: Record<string, bigint>; fallbacks: Record<FallbackReason, number> } {
    this.assertOpen();
    return { kernel: readStats(this.fds.stats), fallbacks: { ...this.fallbacks } };
  }

  /**
   * Map entries the kernel confirms right now (live: the registration exists,
   * the epoll instance is at that location) and the others (stale: left by a
   * removal no hook saw, until the next resync). Counts only; one kernel walk.
   */
  mapFill(): { regs: { live: number; stale: number }; epolls: { live: number; stale: number } } {
    this.assertOpen();
    const { locs, regs } = walkKernel(this.obj, this.epollFops);
    const out = { regs: { live: 0, stale: 0 }, epolls: { live: 0, stale: 0 } };
    for (const { key } of dumpRegs(this.fds.regs)) {
      if (regs.has(`${key.file}:${key.ep}:${key.tfd}`)) out.regs.live++; else out.regs.stale++;
    }
    for (const { ep, loc } of dumpEpolls(this.fds.epolls)) {
      if (locs.get(ep)?.some((l) => l.tid === loc.tid && l.fd === loc.fd)) out.epolls.live++; else out.epolls.stale++;
    }
    return out;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.links.values()) destroyLink(l);
    this.links.clear();
    this.input.close();
    this.sys?.close();
    closeMaps(this.fds);
    this.obj.close();
  }

  /** @internal */
  init(): void {
    if (!this.sys) {
      this.epollFops = learnEpollFops(this.obj);
      return;
    }
    // Learn the f_op of epoll files from one of ours, through the lookup program;
    // the same runs warm the call path, so a one-shot CLI lookup times the lookup only.
    const epfd = libc().epoll_create1(0x80000 /* EPOLL_CLOEXEC */);
    if (epfd < 0) throw bpfError('epoll_create1', -errno());
    const outer = libc().epoll_create1(0x80000);
    try {
      const a = this.sys.run(SYS_OP.lookup, process.pid, epfd, 0n);
      if (a.hdr.status !== SYS_STATUS.ok || a.hdr.fOp === 0n) throw new BpfError('the lookup program did not see this process\'s epoll fd');
      this.epollFops = a.hdr.fOp;
      // One registration of ours (epfd in outer) walks the whole path: items, location, answer.
      const ev = Buffer.alloc(12);
      ev.writeUInt32LE(1, 0);
      if (outer >= 0 && libc().epoll_ctl(outer, 1 /* ADD */, epfd, ev) === 0) {
        for (let i = 0; i < 20; i++) this.membershipsOf(process.pid, epfd);
      }
    } finally {
      closeFd(outer);
      closeFd(epfd);
    }
    this.lastLookup = { source: 'bpf', micros: 0 };
    this.fallbacks.resynced = 0;
  }
}

/** Open the loaded tracker (or load it first with `{ load: true }`). */
export async function openTracker(opts: TrackerOptions = {}): Promise<Tracker> {
  const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
  requireRoot(); // the pins are root-only: say so rather than "not loaded"
  if (!isLoaded(pinDir)) {
    if (!opts.load) throw new NotLoadedError(`the tracker is not loaded at ${pinDir}: run \`epolltrack load\``);
    load({ ...(typeof opts.load === 'object' ? opts.load : {}), pinDir });
  }
  const fds = openPinnedMaps(pinDir);
  let obj: BpfObject | undefined;
  try {
    // A private copy of the iterator programs, sharing the pinned maps.
    // The lookup programs need bpf_task_from_pid (v6.2+): probe by loading them;
    // without them, the iterators alone.
    let withSys = process.env.EPOLLTRACK_LOOKUP !== 'iter';
    for (;;) {
      obj = BpfObject.open();
      obj.keepPrograms([ITER_PROG.lookup, ITER_PROG.seed, ...(withSys ? [SYS_PROG.lookup] : [])]);
      obj.reuseMap(MAP.regs, fds.regs, pinDir);
      obj.reuseMap(MAP.epolls, fds.epolls, pinDir);
      obj.reuseMap(MAP.stats, fds.stats, pinDir);
      obj.setMaxEntries(MAP.start, 1);
      try {
        obj.load();
        break;
      } catch (err) {
        obj.close();
        obj = undefined;
        if (!withSys) throw err;
        // A kernel with the kfunc the lookup program needs refused it: that is this build's
        // fault (or a signal storm during verification), not the kernel's age. Say so rather
        // than fall back to the iterator path, several times slower, without a word.
        if (btfFuncs(['bpf_task_from_pid']).size) {
          throw new BuildError(`the lookup program was refused although this kernel has bpf_task_from_pid (${(err as Error).message}): rebuild with \`npm run build\``, { cause: err });
        }
        withSys = false;
      }
    }
    const t = new Tracker(pinDir, obj, fds, opts.linkCache ?? 64, withSys);
    t.init();
    return t;
  } catch (err) {
    obj?.close();
    closeMaps(fds);
    throw err;
  }
}

/** Copies of pid:fd read from /proc (kernels without the lookup program); a zombie leader's through a live thread. */
function copiesFromProc(pid: number, fd: number): number[] {
  for (const t of [pid, ...otherThreads(pid)]) {
    let names: string[];
    try {
      names = readdirSync(`/proc/${pid}/task/${t}/fd`);
    } catch {
      continue;
    }
    if (!names.includes(String(fd))) continue;
    return names.map(Number).filter((n) => kcmp(t, t, KCMP_FILE, fd, n) === 0).sort((x, y) => x - y);
  }
  checkTarget(pid, fd); // throws NoSuchProcessError / BadFdError / PermissionError
  throw new BadFdError(`process ${pid} has no open fd ${fd}`);
}

/** The registrations of `file` as one walk over every task's files saw them, located in `tgid` when it can be. */
function answerFromWalk(walk: SeedWalk, file: bigint, tgid: number): Membership[] {
  const out: Membership[] = [];
  const seen = new Set<string>();
  for (const h of walk.holders) {
    if (h.key.file !== file) continue;
    const id = `${h.key.ep}:${h.key.tfd}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const l = walk.locs.get(h.key.ep) ?? [];
    const loc = l.find((x) => x.tgid === tgid) ?? l[0];
    if (!loc) continue; // live, but open at no fd anywhere: nothing to name
    out.push({ epollPid: loc.tgid, ...tidOf(loc.tgid, loc.tid), epfd: loc.fd, tfd: h.key.tfd, events: h.events, data: h.data, source: 'bpf' });
  }
  return out;
}

/**
 * A file with more registrations than the walk reports per file (ET_SEED_MAX_EPI):
 * the fdinfo way, over every process the walk saw holding an epoll. Exact, slow;
 * only such files pay it.
 */
function fdinfoOfTruncated(walk: SeedWalk, pid: number, fd: number): Membership[] {
  const pids = new Set<number>([pid]);
  for (const l of walk.locs.values()) for (const x of l) pids.add(x.tgid);
  return fdinfoMemberships(pid, fd, { pids: [...pids] });
}

/** epollTid is set only when the epoll is in a thread's own fd table (not the process's). */
function tidOf(tgid: number, tid: number): { epollTid?: number } {
  return tid && tid !== tgid ? { epollTid: tid } : {};
}
