/**
 * Typed access to the pinned maps (regs, epolls, stats) by fd, and the seeding
 * of those maps from the `seed` iterator (cold start at load, resync later).
 */
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import koffi from 'koffi';
import { join } from 'node:path';
import { MAP, PINNED_MAPS } from './names.js';
import { bpfError, BpfObject, destroyLink, readIter } from './bpfobject.js';
import { BpfError, NotLoadedError, PermissionError } from './errors.js';
import {
  decodeLoc, decodeLookupHdr, LOOKUP_HDR_SIZE, decodeRegKey, decodeRegVal, decodeSeedRec, encodeIterIn, encodeLoc, encodeRegKey,
  encodeRegVal, encodeU64, EP_KEY_SIZE, ITER_IN_FOPS, ITER_IN_WANT_FD, LOC_SIZE, REG_KEY_SIZE, REG_VAL_SIZE, SEED, SEED_REC_SIZE, STAT, STAT_MAX,
  type Loc, type RegKey, type RegVal, type StatName,
} from './layout.js';
import { closeFd, errno, libbpf, libc } from './ffi.js';

export interface MapFds { regs: number; epolls: number; stats: number }

export function mapPinPath(pinDir: string, name: string): string {
  return join(pinDir, 'maps', name);
}

/** Open the pinned maps of a loaded tracker. */
export function openPinnedMaps(pinDir: string): MapFds {
  const fds: Partial<MapFds> = {};
  try {
    for (const name of PINNED_MAPS) {
      const path = mapPinPath(pinDir, name);
      if (!existsSync(path)) throw new NotLoadedError(`the tracker is not loaded (no ${path}): run \`epolltrack load\``);
      const fd = libbpf().obj_get(path);
      if (fd < 0) {
        const e = errno();
        if (e === constants.errno.EPERM || e === constants.errno.EACCES) throw new PermissionError(`cannot open ${path}: permission denied; the tracker's maps are root-only, run as root`);
        throw bpfError(`opening ${path}`, -e);
      }
      fds[name] = fd;
    }
    return fds as MapFds;
  } catch (err) {
    closeMaps(fds);
    throw err;
  }
}

export function closeMaps(fds: Partial<MapFds>): void {
  for (const fd of Object.values(fds)) if (typeof fd === 'number') closeFd(fd);
}

const u32key = (i: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(i); return b; };

export function readStats(fd: number): Record<StatName, bigint> {
  const out = {} as Record<StatName, bigint>;
  const v = Buffer.alloc(8);
  for (const [name, idx] of Object.entries(STAT) as [StatName, number][]) {
    out[name] = libbpf().map_lookup(fd, u32key(idx), v) === 0 ? v.readBigUInt64LE(0) : 0n;
  }
  return out;
}

export function writeStat(fd: number, idx: number, value: bigint): void {
  if (idx >= STAT_MAX) throw new RangeError('stat index');
  const r = libbpf().map_update(fd, u32key(idx), encodeU64(value), 0);
  if (r < 0) throw bpfError('updating stats', r);
}

/** Every key of a hash map (bounded by its size). */
function keys(fd: number, keySize: number): Buffer[] {
  const out: Buffer[] = [];
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    if (libbpf().map_next_key(fd, prev, next) !== 0) break;
    out.push(next);
    prev = next;
  }
  return out;
}

export function dumpRegs(fd: number): { key: RegKey; val: RegVal }[] {
  const v = Buffer.alloc(REG_VAL_SIZE);
  const out: { key: RegKey; val: RegVal }[] = [];
  for (const k of keys(fd, REG_KEY_SIZE)) {
    if (libbpf().map_lookup(fd, k, v) === 0) out.push({ key: decodeRegKey(k), val: decodeRegVal(v) });
  }
  return out;
}

export function dumpEpolls(fd: number): { ep: bigint; loc: Loc }[] {
  const v = Buffer.alloc(LOC_SIZE);
  const out: { ep: bigint; loc: Loc }[] = [];
  for (const k of keys(fd, EP_KEY_SIZE)) {
    if (libbpf().map_lookup(fd, k, v) === 0) out.push({ ep: k.readBigUInt64LE(0), loc: decodeLoc(v) });
  }
  return out;
}

export function countEntries(fd: number, keySize: number): number {
  return keys(fd, keySize).length;
}

