/**
 * The daemon suites' environment: a tracker of their own (test pin dir), a
 * daemon started in-process on a free loopback port, a swaps log in a temp
 * dir, and small HTTP helpers. Everything is removed by cleanup().
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { load, unload } from '../../src/index.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/daemon/server.js';
import { skipIfNotSupported, TEST_MODE, testPinDir } from '../helpers/env.js';

export const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
export const BIN = join(process.cwd(), 'build', 'bin');

export interface TestDaemon {
  daemon: Daemon;
  pinDir: string;
  dir: string;
  swapsLog: string;
  cleanup: () => Promise<void>;
}

export async function testDaemon(ctx: Mocha.Context, tag: string, opts: DaemonOptions = {}): Promise<TestDaemon> {
  const pinDir = testPinDir(tag);
  try {
    load({ mode: TEST_MODE, pinDir });
  } catch (err) {
    skipIfNotSupported(ctx, err);
    throw err;
  }
  const dir = mkdtempSync(join(tmpdir(), `ept-daemon-${tag}-`));
  const swapsLog = join(dir, 'swaps.jsonl');
  let daemon: Daemon;
  try {
    daemon = await startDaemon({ listen: '127.0.0.1:0', pinDir, pollMs: 250, latencyMs: 1000, swapsLog, log: () => {}, ...opts });
  } catch (err) {
    unload({ pinDir });
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    daemon, pinDir, dir, swapsLog,
    cleanup: async () => {
      await daemon.close();
      if (existsSync(pinDir)) unload({ pinDir });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply { status: number; headers: IncomingMessage['headers']; body: string }

export function fetchText(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = get(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error(`GET ${url}: timeout`)));
  });
}

export async function fetchJson<T = Record<string, unknown>>(url: string): Promise<{ status: number; json: T; body: string }> {
  const r = await fetchText(url);
  return { status: r.status, json: JSON.parse(r.body) as T, body: r.body };
}

export async function waitFor<T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, ms = 8000): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A TCP server on loopback answering every line with "pong" (what epclient expects). */
export async function pongServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.on('data', () => s.end('pong\n')).on('error', () => {}));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** A free loopback port (for the CLI daemon). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The environment of a supervisor: its swaps log, or none ('': the log of its --pin-dir). */
function childEnv(swapsLog: string): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (swapsLog) env.EPOLLTRACK_SWAPS_LOG = swapsLog; else delete env.EPOLLTRACK_SWAPS_LOG;
  return env;
}

/**
 * One real swap: `epolltrack supervise` runs epclient, whose connect to
 * 127.0.0.2:80 is served by a socket connected to our pong server; the CLI
 * appends the SwapRecord to `swapsLog`.
 */
export async function supervisedSwap(pinDir: string, swapsLog: string, port: number, extra: string[] = [], clientArgs: string[] = []): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [CLI, 'supervise', ...extra, '--pin-dir', pinDir, '--redirect', `127.0.0.2:80=127.0.0.1:${port}`, '--',
    join(BIN, 'epclient'), ...clientArgs, '127.0.0.2', '80'], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(swapsLog) });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const timer = setTimeout(() => { try { process.kill(child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 15000);
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  clearTimeout(timer);
  return { code, out, err };
}
