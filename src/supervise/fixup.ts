/**
 * epoll_ctl with a chosen fd number, from an fd table of its own, and the
 * whole swap in one native call: ept_swap() (native/lib/fixup.c) runs the
 * ADDs of the new file, SECCOMP_IOCTL_NOTIF_ADDFD at every number, then the
 * DELs of the old file, right here when every number is free in our table,
 * else in one hand-off to a worker thread with an fd table of its own.
 */
import { readFileSync } from 'node:fs';
import { EpolltrackError } from '../kernel/errors.js';
import { closeFd, fixupLib, takeFd } from '../kernel/ffi.js';

export const EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;

export interface CtlRequest {
  op: number;
  /** the epoll instance: fd `fd` of process `pid` */
  epoll: { pid: number; fd: number };
  /** the target file: an fd of this process */
  file: number;
  /** the fd number the registration is keyed by */
  tfd: number;
  events: number;
  data: bigint;
}

/**
 * struct ept_ctl (native/lib/fixup.h): size and byte offsets. fixup.h checks
 * the same numbers with _Static_assert; test/supervise/fixup.unit.test.ts
 * checks these against fixup.h.
 */
export const EPT_CTL = { size: 32, op: 0, epfd: 4, file: 8, tfd: 12, events: 16, result: 20, data: 24 } as const;
const REQ_SIZE = EPT_CTL.size;
/** struct ept_addfd (native/lib/fixup.h) */
export const EPT_ADDFD = { size: 16, fd: 0, flags: 4, result: 8 } as const;

/** struct ept_sockprobe, ept_optspec, ept_optval (native/lib/fixup.h): what ept_sock_probe reads and writes */
export const EPT_SOCKPROBE = { size: 24, type: 0, domain: 4, protocol: 8, flags: 12, connected: 16, local_port: 20 } as const;
export const EPT_OPTSPEC = { size: 20, level: 0, name: 4, max: 8, family: 12, type: 16 } as const;
export const EPT_OPTVAL = { size: 20, len: 0, val: 4 } as const;
/** ept_optval.len of an option that does not apply to the socket (EPT_OPT_SKIPPED) */
export const EPT_OPT_SKIPPED = -100000;
/** struct ept_connect: a replacement socket ept_swap makes and connects itself */
export const EPT_CONNECT = { size: 176, family: 0, type: 4, like: 8, bind_port: 12, addrlen: 16, fd: 20, connect_err: 24, like_domain: 28, unset: 32, ino: 40, addr: 48 } as const;

/** Epoll fds of other processes, taken into this one for the length of a call. */
class Epolls {
  private readonly taken: number[] = [];
  private readonly byKey = new Map<string, number>();
  /** this process's fd for the epoll, or -errno */
  fd(pid: number, fd: number): number {
    if (pid === process.pid) return fd;
    const key = `${pid}:${fd}`;
    let ep = this.byKey.get(key);
    if (ep === undefined) {
      ep = takeFd(pid, fd);
      if (ep >= 0) this.taken.push(ep);
      this.byKey.set(key, ep);
    }
    return ep;
  }
  close(): void {
    for (const fd of this.taken) closeFd(fd);
  }
}

function encode(reqs: CtlRequest[], eps: Epolls, results: number[]): Buffer {
  const buf = Buffer.alloc(REQ_SIZE * Math.max(1, reqs.length));
  reqs.forEach((r, i) => {
    const ep = eps.fd(r.epoll.pid, r.epoll.fd);
    const off = i * REQ_SIZE;
    buf.writeInt32LE(r.op, off + EPT_CTL.op);
    buf.writeInt32LE(ep, off + EPT_CTL.epfd);
    buf.writeInt32LE(r.file, off + EPT_CTL.file);
    buf.writeInt32LE(r.tfd, off + EPT_CTL.tfd);
    buf.writeUInt32LE(r.events >>> 0, off + EPT_CTL.events);
    buf.writeUInt32LE(0, off + EPT_CTL.result);
    buf.writeBigUInt64LE(BigInt.asUintN(64, r.data), off + EPT_CTL.data);
    if (ep < 0) results[i] = -ep; // the epoll fd could not be taken (ESRCH/EBADF/EPERM)
  });
  return buf;
}

/** One number of the caller that gets the new file. */
export interface InstallAt { fd: number; cloexec: boolean }

