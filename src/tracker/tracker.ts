/**
 * The Tracker answers "which epoll instances hold fd N of process P" from the
 * loaded BPF tracker, in time independent of P's fd count:
 *   1. resolve (P, N) to the kernel file and read that file's live epitems
 *      (lookup iterator bound to P: one task, one fd-table slot);
 *   2. locate each epoll instance through the tracker's maps, a location in P
 *      verified in-kernel, elsewhere verified by a second lookup;
 *   3. when anything is uncertain (no verified location, too many epitems),
 *      fall back to the fdinfo way and say so in `source`.
 * Kernel pointers stay inside this object.
 */
import { existsSync } from 'node:fs';
import { DEFAULT_PIN_DIR, ITER_PROG, MAP, type Mode } from '../kernel/names.js';
import { isLoaded, load, readState, requireRoot, type LoadOptions } from '../../loader/load.js';
import { BpfObject, destroyLink, readIter } from '../kernel/bpfobject.js';
import { BadFdError, BpfError, ClosedError, NoSuchProcessError, NotLoadedError } from '../kernel/errors.js';
import { checkTarget, fdinfoMemberships, type Membership } from './fdinfo.js';
import {
  decodeLookupHdr, decodeLookupItem, LK_CLOEXEC, LOOKUP_HDR_NITEMS, LK_STATUS, LK_TRUNCATED, LOC_STATE, LOOKUP_HDR_SIZE, LOOKUP_ITEM_SIZE,
  type LookupHdr, type LookupItem,
} from '../kernel/layout.js';
import {
  closeMaps, dumpEpolls, dumpRegs, IterInput, learnEpollFops, walkKernel, lookupLoc, openPinnedMaps, putLoc, readStats, seedMaps,
  type MapFds, type SeedResult,
} from '../kernel/maps.js';
import type { Pointer } from '../kernel/ffi.js';

/** Why an answer took the slow way: resynced (kernel walk, still bpf) or fell back to fdinfo. */
export type FallbackReason = 'truncated' | 'no-location' | 'unverified-location' | 'resynced';

export interface LookupInfo {
  source: 'bpf' | 'fdinfo';
  reason?: FallbackReason;
  micros: number;
  /** the fd's close-on-exec flag, read from the fd table with the answer */
  cloexec?: boolean;
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
  fd: number;
  epollPid: number;
  epfd: number;
  tfd: number;
  events: number;
  data: bigint;
}

interface RawLookup { hdr: LookupHdr; items: LookupItem[] }

