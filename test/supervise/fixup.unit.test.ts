/**
 * The structs the TS side writes and reads for libepolltrack-fixup (EPT_* in
 * src/supervise/fixup.ts) against native/lib/fixup.h, whose _Static_asserts
 * the C compiler checks against the structs themselves when it builds the
 * library (root-free).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/kernel/bpfobject.js';
import { EPT_ADDFD, EPT_CONNECT, EPT_CTL, EPT_OPT_SKIPPED, EPT_OPTSPEC, EPT_OPTVAL, EPT_SOCKPROBE } from '../../src/supervise/fixup.js';

describe('fixup: struct layouts shared with native/lib/fixup.h', () => {
  const header = readFileSync(join(packageRoot(), 'native', 'lib', 'fixup.h'), 'utf8');
  const structs: [string, Record<string, number>][] = [
    ['ept_ctl', EPT_CTL], ['ept_addfd', EPT_ADDFD], ['ept_sockprobe', EPT_SOCKPROBE], ['ept_optspec', EPT_OPTSPEC], ['ept_optval', EPT_OPTVAL], ['ept_connect', EPT_CONNECT],
  ];

  for (const [name, ts] of structs) {
    it(`struct ${name}: fixup.h asserts a size and an offset for every field, and the TS layout agrees with each`, () => {
      const size = new RegExp(`_Static_assert\\(sizeof\\(struct ${name}\\) == (\\d+),`).exec(header);
      expect(size, 'sizeof assert in fixup.h').to.not.equal(null);
      const offsets: Record<string, number> = {};
      for (const m of header.matchAll(new RegExp(`_Static_assert\\(offsetof\\(struct ${name}, (\\w+)\\) == (\\d+),`, 'g'))) offsets[m[1]] = Number(m[2]);
      // Every field of the struct has an assert (padding fields excepted).
      const body = new RegExp(`struct ${name} \\{([^}]*)\\};`).exec(header)![1];
      const fields = [...body.matchAll(/^\s*u?int\d+_t (\w+)(\[\d+\])?;/gm)].map((m) => m[1]).filter((f) => f !== 'pad');
      expect(fields.length).to.be.greaterThan(1);
      expect(Object.keys(offsets).sort()).to.deep.equal([...fields].sort());
      const { size: tsSize, ...tsOffsets } = ts;
      expect(tsSize).to.equal(Number(size![1]));
      expect(tsOffsets).to.deep.equal(offsets);
    });
  }

  it('EPT_OPT_SKIPPED is the header\'s', () => {
    expect(Number(/#define EPT_OPT_SKIPPED \((-?\d+)\)/.exec(header)?.[1])).to.equal(EPT_OPT_SKIPPED);
  });

  it('the library\'s sources include fixup.h and declare no struct of their own', () => {
    for (const file of ['fixup.c', 'sock.c']) {
      const c = readFileSync(join(packageRoot(), 'native', 'lib', file), 'utf8');
      expect(c, file).to.include('#include "fixup.h"');
      for (const [name] of structs) expect(c, file).to.not.match(new RegExp(`struct ${name} \\{`));
    }
  });
});
