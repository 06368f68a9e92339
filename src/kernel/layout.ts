/**
 * Codecs for the structs in bpf/epolltrack.h, little-endian. Every size,
 * offset and enum value comes from layout.gen.ts, which `npm run build`
 * generates from the compiled object's BTF: nothing here is a magic number.
 * Kernel pointers are bigints and never leave the privileged process.
 */
import { ENUMS, SECTIONS, STRUCTS } from './layout.gen.js';

type StructName = keyof typeof STRUCTS;
type FieldOf<S extends StructName> = keyof (typeof STRUCTS)[S]['fields'];

/** Byte offset of field `f` of struct `s` (from BTF). */
function off<S extends StructName>(s: S, f: FieldOf<S>): number {
  return (STRUCTS[s].fields as Record<FieldOf<S>, { offset: number }>)[f].offset;
}

/** Every field offset of struct `s`, read from the table once (the codecs on the lookup path run per lookup). */
function offsets<S extends StructName>(s: S): Record<FieldOf<S>, number> {
  return Object.fromEntries(Object.entries(STRUCTS[s].fields as Record<string, { offset: number }>).map(([k, v]) => [k, v.offset])) as Record<FieldOf<S>, number>;
}
const ITEM = offsets('et_lookup_item');
const SYSH = offsets('et_sys_hdr');

/** Byte offset of a global variable of the object (from its symbol table). */
export const VAR_OFFSET = {
  targTgid: SECTIONS['.rodata'].vars.targ_tgid.offset,
  iterIn: SECTIONS['.bss'].vars.iter_in.offset,
} as const;
/** Size of the .bss map's one value (the whole section). */
export const BSS_SIZE = SECTIONS['.bss'].size;

/** struct et_reg_key: the kernel's key of an epitem */
export interface RegKey { file: bigint; ep: bigint; tfd: number }
export const REG_KEY_SIZE = STRUCTS.et_reg_key.size;
export function encodeRegKey(k: RegKey, b = Buffer.alloc(REG_KEY_SIZE)): Buffer {
  b.fill(0, 0, REG_KEY_SIZE); // padding
  b.writeBigUInt64LE(k.file, off('et_reg_key', 'file'));
  b.writeBigUInt64LE(k.ep, off('et_reg_key', 'ep'));
  b.writeUInt32LE(k.tfd, off('et_reg_key', 'tfd'));
  return b;
}
export function decodeRegKey(b: Buffer): RegKey {
  return {
    file: b.readBigUInt64LE(off('et_reg_key', 'file')), ep: b.readBigUInt64LE(off('et_reg_key', 'ep')),
    tfd: b.readUInt32LE(off('et_reg_key', 'tfd')),
  };
}

/** struct et_reg_val */
export interface RegVal { data: bigint; events: number; targetTgid: number; epTgid: number; epFd: number; gen: number }
export const REG_VAL_SIZE = STRUCTS.et_reg_val.size;
export function encodeRegVal(v: RegVal, b = Buffer.alloc(REG_VAL_SIZE)): Buffer {
  b.fill(0, 0, REG_VAL_SIZE);
  b.writeBigUInt64LE(v.data, off('et_reg_val', 'data'));
  b.writeUInt32LE(v.events >>> 0, off('et_reg_val', 'events'));
  b.writeUInt32LE(v.targetTgid, off('et_reg_val', 'target_tgid'));
  b.writeUInt32LE(v.epTgid, off('et_reg_val', 'ep_tgid'));
  b.writeUInt32LE(v.epFd, off('et_reg_val', 'ep_fd'));
  b.writeUInt32LE(v.gen >>> 0, off('et_reg_val', 'gen'));
  return b;
}
export function decodeRegVal(b: Buffer): RegVal {
  return {
    data: b.readBigUInt64LE(off('et_reg_val', 'data')), events: b.readUInt32LE(off('et_reg_val', 'events')),
    targetTgid: b.readUInt32LE(off('et_reg_val', 'target_tgid')), epTgid: b.readUInt32LE(off('et_reg_val', 'ep_tgid')),
    epFd: b.readUInt32LE(off('et_reg_val', 'ep_fd')), gen: b.readUInt32LE(off('et_reg_val', 'gen')),
  };
}

/**
 * struct et_loc; the epolls map's key is a u64 struct eventpoll *. tid names the
 * fd table: the process id, or a thread id for a thread with a table of its own.
 */