/** The lookup iterator writes one header and `nitems` items: stop reading once they are in. */
function lookupSize(b: Buffer): number | undefined {
  return b.length >= LOOKUP_HDR_SIZE ? LOOKUP_HDR_SIZE + b.readUInt32LE(LOOKUP_HDR_NITEMS) * LOOKUP_ITEM_SIZE : undefined;
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
  private readonly fallbacks: Record<FallbackReason, number> = { truncated: 0, 'no-location': 0, 'unverified-location': 0, resynced: 0 };
  private closed = false;

  /** @internal use openTracker() */
  constructor(pinDir: string, obj: BpfObject, fds: MapFds, linkCache: number) {
    this.pinDir = pinDir;
    this.obj = obj;
    this.fds = fds;
    this.linkCache = linkCache;
    this.input = new IterInput(obj);
    this.mode = readState(pinDir)?.mode;
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
      const out = readIter(this.link(pid, fresh), this.buf, lookupSize);
      if (out.length < LOOKUP_HDR_SIZE) continue; // stale cached link (process gone): retry once fresh
      const hdr = decodeLookupHdr(out, 0);
      if (!hdr) throw new BpfError('lookup iterator output is malformed: the BPF object does not fit this build, run `npm run build`');
      const items: LookupItem[] = [];
      for (let i = 0; i < hdr.nitems && LOOKUP_HDR_SIZE + (i + 1) * LOOKUP_ITEM_SIZE <= out.length; i++) {
        items.push(decodeLookupItem(out, LOOKUP_HDR_SIZE + i * LOOKUP_ITEM_SIZE));
      }
      return { hdr, items };
    }
    const l = this.links.get(pid);
    if (l) destroyLink(l);
    this.links.delete(pid);
    return undefined;
  }

  /** Is epoll instance `ep` at epollPid:epfd right now? */
  private epollAt(ep: bigint, epollPid: number, epfd: number): boolean {
    const r = this.raw(epollPid, epfd);
    return !!r && r.hdr.status === LK_STATUS.ok && r.hdr.priv === ep;
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
    if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(fd) || fd < 0) checkTarget(pid, fd);
    let resynced = false;
    for (;;) {
      const r = this.raw(pid, fd);
      if (!r || r.hdr.status === LK_STATUS.noFiles) throw new NoSuchProcessError(`no process ${pid}`);
      if (r.hdr.status === LK_STATUS.badFd) throw new BadFdError(`process ${pid} has no open fd ${fd}`);
      cloexec = (r.hdr.flags & LK_CLOEXEC) !== 0;
      if (r.hdr.flags & LK_TRUNCATED) return done(this.fallback(pid, fd, []), 'fdinfo', 'truncated');

      const out: Membership[] = [];
      let uncertain: FallbackReason | undefined;
      const remotePids: number[] = [];
      for (const it of r.items) {
        let ok = it.locState === LOC_STATE.verified;
        if (!ok && it.locState === LOC_STATE.remote) {
          ok = this.epollAt(it.ep, it.locTgid, it.locFd);
          if (!ok) remotePids.push(it.locTgid);
        }
        if (!ok) {
          uncertain = it.locState === LOC_STATE.none ? 'no-location' : 'unverified-location';
          break;
        }
        out.push({ epollPid: it.locTgid, epfd: it.locFd, tfd: it.tfd, events: it.events, data: it.data, source: 'bpf' });
      }
      if (!uncertain) return done(out, 'bpf', resynced ? 'resynced' : undefined);
      if (resynced) return done(this.fallback(pid, fd, remotePids), 'fdinfo', uncertain);
      // Where is that epoll now? Walk the kernel's task files once (in-kernel,
      // no /proc), refresh every location, and answer again.
      this.resync();
      resynced = true;
    }
  }

  /** The fdinfo way, then teach the epolls map where the instances it found are. */
  private fallback(pid: number, fd: number, morePids: number[]): Membership[] {
    const pids = [pid, ...morePids.filter((p) => p !== pid && existsSync(`/proc/${p}`))];
    const found = fdinfoMemberships(pid, fd, { pids });
    for (const m of found) {
      const r = this.raw(m.epollPid, m.epfd);
      if (r && r.hdr.status === LK_STATUS.ok) {
        const cur = lookupLoc(this.fds.epolls, r.hdr.priv);
        if (!cur || cur.tgid !== m.epollPid || cur.fd !== m.epfd) putLoc(this.fds.epolls, r.hdr.priv, { tgid: m.epollPid, fd: m.epfd });
      }
    }
    return found;
  }

  /**
   * Record that the epoll instance at pid:fd can be found there (after a helper
   * process touched it, its own short-lived fd would otherwise be the location).
   */
  noteEpoll(pid: number, fd: number): void {
    this.assertOpen();
    const r = this.raw(pid, fd);
    if (r && r.hdr.status === LK_STATUS.ok && r.hdr.fOp === this.epollFops) putLoc(this.fds.epolls, r.hdr.priv, { tgid: pid, fd });
  }

  /** Reconcile the maps with the kernel (cold start, and removals the hooks cannot see). */
  resync(): SeedResult {
    this.assertOpen();
    return seedMaps(this.obj, this.fds, this.epollFops);
  }

  /** Every live registration on the host (or of one process), read from the kernel now. */
  registrations(opts: { pid?: number } = {}): Registration[] {
    this.assertOpen();
    const { locs, regs } = walkKernel(this.obj, this.epollFops);
    const rows: Registration[] = [];
    for (const r of regs.values()) {
      if (opts.pid !== undefined && r.tgid !== opts.pid) continue;
      const l = locs.get(r.key.ep) ?? [];
      const loc = l.find((x) => x.tgid === r.tgid) ?? l[0] ?? lookupLoc(this.fds.epolls, r.key.ep);
      rows.push({
        pid: r.tgid, fd: r.fd, epollPid: loc?.tgid ?? 0, epfd: loc?.fd ?? -1, tfd: r.key.tfd, events: r.events, data: r.data,
      });
    }
    rows.sort((a, b) => a.pid - b.pid || a.fd - b.fd || a.epollPid - b.epollPid || a.epfd - b.epfd);
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
      if (locs.get(ep)?.some((l) => l.tgid === loc.tgid && l.fd === loc.fd)) out.epolls.live++; else out.epolls.stale++;
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
    closeMaps(this.fds);
    this.obj.close();
  }

  /** @internal */
  init(): void {
    this.epollFops = learnEpollFops(this.obj);
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
    obj = BpfObject.open();
    obj.keepPrograms([ITER_PROG.lookup, ITER_PROG.seed]);
    obj.reuseMap(MAP.regs, fds.regs);
    obj.reuseMap(MAP.epolls, fds.epolls);
    obj.reuseMap(MAP.stats, fds.stats);
    obj.setMaxEntries(MAP.start, 1);
    obj.load();
    const t = new Tracker(pinDir, obj, fds, opts.linkCache ?? 64);
    t.init();
    return t;
  } catch (err) {
    obj?.close();
    closeMaps(fds);
    throw err;
  }
}
