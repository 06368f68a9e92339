/**
 * struct ept_ctl as the TS side writes it (EPT_CTL in src/supervise/fixup.ts)
 * against native/lib/fixup.h, whose _Static_asserts the C compiler checks
 * against the struct itself when it builds the library (root-free).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/kernel/bpfobject.js';
import { EPT_CTL } from '../../src/supervise/fixup.js';

describe('fixup: struct ept_ctl layout', () => {
  const header = readFileSync(join(packageRoot(), 'native', 'lib', 'fixup.h'), 'utf8');

  it('fixup.h asserts a size and an offset for every field, and EPT_CTL agrees with each', () => {
    const size = /_Static_assert\(sizeof\(struct ept_ctl\) == (\d+),/.exec(header);
    expect(size, 'sizeof assert in fixup.h').to.not.equal(null);
    const offsets: Record<string, number> = {};
    for (const m of header.matchAll(/_Static_assert\(offsetof\(struct ept_ctl, (\w+)\) == (\d+),/g)) offsets[m[1]] = Number(m[2]);
    // Every field of the struct has an assert.
    const body = /struct ept_ctl \{([^}]*)\};/.exec(header)![1];
    const fields = [...body.matchAll(/^\s*u?int\d+_t (\w+);/gm)].map((m) => m[1]);
    expect(fields).to.deep.equal(['op', 'epfd', 'file', 'tfd', 'events', 'result', 'data']);
    expect(Object.keys(offsets).sort()).to.deep.equal([...fields].sort());
    const { size: tsSize, ...tsOffsets } = EPT_CTL;
    expect(tsSize).to.equal(Number(size![1]));
    expect(tsOffsets).to.deep.equal(offsets);
  });

  it('fixup.c includes fixup.h and declares no struct of its own', () => {
    const c = readFileSync(join(packageRoot(), 'native', 'lib', 'fixup.c'), 'utf8');
    expect(c).to.include('#include "fixup.h"');
    expect(c).to.not.match(/struct ept_ctl \{/);
  });
});
