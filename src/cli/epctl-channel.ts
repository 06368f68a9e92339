/**
 * Commands to an epctl process (native/epctl.c, the fixture the demo, the
 * bench and the tests drive) over its stdin/stdout: one line out, one back.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { EpolltrackError } from '../kernel/errors.js';

export class EpctlReplyError extends EpolltrackError {
  constructor(readonly command: string, readonly errno: number) {
    super(`epctl ${command}: errno ${errno}`);
  }
}

export class EpctlChannel {
  private readonly waiters: ((line: string) => void)[] = [];

  constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => this.waiters.shift()?.(l));
  }

  /** Send one command and resolve with its raw reply line ("ok ..." or "err N"). */
  send(line: string): Promise<string> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.child.stdin!.write(`${line}\n`);
    });
  }

  /** Send one command; the numbers after "ok", or an EpctlReplyError. */
  async cmd(line: string): Promise<number[]> {
    const reply = await this.send(line);
    if (reply.startsWith('ok')) return reply.split(' ').slice(1).map(Number);
    throw new EpctlReplyError(line, Number(reply.split(' ')[1]));
  }
}
