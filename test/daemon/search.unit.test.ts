/** The dashboard's search words (the API's ?q= too): parsing and matching, no kernel needed. */
import { expect } from 'chai';
import { snakeCase } from '../../src/daemon/metrics.js';
import { parseSearch, searchMatches, type SearchReg } from '../../src/daemon/search.js';

const proc = { pid: 42, comm: 'nginx', cmdline: 'nginx: worker process' };
const inst = { epollPid: 42, epfd: 8 };
const reg = (kind: string, local?: string, remote?: string, desc = kind): SearchReg => ({ target: { kind, desc, local, remote } });
const match = (q: string, r: SearchReg, i = inst) => {
  const { sel, errors } = parseSearch(q);
  expect(errors, q).to.deep.equal([]);
  return searchMatches(sel, proc, i, r);
};

describe('daemon search words', () => {
  it('reads ports, addresses, kinds, pids, commands and epoll instances, bare or with a key', () => {
    expect(parseSearch(':28080').sel.port).to.equal(28080);
    expect(parseSearch('port:443').sel.port).to.equal(443);
    expect(parseSearch('10.0.0.1').sel.addr).to.equal('10.0.0.1');
    expect(parseSearch('addr:[::1]').sel.addr).to.equal('::1');
    expect(parseSearch('UDP').sel.kind).to.equal('udp');
    expect(parseSearch('pid:7 comm:Nginx epoll:7:3').sel).to.deep.include({ pid: 7, comm: 'nginx', epoll: { pid: 7, fd: 3 } });
    expect(parseSearch('worker').sel.text).to.deep.equal(['worker']);
    for (const bad of ['port:70000', 'port:x', 'addr:foo', 'kind:banana', 'pid:0', 'epoll:1', 'comm:']) {
      expect(parseSearch(bad).errors, bad).to.have.length(1);
    }
  });

  it('matches who watches a port: either end, IPv4-mapped addresses as IPv4, tcp6 as tcp', () => {
    const listen = reg('tcp', '0.0.0.0:28080');
    const client = reg('tcp', '127.0.0.1:50000', '127.0.0.1:28080');
    const v6 = reg('tcp6', '[::ffff:127.0.0.99]:80', '[::ffff:10.1.2.3]:5555');
    expect(match(':28080', listen)).to.equal(true);
    expect(match(':28080', client)).to.equal(true);
    expect(match(':2808', client)).to.equal(false);
    expect(match('addr:127.0.0.99 :80', v6)).to.equal(true);
    expect(match('addr:10.1.2.3 kind:tcp', v6)).to.equal(true);
    expect(match('kind:udp', v6)).to.equal(false);
    expect(match(':80', reg('unix', '/run/x.sock'))).to.equal(false);
    expect(match('kind:eventfd', reg('eventfd'))).to.equal(true);
    expect(match('epoll:42:8', reg('pipe'))).to.equal(true);
    expect(match('epoll:42:9', reg('pipe'))).to.equal(false);
    expect(match('worker kind:pipe', reg('pipe'))).to.equal(true);
    expect(match('pid:43', reg('pipe'))).to.equal(false);
  });

  it('turns label values into snake_case', () => {
    expect(['regsFull', 'epollsFull', 'no-location', 'unverified-location', 'add'].map(snakeCase))
      .to.deep.equal(['regs_full', 'epolls_full', 'no_location', 'unverified_location', 'add']);
  });
});
