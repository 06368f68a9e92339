/**
 * The daemon's view of the host: every epoll registration (tracker.registrations(),
 * an in-kernel walk), grouped by process and epoll instance, each target fd
 * described for people (what it is, from /proc/PID/fd and the socket tables of
 * its network namespace), each process with its command and cgroup.
 * Rows carry pid/fd/tfd/epoll pid/epfd/events/data only: no kernel addresses.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { decodeEvents } from '../kernel/events.js';
import type { Registration } from '../tracker/tracker.js';
import { describeSocket, readSocketTables, type SocketInfo } from './sockets.js';

export interface Target {
  /** tcp, tcp6, udp, udp6, unix, netlink, socket, pipe, eventfd, timerfd, signalfd, epoll, inotify, tty, device, file, anon, gone */
  kind: string;
  desc: string;
}

export interface RegRow {
  /** process and fd number the target file is open at (usually the instance's process) */
  pid: number;
  fd: number;
  tfd: number;
  target: Target;
  events: number;
  eventNames: string;
  /** epoll_event.data as 0x hex */
  data: string;
}

export interface Instance {
  epollPid: number;
  /** -1: the instance is not found at any fd right now */
  epfd: number;
  registrations: RegRow[];
}

export interface ProcInfo {
  pid: number;
  comm: string;
  cmdline: string;
  cgroup: string;
  /** short container id (12 hex) when the cgroup path names one */
  container?: string;
  instances: Instance[];
  registrations: number;
}

export interface Snapshot {
  time: string;
  /** increases each time the content changes */
  version: number;
  totals: { processes: number; instances: number; registrations: number };
  processes: ProcInfo[];
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The cgroup to show: the v2 path, else the first non-root v1 one (`memory:/...`). */
export function parseCgroup(text: string | undefined): { cgroup: string; container?: string } {
  if (!text) return { cgroup: '?' };
  let v2: string | undefined;
  let v1: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '0' && m[2] === '') v2 = m[3];
    else if (!v1 && m[3] !== '/') v1 = `${m[2].replace(/^name=/, '')}:${m[3]}`;
  }
  const cgroup = v2 && v2 !== '/' ? v2 : v1 ?? v2 ?? '/';
  const id = /(?:^|[/:-])([0-9a-f]{64})(?:\.scope)?(?:$|\/)/.exec(cgroup)?.[1];
  return id ? { cgroup, container: id.slice(0, 12) } : { cgroup };
}

export function processInfo(pid: number): Pick<ProcInfo, 'pid' | 'comm' | 'cmdline' | 'cgroup' | 'container'> {
  const comm = readText(`/proc/${pid}/comm`)?.trim() ?? '?';
  let cmdline = (readText(`/proc/${pid}/cmdline`) ?? '').replace(/\0+$/, '').replace(/\0/g, ' ');
  if (cmdline.length > 160) cmdline = `${cmdline.slice(0, 159)}…`;
  return { pid, comm, cmdline, ...parseCgroup(readText(`/proc/${pid}/cgroup`)) };
}

const ANON: Record<string, string> = {
  '[eventfd]': 'eventfd', '[timerfd]': 'timerfd', '[signalfd]': 'signalfd', '[eventpoll]': 'epoll', inotify: 'inotify',
  '[pidfd]': 'pidfd', '[io_uring]': 'io_uring', '[fanotify]': 'fanotify', '[userfaultfd]': 'userfaultfd',
};

/**
 * Socket tables by network namespace, kept across refreshes: a namespace's tables
 * are read again when they are older than `maxAgeMs` (TCP states move on), or
 * when a socket not seen in them yet turns up (at most every `minAgeMs`).
 * Reading /proc/net/tcp walks the kernel's whole hash table: not every second.
 */
export class SocketResolver {
  private readonly tables = new Map<string, { at: number; map: Map<string, SocketInfo>; missed: Set<string> }>();
  private readonly nsOf = new Map<number, string>();

  constructor(private readonly maxAgeMs = 2000, private readonly minAgeMs = 500) {}

