/**
 * TypeScript mirrors of the structs in bpf/epolltrack.h, little-endian, with
 * their padding stated. Kernel pointers are bigints and never leave the
 * privileged process: nothing here is printed or sent anywhere.
 */

/** struct et_reg_key { u64 file; u64 ep; u32 tfd; u32 pad; } : 24 bytes */
export interface RegKey { file: bigint; ep: bigint; tfd: number }
export const REG_KEY_SIZE = 24;
export function encodeRegKey(k: RegKey, b = Buffer.alloc(REG_KEY_SIZE)): Buffer {
  b.writeBigUInt64LE(k.file, 0);
  b.writeBigUInt64LE(k.ep, 8);
  b.writeUInt32LE(k.tfd, 16);
  b.writeUInt32LE(0, 20); // pad
  return b;
}
export function decodeRegKey(b: Buffer): RegKey {
  return { file: b.readBigUInt64LE(0), ep: b.readBigUInt64LE(8), tfd: b.readUInt32LE(16) };
}

/** struct et_reg_val { u64 data; u32 events, target_tgid, ep_tgid, ep_fd, gen; u32 pad; } : 32 bytes */
export interface RegVal { data: bigint; events: number; targetTgid: number; epTgid: number; epFd: number; gen: number }
export const REG_VAL_SIZE = 32;
export function encodeRegVal(v: RegVal, b = Buffer.alloc(REG_VAL_SIZE)): Buffer {
  b.writeBigUInt64LE(v.data, 0);
  b.writeUInt32LE(v.events >>> 0, 8);
  b.writeUInt32LE(v.targetTgid, 12);
  b.writeUInt32LE(v.epTgid, 16);
  b.writeUInt32LE(v.epFd, 20);
  b.writeUInt32LE(v.gen >>> 0, 24);
  b.writeUInt32LE(0, 28); // pad
  return b;
}
export function decodeRegVal(b: Buffer): RegVal {
  return {
    data: b.readBigUInt64LE(0), events: b.readUInt32LE(8), targetTgid: b.readUInt32LE(12),
    epTgid: b.readUInt32LE(16), epFd: b.readUInt32LE(20), gen: b.readUInt32LE(24),
  };
}

/** struct et_loc { u32 tgid; u32 fd; } : 8 bytes; key is a u64 struct eventpoll * */
export interface Loc { tgid: number; fd: number }
export const LOC_SIZE = 8;
export function encodeLoc(l: Loc, b = Buffer.alloc(LOC_SIZE)): Buffer {
  b.writeUInt32LE(l.tgid, 0);
  b.writeUInt32LE(l.fd, 4);
  return b;
}
export function decodeLoc(b: Buffer): Loc {
  return { tgid: b.readUInt32LE(0), fd: b.readUInt32LE(4) };
}
export function encodeU64(v: bigint, b = Buffer.alloc(8)): Buffer {
  b.writeBigUInt64LE(v, 0);
  return b;
}

/** enum et_stat */
export const STAT = {
  add: 0, mod: 1, del: 2, remove: 3, regsFull: 4, epollsFull: 5, uncertain: 6, gen: 7,
} as const;
export const STAT_MAX = 8;
export type StatName = keyof typeof STAT;

/** struct et_iter_in { u64 epoll_fops; u32 want_fd; u32 pad; } : 16 bytes (.bss offset 0) */
export const ITER_IN_SIZE = 16;
export function encodeIterIn(epollFops: bigint, wantFd: number, b = Buffer.alloc(ITER_IN_SIZE)): Buffer {
  b.writeBigUInt64LE(epollFops, 0);
  b.writeUInt32LE(wantFd, 8);
  b.writeUInt32LE(0, 12); // pad
  return b;
}

export const LOOKUP_MAGIC = 0x45504c54;
export const LK_STATUS = { ok: 0, noFiles: 1, badFd: 2 } as const;
export const LK_TRUNCATED = 1;
export const LK_CLOEXEC = 2;
export const LOC_STATE = { none: 0, verified: 1, remote: 2, stale: 3 } as const;

/** struct et_lookup_hdr { u32 magic, status; u64 file, priv, f_op; u32 tgid, nitems, flags, pad; } : 48 bytes */
export interface LookupHdr { status: number; file: bigint; priv: bigint; fOp: bigint; tgid: number; nitems: number; flags: number }
export const LOOKUP_HDR_SIZE = 48;
export function decodeLookupHdr(b: Buffer, off: number): LookupHdr | undefined {
  if (b.readUInt32LE(off) !== LOOKUP_MAGIC) return undefined;
  return {
    status: b.readUInt32LE(off + 4), file: b.readBigUInt64LE(off + 8), priv: b.readBigUInt64LE(off + 16),
    fOp: b.readBigUInt64LE(off + 24), tgid: b.readUInt32LE(off + 32), nitems: b.readUInt32LE(off + 36),
    flags: b.readUInt32LE(off + 40),
  };
}

/** struct et_lookup_item { u64 ep, data; u32 events, tfd, loc_tgid, loc_fd, loc_state, pad; } : 40 bytes */
export interface LookupItem { ep: bigint; data: bigint; events: number; tfd: number; locTgid: number; locFd: number; locState: number }
export const LOOKUP_ITEM_SIZE = 40;
export function decodeLookupItem(b: Buffer, off: number): LookupItem {
  return {
    ep: b.readBigUInt64LE(off), data: b.readBigUInt64LE(off + 8), events: b.readUInt32LE(off + 16),
    tfd: b.readUInt32LE(off + 20), locTgid: b.readUInt32LE(off + 24), locFd: b.readUInt32LE(off + 28),
    locState: b.readUInt32LE(off + 32),
  };
}

/** struct et_seed_rec { u32 kind, tgid, fd, tfd; u64 file, ep, data; u32 events, pad; } : 48 bytes */
export const SEED = { reg: 1, epoll: 2 } as const;
export interface SeedRec { kind: number; tgid: number; fd: number; tfd: number; file: bigint; ep: bigint; data: bigint; events: number }
export const SEED_REC_SIZE = 48;
export function decodeSeedRec(b: Buffer, off: number): SeedRec {
  return {
    kind: b.readUInt32LE(off), tgid: b.readUInt32LE(off + 4), fd: b.readUInt32LE(off + 8),
    tfd: b.readUInt32LE(off + 12), file: b.readBigUInt64LE(off + 16), ep: b.readBigUInt64LE(off + 24),
    data: b.readBigUInt64LE(off + 32), events: b.readUInt32LE(off + 40),
  };
}
