/** `epolltrack supervise`: the supervisor with a tracker (loaded for the run if none is) and logging. */
import { constants } from 'node:os';
import { isLoaded, load, unload } from '../../loader/load.js';
import { startAgent } from '../supervise/agent.js';
import { SwapLogWriter, swapsLogPath } from '../supervise/swaplog.js';
import { supervise } from '../supervise/launch.js';
import type { Redirect, SwapRecord } from '../supervise/supervisor.js';
import { openTracker, type Tracker } from '../tracker/tracker.js';

export function formatSwap(r: SwapRecord): string {
  const what = r.result === 'swapped'
    ? (r.error ? r.error : `swapped, ${r.moved} epoll registration${r.moved === 1 ? '' : 's'} moved (${r.source})`)
    : `failed: ${r.error} (errno ${r.errno})`;
  const more = [
    r.copies ? `also installed at fd ${r.copies.filter((x) => x !== r.fd).join(', ')}` : '',
    r.shared ? `old socket still held by ${r.shared.map((x) => `pid ${x.pid} fd ${x.fd}`).join(', ')} (not replaceable from this notification; ${r.kept ?? 0} registration(s) kept for them)` : '',
    r.uring ? `io_uring fixed file ${r.uring.map((u) => `fd ${u.ringFd} slot ${u.slot} ${u.updated ? 'updated' : `not updated (errno ${u.errno})`}`).join(', ')}` : '',
    r.unset ? `socket options not carried over: ${r.unset.join(', ')}` : '',
  ].filter(Boolean);
  return `epolltrack: pid ${r.pid}${r.tid ? ` thread ${r.tid} (an fd table of its own)` : ''} fd ${r.fd} ${r.proto === 'udp' ? 'udp ' : ''}${r.from} -> ${r.to}: ${what}${more.length ? `; ${more.join('; ')}` : ''}, ${r.micros.toFixed(0)} µs`;
}

/**
 * A closed stderr or stdout (the terminal went away, `| head`) must not kill a
 * supervisor that containers depend on: EPIPE on either is ignored.
 */
function survivePipes(): void {
  for (const s of [process.stdout, process.stderr]) if (!s.listenerCount('error')) s.on('error', () => {});
}

function say(line: string): void {
  try {
    process.stderr.write(`${line}\n`);
  } catch { /* stderr is gone */ }
}

/** Each swap as one JSON line in the swaps log (for `epolltrack daemon`), and on stderr with --verbose. */
function swapSink(verbose: boolean, pinDir: string): { onSwap: (r: SwapRecord) => void; close: () => void } {
  const log = new SwapLogWriter(swapsLogPath(pinDir)); // the log of the tracker named by --pin-dir
  return {
    onSwap: (r) => {
      log.append(r);
      if (verbose) say(formatSwap(r));
    },
    close: () => log.close(),
  };
}

/**
 * A tracker for the run: the loaded one, else one loaded here and unloaded at
 * the end. Without the fix-up, the loaded one if there is one: it still finds
 * the old socket's copies in the kernel, where the fallback asks kcmp about
 * every fd of the caller's table (~2 ms a swap at 500 fds).
 */
async function trackerFor(pinDir: string, fixup: boolean): Promise<{ tracker?: Tracker; done: () => void }> {
  if (!fixup) {
    if (!isLoaded(pinDir)) return { done: () => {} };
    try {
      const tracker = await openTracker({ pinDir });
      return { tracker, done: () => tracker.close() };
    } catch {
      return { done: () => {} };
    }
  }
  let ownPin: string | undefined;
  try {
    if (!isLoaded(pinDir)) {
      ownPin = `/sys/fs/bpf/epolltrack-supervise-${process.pid}`;
      load({ pinDir: ownPin });
    }
    const tracker = await openTracker({ pinDir: ownPin ?? pinDir });
    return { tracker, done: () => { tracker.close(); if (ownPin) unload({ pinDir: ownPin }); } };
  } catch (err) {
    if (ownPin) unload({ pinDir: ownPin });
    say(`epolltrack: no tracker (${(err as Error).message}); registrations come from the fdinfo way`);
    return { done: () => {} };
  }
}

export async function runSupervise(o: { redirects: Redirect[]; fixup: boolean; verbose: boolean; pinDir: string; cmd: string[] }): Promise<number> {
  survivePipes();
  const { tracker, done } = await trackerFor(o.pinDir, o.fixup);
  // Ctrl-C reaches the command too; we end when it does.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGTERM', ignore);
  const sink = swapSink(o.verbose, o.pinDir);
  try {
    const r = await supervise(o.cmd[0], o.cmd.slice(1), {
      redirects: o.redirects, fixup: o.fixup, tracker,
      onSwap: sink.onSwap,
      onError: (e) => say(`epolltrack: supervisor: ${e.message}`),
    });
    return r.code ?? 128 + (r.signal ? constants.signals[r.signal] : 0);
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', ignore);
    sink.close();
    done();
  }
}

export async function runAgent(o: { socket: string; redirects: Redirect[]; fixup: boolean; verbose: boolean; pinDir: string }): Promise<number> {
  survivePipes();
  const { tracker, done } = await trackerFor(o.pinDir, o.fixup);
  const sink = swapSink(o.verbose, o.pinDir);
  try {
    const agent = await startAgent(o.socket, {
      redirects: o.redirects, fixup: o.fixup, tracker,
      onSwap: sink.onSwap,
      onError: (e) => say(`epolltrack: agent: ${e.message}`),
      onContainer: o.verbose ? (c) => say(`epolltrack: serving container ${c.id ?? '?'} (pid ${c.pid ?? '?'})`) : undefined,
      onContainerGone: o.verbose ? (c) => say(`epolltrack: container ${c.id ?? '?'} (pid ${c.pid ?? '?'}) gone: its listener closed`) : undefined,
    });
    say(`epolltrack: agent listening on ${o.socket}`);
    const stop = () => agent.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await agent.done;
    return 0;
  } finally {
    sink.close();
    done();
  }
}
