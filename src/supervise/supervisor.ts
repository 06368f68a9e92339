/**
 * The seccomp supervisor: serves connect() notifications of a supervised
 * process tree. A connect to a redirected address is served by a socket made
 * here, in the supervisor's network namespace, connected to the target, and
 * swapped into the caller at the same fd number with its epoll registrations
 * moved (replaceFd). Every other connect continues in the kernel untouched.
 */
import { EventEmitter } from 'node:events';
import { existsSync, fstatSync } from 'node:fs';
import { BadInputError, EpolltrackError, errnoName } from '../kernel/errors.js';
import { closeFd, KCMP_FILE, KCMP_FILES, kcmp, takeFd } from '../kernel/ffi.js';
import { readyNow, waitFd } from '../kernel/poller.js';
import { makeSocket, type MakeSocket } from './fixup.js';
import { connectAndReplace, replaceFd, ReplaceError, type ReplaceResult, type SharedCopy, type UringSlot } from './replace.js';
import {
  EBADF, EFAULT, EINPROGRESS, EINTR, EIO, EINVAL, EMFILE, ENFILE, ENOENT, errnoOf, listenerProblem, ENOTSOCK, ETIMEDOUT, finishConnect, formatSockaddr, notificationValid, parseSockaddr,
  SOCK_DGRAM, SOCK_STREAM,
  POLLERR, POLLHUP, POLLIN, POLLOUT, pollAsync, readMemory, recvNotification, respond, sameAddr, setNonblock,
  carriedOptions, encodeSockaddr, optionLabels, socketError, socketInfo, socketKind, SYS_CONNECT, tgidOf, type Notification, type SockAddr, type SocketKind,
} from './seccomp.js';
import type { Tracker } from '../tracker/tracker.js';

/** A connect to `from` is served by a socket connected to `to`; `proto` says which sockets (default tcp: stream sockets). */
export interface Redirect { from: SockAddr; to: SockAddr; proto?: 'tcp' | 'udp' }

export interface SupervisorOptions {
  redirects: Redirect[];
  /** move epoll registrations on swap (default true) */
  fixup?: boolean;
  /** registrations come from the tracker; without one, the fdinfo way */
  tracker?: Tracker;
  /** how long a blocking caller's connect may take (default 30 s) */
  connectTimeoutMs?: number;
  /** errors while serving, reported after the caller was answered (else 'error' events, if listened to) */
  onError?: (err: Error) => void;
  /** install the new socket at every number of the caller holding the old one (default true) */
  copies?: boolean;
  /** @internal fault injection: runs after the swap, just before the caller is answered */
  beforeAnswer?: (pid: number) => void | Promise<void>;
}

/** One intercepted connect that was redirected. */
export interface SwapRecord {
  time: string;
  pid: number;
  /** the calling thread, when its fd table is its own (unshare(CLONE_FILES)): fd is a number of that table */
  tid?: number;
  fd: number;
  from: string;
  to: string;
  result: 'swapped' | 'failed';
  errno?: number;
  error?: string;
  moved: number;
  source: string;
  micros: number;
  /** 'udp' for a datagram redirect */
  proto?: 'tcp' | 'udp';
  /** every number of the caller that got the new socket, when more than the one connected */
  copies?: number[];
  /** copies of the old socket held by other processes: not replaced (seccomp cannot), their registrations kept */
  shared?: SharedCopy[];
  /** registrations left on the old socket for other processes */
  kept?: number;
  /** io_uring fixed-file slots of the caller that held the old socket (updated through the ring, or not) */
  uring?: UringSlot[];
  /** socket options that could not be carried over */
  unset?: string[];
}

/** The inode of the file at pid:fd now (-1n when there is none). */
function inoAt(pid: number, fd: number): bigint {
  const copy = takeFd(pid, fd);
  if (copy < 0) return -1n;
  try {
    return fstatSync(copy, { bigint: true }).ino;
  } finally {
    closeFd(copy);
  }
}