export function lookupLoc(fd: number, ep: bigint): Loc | undefined {
  const v = Buffer.alloc(LOC_SIZE);
  return libbpf().map_lookup(fd, encodeU64(ep), v) === 0 ? decodeLoc(v) : undefined;
}

/** Returns false when the map is full. */
export function putLoc(fd: number, ep: bigint, loc: Loc): boolean {
  return libbpf().map_update(fd, encodeU64(ep), encodeLoc(loc), 0) === 0;
}

export function putReg(fd: number, key: RegKey, val: RegVal): boolean {
  return libbpf().map_update(fd, encodeRegKey(key), encodeRegVal(val), 0) === 0;
}

export function deleteReg(fd: number, key: RegKey): void {
  libbpf().map_delete(fd, encodeRegKey(key));
}

export function deleteLoc(fd: number, ep: bigint): void {
  libbpf().map_delete(fd, encodeU64(ep));
}

// ---- iterator inputs and runs -------------------------------------------------

export function setIterInput(obj: BpfObject, epollFops: bigint, wantFd: number): void {
  const r = libbpf().map_update(obj.mapFd(MAP.bss), u32key(0), encodeIterIn(epollFops, wantFd), 0);
  if (r < 0) throw bpfError('setting iterator input', r);
}

/**
 * The iterators' input (.bss) mapped into this process: setting it is a
 * memory write, not a syscall. Falls back to map updates if mmap fails.
 */
export class IterInput {
  private ptr: unknown = null;
  private fops = 0n;
  constructor(private readonly obj: BpfObject) {
    const p = libc().mmap(null, 4096, 3 /* PROT_READ|WRITE */, 1 /* MAP_SHARED */, obj.mapFd(MAP.bss), 0);
    if (p && koffi.address(p) !== 0xffffffffffffffffn) this.ptr = p;
  }

  set(epollFops: bigint, wantFd: number): void {
    if (!this.ptr) return setIterInput(this.obj, epollFops, wantFd);
    if (epollFops !== this.fops) {
      koffi.encode(this.ptr, ITER_IN_FOPS, 'uint64_t', epollFops);
      this.fops = epollFops;
    }
    koffi.encode(this.ptr, ITER_IN_WANT_FD, 'uint32_t', wantFd);
  }

  close(): void {
    if (this.ptr) libc().munmap(this.ptr, 4096);
    this.ptr = null;
  }
}

/** Learn the f_op of epoll files by looking at one this process opens. */
export function learnEpollFops(obj: BpfObject): bigint {
  const epfd = libc().epoll_create1(0x80000 /* EPOLL_CLOEXEC */);
  if (epfd < 0) throw bpfError('epoll_create1', -errno());
  const link = obj.attachIter('lookup', process.pid);
  try {
    setIterInput(obj, 0n, epfd);
    const out = readIter(link, Buffer.alloc(4096));
    const hdr = out.length >= LOOKUP_HDR_SIZE ? decodeLookupHdr(out, out.length - LOOKUP_HDR_SIZE) : undefined; // header last
    if (!hdr || hdr.status !== 0 || hdr.fOp === 0n) throw new BpfError('the lookup iterator did not see this process\'s epoll fd: the BPF object does not fit this kernel, rebuild it');
    return hdr.fOp;
  } finally {
    destroyLink(link);
    closeFd(epfd);
  }
}

export interface SeedResult { registrations: number; epolls: number; removed: number; full: number; micros: number }

/** A live registration found by the seed walk, at the (task, fd) that shows it best. */
export interface SeedReg {
  key: RegKey;
  events: number;
  data: bigint;
  /** a process holding the target file, at `fd` (fd === key.tfd when one holds it under that number) */
  tgid: number;
  fd: number;
}

/** Where the walk saw an epoll instance open: the table owner (tid), its process, the fd. */
export interface WalkLoc extends Loc { tgid: number }

/** One (task, fd) that holds a file with a registration: every holder is listed. */
export interface SeedHolder { tgid: number; tid: number; fd: number; key: RegKey; events: number; data: bigint }

export interface SeedWalk {
  /** where each epoll instance is open now */
  locs: Map<bigint, WalkLoc[]>;
  /** each live registration once, by `${file}:${ep}:${tfd}` */
  regs: Map<string, SeedReg>;
  /** every (task, fd) holding a registered file, once per registration */
  holders: SeedHolder[];
  /** files with more epitems than one visit reports (ET_SEED_MAX_EPI): their registrations here are incomplete */
  truncated: Set<bigint>;
}