export interface Loc { tid: number; fd: number }
export const LOC_SIZE = STRUCTS.et_loc.size;
export const EP_KEY_SIZE = 8;
export function encodeLoc(l: Loc, b = Buffer.alloc(LOC_SIZE)): Buffer {
  b.writeUInt32LE(l.tid, off('et_loc', 'tid'));
  b.writeUInt32LE(l.fd, off('et_loc', 'fd'));
  return b;
}
export function decodeLoc(b: Buffer): Loc {
  return { tid: b.readUInt32LE(off('et_loc', 'tid')), fd: b.readUInt32LE(off('et_loc', 'fd')) };
}
export function encodeU64(v: bigint, b = Buffer.alloc(8)): Buffer {
  b.writeBigUInt64LE(v, 0);
  return b;
}

/** enum et_stat, by the names user space uses */
const S = ENUMS.et_stat;
export const STAT = {
  add: S.ET_STAT_ADD, mod: S.ET_STAT_MOD, del: S.ET_STAT_DEL, remove: S.ET_STAT_REMOVE, regsFull: S.ET_STAT_REGS_FULL,
  epollsFull: S.ET_STAT_EPOLLS_FULL, uncertain: S.ET_STAT_UNCERTAIN, gen: S.ET_STAT_GEN,
} as const;
export const STAT_MAX = S.ET_STAT_MAX;
export type StatName = keyof typeof STAT;

/** struct et_iter_in: the iterators' input, the .bss variable iter_in */
export const ITER_IN_SIZE = STRUCTS.et_iter_in.size;
export const ITER_IN_FOPS = VAR_OFFSET.iterIn + off('et_iter_in', 'epoll_fops');
export const ITER_IN_WANT_FD = VAR_OFFSET.iterIn + off('et_iter_in', 'want_fd');
/** The whole .bss with iter_in set (the value of a map update of .bss). */
export function encodeIterIn(epollFops: bigint, wantFd: number, b = Buffer.alloc(BSS_SIZE)): Buffer {
  b.writeBigUInt64LE(epollFops, ITER_IN_FOPS);
  b.writeUInt32LE(wantFd, ITER_IN_WANT_FD);
  return b;
}

export const LOOKUP_MAGIC = 0x45504c54; // ET_LOOKUP_MAGIC, a #define (not in BTF)
const LS = ENUMS.et_lookup_status;
export const LK_STATUS = { ok: LS.ET_LK_OK, noFiles: LS.ET_LK_NO_FILES, badFd: LS.ET_LK_BAD_FD } as const;
export const LK_TRUNCATED = ENUMS.et_lookup_flags.ET_LK_TRUNCATED;
export const LK_CLOEXEC = ENUMS.et_lookup_flags.ET_LK_CLOEXEC;
const LC = ENUMS.et_loc_state;
export const LOC_STATE = {
  none: LC.ET_LOC_NONE, verified: LC.ET_LOC_VERIFIED, remote: LC.ET_LOC_REMOTE, stale: LC.ET_LOC_STALE,
  dying: LC.ET_LOC_DYING,
} as const;

/** struct et_lookup_hdr */
export interface LookupHdr { status: number; file: bigint; priv: bigint; fOp: bigint; tgid: number; nitems: number; flags: number }
export const LOOKUP_HDR_SIZE = STRUCTS.et_lookup_hdr.size;
/** Offset of the item count in the header: readers stop once the items are in. */
export const LOOKUP_HDR_NITEMS = off('et_lookup_hdr', 'nitems');
export function decodeLookupHdr(b: Buffer, at: number): LookupHdr | undefined {
  const o = (f: FieldOf<'et_lookup_hdr'>) => at + off('et_lookup_hdr', f);
  if (b.readUInt32LE(o('magic')) !== LOOKUP_MAGIC) return undefined;
  return {
    status: b.readUInt32LE(o('status')), file: b.readBigUInt64LE(o('file')), priv: b.readBigUInt64LE(o('priv')),
    fOp: b.readBigUInt64LE(o('f_op')), tgid: b.readUInt32LE(o('tgid')), nitems: b.readUInt32LE(o('nitems')),
    flags: b.readUInt32LE(o('flags')),
  };
}

/** struct et_lookup_item */
export interface LookupItem {
  ep: bigint; data: bigint; events: number; tfd: number; locTgid: number; locFd: number; locState: number; locTid: number;
}
export const LOOKUP_ITEM_SIZE = STRUCTS.et_lookup_item.size;
export function decodeLookupItem(b: Buffer, at: number): LookupItem {
  return {
    ep: b.readBigUInt64LE(at + ITEM.ep), data: b.readBigUInt64LE(at + ITEM.data), events: b.readUInt32LE(at + ITEM.events),
    tfd: b.readUInt32LE(at + ITEM.tfd), locTgid: b.readUInt32LE(at + ITEM.loc_tgid), locFd: b.readUInt32LE(at + ITEM.loc_fd),
    locState: b.readUInt32LE(at + ITEM.loc_state), locTid: b.readUInt32LE(at + ITEM.loc_tid),
  };
}