/** The supervisor's own fd table (or the system's) is full: the caller gets that errno, and the cause is logged. */
function outOfFds(e: number): string {
  return `the supervisor is out of file descriptors (${errnoName(e)}): raise its RLIMIT_NOFILE (ulimit -n)`;
}

const SOCKADDR_MAX = 128; // sizeof(struct sockaddr_storage): the kernel's bound too

/**
 * Redirected connects served at once, waiting for their fd table included
 * (each holds at most the old file, its replacement and the epolls it moves):
 * enough for the event loop to prepare the next swaps while
 * SECCOMP_IOCTL_NOTIF_ADDFD waits for a caller to run. The serve loop takes
 * no new notification past that, so the supervisor's fds stay few and so does
 * the kernel's list of received notifications, which every seccomp ioctl walks.
 */
const MAX_ACTIVE = 8;

export class Supervisor extends EventEmitter {
  private readonly redirects: Redirect[];
  private readonly fixup: boolean;
  private readonly tracker?: Tracker;
  private readonly timeout: number;
  private readonly beforeAnswer?: (pid: number) => void | Promise<void>;
  private readonly copies: boolean;
  private readonly busy = new Map<string, Promise<void>>();
  /** per fd table: the tail of its queue of swaps (lockTable) */
  private readonly tables = new Map<number, Promise<void>>();
  /** redirected connects being served (enter/leave), and the serve loop waiting for that to drop below MAX_ACTIVE */
  private active = 0;
  private readonly roomWaiters: (() => void)[] = [];
  private readonly encoded = new WeakMap<SockAddr, Buffer>();
  /** sockets we installed: `${tgid}:${fd}` -> inode, so a second connect on them goes to the kernel */
  private readonly installed = new Map<string, bigint>();
  /**
   * Swaps whose answer never reached the caller (a signal interrupted its wait:
   * kernels without SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV): a restarted connect on
   * that socket gets the answer the first one should have had.
   */
  private readonly unanswered = new Map<string, { ino: bigint; result: { val?: number; error?: number } }>();
  readonly swaps: SwapRecord[] = [];
  /** installed/unanswered size after the last sweep: the next sweep runs when they have doubled */
  private swept = 0;
  private stopped = false;
  private readonly stopping = new AbortController();
  private readonly onError?: (err: Error) => void;

  constructor(opts: SupervisorOptions) {
    super();
    this.redirects = opts.redirects;
    this.fixup = opts.fixup ?? true;
    this.tracker = opts.tracker;
    this.timeout = opts.connectTimeoutMs ?? 30000;
    this.onError = opts.onError;
    this.beforeAnswer = opts.beforeAnswer;
    this.copies = opts.copies ?? true;
  }

