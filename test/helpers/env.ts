/**
 * Test environment: a tracker of the tests' own (own pin dir, so a tracker in
 * use on the host is never disturbed), cleaned up even when tests fail, and
 * the CI rule: outside CI a test may skip when the kernel lacks a feature; in
 * CI that is a failure.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { isNotSupported, load, openTracker, unload, type LoadOptions, type Tracker } from '../../src/index.js';
import { IN_CI } from './ci.js';
import { swapsLogPath } from '../../src/supervise/swaplog.js';

export { IN_CI };

/** Hook mode the suites load (EPOLLTRACK_MODE=fentry|kprobe|tracepoint, default auto). */
export const TEST_MODE = (process.env.EPOLLTRACK_MODE ?? 'auto') as LoadOptions['mode'];

/** Pins left by an earlier test run that was killed (its pid is gone): unpinning detaches them. */
function sweepStalePins(): void {
  let names: string[] = [];
  try { names = readdirSync('/sys/fs/bpf'); } catch { return; }
  for (const n of names) {
    const m = /^epolltrack-(?:test|supervise|bench|demo)-(\d+)/.exec(n);
    if (m && !existsSync(`/proc/${m[1]}`)) rmSync(`/sys/fs/bpf/${n}`, { recursive: true, force: true });
  }
}
sweepStalePins();

export function testPinDir(tag: string): string {
  return `/sys/fs/bpf/epolltrack-test-${process.pid}-${tag}`;
}

/** Load a tracker for a suite; returns it and a cleanup that always unloads. */
export async function suiteTracker(ctx: Mocha.Context, tag: string, opts: LoadOptions = {}): Promise<{ tracker: Tracker; pinDir: string; cleanup: () => void }> {
  const pinDir = testPinDir(tag);
  try {
    load({ mode: TEST_MODE, ...opts, pinDir });
  } catch (err) {
    skipIfNotSupported(ctx, err);
    throw err;
  }
  const tracker = await openTracker({ pinDir });
  return {
    tracker, pinDir,
    cleanup: () => {
      tracker.close();
      if (existsSync(pinDir)) unload({ pinDir });
      // the swaps log of supervisors run with this --pin-dir (not one EPOLLTRACK_SWAPS_LOG names)
      const log = swapsLogPath(pinDir);
      if (log !== process.env.EPOLLTRACK_SWAPS_LOG) for (const f of [log, `${log}.1`]) rmSync(f, { force: true });
    },
  };
}

export function skipIfNotSupported(ctx: Mocha.Context, err: unknown): void {
  if (isNotSupported(err) && !IN_CI) ctx.skip();
}

/** Seeded PRNG (mulberry32): reproducible random sequences. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