/** Walk every task file in the kernel (the `seed` iterator) and collect what is live. */
export function walkKernel(obj: BpfObject, epollFops: bigint): SeedWalk {
  setIterInput(obj, epollFops, 0);
  const link = obj.attachIter('seed');
  let out: Buffer;
  try {
    out = readIter(link, Buffer.alloc(1 << 16));
  } finally {
    destroyLink(link);
  }
  const locs = new Map<bigint, WalkLoc[]>();
  const regs = new Map<string, SeedReg>();
  const holders: SeedHolder[] = [];
  const truncated = new Set<bigint>();
  for (let off = 0; off + SEED_REC_SIZE <= out.length; off += SEED_REC_SIZE) {
    const r = decodeSeedRec(out, off);
    if (r.kind === SEED.trunc) {
      truncated.add(r.file);
    } else if (r.kind === SEED.epoll) {
      const l = locs.get(r.ep) ?? [];
      l.push({ tid: r.tid, tgid: r.tgid, fd: r.fd });
      locs.set(r.ep, l);
    } else if (r.kind === SEED.reg) {
      const id = `${r.file}:${r.ep}:${r.tfd}`;
      const prev = regs.get(id);
      const key = { file: r.file, ep: r.ep, tfd: r.tfd };
      holders.push({ tgid: r.tgid, tid: r.tid, fd: r.fd, key, events: r.events, data: r.data });
      // The process that holds the target at tfd is the best "target" process.
      if (!prev || (r.fd === r.tfd && prev.fd !== prev.key.tfd)) {
        regs.set(id, { key, events: r.events, data: r.data, tgid: r.tgid, fd: r.fd });
      }
    }
  }
  return { locs, regs, holders, truncated };
}

/**
 * Walk every task file in the kernel and make regs/epolls agree with what is
 * live: add what is missing, refresh what is there, delete entries of an older
 * generation that were not seen (removals the hooks could not see). Both maps
 * are LRU: a full map evicts its oldest entries instead of refusing.
 * `withRegs: false` (lazy mode, where nothing reads regs) fills epolls only.
 */
export function seedMaps(obj: BpfObject, fds: MapFds, epollFops: bigint, withRegs = true, walked?: SeedWalk): SeedResult {
  const t0 = process.hrtime.bigint();
  const gen = Number(readStats(fds.stats).gen) + 1;
  writeStat(fds.stats, STAT.gen, BigInt(gen));
  const { locs: seenLocs, regs } = walked ?? walkKernel(obj, epollFops);

  let full = 0;
  // Locations: keep a current one when it is among those seen, else take the first seen.
  for (const [ep, locs] of seenLocs) {
    const cur = lookupLoc(fds.epolls, ep);
    const keep = cur && locs.some((l) => l.tid === cur.tid && l.fd === cur.fd);
    if (!keep && !putLoc(fds.epolls, ep, { tid: locs[0].tid, fd: locs[0].fd })) full++;
  }
  for (const { ep } of dumpEpolls(fds.epolls)) if (!seenLocs.has(ep)) deleteLoc(fds.epolls, ep);
  if (!withRegs) {
    return { registrations: regs.size, epolls: seenLocs.size, removed: 0, full, micros: Number(process.hrtime.bigint() - t0) / 1000 };
  }

  for (const r of regs.values()) {
    const loc = lookupLoc(fds.epolls, r.key.ep);
    const val: RegVal = { data: r.data, events: r.events, targetTgid: r.tgid, epTgid: loc?.tid ?? 0, epFd: loc?.fd ?? 0, gen };
    if (!putReg(fds.regs, r.key, val)) full++;
  }
  let removed = 0;
  for (const { key, val } of dumpRegs(fds.regs)) {
    if (val.gen < gen && !regs.has(`${key.file}:${key.ep}:${key.tfd}`)) {
      deleteReg(fds.regs, key);
      removed++;
    }
  }
  if (full) {
    const idx = STAT.regsFull;
    writeStat(fds.stats, idx, readStats(fds.stats).regsFull + BigInt(full));
  }
  return {
    registrations: regs.size, epolls: seenLocs.size, removed, full,
    micros: Number(process.hrtime.bigint() - t0) / 1000,
  };
}
