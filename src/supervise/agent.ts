/**
 * `epolltrack agent`: a seccomp agent for OCI runtimes. runc and crun send the
 * listener fd of each container (linux.seccomp.listenerPath) with the state
 * JSON; every container is served by the same redirect rules and fix-up.
 *
 * native/agent-recv accepts the runtimes' connections (all at once, each with a
 * deadline), checks that each fd is a seccomp listener and hands it over in
 * length-prefixed records (see its header); we take our own copy with
 * pidfd_getfd and ack it. A container's state goes when its listener hangs up
 * (the last task using the filter exited).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../kernel/bpfobject.js';
import { EpolltrackError, errnoName, ListenError } from '../kernel/errors.js';
import { closeFd, kcmp, pidfdGetfd, pidfdOpen } from '../kernel/ffi.js';
import { Supervisor, type SupervisorOptions, type SwapRecord } from './supervisor.js';

export interface ContainerInfo { id?: string; pid?: number; annotations?: Record<string, string> }

export interface Agent {
  /** resolves when the agent stops */
  done: Promise<void>;
  /** the containers being served now (a container leaves when its listener closes) */
  containers: ContainerInfo[];
  supervisors: Supervisor[];
  stop(): void;
}

export interface AgentOptions extends SupervisorOptions {
  onSwap?: (r: SwapRecord) => void;
  onContainer?: (c: ContainerInfo) => void;
  /** a container's listener closed and its state was dropped */
  onContainerGone?: (c: ContainerInfo) => void;
  /** how long a runtime's connection may take to deliver its message (default 5000 ms) */
  connectionTimeoutMs?: number;
}

// agent-recv's records: struct rec { u32 type; i32 fd; u32 conn; u32 len; } + payload
const REC = 16;
const REC_READY = 1, REC_FD = 2, REC_LOG = 3, REC_FATAL = 4;

interface RecvRecord { type: number; fd: number; conn: number; payload: Buffer }

/** Splits agent-recv's stdout into records. */
class RecordReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onRecord: (r: RecvRecord) => void) {}
  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let off = 0;
    while (this.buf.length - off >= REC) {
      const len = this.buf.readUInt32LE(off + 12);
      if (this.buf.length - off - REC < len) break;
      this.onRecord({
        type: this.buf.readUInt32LE(off), fd: this.buf.readInt32LE(off + 4), conn: this.buf.readUInt32LE(off + 8),
        payload: this.buf.subarray(off + REC, off + REC + len),
      });
      off += REC + len;
    }
    this.buf = Buffer.from(this.buf.subarray(off));
  }
}

/** What the OCI state JSON says about the container; {} when it is not JSON. */
export function containerInfo(json: string): ContainerInfo {
  try {
    const state = JSON.parse(json) as { pid?: unknown; state?: { id?: unknown; pid?: unknown; annotations?: unknown } };
    const s = state?.state ?? {};
    const pid = typeof state.pid === 'number' ? state.pid : typeof s.pid === 'number' ? s.pid : undefined;
    return {
      id: typeof s.id === 'string' ? s.id : undefined,
      pid,
      annotations: s.annotations && typeof s.annotations === 'object' ? s.annotations as Record<string, string> : undefined,
    };
  } catch {
    return {}; // not JSON: serve it anyway
  }
}

const KCMP_FILE = 0;

/** One agent-recv: its records go to `onRecord`; resolves once it listens, rejects with its reason otherwise. */
function spawnRecv(socketPath: string, timeoutMs: number, onRecord: (r: RecvRecord, pidfd: number, ack: (fd: number) => void) => void):
  Promise<{ child: ChildProcess; exited: Promise<void>; close: () => void }> {
  const child = spawn(join(packageRoot(), 'build', 'bin', 'agent-recv'), [socketPath, String(timeoutMs)], { stdio: ['pipe', 'pipe', 'ignore'] });
  child.stdin!.on('error', () => {}); // agent-recv gone: its exit is handled by the caller
  child.on('error', () => {});
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  const pidfd = child.pid ? pidfdOpen(child.pid) : -1;
  const ack = (fd: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(fd);
    child.stdin!.write(b);
  };
  let closed = false;
  const close = () => {
    if (!closed) closeFd(pidfd);
    closed = true;
  };
  void exited.then(close);
  return new Promise((resolve, reject) => {
    let ready = false;
    const reader = new RecordReader((r) => {
      if (r.type === REC_READY) {
        ready = true;
        return resolve({ child, exited, close });
      }
      if (r.type === REC_FATAL) {
        return reject(new ListenError(`the agent cannot listen on ${socketPath} (${r.payload.toString('utf8')}): check its directory exists and no other agent serves it`));
      }
      onRecord(r, pidfd, ack);
    });
    child.stdout!.on('data', (d: Buffer) => reader.push(d));
    void exited.then(() => { if (!ready) reject(new ListenError(`the agent cannot listen on ${socketPath}: agent-recv exited (is build/bin/agent-recv built?)`)); });
  });
}

