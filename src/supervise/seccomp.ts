/**
 * seccomp user notification, sockets and process memory (libc through
 * src/kernel/ffi.ts): the mechanics the supervisor is built from. Waits go
 * through the native poller (kernel/poller.ts), never on the event loop nor
 * libuv's thread pool.
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { errnoName } from '../kernel/errors.js';
import { closeFd, errno, fixupLib, libc, threadOf } from '../kernel/ffi.js';
import { EPT_OPT_SKIPPED, EPT_OPTSPEC, EPT_OPTVAL, EPT_SOCKPROBE } from './fixup.js';
import { POLLERR, POLLHUP, POLLIN, POLLOUT, waitFd } from '../kernel/poller.js';
import { AF_INET, AF_INET6, encodeSockaddr, type SockAddr } from './endpoint.js';

export {
  AF_INET, AF_INET6, encodeSockaddr, endpointProblem, formatSockaddr, parseEndpoint, parseSockaddr, sameAddr, type SockAddr,
} from './endpoint.js';

// ---- ioctls -------------------------------------------------------------------
// _IOWR('!', 0, struct seccomp_notif) etc. (include/uapi/linux/seccomp.h)
const NOTIF_RECV = 0xc0502100;
const NOTIF_SEND = 0xc0182101;
const NOTIF_ID_VALID = 0x40082102;
const NOTIF_ADDFD = 0x40182103;
const ADDFD_FLAG_SETFD = 1;
export const USER_NOTIF_FLAG_CONTINUE = 1;

export const SYS_CONNECT = 42;

/** struct seccomp_notif (80 bytes): id, pid, flags, seccomp_data { nr, arch, ip, args[6] } */
export interface Notification {
  id: bigint;
  /** thread id of the caller, in the supervisor's pid namespace */
  pid: number;
  nr: number;
  arch: number;
  args: bigint[];
}

/** libc, bound once in src/kernel/ffi.ts (the name `c` kept for existing callers). */
export const c = libc;

/**
 * Wait until fd is ready for `events` or the timeout passes; resolves revents (0 on timeout, -1 on
 * error). No thread waits per fd: one native poller thread watches every waited-on fd (kernel/poller.ts).
 */
export function pollAsync(fd: number, events: number, timeoutMs: number): Promise<number> {
  return waitFd(fd, events, { timeoutMs: Math.max(0, timeoutMs) }).catch(() => -1);
}
export { POLLERR, POLLHUP, POLLIN, POLLOUT };

// Scratch buffers for the ioctls: every call is synchronous, so one each serves every call.
const recvBuf = Buffer.alloc(80);
const idBuf = Buffer.alloc(8);
const sendBuf = Buffer.alloc(24);

/** Receive one notification (the listener must be readable, or this blocks). */
export function recvNotification(listenerFd: number): Notification | { errno: number } {
  const b = recvBuf.fill(0);
  if (c().ioctl(listenerFd, NOTIF_RECV, b) < 0) return { errno: errno() };
  const args: bigint[] = [];
  for (let i = 0; i < 6; i++) args.push(b.readBigUInt64LE(32 + i * 8));
  return { id: b.readBigUInt64LE(0), pid: b.readUInt32LE(8), nr: b.readInt32LE(16), arch: b.readUInt32LE(20), args };
}

/**
 * Why fd is not a seccomp listener, or undefined when it is: NOTIF_ID_VALID with
 * an id nothing has answers ENOENT on a listener and ENOTTY/EINVAL/EBADF on
 * any other file (a pipe, a regular file, a socket).
 */
export function listenerProblem(fd: number): string | undefined {
  const b = Buffer.alloc(8);
  if (c().ioctl(fd, NOTIF_ID_VALID, b) === 0) return undefined;
  const e = errno();
  if (e === ENOENT) return undefined;
  return e === EBADF ? 'not an open fd' : `NOTIF_ID_VALID: ${errnoName(e)}`;
}

/** The positive errno a failed system call left in an error (Node's SystemError, ReplaceError), if any. */
export function errnoOf(err: unknown): number | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code in constants.errno) return constants.errno[code as keyof typeof constants.errno];
  const n = (err as { errno?: unknown }).errno;
  return typeof n === 'number' && n !== 0 ? Math.abs(n) : undefined;
}

/** Is the notification still pending (the caller has not died or been interrupted)? */
export function notificationValid(listenerFd: number, id: bigint): boolean {
  idBuf.writeBigUInt64LE(id);
  return c().ioctl(listenerFd, NOTIF_ID_VALID, idBuf) === 0;
}

