/** Endpoints and sockaddrs through node:net: IPv4, IPv6, IPv4-mapped (root-free). */
import { expect } from 'chai';
import {
  AF_INET, AF_INET6, encodeSockaddr, endpointProblem, formatSockaddr, parseEndpoint, parseSockaddr, sameAddr, unmapV4,
  type SockAddr,
} from '../../src/supervise/endpoint.js';
import * as seccomp from '../../src/supervise/seccomp.js';

/** struct sockaddr_in6 written by hand: family, port (network order), flowinfo, 16 address bytes, scope. */
function sin6(groups: number[], port: number): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  groups.forEach((g, i) => b.writeUInt16BE(g, 8 + i * 2));
  return b;
}

describe('endpoints', () => {
  it('parses IPv4, IPv6 (canonical text) and IPv4-mapped IPv6', () => {
    const cases: [string, SockAddr][] = [
      ['127.0.0.99:80', { family: AF_INET, ip: '127.0.0.99', port: 80 }],
      ['0.0.0.0:0', { family: AF_INET, ip: '0.0.0.0', port: 0 }],
      ['255.255.255.255:65535', { family: AF_INET, ip: '255.255.255.255', port: 65535 }],
      ['[::1]:443', { family: AF_INET6, ip: '::1', port: 443 }],
      ['[::]:1', { family: AF_INET6, ip: '::', port: 1 }],
      ['[2001:DB8:0:0:1:0:0:1]:8080', { family: AF_INET6, ip: '2001:db8::1:0:0:1', port: 8080 }],
      ['[1:0:0:1:0:0:0:1]:9', { family: AF_INET6, ip: '1:0:0:1::1', port: 9 }],
      ['[::ffff:127.0.0.99]:80', { family: AF_INET6, ip: '::ffff:127.0.0.99', port: 80 }],
      ['[0:0:0:0:0:ffff:7f00:63]:80', { family: AF_INET6, ip: '::ffff:127.0.0.99', port: 80 }],
      ['[::FFFF:7F00:63]:80', { family: AF_INET6, ip: '::ffff:127.0.0.99', port: 80 }],
    ];
    for (const [text, want] of cases) {
      expect(parseEndpoint(text), text).to.deep.equal(want);
      expect(endpointProblem(text), text).to.equal(undefined);
    }
    expect(formatSockaddr(parseEndpoint('[::ffff:127.0.0.99]:80')!)).to.equal('[::ffff:127.0.0.99]:80');
    expect(formatSockaddr(parseEndpoint('10.1.2.3:7')!)).to.equal('10.1.2.3:7');
  });

  it('rejects bad addresses and ports with a one-line reason', () => {
    const bad: [string, RegExp][] = [
      ['[12345::1]:80', /'12345::1' is not an IPv6 address/],
      ['[1:2:3:4:5:6:7:8:9]:80', /'1:2:3:4:5:6:7:8:9' is not an IPv6 address/],
      ['[1::2::3]:80', /not an IPv6 address/],
      ['[::ffff:127.0.0.256]:80', /not an IPv6 address/],
      ['[fe80::1%eth0]:80', /scope ids/],
      ['[127.0.0.1]:80', /not an IPv6 address/],
      ['127.0.0.256:80', /'127.0.0.256' is not an IPv4 address/],
      ['1.2.3:80', /not an IPv4 address/],
      ['01.2.3.4:80', /not an IPv4 address/],
      ['localhost:80', /not an IPv4 address/],
      ['::1:80', /not IP:PORT/],
      ['[::1]:65536', /port 65536 is out of range/],
      ['1.2.3.4:123456', /out of range/],
      ['1.2.3.4:', /not IP:PORT/],
      ['1.2.3.4', /not IP:PORT/],
      ['[::1]80', /not IP:PORT/],
      ['', /not IP:PORT/],
    ];
    for (const [text, why] of bad) {
      expect(parseEndpoint(text), text).to.equal(undefined);
      const p = endpointProblem(text);
      expect(p, text).to.match(why);
      expect(p, text).to.not.include('\n');
    }
  });

  it('a rule for an IPv4 address matches its IPv4-mapped IPv6 form, both ways, and nothing else', () => {
    const v4 = parseEndpoint('127.0.0.99:80')!;
    const mapped = parseEndpoint('[::ffff:127.0.0.99]:80')!;
    // The connect as the kernel shows it: an AF_INET6 sockaddr read from the caller.
    const fromCaller = parseSockaddr(sin6([0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x63], 80))!;
    expect(fromCaller).to.deep.equal({ family: AF_INET6, ip: '::ffff:127.0.0.99', port: 80 });
    expect(sameAddr(v4, fromCaller)).to.equal(true);
    expect(sameAddr(fromCaller, v4)).to.equal(true);
    expect(sameAddr(mapped, parseSockaddr(encodeSockaddr(v4))!)).to.equal(true);
    expect(sameAddr(v4, parseEndpoint('[::ffff:127.0.0.99]:81')!)).to.equal(false);
    expect(sameAddr(v4, parseEndpoint('[::ffff:127.0.0.98]:80')!)).to.equal(false);
    // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) forms are other addresses.
    expect(sameAddr(v4, parseEndpoint('[::127.0.0.99]:80')!)).to.equal(false);
    expect(sameAddr(v4, parseEndpoint('[64:ff9b::7f00:63]:80')!)).to.equal(false);
    // IPv6 text forms of one address are one address.
    expect(sameAddr(parseEndpoint('[2001:db8::1]:5')!, parseSockaddr(sin6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 5))!)).to.equal(true);
    expect(sameAddr(parseEndpoint('[::1]:5')!, parseEndpoint('127.0.0.1:5')!)).to.equal(false);
    expect(unmapV4('::ffff:10.0.0.1')).to.equal('10.0.0.1');
    expect(unmapV4('::10.0.0.1')).to.equal(undefined);
    expect(unmapV4('10.0.0.1')).to.equal(undefined);
  });

  it('encodes sockaddr_in / sockaddr_in6 byte for byte and decodes them back', () => {
    expect(encodeSockaddr(parseEndpoint('127.0.0.99:80')!).toString('hex')).to.equal('020000507f00006300000000' + '00000000');
    expect(encodeSockaddr(parseEndpoint('[::ffff:127.0.0.99]:80')!)).to.deep.equal(sin6([0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x63], 80));
    expect(encodeSockaddr(parseEndpoint('[2001:db8::1:0:0:1]:8080')!)).to.deep.equal(sin6([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], 8080));
    expect(encodeSockaddr(parseEndpoint('[::]:1')!)).to.deep.equal(sin6([0, 0, 0, 0, 0, 0, 0, 0], 1));
    expect(encodeSockaddr(parseEndpoint('[::127.0.0.1]:1')!)).to.deep.equal(sin6([0, 0, 0, 0, 0, 0, 0x7f00, 1], 1));
    for (const text of ['1.2.3.4:5', '[::1]:2', '[fe80::a:b:c:d]:3', '[::ffff:1.2.3.4]:4', '[1:2:3:4:5:6:7:8]:65535']) {
      const a = parseEndpoint(text)!;
      expect(parseSockaddr(encodeSockaddr(a)), text).to.deep.equal(a);
    }
    expect(parseSockaddr(Buffer.alloc(1))).to.equal(undefined);
    expect(parseSockaddr(Buffer.from([2, 0, 0, 80]))).to.equal(undefined); // AF_INET, too short
    expect(parseSockaddr(Buffer.alloc(28, 0))).to.equal(undefined); // AF_UNSPEC
  });

  it('seccomp.ts serves the same functions (the supervisor and CLI import them there)', () => {
    expect(seccomp.parseEndpoint).to.equal(parseEndpoint);
    expect(seccomp.sameAddr).to.equal(sameAddr);
    expect(seccomp.parseSockaddr).to.equal(parseSockaddr);
    expect(seccomp.encodeSockaddr).to.equal(encodeSockaddr);
  });
});
