/**
 * The TS codecs agree with the compiled object's BTF: src/kernel/layout.gen.ts
 * is what scripts/gen-layout.mjs makes of build/epolltrack.bpf.o now, and every
 * field of every struct in bpf/epolltrack.h is read or written by layout.ts at
 * the offset BTF gives. Root-free; needs the built object (npm run build).
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../../src/kernel/bpfobject.js';
import * as L from '../../src/kernel/layout.js';
import { IN_CI } from '../helpers/ci.js';

interface Field { offset: number; size: number }
interface BtfLayout {
  structs: Record<string, { size: number; fields: Record<string, Field> }>;
  enums: Record<string, Record<string, number>>;
  sections: Record<string, { size: number; vars: Record<string, Field> }>;
}
interface Generator {
  DEFAULTS: { object: string; header: string; out: string };
  readLayout(object: string, header: string): BtfLayout;
  render(layout: BtfLayout): string;
}

/** C field -> the TS property a codec uses for it (pad fields are checked to be zero or ignored). */
const FIELDS: Record<string, Record<string, string>> = {
  et_reg_key: { file: 'file', ep: 'ep', tfd: 'tfd' },
  et_reg_val: { data: 'data', events: 'events', target_tgid: 'targetTgid', ep_tgid: 'epTgid', ep_fd: 'epFd', gen: 'gen' },
  et_loc: { tid: 'tid', fd: 'fd' },
  et_iter_in: { epoll_fops: 'epollFops', want_fd: 'wantFd' },
  et_lookup_hdr: { magic: 'magic', status: 'status', file: 'file', priv: 'priv', f_op: 'fOp', tgid: 'tgid', nitems: 'nitems', flags: 'flags' },
  et_lookup_item: { ep: 'ep', data: 'data', events: 'events', tfd: 'tfd', loc_tgid: 'locTgid', loc_fd: 'locFd', loc_state: 'locState', loc_tid: 'locTid' },
  et_seed_rec: { kind: 'kind', tgid: 'tgid', fd: 'fd', tfd: 'tfd', file: 'file', ep: 'ep', data: 'data', events: 'events', tid: 'tid' },
  et_sys_hdr: {
    op: 'op', pid: 'pid', fd: 'fd', cap: 'cap', epoll_fops: 'epollFops', status: 'status', flags: 'flags', tgid: 'tgid', tid: 'tid',
    nitems: 'nitems', total: 'total', file: 'file', priv: 'priv', f_op: 'fOp', refs: 'refs', scanned: 'scanned', outside: 'outside',
  },
};

/** A distinct value per field: bigint for 8-byte fields, number for 4-byte ones. */
function sample(i: number, size: number): bigint | number {
  return size === 8 ? 0x1111_0000_0000_0000n * BigInt(i + 1) + BigInt(i) : 0x0101_0101 * (i + 1);
}
function readField(b: Buffer, f: Field): bigint | number {
  return f.size === 8 ? b.readBigUInt64LE(f.offset) : b.readUInt32LE(f.offset);
}
function writeField(b: Buffer, f: Field, v: bigint | number): void {
  if (f.size === 8) b.writeBigUInt64LE(BigInt(v), f.offset); else b.writeUInt32LE(Number(v), f.offset);
}