/** Answer a notification: the syscall returns `val`, or fails with `error` (positive errno), or continues in the kernel. */
export function respond(listenerFd: number, id: bigint, r: { val?: number; error?: number; continue?: boolean }): number {
  const b = sendBuf;
  b.writeBigUInt64LE(id, 0);
  b.writeBigInt64LE(BigInt(r.val ?? 0), 8);
  b.writeInt32LE(r.error ? -Math.abs(r.error) : 0, 16);
  b.writeUInt32LE(r.continue ? USER_NOTIF_FLAG_CONTINUE : 0, 20);
  return c().ioctl(listenerFd, NOTIF_SEND, b) < 0 ? errno() : 0;
}

/** Install `srcFd` into the caller at exactly `targetFd` (SECCOMP_ADDFD_FLAG_SETFD). Returns the fd or -errno. */
export function addFdAt(listenerFd: number, id: bigint, srcFd: number, targetFd: number, cloexec: boolean): number {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(id, 0);
  b.writeUInt32LE(ADDFD_FLAG_SETFD, 8);
  b.writeUInt32LE(srcFd, 12);
  b.writeUInt32LE(targetFd, 16);
  b.writeUInt32LE(cloexec ? 0o2000000 : 0, 20);
  const r = c().ioctl(listenerFd, NOTIF_ADDFD, b);
  return r < 0 ? -errno() : r;
}

// ---- caller memory --------------------------------------------------------------

/**
 * Read `len` bytes at `addr` of process `pid` (bounded by the caller). Returns
 * undefined when the address is not readable (the syscall would get EFAULT).
 */
export function readMemory(pid: number, addr: bigint, len: number): Buffer | undefined {
  if (len === 0) return Buffer.alloc(0);
  if (addr <= 0n || addr + BigInt(len) > 0x7fffffffffffn) return undefined;
  const b = Buffer.alloc(len);
  // process_vm_readv: the same ptrace access check as /proc/PID/mem, in one system call.
  return Number(fixupLib().ept_read_mem(pid, addr, b, len)) === len ? b : undefined;
}

/** Threads seen lately -> their process: a thread connects again and again. */
const tgids = new Map<number, number>();

/**
 * Thread id -> process id (Tgid), or undefined if the thread is gone. A
 * remembered answer is checked with tgkill(tgid, tid, 0), which fails unless
 * thread tid is in process tgid now (a reused thread id is read afresh).
 */
export function tgidOf(tid: number): number | undefined {
  const known = tgids.get(tid);
  if (known !== undefined && threadOf(known, tid)) return known;
  tgids.delete(tid);
  let tgid: number | undefined;
  try {
    const m = /^Tgid:\s*(\d+)/m.exec(readFileSync(`/proc/${tid}/status`, 'latin1'));
    tgid = m ? Number(m[1]) : undefined;
  } catch (err) {
    if (errnoOf(err) === EMFILE || errnoOf(err) === ENFILE) throw err; // ours, not a vanished thread
    return undefined;
  }
  if (tgid !== undefined) {
    if (tgids.size >= 4096) tgids.delete(tgids.keys().next().value as number);
    tgids.set(tid, tgid);
  }
  return tgid;
}

/** The close-on-exec flag of pid:fd (from /proc/PID/fdinfo "flags:", octal). */
export function fdCloexec(pid: number, fd: number): boolean {
  try {
    const m = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'));
    return m ? (parseInt(m[1], 8) & 0o2000000) !== 0 : false;
  } catch {
    return false;
  }
}

// ---- sockets -------------------------------------------------------------------

export const SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, IPPROTO_IP = 0, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_IPV6 = 41;
const SO_ERROR = 4, SO_SNDBUF = 7, SO_RCVBUF = 8, SO_SNDTIMEO = 21;
const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000;
export const { EINPROGRESS, EIO, EINVAL, EFAULT, EBADF, ENOTSOCK, ETIMEDOUT, EINTR, ENOENT, EMFILE, ENFILE } = constants.errno;

function getInt(fd: number, level: number, name: number): number | undefined {
  const v = Buffer.alloc(4);
  const len = [4];
  return c().getsockopt(fd, level, name, v, len) === 0 ? v.readInt32LE(0) : undefined;
}

/** A socket option a program may set before connect(), carried over to a replacement. */
export interface SockOpt {
  level: number;
  name: number;
  label: string;
  /** the value as read (an int, a struct timeval, a struct linger or a string) */
  raw: Buffer;
  /** a number for the int options, milliseconds for timeouts, the linger time (-1 off) for SO_LINGER */
  value: number;
}

