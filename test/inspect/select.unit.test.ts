/** Selectors (lsof/ss words): parsing and matching, on rows built by hand. Root-free. */
import { expect } from 'chai';
import { BadInputError, formatSelector, isEmptySelector, matchSelector, parseSelector, parseSelectorText, type FdTarget, type SelectableRow } from '../../src/index.js';
import { decodeAddr, decodeEndpoint, readSocketTables } from '../../src/inspect/sockets.js';

const tcp = (local: [string, number], remote?: [string, number], state = 'ESTABLISHED', family: 'inet' | 'inet6' = 'inet'): FdTarget => ({
  kind: 'tcp', desc: '', family, state, local: { address: local[0], port: local[1] },
  ...(remote ? { remote: { address: remote[0], port: remote[1] } } : {}),
});
const row = (pid: number, comm: string, target: FdTarget, epollPid = pid, epfd = 3): SelectableRow => ({ pid, comm, epollPid, epfd, epollComm: comm, target });

const rows = {
  listen: row(10, 'nginx', tcp(['0.0.0.0', 28080], undefined, 'LISTEN')),
  conn: row(10, 'nginx', tcp(['127.0.0.1', 28080], ['127.0.0.1', 51000])),
  client: row(20, 'curl', tcp(['127.0.0.1', 51000], ['127.0.0.1', 28080])),
  mapped: row(30, 'java', tcp(['::ffff:127.0.0.1', 40000], ['::ffff:10.1.2.3', 443], 'ESTABLISHED', 'inet6')),
  v6: row(30, 'java', tcp(['::1', 9000], undefined, 'LISTEN', 'inet6')),
  udp: row(40, 'dnsmasq', { kind: 'udp', desc: '', family: 'inet', state: 'UNCONN', local: { address: '0.0.0.0', port: 53 } }),
  unix: row(50, 'sshd', { kind: 'unix', desc: '', type: 'stream', state: 'LISTEN', path: '/run/sshd.sock' }),
  pipe: row(50, 'sshd', { kind: 'pipe', desc: '', inode: 7 }, 51, 4),
};
type Name = keyof typeof rows;
const pick = (sel: ReturnType<typeof parseSelector>) => (Object.keys(rows) as Name[]).filter((n) => matchSelector(sel, rows[n]));

describe('inspect: selectors (unit)', () => {
  const cases: [Record<string, string | string[]>, Name[]][] = [
    [{}, Object.keys(rows) as Name[]],
    [{ port: '28080' }, ['listen', 'conn', 'client']], // who watches :28080: listener, accepted and the client
    [{ port: ':443' }, ['mapped']],
    [{ port: '53,9000' }, ['v6', 'udp']],
    [{ addr: '127.0.0.1' }, ['conn', 'client', 'mapped']], // IPv4-mapped IPv6 matches IPv4
    [{ addr: '::ffff:10.1.2.3' }, ['mapped']],
    [{ addr: '10.0.0.0/8' }, ['mapped']],
    [{ addr: '127.0.0.1:51000' }, ['conn', 'client']],
    [{ addr: '[::1]:9000' }, ['v6']],
    [{ addr: '/run/sshd.sock' }, ['unix']],
    [{ kind: 'tcp' }, ['listen', 'conn', 'client', 'mapped', 'v6']],
    [{ kind: 'tcp6' }, ['mapped', 'v6']],
    [{ kind: 'inet4' }, ['listen', 'conn', 'client', 'udp']],
    [{ kind: 'unix,pipe' }, ['unix', 'pipe']],
    [{ comm: 'ngi' }, ['listen', 'conn']], // a prefix, as lsof -c
    [{ comm: 'gin' }, []],
    [{ comm: '/^(curl|java)$/' }, ['client', 'mapped', 'v6']],
    [{ pid: '51' }, ['pipe']], // the epoll's process counts too
    [{ pid: ['10', '20'] }, ['listen', 'conn', 'client']],
    [{ comm: 'nginx', port: '28080', kind: 'tcp' }, ['listen', 'conn']], // different words: all must hold
    [{ pid: '10', addr: '127.0.0.1' }, ['conn']],
    [{ epoll: '51:4' }, ['pipe']], // same pid and fd: no kcmp needed
  ];
  for (const [values, want] of cases) {
    it(`${JSON.stringify(values)} selects ${want.join(', ') || 'nothing'}`, () => {
      expect(pick(parseSelector(values))).to.deep.equal(want);
    });
  }

  it('refuses bad values with the word and its range', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ port: '0' }, /--port takes a port \(1–65535\), got '0'/],
      [{ port: '70000' }, /--port/],
      [{ pid: '0' }, /--pid takes a process id/],
      [{ pid: 'abc' }, /--pid/],
      [{ kind: 'sock' }, /--kind takes one of tcp, udp/],
      [{ addr: 'localhost' }, /--addr takes an IP address/],
      [{ addr: '10.0.0.0/33' }, /prefix length \(0–32\)/],
      [{ epoll: '12' }, /--epoll takes PID:FD/],
      [{ comm: '/(/' }, /--comm regex/],
    ];
    for (const [v, re] of bad) expect(() => parseSelector(v), JSON.stringify(v)).to.throw(BadInputError, re);
  });

  it('parses a search line: words, and bare values for what they look like', () => {
    const s = parseSelectorText('nginx :28080 kind:tcp 127.0.0.1 1234 5:6 addr=[::1]:80 /run/x.sock');
    expect(formatSelector(s)).to.equal('pid:1234 comm:nginx port:28080 addr:127.0.0.1 addr:[::1]:80 addr:/run/x.sock kind:tcp epoll:5:6');
    expect(isEmptySelector(parseSelectorText('  '))).to.equal(true);
    expect(() => parseSelectorText('port:x')).to.throw(BadInputError, /^port: takes a port/);
    expect(pick(parseSelectorText('who :28080 curl'))).to.deep.equal(['client']); // 'who' or 'curl' (both comm), and port 28080
  });

  it('decodes the kernel socket tables: IPv4, IPv6, IPv4-mapped', () => {
    expect(decodeAddr('0100007F:1F90')).to.equal('127.0.0.1:8080');
    expect(decodeEndpoint('00000000000000000000000001000000:0050')).to.deep.equal({ address: '::1', port: 80 });
    expect(decodeEndpoint('0000000000000000FFFF00000100007F:0050')).to.deep.equal({ address: '::ffff:127.0.0.1', port: 80 });
    expect(readSocketTables('/nonexistent').size).to.equal(0);
  });
});