export interface SwapOutcome {
  /**
   * 0: done; 1: an ADD failed (see adds), nothing changed; 2: the first ADDFD
   * failed (see installs), nothing changed; 3: making or connecting the new socket failed (connectErr), nothing done
   */
  stage: 0 | 1 | 2 | 3;
  /** errno per ADD request */
  adds: number[];
  /** errno per number installed at */
  installs: number[];
  /** errno per DEL request */
  dels: number[];
  /** with `make`: the connect's errno (0, or EINPROGRESS for a connect under way; another when stage 3) */
  connectErr?: number;
  /** with `make`: the socket made (its fd is < 0 when stage 3) */
  made?: Made;
}

/** A replacement socket for ept_swap to make, set up like `like` and connect (struct ept_connect). */
export interface MakeSocket {
  family: number;
  type: number;
  /** an fd here of the old socket: its options that differ from `defaults` are set on the new one */
  like: number;
  /** the old socket's address family (its type is `type`) */
  likeDomain: number;
  bindPort: number;
  /** struct sockaddr to connect to */
  addr: Buffer;
  /** struct ept_optspec[nopts], and a fresh socket's struct ept_optval[nopts] */
  spec: Buffer;
  defaults: Buffer;
  nopts: number;
}

/** What ept_swap made: the socket (an fd here, for the caller to close; -1 when it failed), its inode (0 when socket() failed), the options it could not set. */
export interface Made { fd: number; ino: bigint; unset: bigint }

/** A swap as ept_swap takes it. */
export interface SwapRequest {
  listenerFd: number;
  id: bigint;
  /** the new file, an fd here; -1 with `make` (the ADDs' file -1 too) */
  newFd: number;
  at: InstallAt[];
  adds: CtlRequest[];
  dels: CtlRequest[];
  /** make the new socket and connect it (non-blocking) first, in the same native call */
  make?: MakeSocket;
}

/** struct ept_connect for `m`. */
function encodeConnect(m: MakeSocket): Buffer {
  const conn = Buffer.alloc(EPT_CONNECT.size);
  conn.writeInt32LE(m.family, EPT_CONNECT.family);
  conn.writeInt32LE(m.type, EPT_CONNECT.type);
  conn.writeInt32LE(m.like, EPT_CONNECT.like);
  conn.writeInt32LE(m.likeDomain, EPT_CONNECT.like_domain);
  conn.writeInt32LE(m.bindPort, EPT_CONNECT.bind_port);
  conn.writeInt32LE(m.addr.length, EPT_CONNECT.addrlen);
  conn.writeInt32LE(-1, EPT_CONNECT.fd);
  m.addr.copy(conn, EPT_CONNECT.addr);
  return conn;
}

function decodeConnect(conn: Buffer): { connectErr: number; made: Made } {
  return {
    connectErr: conn.readInt32LE(EPT_CONNECT.connect_err),
    made: { fd: conn.readInt32LE(EPT_CONNECT.fd), ino: conn.readBigUInt64LE(EPT_CONNECT.ino), unset: conn.readBigUInt64LE(EPT_CONNECT.unset) },
  };
}

/**
 * The replacement alone, made, set up and connected on the calling thread
 * (ept_sock_make): for a blocking caller, whose connect is waited for before
 * the swap. `made.fd` is -1 when socket() or connect() failed (`made.ino` 0:
 * socket() did), the errno in `connectErr`.
 */
export function makeSocket(m: MakeSocket): { connectErr: number; made: Made } {
  const conn = encodeConnect(m);
  fixupLib().ept_sock_make(conn, m.spec, m.defaults, m.nopts);
  return decodeConnect(conn);
}

/** The buffers of one ept_swap call, encoded; `done` is set when an epoll could not be taken. */
interface Encoded { eps: Epolls; buf: Buffer; fds: Buffer; results: number[]; conn: Buffer | null; done?: SwapOutcome }

function encodeSwap(r: SwapRequest): Encoded {
  const eps = new Epolls();
  const all = [...r.adds, ...r.dels];
  const results = new Array<number>(all.length).fill(0);
  const buf = encode(all, eps, results);
  const fds = Buffer.alloc(EPT_ADDFD.size * Math.max(1, r.at.length));
  r.at.forEach((a, i) => {
    fds.writeInt32LE(a.fd, i * EPT_ADDFD.size + EPT_ADDFD.fd);
    fds.writeUInt32LE(a.cloexec ? 0o2000000 : 0, i * EPT_ADDFD.size + EPT_ADDFD.flags);
  });
  const conn = r.make ? encodeConnect(r.make) : null;
  const e: Encoded = { eps, buf, fds, results, conn };
  if (results.some((x, i) => x !== 0 && i < r.adds.length)) {
    e.done = { stage: 1, adds: results.slice(0, r.adds.length), installs: r.at.map(() => 0), dels: r.dels.map(() => 0) };
  }
  return e;
}