type Kind = 'int' | 'timeval' | 'linger' | 'string';
/** [level, name, label, kind, families (0: any), types (0: any)] */
const OPTIONS: [number, number, string, Kind, number, number][] = [
  [SOL_SOCKET, 2, 'SO_REUSEADDR', 'int', 0, 0], [SOL_SOCKET, 15, 'SO_REUSEPORT', 'int', 0, 0],
  [SOL_SOCKET, 9, 'SO_KEEPALIVE', 'int', 0, 0], [SOL_SOCKET, SO_RCVBUF, 'SO_RCVBUF', 'int', 0, 0],
  [SOL_SOCKET, SO_SNDBUF, 'SO_SNDBUF', 'int', 0, 0], [SOL_SOCKET, 20, 'SO_RCVTIMEO', 'timeval', 0, 0],
  [SOL_SOCKET, SO_SNDTIMEO, 'SO_SNDTIMEO', 'timeval', 0, 0], [SOL_SOCKET, 13, 'SO_LINGER', 'linger', 0, 0],
  [SOL_SOCKET, 12, 'SO_PRIORITY', 'int', 0, 0], [SOL_SOCKET, 36, 'SO_MARK', 'int', 0, 0],
  [SOL_SOCKET, 10, 'SO_OOBINLINE', 'int', 0, 0], [SOL_SOCKET, 18, 'SO_RCVLOWAT', 'int', 0, 0],
  [SOL_SOCKET, 6, 'SO_BROADCAST', 'int', 0, 0], [SOL_SOCKET, 5, 'SO_DONTROUTE', 'int', 0, 0],
  [SOL_SOCKET, 46, 'SO_BUSY_POLL', 'int', 0, 0], [SOL_SOCKET, 47, 'SO_MAX_PACING_RATE', 'int', 0, 0],
  [SOL_SOCKET, 60, 'SO_ZEROCOPY', 'int', 0, 0],
  [IPPROTO_IP, 1, 'IP_TOS', 'int', AF_INET, 0], [IPPROTO_IP, 2, 'IP_TTL', 'int', AF_INET, 0],
  [IPPROTO_IP, 10, 'IP_MTU_DISCOVER', 'int', AF_INET, 0], [IPPROTO_IP, 11, 'IP_RECVERR', 'int', AF_INET, 0],
  [IPPROTO_IP, 15, 'IP_FREEBIND', 'int', AF_INET, 0], [IPPROTO_IP, 24, 'IP_BIND_ADDRESS_NO_PORT', 'int', AF_INET, 0],
  [IPPROTO_IPV6, 67, 'IPV6_TCLASS', 'int', AF_INET6, 0], [IPPROTO_IPV6, 16, 'IPV6_UNICAST_HOPS', 'int', AF_INET6, 0],
  [IPPROTO_IPV6, 23, 'IPV6_MTU_DISCOVER', 'int', AF_INET6, 0], [IPPROTO_IPV6, 25, 'IPV6_RECVERR', 'int', AF_INET6, 0],
  [IPPROTO_TCP, 1, 'TCP_NODELAY', 'int', 0, SOCK_STREAM], [IPPROTO_TCP, 2, 'TCP_MAXSEG', 'int', 0, SOCK_STREAM],
  [IPPROTO_TCP, 3, 'TCP_CORK', 'int', 0, SOCK_STREAM], [IPPROTO_TCP, 4, 'TCP_KEEPIDLE', 'int', 0, SOCK_STREAM],
  [IPPROTO_TCP, 5, 'TCP_KEEPINTVL', 'int', 0, SOCK_STREAM], [IPPROTO_TCP, 6, 'TCP_KEEPCNT', 'int', 0, SOCK_STREAM],
  [IPPROTO_TCP, 7, 'TCP_SYNCNT', 'int', 0, SOCK_STREAM], [IPPROTO_TCP, 8, 'TCP_LINGER2', 'int', 0, SOCK_STREAM],
  [IPPROTO_TCP, 10, 'TCP_WINDOW_CLAMP', 'int', 0, SOCK_STREAM], [IPPROTO_TCP, 12, 'TCP_QUICKACK', 'int', 0, SOCK_STREAM],
  [IPPROTO_TCP, 13, 'TCP_CONGESTION', 'string', 0, SOCK_STREAM], [IPPROTO_TCP, 18, 'TCP_USER_TIMEOUT', 'int', 0, SOCK_STREAM],
  [IPPROTO_TCP, 25, 'TCP_NOTSENT_LOWAT', 'int', 0, SOCK_STREAM], [IPPROTO_TCP, 30, 'TCP_FASTOPEN_CONNECT', 'int', 0, SOCK_STREAM],
  [IPPROTO_UDP, 1, 'UDP_CORK', 'int', 0, SOCK_DGRAM], [IPPROTO_UDP, 103, 'UDP_SEGMENT', 'int', 0, SOCK_DGRAM],
  [IPPROTO_UDP, 104, 'UDP_GRO', 'int', 0, SOCK_DGRAM],
];
const SIZE: Record<Kind, number> = { int: 4, timeval: 16, linger: 8, string: 16 };
const SNDTIMEO = OPTIONS.findIndex((o) => o[0] === SOL_SOCKET && o[1] === SO_SNDTIMEO);

