/**
 * Processes as /proc shows them: command, command line, cgroup, and whether
 * this user may read their fds ("no such process" and "cannot read it" are
 * different answers).
 */
import { opendirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { BadFdError, NoSuchProcessError, ProcessAccessError } from '../kernel/errors.js';

export interface ProcessInfo {
  pid: number;
  comm: string;
  cmdline: string;
  cgroup: string;
  /** short container id (12 hex) when the cgroup path names one */
  container?: string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The command name (/proc/PID/comm), '?' when the process is gone. */
export function readComm(pid: number): string {
  return readText(`/proc/${pid}/comm`)?.trim() ?? '?';
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

export function processInfo(pid: number): ProcessInfo {
  const comm = readComm(pid);
  let cmdline = (readText(`/proc/${pid}/cmdline`) ?? '').replace(/\0+$/, '').replace(/\0/g, ' ');
  if (cmdline.length > 160) cmdline = `${cmdline.slice(0, 159)}…`;
  return { pid, comm, cmdline, ...parseCgroup(readText(`/proc/${pid}/cgroup`)) };
}

const euid = () => process.geteuid?.() ?? 0;

function accessError(pid: number, err: NodeJS.ErrnoException): ProcessAccessError {
  let owner = '';
  try {
    owner = `, uid ${statSync(`/proc/${pid}`).uid}`;
  } catch { /* gone */ }
  const who = `process ${pid} (${readComm(pid)}${owner})`;
  const msg = euid() === 0
    ? `cannot read the fds of ${who} even as root (${err.code}): run with CAP_SYS_PTRACE (a container may drop it); Yama ptrace_scope 3, an LSM or another user namespace can also refuse`
    : `cannot read the fds of ${who}: it is not yours; run as root (sudo) to inspect it`;
  return new ProcessAccessError(msg, { cause: err });
}

const denied = (err: unknown) => ['EACCES', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '');

/**
 * Throws NoSuchProcessError when `pid` does not exist, ProcessAccessError when
 * its fds cannot be read by this user (unless `readable` is false: the tracker
 * reads the kernel, not /proc).
 */
export function checkProcess(pid: number, opts: { readable?: boolean } = {}): void {
  try {
    statSync(`/proc/${pid}`);
  } catch (err) {
    throw new NoSuchProcessError(`no process ${pid}`, { cause: err });
  }
  if (opts.readable === false) return;
  try {
    // Listing /proc/PID/fd may be allowed where reading its links is not (ptrace access): try one.
    const d = opendirSync(`/proc/${pid}/fd`);
    let first: string | undefined;
    try {
      first = d.readSync()?.name;
    } finally {
      d.closeSync();
    }
    if (first !== undefined) {
      try {
        readlinkSync(`/proc/${pid}/fd/${first}`);
      } catch (err) {
        if (denied(err)) throw err; // else: closed meanwhile, the process is there
      }
    }
  } catch (err) {
    if (denied(err)) throw accessError(pid, err as NodeJS.ErrnoException);
    throw new NoSuchProcessError(`no process ${pid}`, { cause: err });
  }
}

/** checkProcess, then: throws BadFdError when `fd` is not open in `pid`. */
export function checkFd(pid: number, fd: number): void {
  checkProcess(pid);
  try {
    readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch (err) {
    if (denied(err)) throw accessError(pid, err as NodeJS.ErrnoException);
    throw new BadFdError(`process ${pid} has no open fd ${fd}`, { cause: err });
  }
}

/** Every process on the host, or (not root) every process of this user: whose fds may be readable. */
export function visiblePids(): number[] {
  const uid = euid();
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (uid !== 0) {
      try {
        if (statSync(`/proc/${name}`).uid !== uid) continue;
      } catch {
        continue;
      }
    }
    out.push(Number(name));
  }
  return out.sort((a, b) => a - b);
}
