/**
 * Waiting on many fds without a thread per fd: one native thread
 * (native/lib/poller.c) sleeps in epoll_wait over every fd being waited on and
 * reports each readiness through a pipe that the event loop reads. A seccomp
 * listener (which libuv cannot watch) and a socket still connecting are waited
 * on this way; none of them holds a libuv thread-pool thread.
 */
import { Socket } from 'node:net';
import { EpolltrackError } from './errors.js';
import { pollerLib } from './ffi.js';

/** poll/epoll event bits (the same values in both) */
export const POLLIN = 0x1, POLLOUT = 0x4, POLLERR = 0x8, POLLHUP = 0x10;

const REPORT = 16; // struct ept_ready { u64 token; u32 events; u32 pad; }

interface Pending { fd: number; resolve: (events: number) => void }

let reader: Socket | undefined;
let rest = Buffer.alloc(0);
let nextToken = 1n;
const pending = new Map<bigint, Pending>();
const byFd = new Map<number, bigint>();

const lib = pollerLib;

function onReports(chunk: Buffer): void {
  const buf = rest.length ? Buffer.concat([rest, chunk]) : chunk;
  let off = 0;
  for (; off + REPORT <= buf.length; off += REPORT) {
    const token = buf.readBigUInt64LE(off);
    const events = buf.readUInt32LE(off + 8);
    const p = pending.get(token);
    if (p) finish(token, p, events); // a report for a wait that already ended is dropped
  }
  rest = Buffer.from(buf.subarray(off));
}

function finish(token: bigint, p: Pending, events: number): void {
  // Out of the epoll set at once: a disabled entry would linger as long as the
  // file lives (a replacement socket lives on in the caller) and show up in lookups.
  lib().disarm(p.fd);
  pending.delete(token);
  if (byFd.get(p.fd) === token) byFd.delete(p.fd);
  if (!pending.size) reader?.unref();
  p.resolve(events);
}

function ensureReader(): Socket {
  if (!reader) {
    const fd = lib().start();
    if (fd < 0) throw new EpolltrackError(`cannot start the fd poller thread (errno ${-fd})`);
    reader = new Socket({ fd, readable: true, writable: false });
    reader.on('data', onReports);
    reader.on('error', () => {}); // the pipe never fails while we live; nothing to do if it does
    reader.unref();
  }
  return reader;
}

/** The fd's events right now, without waiting (negative errno on a bad fd). */
export function readyNow(fd: number, events: number): number {
  return lib().ready(fd, events);
}

/**
 * Resolve the fd's revents (POLLIN, POLLOUT, POLLERR, POLLHUP...) once it is
 * ready for one of `events`; 0 when `timeoutMs` passes or `signal` aborts
 * first. One wait per fd at a time. The fd must stay open until this resolves.
 */
export function waitFd(fd: number, events: number, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<number> {
  const r = ensureReader();
  if (byFd.has(fd)) return Promise.reject(new EpolltrackError(`fd ${fd} is already being waited on`));
  if (opts.signal?.aborted) return Promise.resolve(0);
  const token = nextToken++;
  return new Promise<number>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => end(0);
    const end = (events: number) => {
      const p = pending.get(token);
      if (!p) return;
      finish(token, p, events);
    };
    pending.set(token, {
      fd,
      resolve: (events) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve(events);
      },
    });
    byFd.set(fd, token);
    const e = lib().arm(fd, events, token);
    if (e < 0) {
      pending.delete(token);
      byFd.delete(fd);
      return reject(new EpolltrackError(`cannot wait on fd ${fd} (epoll_ctl: errno ${-e})`));
    }
    r.ref();
    if (opts.timeoutMs !== undefined) timer = setTimeout(() => end(0), Math.max(0, opts.timeoutMs));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Waits in progress (for tests and metrics). */
export function pendingWaits(): number {
  return pending.size;
}
