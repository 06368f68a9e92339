/** The command line, run as a user would run it, against real processes and the real kernel. */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { load, unload } from '../../src/index.js';
import { COMMANDS, EXIT_CODES } from '../../src/cli/spec.js';
import { Epctl } from '../helpers/epctl.js';
import { TEST_MODE, testPinDir } from '../helpers/env.js';
import { FdKinds } from '../helpers/fdkinds.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60000 });
const runAs = (wrap: string[], ...args: string[]) => spawnSync(wrap[0], [...wrap.slice(1), process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 60000 });
const status = (code: string) => EXIT_CODES.find((e) => (e.codes as string[]).includes(code))!.status;

/** A pid no process has right now. */
function freePid(): number {
  for (let p = 4000000; ; p--) if (!existsSync(`/proc/${p}`)) return p;
}

interface LsRow { pid: number; comm: string; fd: number; target: { kind: string; state?: string; local?: { address: string; port: number } };
  epollPid: number; epfd: number; epollComm: string; tfd: number; events: number; eventNames: string[]; data: string }

describe('cli', function () {
  this.timeout(120000);
  const pinDir = testPinDir('cli');
  const sock = `/tmp/h11cli-cli-${process.pid}.sock`;
  let p: Epctl;
  let f: FdKinds;
  before(async () => {
    load({ pinDir, mode: TEST_MODE });
    p = await Epctl.spawn();
    f = await FdKinds.spawn(sock);
  });
  after(async () => { p?.kill(); await f?.stop(); unload({ pinDir }); });

  const ls = (...args: string[]) => {
    const r = run('ls', '--pin-dir', pinDir, '--json', ...args);
    expect(r.status, `ls ${args.join(' ')}: ${r.stderr}`).to.equal(0);
    return JSON.parse(r.stdout) as LsRow[];
  };

  it('lookup --json: the fd described, events as names and number, data as 0x hex, no kernel addresses', async () => {
    const [ep] = await p.cmd('create');
    const [s] = await p.cmd('socketpair');
    await p.cmd(`add ${ep} ${s} 5 255`);
    const r = run('lookup', String(p.pid), String(s), '--json', '--pin-dir', pinDir);
    expect(r.status, r.stderr).to.equal(0);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j)).to.deep.equal(['pid', 'fd', 'comm', 'target', 'source', 'memberships', 'micros']);
    expect(j).to.include({ pid: p.pid, fd: s, comm: 'epctl', source: 'bpf' });
    expect(j.target).to.include({ kind: 'unix', type: 'stream', state: 'ESTABLISHED' });
    expect(j.micros).to.be.a('number');
    expect(j.memberships).to.deep.equal([{
      epollPid: p.pid, epfd: ep, epollComm: 'epctl', tfd: s, events: 0x1d, eventNames: ['EPOLLIN', 'EPOLLOUT', 'EPOLLERR', 'EPOLLHUP'], data: '0xff',
    }]);
    expect(r.stdout).to.not.match(/ffff[0-9a-f]{12}/);
    const fi = JSON.parse(run('lookup', String(p.pid), String(s), '--json', '--method', 'fdinfo').stdout);
    expect(fi.source).to.equal('fdinfo');
    expect(fi.memberships).to.deep.equal(j.memberships);
  });

  it('lookup prints the fd, then aligned columns with event names', () => {
    const fd = f.fd('tcp_listen');
    const r = run('lookup', String(f.pid), String(fd), '--pin-dir', pinDir);
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).to.equal(`fdkinds ${f.pid} fd ${fd}: tcp 127.0.0.1:${f.port} LISTEN`);
    expect(lines[1]).to.match(/^EPOLL\s+COMMAND\s+TFD\s+EVENTS\s+DATA$/);
    expect(lines[2].split(/\s+/)).to.deep.equal([`${f.pid}:${f.fd('epoll')}`, 'fdkinds', String(fd), 'EPOLLIN|EPOLLERR|EPOLLHUP', `0x${fd.toString(16)}`]);
    expect(lines[3]).to.match(/^\(bpf, [\d.]+ µs\)$/);
  });

  it('ls: ss/lsof columns, aligned, every kind of the fixture with its state and name', () => {
    const r = run('ls', '--pid', String(f.pid), '--pin-dir', pinDir);
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(/^COMMAND\s+PID\s+FD\s+KIND\s+STATE\s+EPOLL\s+TFD\s+EVENTS\s+DATA\s+NAME$/);
    const col = lines[0].indexOf('KIND');
    for (const l of lines.slice(1)) expect(l.slice(0, col).trimEnd().split(/\s+/)[0]).to.equal('fdkinds');
    const byFd = new Map(lines.slice(1).map((l) => [Number(l.split(/\s+/)[2]), l]));
    expect(byFd.get(f.fd('tcp_listen'))).to.match(new RegExp(`\\stcp\\s+LISTEN\\s.*\\s127\\.0\\.0\\.1:${f.port}$`));
    expect(byFd.get(f.fd('tcp_client'))).to.match(new RegExp(`\\sESTABLISHED\\s.*->127\\.0\\.0\\.1:${f.port}$`));
    expect(byFd.get(f.fd('unix_listen'))).to.match(new RegExp(`\\sunix\\s+LISTEN\\s.*stream ${sock}$`));
    expect(byFd.get(f.fd('pipe'))).to.match(/\spipe\s.*pipe:\[\d+\]$/);
    expect(byFd.get(f.fd('eventfd'))).to.match(/\seventfd\s.*\[eventfd\]$/);
    // columns line up: every row has its KIND where the head has it
    for (const l of lines.slice(1)) expect(l[col - 1], l).to.equal(' ');
    const rows = ls('--pid', String(f.pid));
    expect(rows.map((x) => x.fd).sort((a, b) => a - b)).to.deep.equal(
      [...f.fds.entries()].filter(([n]) => n !== 'epoll' && n !== 'file').map(([, fd]) => fd).sort((a, b) => a - b));
    const listen = rows.find((x) => x.fd === f.fd('tcp_listen'))!;
    expect(listen).to.deep.include({ pid: f.pid, comm: 'fdkinds', epollPid: f.pid, epfd: f.fd('epoll'), epollComm: 'fdkinds', tfd: listen.fd,
      events: 0x19, eventNames: ['EPOLLIN', 'EPOLLERR', 'EPOLLHUP'], data: `0x${listen.fd.toString(16)}` });
    expect(listen.target).to.deep.include({ kind: 'tcp', state: 'LISTEN', local: { address: '127.0.0.1', port: f.port } });
  });

  it('ls selectors, each and combined, the same through the tracker and the fdinfo way', () => {
    const fd = (n: string) => f.fd(n);
    const ep = `${f.pid}:${fd('epoll')}`;
    const me = ['--pid', String(f.pid)];
    const cases: [string[], number[]][] = [
      [['--port', String(f.port)], ['tcp_listen', 'tcp_client', 'tcp_accepted', 'tcp6_mapped', 'tcp_accepted6', 'udp'].map(fd)], // who watches :PORT
      [['--port', `:${f.port}`, '--kind', 'udp'], [fd('udp')]],
      [['--addr', `127.0.0.1:${f.port}`, '--kind', 'tcp6'], [fd('tcp6_mapped')]], // IPv4-mapped peer matches the IPv4 address
      [['--addr', sock], [fd('unix_listen')]],
      [['--kind', 'pipe,eventfd', '--kind', 'timerfd', ...me], ['pipe', 'eventfd', 'timerfd'].map(fd)],
      [['--kind', 'netlink', '--comm', 'fdkinds', ...me], [fd('netlink')]],
      [['--comm', '/^fdk.nds$/', '--kind', 'signalfd'], [fd('signalfd')]],
      [['--epoll', ep, '--kind', 'epoll'], [fd('epoll2')]], // what does this epoll watch: an epoll too
      [['--epoll', `${f.pid}:${fd('epoll2')}`], []],
      [['--comm', 'no-such-command'], []],
    ];
    for (const [args, want] of cases) {
      const sorted = want.sort((a, b) => a - b);
      for (const method of ['bpf', 'fdinfo']) {
        const extra = method === 'fdinfo' ? ['--method', 'fdinfo', '--pid', String(f.pid)] : [];
        const rows = ls(...args, ...extra);
        expect(rows.every((x) => x.pid === f.pid), `${args.join(' ')} (${method}) only the fixture`).to.equal(true);
        expect(rows.map((x) => x.fd).sort((a, b) => a - b), `${args.join(' ')} (${method})`).to.deep.equal(sorted);
      }
    }
    const all = ls('--epoll', ep);
    expect(all.length).to.equal(f.fds.size - 2);
  });

  it('--epoll names the instance, not a number: a dup of it in another process selects the same registrations', async () => {
    const [ep] = await p.cmd('create');
    const [e] = await p.cmd('eventfd');
    await p.cmd(`add ${ep} ${e} 1 7`);
    const child = await p.fork(); // shares the instance at the same fd number in another process
    try {
      const [dup] = await child.cmd(`dup ${ep}`);
      const rows = ls('--epoll', `${child.pid}:${dup}`, '--kind', 'eventfd');
      expect(rows.some((x) => x.fd === e && x.data === '0x7')).to.equal(true);
      const r = run('ls', '--epoll', `${p.pid}:${e}`, '--pin-dir', pinDir);
      expect(r.status).to.equal(status('EPT_BAD_FD'));
      expect(r.stderr).to.match(/is not an epoll instance \(it is anon_inode:\[eventfd\]\)/);
    } finally {
      child.kill();
    }
  });

  it('exit status per error class, one line, never the prefix twice; with --json one object on stderr', async () => {
    const gone = freePid();
    const cases: [string[], string, RegExp, string[]?][] = [
      [['ls', '24401'], 'EPT_USAGE', /unexpected argument '24401': ls takes no arguments \(for a process: --pid 24401\)/],
      [['lookup', '1'], 'EPT_USAGE', /lookup takes PID and FD/],
      [['lookup', '1', '2', '3'], 'EPT_USAGE', /unexpected argument '3'/],
      [['lookup', 'abc', '1'], 'EPT_USAGE', /PID takes a whole number from 1 to 4194304, got 'abc'/],
      [['load', '--max-regs', '0'], 'EPT_USAGE', /--max-regs takes a whole number from 1 to 16777216, got '0'/],
      [['load', '--max-epolls', '99999999999'], 'EPT_USAGE', /--max-epolls takes a whole number from 1 to 4194304/],
      [['bench', '--iterations', '0'], 'EPT_USAGE', /--iterations takes a whole number from 1/],
      [['load', '--mode', 'magic'], 'EPT_USAGE', /--mode takes auto, fentry, kprobe, lazy, tracepoint; got 'magic'/],
      [['ls', '--port', '0'], 'EPT_USAGE', /--port takes a port \(1–65535\), got '0'/],
      [['ls', '--kind', 'sock'], 'EPT_USAGE', /--kind takes one of/],
      [['ls', '--bogus'], 'EPT_USAGE', /unknown option '--bogus'/],
      [['ls', '--pid'], 'EPT_USAGE', /option --pid needs a value/],
      [['status', 'extra'], 'EPT_USAGE', /unexpected argument 'extra'/],
      [['frobnicate'], 'EPT_USAGE', /unknown command 'frobnicate'/],
      [['lookup', '1', '1', '--pin-dir', '/sys/fs/bpf/h11cli-nothing-here'], 'EPT_NOT_LOADED', /the tracker is not loaded at \/sys\/fs\/bpf\/h11cli-nothing-here: run `epolltrack load`/],
      [['lookup', String(gone), '3'], 'EPT_NO_SUCH_PROCESS', new RegExp(`no process ${gone}`), ['--pin-dir', pinDir]],
      [['lookup', String(gone), '3', '--method', 'fdinfo'], 'EPT_NO_SUCH_PROCESS', new RegExp(`no process ${gone}`)],
      [['ls', '--pid', String(gone)], 'EPT_NO_SUCH_PROCESS', new RegExp(`no process ${gone}`), ['--pin-dir', pinDir]],
      [['lookup', String(p.pid), '9999'], 'EPT_BAD_FD', /process \d+ has no open fd 9999/, ['--pin-dir', pinDir]],
      [['lookup', String(p.pid), '9999', '--method', 'fdinfo'], 'EPT_BAD_FD', /process \d+ has no open fd 9999/],
      [['load', '--mode', 'kprobe', '--pin-dir', `${pinDir}-kprobe`], 'EPT_NOT_SUPPORTED', /kprobe mode is not supported here/],
    ];
    for (const [args, code, msg, extra = []] of cases) {
      const label = args.join(' ');
      if (code === 'EPT_NOT_SUPPORTED' && existsSync('/sys/bus/event_source/devices/kprobe')) continue; // this kernel has kprobes
      const r = run(...args, ...extra);
      expect(r.status, `${label}: ${r.stderr}`).to.equal(status(code));
      expect(r.stderr, label).to.match(msg);
      expect(r.stderr.trimEnd().split('\n'), label).to.have.length(1);
      expect(r.stderr, label).to.match(/^epolltrack( [a-z]+)?: /);
      expect(r.stderr, label).to.not.match(/epolltrack[^\n]*epolltrack:/);
      const j = run(...args, ...extra, '--json');
      expect(j.status, `${label} --json`).to.equal(status(code));
      const lines = j.stderr.trimEnd().split('\n');
      expect(lines, `${label} --json: ${j.stderr}`).to.have.length(1);
      const e = JSON.parse(lines[0]);
      expect(Object.keys(e)).to.deep.equal(['error']);
      expect(e.error.code, label).to.equal(code);
      expect(e.error.message, label).to.match(msg);
      expect(j.stdout, label).to.equal('');
    }
  });

  it('exit status of the other classes a user can meet: not mounted (9), cannot listen (14)', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const port = (busy.address() as AddressInfo).port;
      const cases: [string[], string, RegExp][] = [
        [['load', '--pin-dir', '/tmp'], 'EPT_MOUNT', /\/tmp is not on a bpf file system: mount it with `mount -t bpf bpf \/sys\/fs\/bpf`/],
        [['daemon', '--listen', `127.0.0.1:${port}`, '--pin-dir', pinDir], 'EPT_LISTEN', new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`)],
      ];
      for (const [args, code, msg] of cases) {
        const r = run(...args); // daemon has no --json: it serves JSON
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).to.equal(status(code));
        expect(r.stderr.trimEnd().split('\n').pop()).to.match(msg);
      }
      const j = run('daemon', '--listen', `127.0.0.1:${port}`, '--pin-dir', pinDir, '--json');
      expect(j.status).to.equal(status('EPT_USAGE')); // an option the command does not take, said in JSON as asked
      expect(JSON.parse(j.stderr).error).to.deep.equal({ code: 'EPT_USAGE', message: "unknown option '--json'; see epolltrack daemon --help" });
    } finally {
      busy.close();
    }
  });

  it('exit status when a part is missing or stale: libbpf (10), the BPF object (13), maps pinned by another build (13)', function () {
    const libbpf = ['/usr/lib/x86_64-linux-gnu/libbpf.so.1', '/lib/x86_64-linux-gnu/libbpf.so.1'].find((f) => existsSync(f));
    expect(libbpf, 'libbpf.so.1 of the system').to.be.a('string');
    // libbpf.so.1 made unloadable, in a private mount namespace (the host's stays as it is).
    const noLib = spawnSync('unshare', ['-m', 'sh', '-c', `mount --bind /dev/null ${libbpf} && exec "$0" "$@"`, process.execPath, CLI, 'load', '--pin-dir', `${pinDir}-nolib`], { encoding: 'utf8', timeout: 60000 });
    expect(noLib.status, noLib.stderr).to.equal(status('EPT_LIBBPF'));
    expect(noLib.stderr.trimEnd()).to.equal('epolltrack load: libbpf.so.1 not found: install it with `apt-get install libbpf1`');
    const noObj = spawnSync(process.execPath, [CLI, 'load', '--pin-dir', `${pinDir}-noobj`], { encoding: 'utf8', timeout: 60000, env: { ...process.env, EPOLLTRACK_BPF_OBJECT: '/nonexistent/epolltrack.bpf.o' } });
    expect(noObj.status, noObj.stderr).to.equal(status('EPT_BUILD'));
    expect(noObj.stderr).to.match(/^epolltrack load: BPF object \/nonexistent\/epolltrack\.bpf\.o is missing: run `npm run build`/);
    for (const d of ['-nolib', '-noobj']) expect(existsSync(`${pinDir}${d}`), `nothing pinned at ${pinDir}${d}`).to.equal(false);
    // A pin dir whose map was pinned by another build (an upgrade without unload): named, not a verifier refusal.
    const other = `${pinDir}-other`;
    load({ pinDir: other, mode: 'lazy' });
    try {
      rmSync(join(other, 'maps', 'regs'));
      const mk = spawnSync('bpftool', ['map', 'create', join(other, 'maps', 'regs'), 'type', 'array', 'key', '4', 'value', '4', 'entries', '1', 'name', 'regs'], { encoding: 'utf8' });
      expect(mk.status, mk.stderr).to.equal(0);
      const r = run('lookup', String(process.pid), '0', '--pin-dir', other);
      expect(r.status, r.stderr).to.equal(status('EPT_BUILD'));
      expect(r.stderr.trimEnd()).to.match(/^epolltrack lookup: map regs pinned at \S+ was made by another epolltrack build \(type 2, key 4 B, value 4 B; this build's: type 9, key \d+ B, value \d+ B\): run `epolltrack unload` and `epolltrack load` again/);
    } finally {
      unload({ pinDir: other });
    }
    expect(existsSync(other)).to.equal(false);
  });

  it('bench and demo interrupted (SIGTERM, SIGINT): their pins, processes and namespace are gone; exit 128 + the signal', async function () {
    this.timeout(180000);
    // [args, signal, ready (its output), exit status, a process of its own that must be running (its command line)]
    const cases: [string[], NodeJS.Signals, RegExp, number, RegExp?][] = [
      [['bench', '--fds', '1000', '--iterations', '1000000'], 'SIGTERM', /1000 fds: timing lookups/, 143],
      [['bench', '--storm', '--processes', '4', '--rounds', '1000'], 'SIGINT', /storm 1\/3: 4 processes/, 130],
      // in the side-by-side runs: two supervise processes of its own, each running programs
      [['bench', '--storm', '--processes', '4', '--concurrent', '2', '--rounds', '150', '--runs', '1'], 'SIGINT', /side by side/, 130, /epclient/],
      [['demo'], 'SIGTERM', /before connect/, 143],
    ];
    // Its scratch directories (epolltrack-*) in the temp dir: none may be left.
    const scratch = () => new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('epolltrack-')));
    for (const [args, sig, ready, code, running] of cases) {
      const before = scratch();
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        let seen = '';
        child.stdout!.on('data', (d: Buffer) => { seen += d.toString(); });
        child.stderr!.on('data', (d: Buffer) => { seen += d.toString(); });
        const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
        for (let i = 0; i < 600 && !ready.test(seen); i++) await new Promise((r) => setTimeout(r, 100));
        expect(seen, args.join(' ')).to.match(ready);
        const pins = readdirSync('/sys/fs/bpf').filter((n) => n.endsWith(`-${child.pid}`));
        expect(pins, `${args[0]}: its own pin dir`).to.have.length(1);
        // Every process it started, and theirs in turn.
        const descendants = (pid: number): number[] => spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout
          .split('\n').filter(Boolean).map(Number).flatMap((c) => [c, ...descendants(c)]);
        const cmdline = (k: number) => { try { return readFileSync(`/proc/${k}/cmdline`, 'latin1'); } catch { return ''; } };
        let kids: number[] = [];
        for (let i = 0; i < 500 && (!kids.length || (running && !kids.some((k) => running.test(cmdline(k))))); i++) {
          kids = descendants(child.pid!);
          await new Promise((r) => setTimeout(r, 20));
        }
        if (running) expect(kids.map(cmdline).join('\n'), `${args.join(' ')}: running`).to.match(running);
        expect(kids.length, `${args[0]}: processes it started`).to.be.greaterThan(0);
        child.kill(sig);
        expect(await exited, `${args.join(' ')}: exit status`).to.equal(code);
        for (const n of pins) expect(existsSync(`/sys/fs/bpf/${n}`), `${n} after ${sig}`).to.equal(false);
        // Gone: exited (a zombie waiting for init to reap it counts as gone), not just orphaned.
        const alive = (k: number) => { try { return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${k}/stat`, 'latin1')); } catch { return false; } };
        for (let i = 0; i < 100 && kids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
        expect(kids.filter(alive), `${args.join(' ')}: its processes after ${sig}`).to.deep.equal([]);
        expect([...scratch()].filter((n) => !before.has(n)), `${args.join(' ')}: its scratch directories after ${sig}`).to.deep.equal([]);
        expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).to.not.include(`epolltrack-demo-${child.pid}`);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM'); // an assertion failed first: it cleans up itself
      }
    }
  });

  it('--version', () => {
    const { version } = JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8'));
    const r = run('--version');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.equal(`epolltrack ${version}\n`);
    expect(JSON.parse(run('--version', '--json').stdout)).to.deep.equal({ version });
    expect(run('-V').stdout).to.equal(r.stdout);
  });

  it('help for each command, both ways, with every option, defaults and an example', () => {
    for (const c of COMMANDS) {
      const a = run(c.name, '--help');
      const b = run('help', c.name);
      expect(a.status, c.name).to.equal(0);
      expect(a.stdout, c.name).to.equal(b.stdout);
      expect(a.stdout).to.include(`usage: epolltrack ${c.name}`);
      for (const o of c.options) expect(a.stdout, `${c.name} --${o.name}`).to.include(`--${o.name}`);
      expect(a.stdout).to.include('examples:');
    }
    expect(run('ls', '--help').stdout.replace(/\s+/g, ' ')).to.include('(default: bpf as root, fdinfo otherwise)');
    expect(run('--help').stdout).to.include('usage: epolltrack COMMAND');
    expect(run('help', 'nope').status).to.equal(status('EPT_USAGE'));
    const none = run();
    expect(none.status).to.equal(status('EPT_USAGE'));
    expect(none.stderr).to.include('commands:');
  });

  it('the build wrote the man page from the same table', () => {
    const path = join(process.cwd(), 'build', 'epolltrack.1');
    const man = readFileSync(path, 'utf8');
    for (const c of COMMANDS) expect(man, c.name).to.include(`.SS ${c.name}`);
    expect(man).to.include('.SH EXIT STATUS');
    const pkg = JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8'));
    expect(pkg.man).to.deep.equal(['./build/epolltrack.1']);
    expect(pkg.files).to.include('build/epolltrack.1');
    const g = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', path], { encoding: 'utf8' });
    if (!g.error) expect(g.stderr, 'groff warnings').to.equal('');
  });

  it('status agrees with load: exits 0 loaded, 4 not loaded; numbers as numbers; a mode is available only if a trial load passes', function () {
    const st = run('status', '--pin-dir', pinDir);
    expect(st.status, st.stderr).to.equal(0);
    expect(st.stdout).to.match(/^loaded: (tracepoint|fentry|kprobe|lazy) mode/);
    const j = JSON.parse(run('status', '--pin-dir', pinDir, '--json').stdout);
    expect(j.loaded).to.equal(true);
    for (const [k, v] of Object.entries(j.counters)) expect(v, k).to.be.a('number');
    expect(j.maps.regs.entries).to.be.a('number');
    expect(j.modes[j.mode]).to.equal('active');
    const none = `${pinDir}-none`;
    const off = run('status', '--pin-dir', none);
    expect(off.status).to.equal(status('EPT_NOT_LOADED'));
    expect(off.stdout).to.match(/^not loaded at /);
    expect(off.stdout).to.not.match(/: available/); // static probes alone never say "available"
    const offJson = run('status', '--pin-dir', none, '--json');
    expect(offJson.status).to.equal(status('EPT_NOT_LOADED'));
    expect(JSON.parse(offJson.stdout).loaded).to.equal(false);
    const probed = JSON.parse(run('status', '--pin-dir', none, '--probe', '--json').stdout).modes as Record<string, string>;
    for (const [mode, text] of Object.entries(probed)) {
      const dir = `${pinDir}-try-${mode}`;
      const l = run('load', '--mode', mode, '--pin-dir', dir);
      try {
        expect(l.status === 0, `${mode}: status --probe said '${text}', load exited ${l.status}: ${l.stderr}`).to.equal(text.startsWith('available'));
      } finally {
        run('unload', '--pin-dir', dir);
      }
    }
  });

  describe('without root', () => {
    let mine: FdKinds;
    const nsock = `/tmp/h11cli-cli-nobody-${process.pid}.sock`;
    before(async () => { mine = await FdKinds.spawn(nsock, NOBODY); });
    after(async () => { await mine?.stop(); });

    it('ls and lookup of your own process the fdinfo way, told it is the slow path', () => {
      const r = runAs(NOBODY, 'ls', '--port', String(mine.port), '--json');
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.equal(''); // with --json stderr is for errors only; `source` says fdinfo
      const rows = JSON.parse(r.stdout) as LsRow[];
      expect(rows.map((x) => x.fd).sort((a, b) => a - b)).to.deep.equal(
    ['tcp_listen', 'tcp_client', 'tcp_accepted', 'tcp6_mapped', 'tcp_accepted6', 'udp'].map((n) => mine.fd(n)).sort((a, b) => a - b));
      expect(rows.every((x) => x.pid === mine.pid && x.comm === 'fdkinds')).to.equal(true);
      const text = runAs(NOBODY, 'ls', '--pid', String(mine.pid));
      expect(text.status, text.stderr).to.equal(0);
      expect(text.stderr).to.match(/^epolltrack: note: not root: .*the fdinfo way \(the slow path/);
      expect(text.stdout.split('\n')[0]).to.match(/^COMMAND\s+PID\s+FD\s+KIND/);
      const fd = mine.fd('eventfd');
      const l = runAs(NOBODY, 'lookup', String(mine.pid), String(fd), '--json');
      expect(l.status, l.stderr).to.equal(0);
      const j = JSON.parse(l.stdout);
      expect(j).to.include({ source: 'fdinfo', comm: 'fdkinds' });
      expect(j.target.kind).to.equal('eventfd');
      expect(j.memberships).to.deep.equal([{ epollPid: mine.pid, epfd: mine.fd('epoll'), epollComm: 'fdkinds', tfd: fd, events: 0x19,
        eventNames: ['EPOLLIN', 'EPOLLERR', 'EPOLLHUP'], data: `0x${fd.toString(16)}` }]);
    });

    it('root without CAP_SYS_PTRACE: /proc says "cannot read" (not "no such process"); the tracker still answers', () => {
      const NOPTRACE = ['setpriv', '--inh-caps=-sys_ptrace', '--bounding-set=-sys_ptrace'];
      const fd = mine.fd('eventfd');
      for (const args of [['lookup', String(mine.pid), String(fd), '--method', 'fdinfo'], ['ls', '--pid', String(mine.pid), '--method', 'fdinfo']]) {
        const r = runAs(NOPTRACE, ...args, '--json');
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).to.equal(status('EPT_PROCESS_ACCESS'));
        expect(JSON.parse(r.stderr).error.message).to.match(new RegExp(`cannot read the fds of process ${mine.pid} \\(fdkinds, uid 65534\\) even as root \\(EACCES\\): run with CAP_SYS_PTRACE`));
      }
      const b = runAs(NOPTRACE, 'lookup', String(mine.pid), String(fd), '--pin-dir', pinDir, '--json');
      expect(b.status, b.stderr).to.equal(0);
      const j = JSON.parse(b.stdout);
      expect(j.source).to.equal('bpf');
      expect(j.memberships.map((m: { epfd: number; tfd: number }) => [m.epfd, m.tfd])).to.deep.equal([[mine.fd('epoll'), fd]]);
      expect(j.target.kind).to.equal('unknown'); // what the fd is comes from /proc, which is closed to it
    });

    it('another user\'s process: "cannot read", not "no such process"; the tracker, status, demo: "needs root"', () => {
      const cases: [string[], string, RegExp][] = [
        [['lookup', '1', '0'], 'EPT_PROCESS_ACCESS', /cannot read the fds of process 1 \(.*\): it is not yours; run as root/],
        [['ls', '--pid', '1'], 'EPT_PROCESS_ACCESS', /cannot read the fds of process 1/],
        [['ls', '--method', 'bpf', '--pin-dir', pinDir], 'EPT_NOT_ROOT', /needs root/],
        [['status', '--pin-dir', pinDir], 'EPT_NOT_ROOT', /needs root/],
        [['demo'], 'EPT_NOT_ROOT', /needs root/],
      ];
      for (const [args, code, msg] of cases) {
        const t0 = Date.now();
        const r = runAs(NOBODY, ...args);
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).to.equal(status(code));
        expect(r.stderr.trimEnd().split('\n'), args.join(' ')).to.have.length(1);
        expect(r.stderr).to.match(msg);
        expect(r.stderr).to.not.match(/epolltrack[^\n]*epolltrack:/);
        expect(r.stderr).to.not.match(/ffff[0-9a-f]{12}/);
        expect(Date.now() - t0, `${args.join(' ')} returns promptly`).to.be.below(15000);
      }
    });
  });
});
