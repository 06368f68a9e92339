/**
 * The fdkinds fixture (native/fdkinds.c): a real process holding one fd of each
 * kind the resolver names, the pollable ones registered in its epoll (data = fd).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../../src/kernel/bpfobject.js';

export const FDKINDS = join(packageRoot(), 'build', 'bin', 'fdkinds');

export class FdKinds {
  readonly fds = new Map<string, number>();
  port = 0;
  private constructor(readonly child: ChildProcess, readonly pid: number, readonly sockPath: string) {}

  /** Start it (`wrap` runs it through another program, e.g. setpriv), wait until every fd is open. */
  static async spawn(sockPath: string, wrap: string[] = []): Promise<FdKinds> {
    const argv = [...wrap, FDKINDS, sockPath];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    const f = new FdKinds(child, child.pid!, sockPath);
    const rl = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`fdkinds exited with ${code}`)));
      rl.on('line', (l) => {
        const [k, v] = l.split(' ');
        if (k === 'ready') resolve();
        else if (k === 'port') f.port = Number(v);
        else f.fds.set(k, Number(v));
      });
    });
    return f;
  }

  fd(name: string): number {
    const fd = this.fds.get(name);
    if (fd === undefined) throw new Error(`fdkinds has no ${name}`);
    return fd;
  }

  /** Close its stdin (it exits), and kill it by pid if it does not. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.end();
    const t = setTimeout(() => { try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ } }, 2000);
    await exited;
    clearTimeout(t);
    rmSync(this.sockPath, { force: true });
  }
}
