/**
 * seccomp user notification, sockets and process memory (libc through
 * src/kernel/ffi.ts): the mechanics the supervisor is built from. Waits go
 * through the native poller (kernel/poller.ts), never on the event loop nor
 * libuv's thread pool.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { constants } from 'node:os';
import { errnoName } from '../kernel/errors.js';
import { errno, libc } from '../kernel/ffi.js';
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

/** Receive one notification (the listener must be readable, or this blocks). */
export function recvNotification(listenerFd: number): Notification | { errno: number } {
  const b = Buffer.alloc(80);
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
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(id);
  return c().ioctl(listenerFd, NOTIF_ID_VALID, b) === 0;
}

/** Answer a notification: the syscall returns `val`, or fails with `error` (positive errno), or continues in the kernel. */
export function respond(listenerFd: number, id: bigint, r: { val?: number; error?: number; continue?: boolean }): number {
  const b = Buffer.alloc(24);
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
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/mem`, 'r');
  } catch (err) {
    // Out of fds is the supervisor's trouble, not a bad pointer of the caller's.
    if (errnoOf(err) === EMFILE || errnoOf(err) === ENFILE) throw err;
    return undefined;
  }
  try {
    const b = Buffer.alloc(len);
    const n = readSync(fd, b, 0, len, Number(addr));
    return n === len ? b : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Thread id -> process id (Tgid), or undefined if the thread is gone. */
export function tgidOf(tid: number): number | undefined {
  try {
    const m = /^Tgid:\s*(\d+)/m.exec(readFileSync(`/proc/${tid}/status`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch (err) {
    if (errnoOf(err) === EMFILE || errnoOf(err) === ENFILE) throw err; // ours, not a vanished thread
    return undefined;
  }
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

export const SOCK_STREAM = 1, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1, IPPROTO_TCP = 6;
const SO_REUSEADDR = 2, SO_TYPE = 3, SO_ERROR = 4, SO_SNDBUF = 7, SO_RCVBUF = 8, SO_KEEPALIVE = 9, SO_REUSEPORT = 15;
const SO_PROTOCOL = 38, SO_DOMAIN = 39;
const TCP_NODELAY = 1;
const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000;
export const { EINPROGRESS, EIO, EINVAL, EFAULT, EBADF, ENOTSOCK, ETIMEDOUT, EINTR, ENOENT, EMFILE, ENFILE } = constants.errno;

function getInt(fd: number, level: number, name: number): number | undefined {
  const v = Buffer.alloc(4);
  const len = [4];
  return c().getsockopt(fd, level, name, v, len) === 0 ? v.readInt32LE(0) : undefined;
}

function setInt(fd: number, level: number, name: number, value: number): boolean {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  return c().setsockopt(fd, level, name, v, 4) === 0;
}

export interface SocketInfo {
  domain: number;
  type: number;
  protocol: number;
  nonblock: boolean;
  connected: boolean;
  /** socket options a caller may set before connect, copied to a replacement */
  options: { level: number; name: number; value: number; label: string }[];
  localPort: number;
}

const COPIED: [number, number, string][] = [
  [SOL_SOCKET, SO_REUSEADDR, 'SO_REUSEADDR'], [SOL_SOCKET, SO_REUSEPORT, 'SO_REUSEPORT'],
  [SOL_SOCKET, SO_KEEPALIVE, 'SO_KEEPALIVE'], [SOL_SOCKET, SO_RCVBUF, 'SO_RCVBUF'],
  [SOL_SOCKET, SO_SNDBUF, 'SO_SNDBUF'], [IPPROTO_TCP, TCP_NODELAY, 'TCP_NODELAY'],
];

/** What a socket is and how its owner set it up; undefined if fd is not a socket. */
export function socketInfo(fd: number): SocketInfo | undefined {
  const type = getInt(fd, SOL_SOCKET, SO_TYPE);
  if (type === undefined) return undefined;
  const domain = getInt(fd, SOL_SOCKET, SO_DOMAIN) ?? 0;
  const protocol = getInt(fd, SOL_SOCKET, SO_PROTOCOL) ?? 0;
  const flags = c().fcntl(fd, F_GETFL, 0);
  const peer = Buffer.alloc(128);
  const connected = c().getpeername(fd, peer, [128]) === 0;
  const local = Buffer.alloc(128);
  const llen = [128];
  let localPort = 0;
  if (c().getsockname(fd, local, llen) === 0 && (domain === AF_INET || domain === AF_INET6)) localPort = local.readUInt16BE(2);
  const options: SocketInfo['options'] = [];
  for (const [level, name, label] of COPIED) {
    if (level === IPPROTO_TCP && protocol !== IPPROTO_TCP && protocol !== 0) continue;
    const value = getInt(fd, level, name);
    if (value !== undefined) options.push({ level, name, value, label });
  }
  return { domain, type, protocol, nonblock: (flags & O_NONBLOCK) !== 0, connected, options, localPort };
}

/** Apply socket options read from another socket; SO_RCVBUF/SNDBUF are halved (the kernel doubles them on set). */
export function applyOptions(fd: number, opts: SocketInfo['options']): void {
  for (const o of opts) {
    const v = o.name === SO_RCVBUF || o.name === SO_SNDBUF ? Math.floor(o.value / 2) : o.value;
    setInt(fd, o.level, o.name, v);
  }
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

/** A new non-blocking socket connecting to `to`: returns fd and 0 / EINPROGRESS / errno. */
export function startConnect(to: SockAddr, like?: SocketInfo): { fd: number; err: number } {
  const fd = c().socket(to.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return { fd: -1, err: errno() };
  if (like) applyOptions(fd, like.options);
  const bindPort = like?.localPort ?? 0;
  if (bindPort) {
    const any = encodeSockaddr({ family: to.family, ip: to.family === AF_INET ? '0.0.0.0' : '::', port: bindPort });
    c().bind(fd, any, any.length); // best effort: the caller's port may be taken in this namespace
  }
  const a = encodeSockaddr(to);
  const r = c().connect(fd, a, a.length);
  return { fd, err: r === 0 ? 0 : errno() };
}

