/**
 * What a `socket:[ino]` is: its protocol, addresses and state, from the socket
 * tables of the network namespace it lives in
 * (/proc/PID/net/{tcp,tcp6,udp,udp6,unix,netlink}), as ss and lsof read them.
 */
import { readFileSync } from 'node:fs';

/** An IP endpoint: `address` as node:net prints it (IPv4-mapped IPv6 as `::ffff:a.b.c.d`). */
export interface Endpoint { address: string; port: number }

export interface SocketInfo {
  /** tcp, tcp6, udp, udp6, unix, netlink */
  proto: string;
  /** inode number of the socket */
  inode: number;
  /** `127.0.0.1:8080`, `[::1]:80`; a unix socket's path; netlink `family F, port P` */
  local?: string;
  remote?: string;
  /** IP sockets: the endpoints as fields */
  localEp?: Endpoint;
  remoteEp?: Endpoint;
  /**
   * TCP: the kernel's state name (LISTEN, ESTABLISHED, ...). UDP: ESTABLISHED
   * (connected) or UNCONN. unix: LISTEN, ESTABLISHED, UNCONN, CONNECTING, DISCONNECTING.
   */
  state?: string;
  /** unix: stream, dgram, seqpacket */
  type?: string;
  /** unix: the bound path (`@name` for the abstract namespace) */
  path?: string;
  /** netlink: protocol number and port id */
  netlink?: { protocol: number; portid: number };
}

const TCP_STATES: Record<number, string> = {
  1: 'ESTABLISHED', 2: 'SYN_SENT', 3: 'SYN_RECV', 4: 'FIN_WAIT1', 5: 'FIN_WAIT2', 6: 'TIME_WAIT', 7: 'CLOSE',
  8: 'CLOSE_WAIT', 9: 'LAST_ACK', 10: 'LISTEN', 11: 'CLOSING', 12: 'NEW_SYN_RECV',
};
const UNIX_TYPES: Record<number, string> = { 1: 'stream', 2: 'dgram', 5: 'seqpacket' };
/** socket_state (SS_*) of a unix socket */
const UNIX_STATES: Record<number, string> = { 1: 'UNCONN', 2: 'CONNECTING', 3: 'ESTABLISHED', 4: 'DISCONNECTING' };

/** `0100007F:1F90` (IPv4, one little-endian word) or 32 hex digits (IPv6, four such words) -> endpoint. */
export function decodeEndpoint(hex: string): Endpoint {
  const [a, p] = hex.split(':');
  const port = parseInt(p, 16);
  if (a.length === 8) {
    const n = parseInt(a, 16);
    return { address: `${n & 0xff}.${(n >>> 8) & 0xff}.${(n >>> 16) & 0xff}.${n >>> 24}`, port };
  }
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const n = parseInt(a.slice(w * 8, w * 8 + 8), 16);
    bytes.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  }
  // IPv4-mapped: ::ffff:a.b.c.d
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return { address: `::ffff:${bytes.slice(12).join('.')}`, port };
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  // compress the longest run of zero groups
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  const text = best < 0 ? groups.join(':')
    : `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
  return { address: text, port };
}

/** `127.0.0.1:8080`, `[::1]:8080` */
export function formatEndpoint(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** `0100007F:1F90` -> `127.0.0.1:8080` (IPv6 in brackets). */
export function decodeAddr(hex: string): string {
  return formatEndpoint(decodeEndpoint(hex));
}

function read(path: string): string[] {
  try {
    return readFileSync(path, 'latin1').split('\n').slice(1);
  } catch {
    return [];
  }
}

/** Parse one namespace's tables into inode -> info. `procNet` is e.g. `/proc/1234/net`. */
export function readSocketTables(procNet: string): Map<string, SocketInfo> {
  const out = new Map<string, SocketInfo>();
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
    for (const line of read(`${procNet}/${proto}`)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[9] === '0') continue;
      const st = parseInt(f[3], 16);
      const localEp = decodeEndpoint(f[1]);
      const remoteEp = decodeEndpoint(f[2]);
      const info: SocketInfo = { proto, inode: Number(f[9]), local: formatEndpoint(localEp), localEp };
      if (proto.startsWith('tcp')) {
        info.state = TCP_STATES[st] ?? `state ${st}`;
        if (st !== 10) Object.assign(info, { remote: formatEndpoint(remoteEp), remoteEp });
      } else if (remoteEp.port !== 0 || !/^(0\.0\.0\.0|::)$/.test(remoteEp.address)) {
        Object.assign(info, { remote: formatEndpoint(remoteEp), remoteEp, state: 'ESTABLISHED' }); // a connected UDP socket
      } else {
        info.state = 'UNCONN';
      }
      out.set(f[9], info);
    }
  }
  for (const line of read(`${procNet}/unix`)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const f = line.trim().split(/\s+/);
    if (f.length < 7) continue;
    const type = UNIX_TYPES[parseInt(f[4], 16)] ?? `type ${f[4]}`;
    const listening = (parseInt(f[3], 16) & 0x10000) !== 0; // __SO_ACCEPTCON
    const info: SocketInfo = {
      proto: 'unix', inode: Number(f[6]), type,
      state: listening ? 'LISTEN' : UNIX_STATES[parseInt(f[5], 16)] ?? `state ${f[5]}`,
    };
    if (f.length > 7) info.local = info.path = f.slice(7).join(' ');
    out.set(f[6], info);
  }
  for (const line of read(`${procNet}/netlink`)) {
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const protocol = Number(f[1]);
    const portid = Number(f[2]);
    out.set(f[9], { proto: 'netlink', inode: Number(f[9]), local: `family ${protocol}, port ${portid}`, netlink: { protocol, portid } });
  }
  return out;
}

/** One line for people: `TCP 127.0.0.1:8080 → 127.0.0.1:5555 ESTABLISHED`. */
export function describeSocket(s: SocketInfo): string {
  if (s.proto === 'unix') return `unix ${s.type}${s.state === 'LISTEN' ? ', listening' : ''}${s.path ? ` ${s.path}` : ' (unnamed)'}`;
  if (s.proto === 'netlink') return `netlink ${s.local}`;
  const name = s.proto.replace(/6$/, '').toUpperCase() + (s.proto.endsWith('6') ? '6' : '');
  return [name, s.local, s.remote ? `→ ${s.remote}` : '', s.proto.startsWith('tcp') ? s.state : ''].filter(Boolean).join(' ');
}