function decodeSwap(r: SwapRequest, e: Encoded, rc: number): SwapOutcome {
  if (rc < 0) throw new EpolltrackError(`the fix-up worker could not start: errno ${-rc}`);
  const n = r.adds.length + r.dels.length;
  for (let i = 0; i < n; i++) if (!e.results[i]) e.results[i] = e.buf.readUInt32LE(i * REQ_SIZE + EPT_CTL.result);
  const out: SwapOutcome = {
    stage: rc as SwapOutcome['stage'],
    adds: e.results.slice(0, r.adds.length),
    installs: r.at.map((_a, i) => (rc === 3 ? 0 : e.fds.readInt32LE(i * EPT_ADDFD.size + EPT_ADDFD.result))),
    dels: e.results.slice(r.adds.length),
  };
  if (e.conn) Object.assign(out, decodeConnect(e.conn));
  return out;
}

type SwapArgs = [number, bigint, number, Buffer, number, Buffer, number, number, Buffer | null, Buffer | null, Buffer | null, number];

function args(r: SwapRequest, e: Encoded): SwapArgs {
  const m = r.make;
  return [r.listenerFd, r.id, r.newFd, e.fds, r.at.length, e.buf, r.adds.length, r.adds.length + r.dels.length, e.conn, m?.spec ?? null, m?.defaults ?? null, m?.nopts ?? 0];
}

/**
 * The swap in one native call (ept_swap), on a thread of libuv's pool: ADD
 * (new file, N) per `adds`, ADDFD+SETFD of `newFd` at each of `at` on
 * notification `id`, then DEL (old file, N) per `dels`; a failing ADD or first
 * ADDFD undoes the ADDs before it. SECCOMP_IOCTL_NOTIF_ADDFD returns only once
 * the caller's thread has run and installed the file: the event loop serves
 * other notifications meanwhile.
 */
export function swapFileAsync(r: SwapRequest): Promise<SwapOutcome> {
  const e = encodeSwap(r);
  if (e.done) {
    e.eps.close();
    return Promise.resolve(e.done);
  }
  return new Promise<SwapOutcome>((resolve, reject) => {
    fixupLib().ept_swap.async(...args(r, e), (err: unknown, rc: number) => {
      e.eps.close();
      if (err) return reject(err instanceof Error ? err : new EpolltrackError(String(err)));
      try {
        resolve(decodeSwap(r, e, rc));
      } catch (x) {
        reject(x);
      }
    });
  });
}

/** Run the requests in order; returns an errno per request (0 for success). */
export function ctlBatch(reqs: CtlRequest[]): number[] {
  if (!reqs.length) return [];
  const eps = new Epolls();
  try {
    const results = new Array<number>(reqs.length).fill(0);
    const buf = encode(reqs, eps, results);
    const rc = fixupLib().ept_ctl_batch(buf, reqs.length);
    for (let i = 0; i < reqs.length; i++) {
      if (!results[i]) results[i] = rc < 0 ? -rc : buf.readUInt32LE(i * REQ_SIZE + EPT_CTL.result);
    }
    return results;
  } finally {
    eps.close();
  }
}

/** Put `fd` (of this process) into slot `slot` of the fixed-file table of `ring` (of this process). 0 or errno. */
export function uringUpdate(ring: number, slot: number, fd: number): number {
  return fixupLib().ept_uring_update(ring, slot, fd);
}

/**
 * Every number of process `pid` holding the file at its fd `fd` (ascending):
 * kcmp(KCMP_FILE) over the fd table in one native call (FDSize bounds it).
 * A stand-in until the tracker's in-kernel copiesOf; undefined if pid is gone.
 */
export function fdTableCopies(pid: number, fd: number): number[] | undefined {
  let size: number;
  try {
    size = Number(/^FDSize:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? 0);
  } catch {
    return undefined;
  }
  const out = new Int32Array(64);
  const n = fixupLib().ept_copies(pid, fd, Math.max(size, fd + 1), out, out.length);
  return n < 0 ? undefined : [...out.subarray(0, n)];
}
