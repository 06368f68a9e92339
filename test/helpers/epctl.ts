/**
 * A driver for the native epctl fixture (native/epctl.c): one real process
 * whose epoll operations the tests command line by line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { packageRoot } from '../../src/kernel/bpfobject.js';

export const EPCTL = join(packageRoot(), 'build', 'bin', 'epctl');

export class EpctlError extends Error {
  constructor(readonly cmd: string, readonly errno: number) {
    super(`epctl ${cmd}: errno ${errno}`);
  }
}

/** A process running epctl, spawned by us or forked by another epctl. */
export class Epctl {
  private waiters: ((line: string) => void)[] = [];
  private lines: string[] = [];
  private dead = false;
  private tmp?: string;

  private constructor(readonly pid: number, private readonly input: NodeJS.WritableStream,
    output: Readable, private readonly child?: ChildProcess) {
    const rl = createInterface({ input: output });
    rl.on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l); else this.lines.push(l);
    });
    rl.on('close', () => {
      this.dead = true;
      for (const w of this.waiters.splice(0)) w('err 32');
    });
  }

  static async spawn(): Promise<Epctl> {
    const child = spawn(EPCTL, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    const p = new Epctl(child.pid!, child.stdin!, child.stdout!, child);
    await p.cmd('pid');
    return p;
  }

  /** Send one command; resolves with the numbers after "ok", rejects with EpctlError on "err". */
  cmd(line: string): Promise<number[]> {
    if (this.dead) return Promise.reject(new Error(`epctl ${this.pid} is gone`));
    return new Promise((resolve, reject) => {
      const handle = (reply: string) => {
        const [status, ...rest] = reply.split(' ');
        if (status === 'ok') resolve(rest.map(Number));
        else reject(new EpctlError(line, Number(rest[0])));
      };
      const queued = this.lines.shift();
      if (queued !== undefined) handle(queued); else this.waiters.push(handle);
      if (process.env.EPOLLTRACK_DEBUG === "2") console.error(`[${this.pid}] > ${line}`);
      this.input.write(`${line}\n`);
    });
  }

  /** Fork: the child serves commands over a unix socket connection to us. */
  async fork(): Promise<Epctl> {
    const dir = mkdtempSync(join(tmpdir(), 'epctl-'));
    const path = join(dir, 'sock');
    const server = createServer();
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const conn = new Promise<Socket>((r) => server.once('connection', r));
      const [pid] = await this.cmd(`fork ${path}`);
      const sock = await conn;
      const child = new Epctl(pid, sock, sock);
      child.tmp = dir;
      await child.cmd('pid');
      return child;
    } finally {
      server.close();
    }
  }

  async exit(): Promise<void> {
    if (this.dead) return;
    await this.cmd('exit').catch(() => undefined);
    this.dead = true;
    this.input.end();
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
    if (this.child && this.child.exitCode === null) {
      await new Promise((r) => { this.child!.once('exit', r); setTimeout(r, 2000); });
    }
    // A forked one is not our child: wait until it has let go of its files (a zombie, or
    // gone), or a check right after this could still meet its epolls.
    for (let i = 0; i < 200; i++) {
      let st: string;
      try { st = readFileSync(`/proc/${this.pid}/stat`, 'latin1'); } catch { return; }
      if (/^\d+ \(.*\) [ZX]/s.test(st)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Kill by pid: only processes the tests started. */
  kill(): void {
    if (this.dead) return;
    this.dead = true;
    try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
  }

  get alive(): boolean {
    return !this.dead;
  }
}