function valueOf(kind: Kind, raw: Buffer): number {
  switch (kind) {
    case 'int': return raw.length >= 4 ? raw.readInt32LE(0) : 0;
    case 'timeval': return raw.length >= 16 ? Number(raw.readBigInt64LE(0)) * 1000 + Math.floor(Number(raw.readBigInt64LE(8)) / 1000) : 0;
    case 'linger': return raw.length >= 8 && raw.readInt32LE(0) ? raw.readInt32LE(4) : -1;
    case 'string': return raw.indexOf(0) < 0 ? raw.length : raw.indexOf(0);
  }
}

/**
 * One native call reads what a socket is and every option of OPTIONS
 * (ept_sock_probe, native/lib/sock.c): the table is encoded once, and the
 * values land in one buffer of struct ept_optval.
 */
const SPEC = (() => {
  const b = Buffer.alloc(EPT_OPTSPEC.size * OPTIONS.length);
  OPTIONS.forEach(([level, name, , kind, fam, typ], i) => {
    const o = i * EPT_OPTSPEC.size;
    b.writeInt32LE(level, o + EPT_OPTSPEC.level);
    b.writeInt32LE(name, o + EPT_OPTSPEC.name);
    b.writeInt32LE(SIZE[kind], o + EPT_OPTSPEC.max);
    b.writeInt32LE(fam, o + EPT_OPTSPEC.family);
    b.writeInt32LE(typ, o + EPT_OPTSPEC.type);
  });
  return b;
})();
const probeOut = Buffer.alloc(EPT_SOCKPROBE.size);
const probeVals = Buffer.alloc(EPT_OPTVAL.size * OPTIONS.length);

/** The bytes of option i in a values buffer, or undefined when it was not read. */
function rawAt(vals: Buffer, i: number): Buffer | undefined {
  const o = i * EPT_OPTVAL.size;
  const len = vals.readInt32LE(o + EPT_OPTVAL.len);
  return len < 0 ? undefined : vals.subarray(o + EPT_OPTVAL.val, o + EPT_OPTVAL.val + len);
}

/** Option i as a SockOpt (its own copy of the bytes), or undefined when it was not read. */
function optionAt(vals: Buffer, i: number): SockOpt | undefined {
  const at = rawAt(vals, i);
  if (!at) return undefined;
  const [level, name, label, kind] = OPTIONS[i];
  const raw = Buffer.from(kind === 'string' ? at.subarray(0, valueOf(kind, at)) : at);
  return { level, name, label, raw, value: valueOf(kind, at) };
}

/** Is option i the same in both values buffers (both unread, or the same bytes)? */
function sameAt(a: Buffer, b: Buffer, i: number): boolean {
  const o = i * EPT_OPTVAL.size;
  const la = a.readInt32LE(o + EPT_OPTVAL.len), lb = b.readInt32LE(o + EPT_OPTVAL.len);
  if (la < 0 || lb < 0) return la < 0 && lb < 0;
  return la === lb && a.compare(b, o + EPT_OPTVAL.val, o + EPT_OPTVAL.val + lb, o + EPT_OPTVAL.val, o + EPT_OPTVAL.val + la) === 0;
}

