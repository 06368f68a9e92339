/** The command line, run as a user would run it. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { load, unload } from '../../src/index.js';
import { Epctl } from '../helpers/epctl.js';
import { TEST_MODE, testPinDir } from '../helpers/env.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

describe('cli', function () {
  const pinDir = testPinDir('cli');
  let p: Epctl;
  before(async () => {
    load({ pinDir, mode: TEST_MODE });
    p = await Epctl.spawn();
  });
  after(() => { p?.kill(); unload({ pinDir }); });

  it('lookup --json prints the documented shape, data as 0x hex, no kernel addresses', async () => {
    const [ep] = await p.cmd('create');
    const [s] = await p.cmd('socketpair');
    await p.cmd(`add ${ep} ${s} 5 255`);
    const r = run('lookup', String(p.pid), String(s), '--json', '--pin-dir', pinDir);
    expect(r.status, r.stderr).to.equal(0);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j)).to.deep.equal(['pid', 'fd', 'source', 'memberships', 'micros']);
    expect(j).to.include({ pid: p.pid, fd: s, source: 'bpf' });
    expect(j.memberships).to.deep.equal([{ epollPid: p.pid, epfd: ep, tfd: s, events: 0x1d, data: '0xff' }]);
    expect(r.stdout).to.not.match(/ffff[0-9a-f]{12}/);
    const f = JSON.parse(run('lookup', String(p.pid), String(s), '--json', '--method', 'fdinfo').stdout);
    expect(f.source).to.equal('fdinfo');
    expect(f.memberships).to.deep.equal(j.memberships);
  });

  it('ls lists a process\'s registrations as a table, status names the mode', async () => {
    const ls = run('ls', '--pid', String(p.pid), '--pin-dir', pinDir);
    expect(ls.status, ls.stderr).to.equal(0);
    expect(ls.stdout.split('\n')[0]).to.match(/^PID\s+FD\s+TFD\s+EPOLL PID\s+EPFD\s+EVENTS\s+DATA/);
    expect(ls.stdout).to.include('EPOLLIN|EPOLLOUT|EPOLLERR|EPOLLHUP');
    const st = run('status', '--pin-dir', pinDir);
    expect(st.stdout).to.match(/^loaded: (tracepoint|fentry|kprobe) mode/);
    expect(st.stdout).to.match(/fentry: /);
  });

  it('bad input: one clear line and a non-zero exit', () => {
    const cases: [string[], number, RegExp][] = [
      [['lookup', '999999999', '3', '--pin-dir', pinDir], 1, /^epolltrack: no process 999999999\n$/],
      [['lookup', String(p.pid), '9999', '--pin-dir', pinDir], 1, /^epolltrack: process \d+ has no open fd 9999\n$/],
      [['lookup', 'abc', '1'], 2, /PID must be a non-negative integer/],
      [['lookup', '1'], 2, /lookup takes PID and FD/],
      [['lookup', '1', '1', '--pin-dir', '/sys/fs/bpf/nothing-here'], 1, /^epolltrack: the tracker is not loaded at \/sys\/fs\/bpf\/nothing-here: run `epolltrack load`\n$/],
      [['load', '--mode', 'magic'], 2, /--mode must be/],
      [['frobnicate'], 2, /unknown command/],
    ];
    for (const [args, code, msg] of cases) {
      const r = run(...args);
      expect(r.status, args.join(' ')).to.equal(code);
      expect(r.stderr, args.join(' ')).to.match(msg);
    }
  });

  it('--help on every command', () => {
    for (const c of ['load', 'unload', 'status', 'lookup', 'ls', 'resync', 'bench', 'demo']) {
      const r = run(c, '--help');
      expect(r.status).to.equal(0);
      expect(r.stdout).to.include(`usage: epolltrack ${c}`);
    }
    expect(run('--help').stdout).to.include('usage: epolltrack COMMAND');
  });

  it('a non-root user gets a one-line permission error, no kernel addresses', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'lookup', '1', '0', '--pin-dir', pinDir], { encoding: 'utf8' });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/^epolltrack: .*(permission denied|root)/);
    expect(r.stderr.trim().split('\n')).to.have.length(1);
  });
});