/** struct et_seed_rec */
const SK = ENUMS.et_seed_kind;
export const SEED = { reg: SK.ET_SEED_REG, epoll: SK.ET_SEED_EPOLL, trunc: SK.ET_SEED_TRUNC } as const;
export interface SeedRec {
  kind: number; tgid: number; fd: number; tfd: number; file: bigint; ep: bigint; data: bigint; events: number; tid: number;
}
export const SEED_REC_SIZE = STRUCTS.et_seed_rec.size;
export function decodeSeedRec(b: Buffer, at: number): SeedRec {
  const o = (f: FieldOf<'et_seed_rec'>) => at + off('et_seed_rec', f);
  return {
    kind: b.readUInt32LE(o('kind')), tgid: b.readUInt32LE(o('tgid')), fd: b.readUInt32LE(o('fd')), tfd: b.readUInt32LE(o('tfd')),
    file: b.readBigUInt64LE(o('file')), ep: b.readBigUInt64LE(o('ep')), data: b.readBigUInt64LE(o('data')),
    events: b.readUInt32LE(o('events')), tid: b.readUInt32LE(o('tid')),
  };
}

// ---- the lookup program: its context (struct et_sys_hdr) and answer[] ---------

export const SYS_BIG = SECTIONS['.data.answer'].vars.answer.size / STRUCTS.et_lookup_item.size;
/** answer[] (struct et_lookup_item[SYS_BIG]), the .data.answer map's one value */
export const ANSWER_SIZE = SECTIONS['.data.answer'].size;
const SO = ENUMS.et_sys_op;
export const SYS_OP = { lookup: SO.ET_OP_LOOKUP, copies: SO.ET_OP_COPIES } as const;
const SS = ENUMS.et_sys_status;
export const SYS_STATUS = { ok: SS.ET_SYS_OK, noTask: SS.ET_SYS_NO_TASK, noFiles: SS.ET_SYS_NO_FILES, badFd: SS.ET_SYS_BAD_FD } as const;
export const SYS_CLOEXEC = ENUMS.et_sys_flags.ET_SYS_CLOEXEC;
export const SYS_SCANNED = ENUMS.et_sys_flags.ET_SYS_SCANNED;
export const SYS_UNLOCATED = ENUMS.et_sys_flags.ET_SYS_UNLOCATED;

/** struct et_sys_hdr: the whole context of lookup_fd (in: op, pid, fd, cap, epoll_fops; out: the rest) */
export const SYS_HDR_SIZE = STRUCTS.et_sys_hdr.size;
export interface SysHdr {
  op: number; pid: number; fd: number; cap: number; epollFops: bigint;
  status: number; flags: number; tgid: number; tid: number; nitems: number; total: number;
  file: bigint; priv: bigint; fOp: bigint; refs: number; scanned: number; outside: number;
}
export function encodeSysIn(b: Buffer, op: number, pid: number, fd: number, cap: number, epollFops: bigint): void {
  b.writeUInt32LE(op, SYSH.op);
  b.writeUInt32LE(pid, SYSH.pid);
  b.writeUInt32LE(fd, SYSH.fd);
  b.writeUInt32LE(cap, SYSH.cap);
  b.writeBigUInt64LE(epollFops, SYSH.epoll_fops);
}
/** Only the question's numbers, where cap and epoll_fops are already in `b` (encodeSysIn wrote them). */
export function encodeSysQuestion(b: Buffer, op: number, pid: number, fd: number, outside = 0): void {
  b.writeUInt32LE(op, SYSH.op);
  b.writeUInt32LE(pid, SYSH.pid);
  b.writeUInt32LE(fd, SYSH.fd);
  b.writeUInt32LE(outside, SYSH.outside);
}
export function decodeSysHdr(b: Buffer): SysHdr {
  const o = SYSH;
  return {
    op: b.readUInt32LE(o.op), pid: b.readUInt32LE(o.pid), fd: b.readUInt32LE(o.fd), cap: b.readUInt32LE(o.cap),
    epollFops: b.readBigUInt64LE(o.epoll_fops),
    status: b.readUInt32LE(o.status), flags: b.readUInt32LE(o.flags), tgid: b.readUInt32LE(o.tgid),
    tid: b.readUInt32LE(o.tid), nitems: b.readUInt32LE(o.nitems), total: b.readUInt32LE(o.total),
    file: b.readBigUInt64LE(o.file), priv: b.readBigUInt64LE(o.priv), fOp: b.readBigUInt64LE(o.f_op),
    refs: b.readUInt32LE(o.refs), scanned: b.readUInt32LE(o.scanned), outside: b.readUInt32LE(o.outside),
  };
}