/** What a fresh socket of each (domain, type) has, so only what the program changed is carried over. */
const defaults = new Map<string, Buffer>();
function defaultsOf(domain: number, type: number): Buffer | undefined {
  const key = `${domain}/${type}`;
  let d = defaults.get(key);
  if (!d) {
    const fd = c().socket(domain, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return undefined;
    try {
      const vals = Buffer.alloc(probeVals.length);
      if (fixupLib().ept_sock_probe(fd, Buffer.alloc(EPT_SOCKPROBE.size), SPEC, OPTIONS.length, vals) !== 0) return undefined;
      defaults.set(key, d = vals);
    } finally {
      closeFd(fd);
    }
  }
  return d;
}

/** The option table as ept_swap reads and sets it, with a fresh socket's values of (domain, type). */
export function carriedOptions(domain: number, type: number): { spec: Buffer; defaults: Buffer; nopts: number } {
  return { spec: SPEC, defaults: defaultsOf(domain, type) ?? NO_DEFAULTS, nopts: OPTIONS.length };
}
/** Defaults when no fresh socket could be made: every option "not read", so each one read is set. */
const NO_DEFAULTS = (() => {
  const b = Buffer.alloc(EPT_OPTVAL.size * OPTIONS.length);
  for (let i = 0; i < OPTIONS.length; i++) b.writeInt32LE(EPT_OPT_SKIPPED, i * EPT_OPTVAL.size + EPT_OPTVAL.len);
  return b;
})();

/** The labels of the options whose bit is set (struct ept_connect.unset). */
export function optionLabels(mask: bigint): string[] {
  const out: string[] = [];
  for (let i = 0; mask && i < OPTIONS.length; i++) if ((mask >> BigInt(i)) & 1n) out.push(OPTIONS[i][2]);
  return out;
}

/** What a socket is, without its options (one native call, five system calls). */
export interface SocketKind { domain: number; type: number; nonblock: boolean; connected: boolean; localPort: number }

export function socketKind(fd: number): SocketKind | undefined {
  if (fixupLib().ept_sock_probe(fd, probeOut, SPEC, 0, probeVals) !== 0) return undefined;
  return {
    domain: probeOut.readInt32LE(EPT_SOCKPROBE.domain),
    type: probeOut.readInt32LE(EPT_SOCKPROBE.type),
    nonblock: (probeOut.readInt32LE(EPT_SOCKPROBE.flags) & O_NONBLOCK) !== 0,
    connected: probeOut.readInt32LE(EPT_SOCKPROBE.connected) !== 0,
    localPort: probeOut.readInt32LE(EPT_SOCKPROBE.local_port),
  };
}

export interface SocketInfo {
  domain: number;
  type: number;
  protocol: number;
  nonblock: boolean;
  connected: boolean;
  /** every option a caller may set before connect, as it is on this socket */
  readonly options: SockOpt[];
  /** the options that differ from a fresh socket's: what a replacement gets */
  changed: SockOpt[];
  localPort: number;
  /** SO_SNDTIMEO in milliseconds (0: none): how long a blocking connect may wait */
  sndTimeoMs: number;
}

/** What a socket is and how its owner set it up; undefined if fd is not a socket. */
export function socketInfo(fd: number): SocketInfo | undefined {
  if (fixupLib().ept_sock_probe(fd, probeOut, SPEC, OPTIONS.length, probeVals) !== 0) return undefined;
  const domain = probeOut.readInt32LE(EPT_SOCKPROBE.domain);
  const type = probeOut.readInt32LE(EPT_SOCKPROBE.type);
  const base = defaultsOf(domain, type);
  const changed: SockOpt[] = [];
  for (let i = 0; i < OPTIONS.length; i++) {
    if (base && sameAt(probeVals, base, i)) continue;
    const o = optionAt(probeVals, i);
    if (o) changed.push(o);
  }
  const snd = rawAt(probeVals, SNDTIMEO);
  const vals = Buffer.from(probeVals); // for `options`, decoded only when asked for
  let options: SockOpt[] | undefined;
  return {
    domain, type, changed,
    protocol: probeOut.readInt32LE(EPT_SOCKPROBE.protocol),
    nonblock: (probeOut.readInt32LE(EPT_SOCKPROBE.flags) & O_NONBLOCK) !== 0,
    connected: probeOut.readInt32LE(EPT_SOCKPROBE.connected) !== 0,
    localPort: probeOut.readInt32LE(EPT_SOCKPROBE.local_port),
    sndTimeoMs: snd ? valueOf('timeval', snd) : 0,
    get options() {
      options ??= OPTIONS.map((_o, i) => optionAt(vals, i)).filter((o): o is SockOpt => o !== undefined);
      return options;
    },
  };
}

/**
 * After a non-blocking connect completed: connect() once more, as a blocking
 * connect would have ended, so the socket is SS_CONNECTED and a later
 * connect() on it gets EISCONN like any connected socket.
 */
export function finishConnect(fd: number, to: SockAddr): void {
  const a = encodeSockaddr(to);
  c().connect(fd, a, a.length);
}

export function socketError(fd: number): number {
  return getInt(fd, SOL_SOCKET, SO_ERROR) ?? EINVAL;
}

export function setNonblock(fd: number, on: boolean): void {
  const flags = c().fcntl(fd, F_GETFL, 0);
  c().fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK);
}