  /** Call once per refresh: namespaces of pids are looked up again, unused tables dropped. */
  beginCycle(): void {
    this.nsOf.clear();
    const now = Date.now();
    for (const [ns, t] of this.tables) if (now - t.at > 60000) this.tables.delete(ns);
  }

  lookup(pid: number, ino: string): SocketInfo | undefined {
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
}

export function describeTarget(pid: number, fd: number, sockets: SocketResolver): Target {
  let link: string;
  try {
    link = readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return { kind: 'gone', desc: '(closed)' };
  }
  let m = /^socket:\[(\d+)\]$/.exec(link);
  if (m) {
    const s = sockets.lookup(pid, m[1]);
    return s ? { kind: s.proto, desc: describeSocket(s) } : { kind: 'socket', desc: `socket [${m[1]}]` };
  }
  m = /^pipe:\[(\d+)\]$/.exec(link);
  if (m) return { kind: 'pipe', desc: `pipe [${m[1]}]` };
  m = /^anon_inode:(.*)$/.exec(link);
  if (m) {
    const kind = ANON[m[1]] ?? 'anon';
    return { kind, desc: kind === 'anon' ? link : kind };
  }
  if (/^\/dev\/(pts\/\d+|tty\w*|console|ptmx)$/.test(link)) return { kind: 'tty', desc: link };
  if (link.startsWith('/dev/')) return { kind: 'device', desc: link };
  return { kind: 'file', desc: link };
}

/** Group rows by the process holding each epoll instance, then by instance. */
export function buildSnapshot(rows: Registration[], version: number, sockets = new SocketResolver()): Omit<Snapshot, 'time'> {
  sockets.beginCycle();
  const procs = new Map<number, Map<number, Instance>>();
  for (const r of rows) {
    const owner = r.epollPid > 0 ? r.epollPid : r.pid;
    const epfd = r.epollPid > 0 ? r.epfd : -1;
    let insts = procs.get(owner);
    if (!insts) procs.set(owner, (insts = new Map()));
    let inst = insts.get(epfd);
    if (!inst) insts.set(epfd, (inst = { epollPid: owner, epfd, registrations: [] }));
    inst.registrations.push({
      pid: r.pid, fd: r.fd, tfd: r.tfd, target: describeTarget(r.pid, r.fd, sockets),
      events: r.events, eventNames: decodeEvents(r.events), data: `0x${r.data.toString(16)}`,
    });
  }
  const processes: ProcInfo[] = [];
  let instances = 0;
  for (const [pid, insts] of [...procs.entries()].sort((a, b) => a[0] - b[0])) {
    const list = [...insts.values()].sort((a, b) => a.epfd - b.epfd);
    for (const i of list) i.registrations.sort((a, b) => a.tfd - b.tfd || a.pid - b.pid || a.fd - b.fd);
    instances += list.length;
    processes.push({ ...processInfo(pid), instances: list, registrations: list.reduce((n, i) => n + i.registrations.length, 0) });
  }
  return { version, totals: { processes: processes.length, instances, registrations: rows.length }, processes };
}

export interface Filter {
  pid?: number;
  /** substring of the command name (comm or cmdline), case-insensitive */
  comm?: string;
  /** substring of the cgroup path or container id */
  cgroup?: string;
}

export function matches(p: Pick<ProcInfo, 'pid' | 'comm' | 'cmdline' | 'cgroup' | 'container'>, f: Filter): boolean {
  if (f.pid !== undefined && p.pid !== f.pid) return false;
  if (f.comm && !p.comm.toLowerCase().includes(f.comm.toLowerCase()) && !p.cmdline.toLowerCase().includes(f.comm.toLowerCase())) return false;
  if (f.cgroup && !p.cgroup.includes(f.cgroup) && !(p.container ?? '').includes(f.cgroup)) return false;
  return true;
}

export function filterSnapshot(s: Snapshot, f: Filter): Snapshot {
  if (f.pid === undefined && !f.comm && !f.cgroup) return s;
  const processes = s.processes.filter((p) => matches(p, f));
  const instances = processes.reduce((n, p) => n + p.instances.length, 0);
  const registrations = processes.reduce((n, p) => n + p.registrations, 0);
  return { ...s, totals: { processes: processes.length, instances, registrations }, processes };
}
