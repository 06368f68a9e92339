/**
 * The daemon's view of the host: every epoll registration (tracker.registrations(),
 * an in-kernel walk), grouped by process and epoll instance, each target fd
 * described for people (what it is, from /proc/PID/fd and the socket tables of
 * its network namespace), each process with its command and cgroup.
 * Rows carry pid/fd/tfd/epoll pid/epfd/events/data only: no kernel addresses.
 */
import { decodeEvents } from '../kernel/events.js';
import type { Registration } from '../tracker/tracker.js';
import { FdResolver, type FdTarget } from '../inspect/describe.js';
import { processInfo, type ProcessInfo } from '../inspect/process.js';
import { isEmptySelector, matchSelector, parseSelectorText } from '../inspect/select.js';

// The fd resolver and process details live in src/inspect (one source for CLI, API and dashboard).
export { FdResolver as SocketResolver, describeFd } from '../inspect/describe.js';
export { parseCgroup, processInfo } from '../inspect/process.js';

/** What a target fd is: `kind` and `desc` for people, structured fields (addresses, state, path) for programs. */
export type Target = FdTarget;

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
  /** with a search (q): all the process's registrations, of which `registrations` matched */
  total?: number;
}

export interface Snapshot {
  time: string;
  /** increases each time the content changes */
  version: number;
  totals: { processes: number; instances: number; registrations: number };
  /** when filtered: the host's totals (`totals` are those of what is listed) */
  all?: { processes: number; instances: number; registrations: number };
  processes: ProcInfo[];
}

/** Group rows by the process holding each epoll instance, then by instance. */
export function buildSnapshot(rows: Registration[], version: number, sockets = new FdResolver()): Omit<Snapshot, 'time'> {
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
      pid: r.pid, fd: r.fd, tfd: r.tfd, target: sockets.describe(r.pid, r.fd),
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
  /**
   * search words, those of `ls`'s selectors (src/inspect/select.ts: `:28080`,
   * `addr:10.0.0.1`, `kind:udp`, `epoll:PID:FD`, ...): only the registrations that
   * match, and their processes. The dashboard searches through here (its stream's
   * ?q=), so the page, the API and the CLI select with one matcher.
   */
  q?: string;
}

export function matches(p: ProcessInfo, f: Filter): boolean {
  if (f.pid !== undefined && p.pid !== f.pid) return false;
  if (f.comm && !p.comm.toLowerCase().includes(f.comm.toLowerCase()) && !p.cmdline.toLowerCase().includes(f.comm.toLowerCase())) return false;
  if (f.cgroup && !p.cgroup.includes(f.cgroup) && !(p.container ?? '').includes(f.cgroup)) return false;
  return true;
}

export function filterSnapshot(s: Snapshot, f: Filter): Snapshot {
  if (f.pid === undefined && !f.comm && !f.cgroup && !f.q) return s;
  let processes = s.processes.filter((p) => matches(p, f));
  const sel = f.q ? parseSelectorText(f.q) : undefined;
  if (sel && !isEmptySelector(sel)) {
    processes = processes.flatMap((p) => {
      const instances = p.instances
        .map((i) => ({
          ...i,
          registrations: i.registrations.filter((r) => matchSelector(sel, {
            pid: r.pid, comm: r.pid === p.pid ? p.comm : undefined, epollPid: i.epollPid, epfd: i.epfd, epollComm: p.comm, target: r.target,
          })),
        }))
        .filter((i) => i.registrations.length);
      const registrations = instances.reduce((n, i) => n + i.registrations.length, 0);
      return registrations ? [{ ...p, instances, registrations, total: p.registrations }] : [];
    });
  }
  const instances = processes.reduce((n, p) => n + p.instances.length, 0);
  const registrations = processes.reduce((n, p) => n + p.registrations, 0);
  return { ...s, totals: { processes: processes.length, instances, registrations }, all: s.totals, processes };
}
