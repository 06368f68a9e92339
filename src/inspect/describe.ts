/**
 * The fd resolver: what fd N of process P is, for people and for programs.
 * One source for the CLI (`ls`, `lookup`), the API and the dashboard.
 *
 * Per (pid, fd): the kind (tcp/udp/unix/netlink socket, pipe, eventfd, timerfd,
 * signalfd, epoll, file, tty, ...), addresses and state (from the socket tables
 * of the process's network namespace, as ss and lsof read them), the path, and
 * a one-line description. Per pid: the command name. Nothing here holds a
 * kernel address: inodes and fd numbers only.
 */
import { readlinkSync, statSync } from 'node:fs';
import { decodeEvents } from '../kernel/events.js';
import { getxattrText } from '../kernel/ffi.js';
import type { Registration } from '../tracker/tracker.js';
import { readComm } from './process.js';
import { describeSocket, readSocketTables, type Endpoint, type SocketInfo } from './sockets.js';

/** Every kind an fd can be, as `--kind` takes them. */
export const FD_KINDS = [
  'tcp', 'udp', 'unix', 'netlink', 'socket', 'pipe', 'eventfd', 'timerfd', 'signalfd', 'epoll', 'inotify', 'fanotify',
  'pidfd', 'io_uring', 'userfaultfd', 'anon', 'tty', 'device', 'file', 'namespace', 'gone', 'unknown',
] as const;
export type FdKind = typeof FD_KINDS[number];

export interface FdTarget {
  kind: FdKind;
  /** one line for people: `TCP 127.0.0.1:8080 → 127.0.0.1:5555 ESTABLISHED`, `pipe [1234]`, `/var/log/x` */
  desc: string;
  /** sockets: the protocol (tcp, tcp6, udp, udp6, unix, netlink; raw, packet, ... for sockets in no table) */
  proto?: string;
  /** tcp, udp: address family */
  family?: 'inet' | 'inet6';
  /** tcp, udp: local and peer endpoints */
  local?: Endpoint;
  remote?: Endpoint;
  /** tcp: LISTEN, ESTABLISHED, ...; udp: ESTABLISHED or UNCONN; unix: LISTEN, ESTABLISHED, UNCONN, ... */
  state?: string;
  /** unix: stream, dgram, seqpacket */
  type?: string;
  /** files, ttys, devices, named fifos: the path; unix sockets: the bound path */
  path?: string;
  /** sockets and pipes: the inode number (`socket:[N]`, `pipe:[N]`) */
  inode?: number;
  /** netlink sockets */
  netlink?: { protocol: number; portid: number };
}

/** epoll event bits as names: `['EPOLLIN', 'EPOLLET']`, unknown bits as `0x...`. */
export function eventNames(events: number): string[] {
  const s = decodeEvents(events);
  return s === '0' ? [] : s.split('|');
}

const ANON: Record<string, FdKind> = {
  '[eventfd]': 'eventfd', '[timerfd]': 'timerfd', '[signalfd]': 'signalfd', '[eventpoll]': 'epoll', inotify: 'inotify',
  '[pidfd]': 'pidfd', '[io_uring]': 'io_uring', '[fanotify]': 'fanotify', '[userfaultfd]': 'userfaultfd',
};

/** system.sockprotoname of a socket that is in no table (not bound, not connected): lsof reads it too. */
const XATTR_PROTO: Record<string, FdKind> = { TCP: 'tcp', TCPv6: 'tcp', UDP: 'udp', UDPv6: 'udp', UNIX: 'unix', NETLINK: 'netlink' };

function fromSocket(s: SocketInfo): FdTarget {
  const t: FdTarget = { kind: 'socket', desc: describeSocket(s), proto: s.proto, inode: s.inode };
  if (s.proto.startsWith('tcp') || s.proto.startsWith('udp')) {
    t.kind = s.proto.startsWith('tcp') ? 'tcp' : 'udp';
    t.family = s.proto.endsWith('6') ? 'inet6' : 'inet';
    if (s.localEp) t.local = s.localEp;
    if (s.remoteEp) t.remote = s.remoteEp;
  } else if (s.proto === 'unix') {
    t.kind = 'unix';
    t.type = s.type;
    if (s.path) t.path = s.path;
  } else if (s.proto === 'netlink') {
    t.kind = 'netlink';
    t.netlink = s.netlink;
  }
  if (s.state) t.state = s.state;
  return t;
}

/**
 * Resolves fds to FdTargets. Socket tables are read per network namespace and
 * kept across calls: a namespace's tables are read again when older than
 * `maxAgeMs` (TCP states move on), or when a socket not seen in them yet turns
 * up (at most every `minAgeMs`). Reading /proc/net/tcp walks the kernel's
 * whole hash table: a daemon refreshing every second should not do it each time.
 * Command names are cached until beginCycle().
 */
export class FdResolver {
  private readonly tables = new Map<string, { at: number; map: Map<string, SocketInfo>; missed: Set<string> }>();
  private readonly nsOf = new Map<number, string>();
  private readonly comms = new Map<number, string>();

