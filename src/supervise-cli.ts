/** `epolltrack supervise`: the supervisor with a tracker (loaded for the run if none is) and logging. */
import { isLoaded, load, unload } from '../loader/load.js';
import { supervise } from './launch.js';
import type { Redirect, SwapRecord } from './supervisor.js';
import { openTracker, type Tracker } from './tracker.js';

export function formatSwap(r: SwapRecord): string {
  const what = r.result === 'swapped'
    ? (r.error ? r.error : `swapped, ${r.moved} epoll registration${r.moved === 1 ? '' : 's'} moved (${r.source})`)
    : `failed: ${r.error} (errno ${r.errno})`;
  return `epolltrack: pid ${r.pid} fd ${r.fd} ${r.from} -> ${r.to}: ${what}, ${r.micros.toFixed(0)} µs`;
}

export async function runSupervise(o: { redirects: Redirect[]; fixup: boolean; verbose: boolean; pinDir: string; cmd: string[] }): Promise<number> {
  process.env.UV_THREADPOOL_SIZE ??= '32';
  let tracker: Tracker | undefined;
  let ownPin: string | undefined;
  if (o.fixup) {
    try {
      if (!isLoaded(o.pinDir)) {
        ownPin = `/sys/fs/bpf/epolltrack-supervise-${process.pid}`;
        load({ pinDir: ownPin });
      }
      tracker = await openTracker({ pinDir: ownPin ?? o.pinDir });
    } catch (err) {
      process.stderr.write(`epolltrack: no tracker (${(err as Error).message}); registrations come from the fdinfo way\n`);
    }
  }
  // Ctrl-C reaches the command too; we end when it does.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGTERM', ignore);
  try {
    const r = await supervise(o.cmd[0], o.cmd.slice(1), {
      redirects: o.redirects, fixup: o.fixup, tracker,
      onSwap: o.verbose ? (s) => process.stderr.write(`${formatSwap(s)}\n`) : undefined,
    });
    return r.code ?? 128 + (r.signal === 'SIGKILL' ? 9 : 15);
  } finally {
    tracker?.close();
    if (ownPin) unload({ pinDir: ownPin });
  }
}
