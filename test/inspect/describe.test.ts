/** The fd resolver against real fds of a real process: each kind, its addresses, state and path. */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { describeFd, describeRegistrations, FdResolver, fdinfoRegistrations } from '../../src/index.js';
import { readSocketTables } from '../../src/inspect/sockets.js';
import { FdKinds } from '../helpers/fdkinds.js';

describe('inspect: what an fd is', function () {
  this.timeout(20000);
  let f: FdKinds;
  const sock = `/tmp/h11cli-describe-${process.pid}.sock`;
  before(async () => { f = await FdKinds.spawn(sock); });
  after(async () => { await f?.stop(); });

  it('classifies each kind from a real fd', () => {
    const kinds: [string, string][] = [
      ['epoll', 'epoll'], ['pipe', 'pipe'], ['eventfd', 'eventfd'], ['timerfd', 'timerfd'], ['signalfd', 'signalfd'],
      ['tcp_listen', 'tcp'], ['tcp_client', 'tcp'], ['tcp_unbound', 'tcp'], ['tcp6_mapped', 'tcp'], ['udp', 'udp'],
      ['unix_listen', 'unix'], ['netlink', 'netlink'], ['file', 'file'],
    ];
    if (f.fds.has('tty')) kinds.push(['tty', 'tty']);
    for (const [name, kind] of kinds) expect(describeFd(f.pid, f.fd(name)).kind, name).to.equal(kind);
  });

  it('gives tcp/udp endpoints and states as fields, IPv4-mapped peers as ::ffff:a.b.c.d', () => {
    const r = new FdResolver();
    expect(r.describe(f.pid, f.fd('tcp_listen'))).to.deep.include({
      kind: 'tcp', family: 'inet', state: 'LISTEN', local: { address: '127.0.0.1', port: f.port },
    });
    const client = r.describe(f.pid, f.fd('tcp_client'));
    expect(client).to.deep.include({ state: 'ESTABLISHED', remote: { address: '127.0.0.1', port: f.port } });
    const accepted = r.describe(f.pid, f.fd('tcp_accepted'));
    expect(accepted.local).to.deep.equal({ address: '127.0.0.1', port: f.port });
    expect(accepted.remote).to.deep.equal(client.local);
    expect(r.describe(f.pid, f.fd('tcp6_mapped'))).to.deep.include({
      kind: 'tcp', family: 'inet6', proto: 'tcp6', state: 'ESTABLISHED', remote: { address: '::ffff:127.0.0.1', port: f.port },
    });
    expect(r.describe(f.pid, f.fd('udp'))).to.deep.include({ kind: 'udp', state: 'ESTABLISHED', remote: { address: '127.0.0.1', port: f.port } });
    const unbound = r.describe(f.pid, f.fd('tcp_unbound'));
    expect(unbound).to.include({ kind: 'tcp', proto: 'tcp', family: 'inet' });
    expect(unbound.local).to.equal(undefined);
    expect(unbound.inode).to.be.a('number');
  });

  it('gives paths: unix socket, file, tty; pipe inode; netlink port', () => {
    const r = new FdResolver();
    expect(r.describe(f.pid, f.fd('unix_listen'))).to.deep.include({ kind: 'unix', type: 'stream', state: 'LISTEN', path: sock });
    expect(r.describe(f.pid, f.fd('file'))).to.deep.include({ kind: 'file', path: '/etc/passwd', desc: '/etc/passwd' });
    if (f.fds.has('tty')) expect(r.describe(f.pid, f.fd('tty')).path).to.match(/^\/dev\/pts\/\d+$/);
    expect(r.describe(f.pid, f.fd('pipe')).inode).to.be.a('number').above(0);
    expect(r.describe(f.pid, f.fd('netlink')).netlink).to.deep.equal({ protocol: 0, portid: f.pid });
    expect(r.comm(f.pid)).to.equal('fdkinds');
  });

  it('says gone for a closed fd, never throws', () => {
    expect(describeFd(f.pid, 999)).to.deep.equal({ kind: 'gone', desc: '(closed)' });
    expect(describeFd(4194304, 0).kind).to.equal('gone');
  });

  it('lists the registrations of a process the fdinfo way, each target described', () => {
    const rows = describeRegistrations(fdinfoRegistrations([f.pid]));
    const ep = f.fd('epoll');
    const watched = [...f.fds.entries()].filter(([n]) => !['epoll', 'file'].includes(n)).map(([, fd]) => fd).sort((a, b) => a - b);
    expect(rows.map((r) => r.fd)).to.deep.equal(watched);
    for (const r of rows) {
      expect(r).to.include({ pid: f.pid, epollPid: f.pid, epfd: ep, tfd: r.fd, comm: 'fdkinds', epollComm: 'fdkinds' });
      expect(r.data).to.equal(BigInt(r.fd));
      expect(r.eventNames).to.include('EPOLLIN');
    }
    expect(existsSync(sock)).to.equal(true);
  });
});

describe('inspect: sockets of another network namespace', function () {
  this.timeout(20000);
  const ns = `h11cli-desc-${process.pid}`;
  const sock = `/tmp/h11cli-describe-ns-${process.pid}.sock`;
  let f: FdKinds | undefined;
  before(async () => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    f = await FdKinds.spawn(sock, ['ip', 'netns', 'exec', ns]);
  });
  after(async () => {
    await f?.stop();
    spawnSync('ip', ['netns', 'delete', ns]);
  });

  it('reads the tables of the process\'s own namespace, not ours', () => {
    expect(readlinkSync(`/proc/${f!.pid}/ns/net`)).to.not.equal(readlinkSync('/proc/self/ns/net'));
    const r = new FdResolver();
    expect(r.describe(f!.pid, f!.fd('tcp_listen'))).to.deep.include({ kind: 'tcp', state: 'LISTEN', local: { address: '127.0.0.1', port: f!.port } });
    expect(r.describe(f!.pid, f!.fd('udp')).remote).to.deep.equal({ address: '127.0.0.1', port: f!.port });
    // our namespace's tables do not have it: a resolver reading ours would have said 'not bound'
    const ino = r.describe(f!.pid, f!.fd('tcp_listen')).inode!;
    expect(readSocketTables('/proc/self/net').has(String(ino))).to.equal(false);
    expect(readSocketTables(`/proc/${f!.pid}/net`).has(String(ino))).to.equal(true);
  });
});