  constructor(private readonly maxAgeMs = 2000, private readonly minAgeMs = 500) {}

  /** Call once per refresh: namespaces and command names are looked up again, unused tables dropped. */
  beginCycle(): void {
    this.nsOf.clear();
    this.comms.clear();
    const now = Date.now();
    for (const [ns, t] of this.tables) if (now - t.at > 60000) this.tables.delete(ns);
  }

  /** The command name of `pid` ('?' when it is gone). */
  comm(pid: number): string {
    let c = this.comms.get(pid);
    if (c === undefined) this.comms.set(pid, (c = readComm(pid)));
    return c;
  }

  /** The socket with inode `ino` in `pid`'s network namespace, from its tables. */
  socket(pid: number, ino: string): SocketInfo | undefined {
    let ns = this.nsOf.get(pid);
    if (ns === undefined) {
      try {
        ns = readlinkSync(`/proc/${pid}/ns/net`);
      } catch {
        ns = 'self';
      }
      this.nsOf.set(pid, ns);
    }
    const now = Date.now();
    let t = this.tables.get(ns);
    const age = t ? now - t.at : Infinity;
    let fresh = false;
    if (!t || age > this.maxAgeMs || (!t.map.has(ino) && !t.missed.has(ino) && age > this.minAgeMs)) {
      t = { at: now, map: readSocketTables(ns === 'self' ? '/proc/self/net' : `/proc/${pid}/net`), missed: new Set() };
      this.tables.set(ns, t);
      fresh = true;
    }
    const info = t.map.get(ino);
    // Not in tables read just now (an unbound TCP socket, a packet socket, ...): wait for the next full re-read.
    if (!info && fresh) t.missed.add(ino);
    return info;
  }

  /** What fd `fd` of process `pid` is, right now. */
  describe(pid: number, fd: number): FdTarget {
    const at = `/proc/${pid}/fd/${fd}`;
    let link: string;
    try {
      link = readlinkSync(at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'EACCES' || code === 'EPERM' ? { kind: 'unknown', desc: '(cannot read)' } : { kind: 'gone', desc: '(closed)' };
    }
    let m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) {
      const s = this.socket(pid, m[1]);
      if (s) return fromSocket(s);
      const name = getxattrText(at, 'system.sockprotoname'); // TCP, TCPv6, UDP, UNIX, NETLINK, RAW, PACKET, ...
      const kind = (name && XATTR_PROTO[name]) || 'socket';
      const t: FdTarget = { kind, desc: `${name ?? 'socket'} socket [${m[1]}], not bound`, inode: Number(m[1]) };
      if (name) t.proto = name.toLowerCase().replace(/v6$/, '6'); // as the tables name it: tcp, tcp6, udp, ...
      if (kind === 'tcp' || kind === 'udp') t.family = name!.endsWith('v6') ? 'inet6' : 'inet';
      return t;
    }
    m = /^pipe:\[(\d+)\]$/.exec(link);
    if (m) return { kind: 'pipe', desc: `pipe [${m[1]}]`, inode: Number(m[1]) };
    m = /^anon_inode:(.*)$/.exec(link);
    if (m) {
      const kind = ANON[m[1]] ?? 'anon';
      return { kind, desc: kind === 'anon' ? link : kind };
    }
    if (/^pidfd:/.test(link)) return { kind: 'pidfd', desc: 'pidfd' };
    if (/^[a-z_]+:\[\d+\]$/.test(link)) return { kind: 'namespace', desc: link };
    if (/^\/dev\/(pts\/\d+|tty\w*|console|ptmx|pts\/ptmx)$/.test(link)) return { kind: 'tty', desc: link, path: link };
    if (link.startsWith('/dev/')) return { kind: 'device', desc: link, path: link };
    try {
      if (statSync(at).isFIFO()) return { kind: 'pipe', desc: `fifo ${link}`, path: link };
    } catch { /* closed meanwhile: still say what it was */ }
    return { kind: 'file', desc: link, path: link };
  }
}

/** What fd `fd` of process `pid` is (one-off: a fresh resolver). */
export function describeFd(pid: number, fd: number): FdTarget {
  return new FdResolver().describe(pid, fd);
}

/** A registration with what its target is and who holds it. Extra fields of the row are kept. */
export type DescribedRegistration<R extends Registration = Registration> = R & {
  /** command of `pid` */
  comm: string;
  target: FdTarget;
  /** command of `epollPid` (undefined when the epoll instance is at no fd) */
  epollComm?: string;
  eventNames: string[];
};

export function describeRegistrations<R extends Registration>(rows: readonly R[], resolver = new FdResolver()): DescribedRegistration<R>[] {
  return rows.map((r) => ({
    ...r,
    comm: resolver.comm(r.pid),
    target: r.fd >= 0 ? resolver.describe(r.pid, r.fd) : { kind: 'unknown', desc: '(open in no process visible here)' },
    epollComm: r.epollPid > 0 ? resolver.comm(r.epollPid) : undefined,
    eventNames: eventNames(r.events),
  }));
}
