/**
 * Socket addresses as text and as struct sockaddr_in / sockaddr_in6, through
 * node:net (isIPv4/isIPv6 validate, SocketAddress gives the canonical RFC 5952
 * text). Pure code: no FFI, no kernel.
 *
 * An IPv4 address and its IPv4-mapped IPv6 form (::ffff:a.b.c.d) are the same
 * endpoint for matching: a rule for 127.0.0.99:80 matches an AF_INET6 connect
 * to [::ffff:127.0.0.99]:80, and the other way round.
 */
import { isIPv4, isIPv6, SocketAddress } from 'node:net';

export const AF_INET = 2, AF_INET6 = 10;

export interface SockAddr { family: number; ip: string; port: number }

/** Canonical text of a valid IPv6 address (lowercase, longest zero run as ::, ::ffff:a.b.c.d). */
function canonicalV6(ip: string): string {
  return new SocketAddress({ address: ip, family: 'ipv6' }).address;
}

/** The 16 bytes of a valid IPv6 address. */
function v6Bytes(ip: string): Buffer {
  const b = Buffer.alloc(16);
  let text = canonicalV6(ip);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    v4[1].split('.').forEach((o, i) => { b[12 + i] = Number(o); });
    text = `${text.slice(0, -v4[1].length)}0:0`; // two placeholder groups, overwritten below by the tail
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(tail === undefined ? 0 : 8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => { if (!(v4 && i >= 6)) b.writeUInt16BE(parseInt(g, 16), i * 2); });
  return b;
}

/** The IPv4 address an IPv4-mapped IPv6 address stands for, else undefined. */
export function unmapV4(ip: string): string | undefined {
  if (!isIPv6(ip)) return undefined;
  const b = v6Bytes(ip);
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return undefined;
  if (b[10] !== 0xff || b[11] !== 0xff) return undefined;
  return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
}

/** struct sockaddr_in / sockaddr_in6 -> SockAddr (IPv6 text canonical), or undefined if neither. */
export function parseSockaddr(b: Buffer): SockAddr | undefined {
  if (b.length < 2) return undefined;
  const family = b.readUInt16LE(0);
  if (family === AF_INET && b.length >= 16) {
    return { family, ip: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port: b.readUInt16BE(2) };
  }
  if (family === AF_INET6 && b.length >= 28) {
    const parts: string[] = [];
    for (let i = 0; i < 8; i++) parts.push(b.readUInt16BE(8 + i * 2).toString(16));
    return { family, ip: canonicalV6(parts.join(':')), port: b.readUInt16BE(2) };
  }
  return undefined;
}

/** SockAddr -> struct sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes, flowinfo and scope 0). */
export function encodeSockaddr(a: SockAddr): Buffer {
  if (a.family === AF_INET) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(a.port, 2);
    a.ip.split('.').forEach((o, i) => { b[4 + i] = Number(o); });
    return b;
  }
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(a.port, 2);
  v6Bytes(a.ip).copy(b, 8);
  return b;
}

export function formatSockaddr(a: SockAddr): string {
  return a.family === AF_INET6 ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}

/**
 * Why `s` is not an endpoint ("IP:PORT" or "[IPv6]:PORT"), or undefined when
 * it is one: a one-line reason for an error message.
 */
export function endpointProblem(s: string): string | undefined {
  const m = /^\[([^\]]*)\]:(\d+)$/.exec(s) ?? /^([^:[\]]*):(\d+)$/.exec(s);
  if (!m) return `'${s}' is not IP:PORT or [IPv6]:PORT`;
  const [, ip, port] = m;
  if (s.startsWith('[')) {
    if (ip.includes('%')) return `'${ip}': IPv6 scope ids (%) are not supported`;
    if (!isIPv6(ip)) return `'${ip}' is not an IPv6 address`;
  } else if (!isIPv4(ip)) {
    return isIPv6(ip) ? `'${ip}' is IPv6: write it in brackets, [${ip}]:${port}` : `'${ip}' is not an IPv4 address`;
  }
  if (port.length > 5 || Number(port) > 65535) return `port ${port} is out of range (0-65535)`;
  return undefined;
}

/** "IP:PORT" or "[IPv6]:PORT" -> SockAddr (IPv6 text canonical), or undefined if invalid (see endpointProblem). */
export function parseEndpoint(s: string): SockAddr | undefined {
  if (endpointProblem(s) !== undefined) return undefined;
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (s.startsWith('[')) return { family: AF_INET6, ip: canonicalV6(s.slice(1, i - 1)), port };
  return { family: AF_INET, ip: s.slice(0, i), port };
}

/** The address as matched: IPv4 for an IPv4 or IPv4-mapped address, else canonical IPv6. */
function matchKey(a: SockAddr): string {
  if (a.family === AF_INET) return a.ip;
  return unmapV4(a.ip) ?? canonicalV6(a.ip);
}

/** Same endpoint: same port and address, an IPv4 address equal to its IPv4-mapped IPv6 form. */
export function sameAddr(a: SockAddr, b: SockAddr): boolean {
  return a.port === b.port && matchKey(a) === matchKey(b);
}
