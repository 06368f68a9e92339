/**
 * Run a command under the supervisor: the native launcher installs the seccomp
 * filter and tells us its listener fd, which we take with pidfd_getfd before
 * the command is exec'd.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import { packageRoot } from './bpfobject.js';
import { EpolltrackError } from './errors.js';
import { closeFd, pidfdGetfd, pidfdOpen } from './native.js';
import { Supervisor, type SupervisorOptions, type SwapRecord } from './supervisor.js';

export interface SuperviseResult { code: number | null; signal: NodeJS.Signals | null; supervisor: Supervisor }

export async function supervise(cmd: string, args: string[], opts: SupervisorOptions & {
  stdio?: 'inherit' | 'pipe';
  onSpawn?: (pid: number, child: import('node:child_process').ChildProcess) => void;
  onSwap?: (r: SwapRecord) => void;
}): Promise<SuperviseResult> {
  const child = spawn(join(packageRoot(), 'build', 'bin', 'launch'), ['3', cmd, ...args], {
    stdio: [opts.stdio ?? 'inherit', opts.stdio ?? 'inherit', opts.stdio ?? 'inherit', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  opts.onSpawn?.(child.pid!, child);
  const ctl = child.stdio[3] as Duplex;
  const line = await new Promise<string | undefined>((resolve) => {
    const rl = createInterface({ input: ctl });
    rl.once('line', (l) => { rl.close(); resolve(l); });
    child.once('exit', () => resolve(undefined));
  });
  const m = line && /^L (\d+)$/.exec(line);
  if (!m) {
    await exited;
    throw new EpolltrackError('the launcher could not install the seccomp filter (is this a kernel with seccomp user notification, 5.0+?)');
  }
  const pidfd = pidfdOpen(child.pid!);
  const listener = pidfd >= 0 ? pidfdGetfd(pidfd, Number(m[1])) : -1;
  closeFd(pidfd);
  if (listener < 0) {
    child.kill('SIGKILL');
    throw new EpolltrackError('could not take the seccomp listener from the launcher (pidfd_getfd needs root or ptrace rights)');
  }
  const supervisor = new Supervisor(opts);
  if (opts.onSwap) supervisor.on('swap', opts.onSwap);
  supervisor.on('error', (err: Error) => process.stderr.write(`epolltrack: supervisor: ${err.message}\n`));
  ctl.end('go\n');
  try {
    await supervisor.serve(listener);
    const r = await exited;
    return { ...r, supervisor };
  } finally {
    closeFd(listener);
    supervisor.close();
  }
}