export async function startAgent(socketPath: string, opts: AgentOptions): Promise<Agent> {
  const report = (msg: string) => {
    try { opts.onError?.(new EpolltrackError(msg)); } catch { /* a failing reporter must not stop the agent */ }
  };
  const served = new Map<number, { info: ContainerInfo; sup: Supervisor; listener: number }>();
  const serving = new Set<Promise<void>>();
  let stopped = false;
  let recv: Awaited<ReturnType<typeof spawnRecv>> | undefined;
  const agent: Agent = {
    done: Promise.resolve(),
    containers: [],
    supervisors: [],
    stop: () => {
      stopped = true;
      recv?.child.kill();
      for (const { sup } of served.values()) sup.stop();
    },
  };
  const refresh = () => {
    agent.containers = [...served.values()].map((s) => s.info);
    agent.supervisors = [...served.values()].map((s) => s.sup);
  };

  let serial = 0;
  const take = (r: RecvRecord, pidfd: number, ack: (fd: number) => void) => {
    if (r.type === REC_LOG) return report(r.payload.toString('utf8'));
    if (r.type !== REC_FD) return;
    const info = containerInfo(r.payload.toString('utf8'));
    const listener = pidfd >= 0 ? pidfdGetfd(pidfd, r.fd) : pidfd;
    ack(r.fd);
    const who = `container ${JSON.stringify(info.id ?? '?')} (pid ${info.pid ?? '?'}, connection ${r.conn})`;
    if (listener < 0) {
      report(`${who}: cannot take its seccomp listener (pidfd_getfd: ${errnoName(-listener)}): its connects fail with ENOSYS; the agent needs CAP_SYS_PTRACE and free fds`);
      return;
    }
    // Two receivers on one listener would race for its notifications: serve each listener once.
    for (const s of served.values()) {
      if (kcmp(process.pid, process.pid, KCMP_FILE, s.listener, listener) === 0) {
        closeFd(listener);
        report(`${who}: this listener is already served: the copy is ignored`);
        return;
      }
    }
    const key = ++serial;
    const sup = new Supervisor({ ...opts, onError: (e) => report(`${who}: ${e.message}`) });
    if (opts.onSwap) sup.on('swap', opts.onSwap);
    served.set(key, { info, sup, listener });
    refresh();
    try { opts.onContainer?.(info); } catch { /* reporting only */ }
    const p = sup.serve(listener)
      .catch((e: unknown) => report(`${who}: ${(e as Error).message}`))
      .finally(() => {
        served.delete(key);
        closeFd(listener);
        sup.close();
        refresh();
        try { if (!stopped) opts.onContainerGone?.(info); } catch { /* reporting only */ }
      });
    serving.add(p);
    void p.finally(() => serving.delete(p));
  };

  const timeoutMs = opts.connectionTimeoutMs ?? 5000;
  recv = await spawnRecv(socketPath, timeoutMs, take);
  agent.done = (async () => {
    // agent-recv should never end on its own; if it does, the agent takes another one.
    while (recv) {
      await recv.exited;
      recv.close();
      recv = undefined;
      if (stopped) break;
      report('agent-recv ended unexpectedly: starting another');
      try {
        recv = await spawnRecv(socketPath, timeoutMs, take);
      } catch (e) {
        report(`${(e as Error).message}: no new containers are received; containers already served still are`);
      }
    }
    // Containers already served keep being served until their listeners close, or stop().
    await Promise.all(serving);
  })();
  return agent;
}
