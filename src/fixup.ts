/**
 * Client of the native fix-up helper (native/fixup.c): epoll_ctl with a chosen
 * fd number, from an fd table of its own. Requests name fds by (pid, fd); the
 * helper takes them with pidfd_getfd and closes them before answering.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from './bpfobject.js';

export const EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;

export interface CtlRequest {
  op: number;
  epoll: { pid: number; fd: number };
  file: { pid: number; fd: number };
  tfd: number;
  events: number;
  data: bigint;
}

export class FixupError extends Error {
  constructor(readonly errno: number, readonly step: string) {
    super(`fix-up ${step} failed: errno ${errno}`);
  }
}

export class FixupHelper {
  private child: ChildProcess | undefined;
  private waiters: ((line: string) => void)[] = [];

  private start(): ChildProcess {
    if (this.child && this.child.exitCode === null && !this.child.killed) return this.child;
    const child = spawn(join(packageRoot(), 'build', 'bin', 'fixup'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: child.stdout! }).on('line', (l) => this.waiters.shift()?.(l));
    child.on('exit', () => {
      for (const w of this.waiters.splice(0)) w('err 5 helper-exited');
      if (this.child === child) this.child = undefined;
    });
    child.stdin!.on('error', () => {});
    this.child = child;
    return child;
  }

  /** Run one epoll_ctl in the helper; rejects with FixupError(errno, step). */
  ctl(r: CtlRequest): Promise<void> {
    const child = this.start();
    return new Promise((resolve, reject) => {
      this.waiters.push((line) => {
        if (line === 'ok') return resolve();
        const [, e, step] = line.split(' ');
        reject(new FixupError(Number(e), step ?? 'unknown'));
      });
      child.stdin!.write(`ctl ${r.op} ${r.epoll.pid} ${r.epoll.fd} ${r.file.pid} ${r.file.fd} ${r.tfd} ${(r.events >>> 0).toString(16)} ${BigInt.asUintN(64, r.data)}\n`);
    });
  }

  close(): void {
    this.child?.stdin?.end();
    this.child?.kill();
    this.child = undefined;
  }
}