  /**
   * Serve a listener until no process uses its filter any more (POLLHUP), or stop().
   * Notifications are handled concurrently: a slow connect does not hold up others,
   * and waiting holds no thread (one native poller watches every listener).
   * Rejects, before serving anything, when `listenerFd` is not a seccomp listener.
   */
  async serve(listenerFd: number): Promise<void> {
    const why = listenerProblem(listenerFd);
    if (why) throw new BadInputError(`fd ${listenerFd} is not a seccomp listener (${why}): hand the agent the fd of SECCOMP_FILTER_FLAG_NEW_LISTENER`);
    const inflight = new Set<Promise<void>>();
    const { signal } = this.stopping;
    while (!this.stopped) {
      const rev = await waitFd(listenerFd, POLLIN, { signal });
      if (!(rev & POLLIN)) {
        if (rev & (POLLHUP | POLLERR)) break; // no task uses the filter any more
        continue; // stopped
      }
      // Take every pending notification now; each is handled on its own.
      do {
        if (this.active >= MAX_ACTIVE) {
          await this.room();
          // Still something to receive? (its caller may have gone meanwhile, and a receive would block)
          if (this.stopped || !(readyNow(listenerFd, POLLIN) & POLLIN)) break;
        }
        const n = recvNotification(listenerFd);
        if ('errno' in n) {
          if (n.errno === ENOENT || n.errno === EINTR) continue; // the caller went away before we received it
          this.report(new EpolltrackError(`receiving a seccomp notification failed (${errnoName(n.errno)}): this listener is no longer served`));
          return void (await Promise.all(inflight));
        }
        const p = this.handle(listenerFd, n).catch((err: unknown) => {
          // Never leave a caller stuck: a notification nobody answered gets an error first
          // (answering twice is harmless: the second answer finds it gone), then the report.
          if (notificationValid(listenerFd, n.id)) respond(listenerFd, n.id, { error: errnoOf(err) ?? EIO });
          this.report(err);
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      } while (!this.stopped && readyNow(listenerFd, POLLIN) & POLLIN);
    }
    await Promise.all(inflight);
  }

  stop(): void {
    this.stopped = true;
    this.stopping.abort();
  }

  close(): void {
    this.stop();
  }

  /**
   * Wait for fd table `table` to be free, and hold it: returns the release
   * (which is idempotent). Waiters queue in order.
   */
  private async lockTable(table: number): Promise<() => void> {
    const prev = this.tables.get(table);
    let release = () => {};
    const mine = new Promise<void>((r) => { release = r; });
    const tail = prev ? prev.then(() => mine) : mine;
    this.tables.set(table, tail);
    if (prev) await prev;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      release();
      if (this.tables.get(table) === tail) this.tables.delete(table);
    };
  }

  /**
   * A redirected connect is being served, or no longer: counted against
   * MAX_ACTIVE from the time it has its fd (busy) until it ends, but for a
   * blocking caller's wait for its connect.
   */
  private enter(): void {
    this.active++;
  }

  private leave(): void {
    this.active--;
    this.roomWaiters.shift()?.();
  }

  /** Until fewer than MAX_ACTIVE redirected connects are being served. */
  private async room(): Promise<void> {
    while (this.active >= MAX_ACTIVE) await new Promise<void>((r) => this.roomWaiters.push(r));
  }

  /** The replacement for a connect to `to` by the socket `old` (an fd here): made like it, in this network namespace. */
  private replacement(to: SockAddr, kind: SocketKind, old: number): MakeSocket {
    let addr = this.encoded.get(to);
    if (!addr) this.encoded.set(to, addr = encodeSockaddr(to));
    return {
      family: to.family, type: kind.type === SOCK_DGRAM ? SOCK_DGRAM : SOCK_STREAM, like: old, likeDomain: kind.domain, bindPort: kind.localPort,
      addr, ...carriedOptions(kind.domain, kind.type),
    };
  }

  /** An error while serving: to `onError`, or to 'error' listeners; never thrown at the loop. */
  private report(err: unknown): void {
    const e = err instanceof Error ? err : new EpolltrackError(String(err));
    try {
      if (this.onError) this.onError(e);
      else if (this.listenerCount('error')) this.emit('error', e);
    } catch { /* a failing reporter must not stop the serving */ }
  }

  /** Wait for a connect to finish, giving up early when the caller goes away. */
  private async connected(listenerFd: number, id: bigint, fd: number, limitMs = this.timeout): Promise<boolean> {
    const end = Date.now() + limitMs;
    while (Date.now() < end) {
      if ((await pollAsync(fd, POLLOUT, Math.min(200, end - Date.now()))) > 0) return true;
      if (!notificationValid(listenerFd, id)) return false;
    }
    return false;
  }

  private match(a: SockAddr): Redirect[] {
    return this.redirects.filter((r) => sameAddr(r.from, a));
  }

  private async handle(listenerFd: number, n: Notification): Promise<void> {
    const cont = () => respond(listenerFd, n.id, { continue: true });
    if (n.nr !== SYS_CONNECT) return void cont();
    const fd = Number(BigInt.asIntN(32, n.args[0]));
    const addrPtr = n.args[1];
    const addrLen = Number(BigInt.asIntN(32, n.args[2]));
    // The kernel's own order of checks: a bad length is EINVAL, a bad pointer EFAULT.
    if (addrLen < 0 || addrLen > SOCKADDR_MAX) return void respond(listenerFd, n.id, { error: EINVAL });
    const raw = readMemory(n.pid, addrPtr, addrLen);
    if (!notificationValid(listenerFd, n.id)) return; // the caller is gone: what we read may be someone else's
    if (!raw) return void respond(listenerFd, n.id, { error: EFAULT });
    const addr = parseSockaddr(raw);
    const rules = addr ? this.match(addr) : [];
    if (!rules.length) return void cont();

    const tgid = tgidOf(n.pid);
    if (tgid === undefined) return;
    // Whose fd table holds the caller's fds: the process's, or the calling thread's own
    // (unshare(CLONE_FILES)); every fd operation of the swap works on that table.
    const table = n.pid !== tgid && kcmp(tgid, n.pid, KCMP_FILES, 0, 0) !== 0 ? n.pid : tgid;
    const key = `${table}:${fd}`;
    // Two threads connecting the same fd: one at a time.
    while (this.busy.has(key)) await this.busy.get(key);
    let release = () => {};
    this.busy.set(key, new Promise<void>((r) => { release = r; }));
    this.enter();
    try {
      await this.redirect(listenerFd, n, tgid, fd, rules, table);
    } finally {
      this.leave();
      this.busy.delete(key);
      release();
    }
  }

  /** Answer the caller; a failed answer (the caller was interrupted or died) is recorded, and remembered for a restart. */
  private answer(listenerFd: number, n: Notification, rec: SwapRecord, key: string, ino: bigint, result: { val?: number; error?: number }): void {
    const e = respond(listenerFd, n.id, result);
    if (!e) return;
    rec.result = 'failed';
    rec.errno = e;
    rec.error = e === ENOENT
      ? 'the caller was interrupted before the answer reached it (respond: ENOENT); a restarted connect gets this answer'
      : `the answer could not be sent (respond: errno ${e})`;
    if (e === ENOENT) {
      this.unanswered.set(key, { ino, result });
      if (this.unanswered.size > 1000) this.unanswered.delete(this.unanswered.keys().next().value as string);
    }
  }

  /**
   * Forget what belongs to processes that are gone (a supervisor serving a
   * forking program for months would otherwise keep an entry per process it
   * ever swapped for). Amortized: runs when the tables have doubled.
   */
  private sweep(): void {
    const size = this.installed.size + this.unanswered.size;
    if (size < 1024 || size < 2 * this.swept) return;
    const alive = new Map<string, boolean>();
    const gone = (key: string) => {
      const tgid = key.slice(0, key.indexOf(':'));
      let a = alive.get(tgid);
      if (a === undefined) alive.set(tgid, a = existsSync(`/proc/${tgid}`));
      return !a;
    };
    for (const k of this.installed.keys()) if (gone(k)) this.installed.delete(k);
    for (const k of this.unanswered.keys()) if (gone(k)) this.unanswered.delete(k);
    this.swept = this.installed.size + this.unanswered.size;
  }

  /** Entries kept for processes swapped for (for tests: bounded by the live ones after a sweep). */
  get remembered(): number {
    return this.installed.size + this.unanswered.size;
  }

  private async redirect(listenerFd: number, n: Notification, tgid: number, fd: number, rules: Redirect[], table: number): Promise<void> {
    const t0 = process.hrtime.bigint();
    const rec: SwapRecord = {
      time: new Date().toISOString(), pid: tgid, fd, from: formatSockaddr(rules[0].from), to: formatSockaddr(rules[0].to),
      result: 'failed', moved: 0, source: 'none', micros: 0,
    };
    if (table !== tgid) rec.tid = table;
    const key = `${table}:${fd}`;
    let old = -1, fresh = -1;
    let record = true;
    const fail = (errnoValue: number, why: string) => {
      const e = respond(listenerFd, n.id, { error: errnoValue });
      rec.errno = errnoValue;
      rec.error = e ? `${why} (and the answer could not be sent: errno ${e})` : why;
    };
    // One swap at a time per fd table, from taking the old file to the swap's end: the
    // lookups see the table as the swap before left it (the lock is let go while a
    // blocking caller's connect is under way).
    let unlock = await this.lockTable(table);
    try {
      old = takeFd(table, fd);
      if (old === -EMFILE || old === -ENFILE) return fail(-old, outOfFds(-old));
      if (old === -EINVAL && table !== tgid) {
        // No thread pidfds (before v6.9): the thread's own table cannot be reached. The
        // kernel answers the connect as if there were no supervisor.
        respond(listenerFd, n.id, { continue: true });
        rec.result = 'swapped';
        rec.error = `thread ${table} has an fd table of its own, which this kernel gives no way to take an fd from (thread pidfds: v6.9+): left to the kernel`;
        return;
      }
      if (old < 0) return fail(EBADF, `fd ${fd} is not open`);
      // What the socket is (a few system calls); its options are read where they are carried over.
      const info = socketKind(old);
      if (!info) return fail(ENOTSOCK, `fd ${fd} is not a socket`);
      const ino = fstatSync(old, { bigint: true }).ino;
      const rule = rules.find((r) => (r.proto === 'udp' ? info.type === SOCK_DGRAM : info.type === SOCK_STREAM));
      const lost = this.unanswered.get(key);
      if (lost && lost.ino === ino) {
        // A connect restarted after its answer was lost: what the first one would have returned.
        // (Interrupted again? Then the next restart gets it.)
        if (!respond(listenerFd, n.id, lost.result)) this.unanswered.delete(key);
        record = false;
        return;
      }
      const ours = this.installed.get(key);
      if (ours !== undefined && ours !== ino) this.installed.delete(key); // that number holds another socket now
      if (!rule || ours === ino || info.connected) {
        // Not a socket the rule asks for, ours already (a second connect), or connected: the kernel answers.
        respond(listenerFd, n.id, { continue: true });
        rec.result = 'swapped';
        rec.error = 'left to the kernel';
        return;
      }
      rec.to = formatSockaddr(rule.to);
      if (rule.proto === 'udp') rec.proto = 'udp';

      // The replacement: made here, in the supervisor's network namespace, set up like the caller's.
      let result: { val?: number; error?: number } = { val: 0 };
      let r: ReplaceResult;
      const target = { listenerFd, id: n.id, pid: table, fd };
      const replaceOpts = { tracker: this.tracker, fixup: this.fixup, oldFd: old, tgid: table, copies: this.copies };
      let freshIno: bigint;
      if (info.nonblock) {
        // The replacement (its options read from the old socket and set), its connect, ADD,
        // ADDFD and DEL: one native call off the event loop.
        const done = await connectAndReplace(target, this.replacement(rule.to, info, old), replaceOpts);
        if (done.connectErr === EINPROGRESS) result = { error: EINPROGRESS };
        const unset = optionLabels(done.unset);
        if (unset.length) rec.unset = unset;
        freshIno = done.ino;
        r = done;
      } else {
        const full = socketInfo(old);
        if (!full) return fail(ENOTSOCK, `fd ${fd} is not a socket`);
        const c = makeSocket(this.replacement(rule.to, info, old));
        fresh = c.made.fd;
        const unset = optionLabels(c.made.unset);
        if (unset.length) rec.unset = unset;
        if (fresh < 0) return fail(c.connectErr, c.made.ino ? `connect to ${rec.to} failed: errno ${c.connectErr}` : `socket() failed: errno ${c.connectErr}`);
        // A blocking caller gets the final result, or EINPROGRESS once its SO_SNDTIMEO has passed (as the kernel does).
        // Other swaps of this fd table go on meanwhile.
        const limit = full.sndTimeoMs > 0 ? Math.min(full.sndTimeoMs, this.timeout) : this.timeout;
        let ok = c.connectErr !== EINPROGRESS;
        if (!ok) {
          unlock();
          this.leave();
          try {
            ok = await this.connected(listenerFd, n.id, fresh, limit);
          } finally {
            this.enter();
          }
          unlock = await this.lockTable(table);
        }
        if (!ok) {
          if (!notificationValid(listenerFd, n.id)) {
            rec.error = 'caller went away while connecting';
            return;
          }
          if (full.sndTimeoMs > 0 && full.sndTimeoMs <= this.timeout) result = { error: EINPROGRESS };
          else return fail(ETIMEDOUT, `connect to ${rec.to} timed out`);
        } else {
          const se = socketError(fresh);
          if (se) return fail(se, `connect to ${rec.to} failed: errno ${se}`);
          finishConnect(fresh, rule.to);
        }
        setNonblock(fresh, false);
        if (!notificationValid(listenerFd, n.id)) {
          rec.error = 'the caller was interrupted or went away before the swap: nothing was installed';
          return;
        }
        if (kcmp(table, process.pid, KCMP_FILE, fd, old) !== 0) {
          rec.result = 'swapped';
          if (this.installed.get(key) === inoAt(table, fd)) {
            // Another thread's swap of this same socket (through a copy at another number) put
            // our replacement here meanwhile: this connect is the second on one socket, and the
            // kernel answers it on the replacement (EALREADY or EISCONN), as it would have.
            respond(listenerFd, n.id, { continue: true });
            rec.error = `fd ${fd} was swapped by another thread's connect meanwhile: left to the kernel`;
            return;
          }
          // The program put another file at the number (dup2) while the connect went on: the
          // kernel's connect would have gone on with the old socket, which the number no longer
          // names. The caller gets that connect's answer; nothing is installed.
          rec.error = `fd ${fd} got another file while connecting: answered, nothing installed`;
          this.answer(listenerFd, n, rec, key, -1n, result);
          return;
        }
        r = await replaceFd(target, fresh, replaceOpts);
        freshIno = fstatSync(fresh, { bigint: true }).ino;
      }
      for (const k of r.copies) this.installed.set(`${table}:${k}`, freshIno);
      this.sweep();
      // Our references go before the caller resumes: the old socket may die now (and with it any
      // registration left on it), and the new one is the caller's alone.
      closeFd(old);
      old = -1;
      closeFd(fresh);
      fresh = -1;
      Object.assign(rec, { result: 'swapped', moved: r.moved.length, source: r.source });
      if (r.copies.length > 1) rec.copies = r.copies;
      if (r.shared.length) rec.shared = r.shared;
      if (r.kept) rec.kept = r.kept;
      if (r.uring.length) rec.uring = r.uring;
      if (r.failedCopies.length) rec.error = `not replaced at ${r.failedCopies.map((x) => `fd ${x.fd} (errno ${x.errno})`).join(', ')}`;
      if (this.beforeAnswer) await this.beforeAnswer(tgid);
      this.answer(listenerFd, n, rec, key, freshIno, result);
    } catch (err) {
      if (err instanceof ReplaceError) fail(err.errno, err.message);
      else fail(errnoOf(err) ?? EINVAL, (err as Error).message);
    } finally {
      unlock();
      closeFd(fresh);
      closeFd(old);
      rec.micros = Number(process.hrtime.bigint() - t0) / 1000;
      if (record) {
        this.swaps.push(rec);
        if (this.swaps.length > 1000) this.swaps.shift();
        this.emit('swap', rec);
      }
    }
  }
}
