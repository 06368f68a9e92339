/** The command table and what is rendered from it: help, man page, exit statuses, columns. Root-free. */
import { expect } from 'chai';
import { parseArgs } from 'node:util';
import * as errors from '../../src/kernel/errors.js';
import type { ErrorCode } from '../../src/kernel/errors.js';
import { countersToNumbers, nameOf, table, toJson } from '../../src/cli/format.js';
import { parseArgsOptions, renderHelp, renderMan, renderOverview, roff, usageLine } from '../../src/cli/help.js';
import { COMMANDS, EXIT_CODES, exitStatus } from '../../src/cli/spec.js';

describe('cli: command table, help, man page (unit)', () => {
  it('help of every command lists every option with its default, and examples', () => {
    for (const c of COMMANDS) {
      const h = renderHelp(c).replace(/\s+/g, ' '); // option help is wrapped in columns
      expect(h, c.name).to.include(`usage: epolltrack ${c.name}`);
      for (const o of c.options) {
        expect(h, `${c.name} --${o.name}`).to.include(`--${o.name}`);
        if (o.default) expect(h, `${c.name} --${o.name} default`).to.include(`(default: ${o.default})`);
      }
      expect(h).to.include('-h, --help');
      expect(c.examples.length, `${c.name} has an example`).to.be.above(0);
      for (const e of c.examples) expect(h).to.include(e.cmd.replace(/\s+/g, ' '));
      for (const line of renderHelp(c).split('\n')) expect(line.length, `${c.name}: ${line}`).to.be.at.most(110);
    }
    expect(renderOverview('/x')).to.match(/usage: epolltrack COMMAND/);
  });

  it('parseArgs options come from the table, so every documented option parses', () => {
    for (const c of COMMANDS) {
      const args = c.options.flatMap((o) => (o.type === 'string' ? [`--${o.name}`, 'v'] : [`--${o.name}`]));
      const { values } = parseArgs({ args, options: parseArgsOptions(c), allowPositionals: true, strict: true });
      for (const o of c.options) expect(values, `${c.name} --${o.name}`).to.have.property(o.name);
    }
    expect(usageLine(COMMANDS.find((c) => c.name === 'lookup')!)).to.match(/ PID FD$/);
  });

  it('the man page has every command and option, escaped for roff', () => {
    const man = renderMan('9.9.9', '2026-12-03', '/sys/fs/bpf/epolltrack');
    expect(man).to.match(/^\.TH EPOLLTRACK 1 "2026-12-03" "epolltrack 9\.9\.9"/);
    for (const s of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'EXIT STATUS', 'ENVIRONMENT', 'SEE ALSO']) expect(man).to.include(`.SH ${s}`);
    for (const c of COMMANDS) {
      expect(man).to.include(`.SS ${roff(c.name)}`);
      for (const o of c.options) expect(man).to.include(`\\fB${roff(`--${o.name}`)}\\fR`);
    }
    for (const line of man.split('\n')) expect(line, line).to.not.match(/[^\x00-\x7f]/);
    expect(roff('.x -y \\ µ')).to.equal('\\&.x \\-y \\e \\[u00B5]');
  });

  it('one exit status per error class, every code in the table once', () => {
    // every error class errors.ts exports, whoever added it
    const codes = new Set<ErrorCode>(['EPT_ERR']);
    for (const v of Object.values(errors)) {
      if (typeof v === 'function' && v.prototype instanceof errors.EpolltrackError) {
        codes.add((new (v as new () => errors.EpolltrackError)()).code);
      }
    }
    expect(codes.size).to.be.above(10);
    const listed = EXIT_CODES.flatMap((e) => e.codes);
    expect(new Set(listed).size).to.equal(listed.length);
    for (const c of codes) expect(listed, c).to.include(c);
    expect(new Set(EXIT_CODES.map((e) => e.status)).size).to.equal(EXIT_CODES.length);
    expect(exitStatus('EPT_USAGE')).to.equal(2);
    expect(exitStatus('EPT_NOT_LOADED')).to.equal(4);
    expect(exitStatus('SOMETHING_NEW')).to.equal(1);
  });

  it('columns: aligned, numbers right-aligned, the last column unpadded; lsof-style names', () => {
    expect(table(['PID', 'NAME'], [[7, 'a'], [1234, 'bb']])).to.equal(' PID  NAME\n   7  a\n1234  bb');
    expect(nameOf({ kind: 'tcp', desc: '', local: { address: '::1', port: 80 }, remote: { address: '127.0.0.1', port: 5 } })).to.equal('[::1]:80->127.0.0.1:5');
    expect(nameOf({ kind: 'unix', desc: '', type: 'stream' })).to.equal('stream (unnamed)');
    expect(nameOf({ kind: 'pipe', desc: '', inode: 42 })).to.equal('pipe:[42]');
    expect(nameOf({ kind: 'eventfd', desc: 'eventfd' })).to.equal('[eventfd]');
    expect(toJson({ a: 10n, b: 1 })).to.equal('{"a":"0xa","b":1}');
    expect(countersToNumbers({ add: '12', gen: 3n })).to.deep.equal({ add: 12, gen: 3 });
  });
});
