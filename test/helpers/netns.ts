/**
 * Network namespaces of the tests' own, and the long-running programs the
 * tests start (supervisors, agents, daemons under test), always cleaned up:
 * a namespace is deleted and a program killed (its process group, which the
 * test created) even when a test fails.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

let seq = 0;

export interface Netns {
  name: string;
  /** argv prefix that runs a command inside the namespace */
  exec(cmd: string[]): string[];
  delete(): void;
}

/** A fresh namespace with only loopback, up. Names are unique per test process. */
export function createNetns(tag: string): Netns {
  const name = `ept-${tag}-${process.pid}-${seq++}`;
  execFileSync('ip', ['netns', 'add', name]);
  try {
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (err) {
    spawnSync('ip', ['netns', 'delete', name]);
    throw err;
  }
  let deleted = false;
  return {
    name,
    exec: (cmd) => ['ip', 'netns', 'exec', name, ...cmd],
    delete() {
      if (deleted) return;
      deleted = true;
      spawnSync('ip', ['netns', 'delete', name]);
    },
  };
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

/** Run a command to completion with a hard time bound; never rejects. */
export function run(cmd: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cmd[0], cmd.slice(1), { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 22 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - t0 });
    });
  });
}

/**
 * A long-running program in a process group of its own, its output collected.
 * stop() asks politely (SIGTERM to `termPid()` if given, else to the group),
 * then SIGKILLs the group; only processes this helper started are signalled.
 */
export class Daemon {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  private readonly exited: Promise<void>;
  private done = false;

  constructor(readonly cmd: string[], private readonly termPid?: () => number | undefined) {
    this.child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child.stdout!.on('data', (d: Buffer) => { this.stdout += d.toString(); });
    this.child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.exited = new Promise((r) => this.child.once('close', (code) => { this.done = true; this.exitCode = code; r(); }));
  }

  get running(): boolean {
    return !this.done;
  }

  /** Wait until `re` matches stdout+stderr; throws after `ms` or when the program ends first. */
  async waitFor(re: RegExp, ms: number): Promise<RegExpMatchArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = (this.stdout + this.stderr).match(re);
      if (m) return m;
      if (this.done || Date.now() > end) {
        throw new Error(`${this.cmd.join(' ')}: no ${re} after ${ms} ms${this.done ? ` (exited ${this.exitCode})` : ''}\n--- output:\n${this.stdout}${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Wait for exit, at most `ms`; true when it exited. */
  async wait(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((r) => { timer = setTimeout(r, ms); })]);
    clearTimeout(timer);
    return this.done;
  }

  async stop(graceMs = 3000): Promise<void> {
    if (this.done) return;
    const pgid = this.child.pid!;
    const pid = this.termPid?.();
    try {
      // The polite signal goes to the program only while it is still in our group.
      if (pid && pgrpOf(pid) !== pgid) throw new Error('not ours');
      if (pid) process.kill(pid, 'SIGTERM'); else process.kill(-pgid, 'SIGTERM');
    } catch { /* gone */ }
    if (await this.wait(graceMs)) return;
    try { process.kill(-pgid, 'SIGKILL'); } catch { /* gone */ }
    await this.wait(2000);
  }
}

function pgrpOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}

/** The pid in a pid file, if there is one. */
export function pidFromFile(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Absolute path of a program in the usual system directories, or undefined. */
export function which(prog: string): string | undefined {
  for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (existsSync(`${d}/${prog}`)) return `${d}/${prog}`;
  }
  return undefined;
}
