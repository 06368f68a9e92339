/**
 * Run a command under the supervisor: the native launcher installs the seccomp
 * filter and tells us its listener fd, which we take with pidfd_getfd before
 * the command is exec'd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import { packageRoot } from '../kernel/bpfobject.js';
import { errnoName, NotSupportedError, PermissionError } from '../kernel/errors.js';
import { closeFd, takeFd } from '../kernel/ffi.js';
import { Supervisor, type SupervisorOptions, type SwapRecord } from './supervisor.js';

export interface SuperviseResult { code: number | null; signal: NodeJS.Signals | null; supervisor: Supervisor }

export interface Launched {
  child: ChildProcess;
  /** the seccomp listener, an fd of this process (close it when done) */
  listenerFd: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Start `cmd` under a seccomp filter that sends its connect() calls to us, and
 * return the listener: for supervisors of one's own (see replaceFd).
 */
export async function launch(cmd: string, args: string[], opts: { stdio?: 'inherit' | 'pipe'; onSpawn?: (pid: number, child: ChildProcess) => void } = {}): Promise<Launched> {
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
    throw new NotSupportedError('the launcher could not install the seccomp filter: this kernel needs seccomp user notification (5.0+)');
  }
  const listenerFd = takeFd(child.pid!, Number(m[1]));
  if (listenerFd < 0) {
    child.kill('SIGKILL');
    throw new PermissionError(`could not take the seccomp listener from the launcher (${errnoName(listenerFd)}): pidfd_getfd needs root or ptrace rights`, { errno: -listenerFd });
  }
  ctl.end('go\n');
  return { child, listenerFd, exited };
}

/** Run `cmd` under the supervisor until every process using the filter is gone. */
export async function supervise(cmd: string, args: string[], opts: SupervisorOptions & {
  stdio?: 'inherit' | 'pipe';
  onSpawn?: (pid: number, child: ChildProcess) => void;
  onSwap?: (r: SwapRecord) => void;
}): Promise<SuperviseResult> {
  const supervisor = new Supervisor(opts);
  if (opts.onSwap) supervisor.on('swap', opts.onSwap);
  supervisor.on('error', (err: Error) => process.stderr.write(`epolltrack: supervisor: ${err.message}\n`));
  const { listenerFd, exited } = await launch(cmd, args, opts);
  try {
    await supervisor.serve(listenerFd);
    const r = await exited;
    return { ...r, supervisor };
  } finally {
    closeFd(listenerFd);
    supervisor.close();
  }
}