describe('layout (unit): TS codecs against the object\'s BTF', () => {
  let gen: Generator;
  let btf: BtfLayout;

  before(async function () {
    gen = await import(pathToFileURL(join(packageRoot(), 'scripts', 'gen-layout.mjs')).href) as Generator;
    if (!existsSync(gen.DEFAULTS.object)) {
      if (IN_CI) throw new Error(`${gen.DEFAULTS.object} is missing: run npm run build`);
      this.skip();
    }
    btf = gen.readLayout(gen.DEFAULTS.object, readFileSync(gen.DEFAULTS.header, 'utf8'));
  });

  it('layout.gen.ts is what the generator makes of the built object', () => {
    expect(readFileSync(gen.DEFAULTS.out, 'utf8')).to.equal(gen.render(btf));
  });

  it('every field of every shared struct has a codec mapping (a new field needs one)', () => {
    expect(Object.keys(btf.structs).sort()).to.deep.equal(Object.keys(FIELDS).sort());
    for (const [name, s] of Object.entries(btf.structs)) {
      const real = Object.keys(s.fields).filter((f) => !/^pad\d*$/.test(f)).sort();
      expect(real, name).to.deep.equal(Object.keys(FIELDS[name]).sort());
    }
  });

  it('encoders write each field at its BTF offset and zero the padding', () => {
    const cases: [string, (v: Record<string, bigint | number>) => Buffer][] = [
      ['et_reg_key', (v) => L.encodeRegKey(v as unknown as L.RegKey)],
      ['et_reg_val', (v) => L.encodeRegVal(v as unknown as L.RegVal)],
      ['et_loc', (v) => L.encodeLoc(v as unknown as L.Loc)],
      ['et_iter_in', (v) => L.encodeIterIn(v.epollFops as bigint, v.wantFd as number).subarray(L.VAR_OFFSET.iterIn)],
    ];
    // The lookup program's inputs: encodeSysIn writes op, pid, fd, cap and epoll_fops where BTF says.
    {
      const s = btf.structs.et_sys_hdr;
      const b = Buffer.alloc(s.size);
      L.encodeSysIn(b, 0x01010101, 0x02020202, 0x03030303, 0x04040404, 0x1111_0000_0000_0005n);
      expect(b.readUInt32LE(s.fields.op.offset)).to.equal(0x01010101);
      expect(b.readUInt32LE(s.fields.pid.offset)).to.equal(0x02020202);
      expect(b.readUInt32LE(s.fields.fd.offset)).to.equal(0x03030303);
      expect(b.readUInt32LE(s.fields.cap.offset)).to.equal(0x04040404);
      expect(b.readBigUInt64LE(s.fields.epoll_fops.offset)).to.equal(0x1111_0000_0000_0005n);
    }
    for (const [name, encode] of cases) {
      const s = btf.structs[name];
      const v: Record<string, bigint | number> = {};
      Object.entries(FIELDS[name]).forEach(([c, ts], i) => { v[ts] = sample(i, s.fields[c].size); });
      const b = encode(v);
      expect(b.length, `${name} size`).to.be.at.least(s.size);
      for (const [c, f] of Object.entries(s.fields)) {
        const want = FIELDS[name][c] === undefined ? (f.size === 8 ? 0n : 0) : v[FIELDS[name][c]];
        expect(readField(b, f), `${name}.${c}`).to.equal(want);
      }
    }
  });

  it('decoders read each field from its BTF offset', () => {
    const cases: [string, (b: Buffer) => object | undefined][] = [
      ['et_reg_key', (b) => L.decodeRegKey(b)],
      ['et_reg_val', (b) => L.decodeRegVal(b)],
      ['et_loc', (b) => L.decodeLoc(b)],
      ['et_lookup_hdr', (b) => L.decodeLookupHdr(b, 0)],
      ['et_lookup_item', (b) => L.decodeLookupItem(b, 0)],
      ['et_seed_rec', (b) => L.decodeSeedRec(b, 0)],
      ['et_sys_hdr', (b) => L.decodeSysHdr(b)],
    ];
    for (const [name, decode] of cases) {
      const s = btf.structs[name];
      const b = Buffer.alloc(s.size);
      const want: Record<string, bigint | number> = {};
      Object.entries(FIELDS[name]).forEach(([c, ts], i) => {
        const v = c === 'magic' ? L.LOOKUP_MAGIC : sample(i, s.fields[c].size);
        writeField(b, s.fields[c], v);
        if (c !== 'magic') want[ts] = v;
      });
      expect(decode(b), name).to.deep.equal(want);
    }
  });

  it('sizes, enum values and variable offsets exported by layout.ts are the BTF ones', () => {
    expect(L.REG_KEY_SIZE).to.equal(btf.structs.et_reg_key.size);
    expect(L.REG_VAL_SIZE).to.equal(btf.structs.et_reg_val.size);
    expect(L.LOC_SIZE).to.equal(btf.structs.et_loc.size);
    expect(L.LOOKUP_HDR_SIZE).to.equal(btf.structs.et_lookup_hdr.size);
    expect(L.LOOKUP_ITEM_SIZE).to.equal(btf.structs.et_lookup_item.size);
    expect(L.SEED_REC_SIZE).to.equal(btf.structs.et_seed_rec.size);
    expect(L.SYS_HDR_SIZE).to.equal(btf.structs.et_sys_hdr.size);
    expect(L.ANSWER_SIZE).to.equal(btf.sections['.data.answer'].size);
    expect(L.SYS_BIG * L.LOOKUP_ITEM_SIZE).to.equal(btf.sections['.data.answer'].vars.answer.size);
    expect(L.SYS_STATUS.noFiles).to.equal(btf.enums.et_sys_status.ET_SYS_NO_FILES);
    expect(L.SYS_UNLOCATED).to.equal(btf.enums.et_sys_flags.ET_SYS_UNLOCATED);
    expect(L.SYS_OP.copies).to.equal(btf.enums.et_sys_op.ET_OP_COPIES);
    expect(L.LOOKUP_HDR_NITEMS).to.equal(btf.structs.et_lookup_hdr.fields.nitems.offset);
    expect(L.STAT_MAX).to.equal(btf.enums.et_stat.ET_STAT_MAX);
    expect(L.STAT.gen).to.equal(btf.enums.et_stat.ET_STAT_GEN);
    expect(L.LOC_STATE.remote).to.equal(btf.enums.et_loc_state.ET_LOC_REMOTE);
    expect(L.LK_CLOEXEC).to.equal(btf.enums.et_lookup_flags.ET_LK_CLOEXEC);
    expect(L.SEED.epoll).to.equal(btf.enums.et_seed_kind.ET_SEED_EPOLL);
    expect(L.BSS_SIZE).to.equal(btf.sections['.bss'].size);
    expect(L.VAR_OFFSET.iterIn).to.equal(btf.sections['.bss'].vars.iter_in.offset);
    expect(L.VAR_OFFSET.targTgid).to.equal(btf.sections['.rodata'].vars.targ_tgid.offset);
  });
});
