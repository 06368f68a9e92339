/**
 * `epolltrack daemon`: a live web dashboard, a JSON API and Prometheus metrics
 * over the tracker, on localhost by default.
 *
 *   /               the dashboard (one HTML page, htm + preact served from here: no CDN)
 *   /metrics        Prometheus text format
 *   /api/           an index of the API
 *   /api/snapshot   every process with epoll instances, their registrations (?pid= &comm= &cgroup= &q=)
 *   /api/history    registrations per process over the last minutes (sparklines)
 *   /api/events     the same, live: Server-Sent Events (snapshot, swaps, latency, status)
 *   /api/swaps      recent fd swaps from the supervisor's log (?limit=)
 *   /api/latency    lookup time through the tracker vs the fdinfo way, measured here (?limit=)
 *   /api/status     tracker mode, maps, counters, fallbacks; the daemon's own state
 *
 * Registrations are polled (tracker.registrations(), an in-kernel walk) every
 * second and pushed only when something changed; the maps are resynced every 30 s.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isLoaded, status as trackerStatus, type Status } from '../../loader/load.js';
import { DEFAULT_PIN_DIR } from '../kernel/names.js';
import { packageRoot } from '../kernel/bpfobject.js';
import { BadInputError, BuildError, ListenError } from '../kernel/errors.js';
import { fdinfoMemberships } from '../tracker/fdinfo.js';
import type { SwapRecord } from '../supervise/supervisor.js';
import { openTracker, type Tracker } from '../tracker/tracker.js';
import { dashboardApp } from './client.js';
import { buildSnapshot, filterSnapshot, SocketResolver, type Filter, type Snapshot } from './collect.js';
import { DaemonMetrics, type MapFill } from './metrics.js';
import { PAGE } from './page.js';
import { parseSelectorText } from '../inspect/select.js';
import type { History, LatencySample, StatusBody, SwapCounts } from './types.js';
import { SwapLogTail, swapsLogPath } from '../supervise/swaplog.js';

export const DEFAULT_LISTEN = '127.0.0.1:9477';

export interface DaemonOptions {
  /** HOST:PORT, [IPv6]:PORT or PORT (default 127.0.0.1:9477; port 0 picks a free one) */
  listen?: string;
  pinDir?: string;
  /** registrations poll period (default 1000 ms) */
  pollMs?: number;
  /** tracker.resync() period (default 30000 ms) */
  resyncMs?: number;
  /** lookup latency sample period (default 5000 ms) */
  latencyMs?: number;
  /** swaps log to read (default /run/epolltrack/swaps.jsonl or EPOLLTRACK_SWAPS_LOG) */
  swapsLog?: string;
  /** where warnings go (default stderr) */
  log?: (line: string) => void;
}

export interface Daemon {
  url: string;
  host: string;
  port: number;
  pinDir: string;
  /** the daemon loaded the tracker (it stays loaded after close(), as with `epolltrack load`) */
  loadedHere: boolean;
  close(): Promise<void>;
}


/** `127.0.0.1:9477`, `[::1]:9477`, `localhost:0`, `9477` -> host and port. */
export function parseListen(s: string): { host: string; port: number } {
  let host = '127.0.0.1';
  let port: string;
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s);
  if (v6) {
    host = v6[1];
    port = v6[2];
    if (!isIPv6(host)) throw new BadInputError(`--listen: '${v6[1]}' is not an IPv6 address`);
  } else if (/^\d+$/.test(s)) {
    port = s;
  } else {
    const m = /^([A-Za-z0-9.-]*):(\d+)$/.exec(s);
    if (!m) throw new BadInputError(`--listen takes HOST:PORT, [IPv6]:PORT or PORT, got '${s}'`);
    if (/^[\d.]+$/.test(m[1]) && !isIPv4(m[1])) throw new BadInputError(`--listen: '${m[1]}' is not an IPv4 address`);
    if (m[1]) host = m[1];
    port = m[2];
  }
  const n = Number(port);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new BadInputError(`--listen: port must be 0-65535, got '${port}'`);
  return { host, port: n };
}

/** htm + preact in one ES module (node_modules/htm/preact/standalone.mjs). */
function htmStandalonePath(): string {
  if (typeof import.meta.resolve === 'function') return fileURLToPath(import.meta.resolve('htm/preact/standalone'));
  // Node.js before 20.6: through the package's CommonJS entry (htm/dist/htm.js)
  return join(dirname(createRequire(import.meta.url).resolve('htm')), '..', 'preact', 'standalone.mjs');
}

class QueryError extends BadInputError {}

/** Validated query parameters: unknown names, repeats, bad values are a 400. */
function query(url: URL, allowed: Record<string, 'pid' | 'text' | 'limit' | 'search'>): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const key of new Set(url.searchParams.keys())) {
    const kind = allowed[key];
    if (!kind) throw new QueryError(`unknown query parameter '${key}'${Object.keys(allowed).length ? ` (allowed: ${Object.keys(allowed).join(', ')})` : ''}`);
    const all = url.searchParams.getAll(key);
    if (all.length > 1) throw new QueryError(`query parameter '${key}' given more than once`);
    const v = all[0];
    if (kind === 'pid') {
      if (!/^\d{1,8}$/.test(v) || Number(v) < 1 || Number(v) > 4194304) throw new QueryError(`pid must be a process id (1-4194304), got '${v.slice(0, 40)}'`);
      out[key] = Number(v);
    } else if (kind === 'limit') {
      if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 1000) throw new QueryError(`limit must be an integer from 1 to 1000, got '${v.slice(0, 40)}'`);
      out[key] = Number(v);
    } else {
      if (v.length > 256 || /[\0-\x1f]/.test(v)) throw new QueryError(`${key} must be at most 256 printable characters`);
      if (kind === 'search') {
        try {
          parseSelectorText(v);
        } catch (err) {
          if (err instanceof BadInputError) throw new QueryError(`${key}: ${err.message}`);
          throw err;
        }
      }
      if (v) out[key] = v;
    }
  }
  return out;
}

const FILTER_PARAMS = { pid: 'pid', comm: 'text', cgroup: 'text', q: 'search' } as const;
const LIMIT_PARAM = { limit: 'limit' } as const;
const KEEP_SWAPS = 200;
const KEEP_SAMPLES = 120;
const KEEP_HISTORY = 60;

/** GET /api/: what there is to ask. */
const API_INDEX = {
  endpoints: [
    { path: '/api/snapshot', query: { pid: 'process id', comm: 'substring of the command name or line', cgroup: 'substring of the cgroup path or container id', q: 'search words, as `epolltrack ls` selects: port:N (or :N), addr:IP[/BITS] or a unix path, kind:K, pid:N, comm:NAME, epoll:PID:FD' }, answer: 'every process with epoll instances and their registrations' },
    { path: '/api/events', query: 'as /api/snapshot', answer: 'text/event-stream of snapshot, swaps, latency, status and history messages' },
    { path: '/api/swaps', query: { limit: '1-1000, default 50' }, answer: 'recent fd swaps of the supervisor (newest first) and totals over the whole log' },
    { path: '/api/latency', query: { limit: '1-1000, default 60' }, answer: 'lookup time through the tracker against the fdinfo way, measured here' },
    { path: '/api/history', query: {}, answer: 'registrations per process, one point per period' },
    { path: '/api/status', query: {}, answer: 'tracker mode, maps (live and stale entries), counters, fallbacks, the daemon' },
    { path: '/metrics', query: {}, answer: 'Prometheus text format' },
  ],
};

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
/** a client that does not read its stream is dropped past this much buffered output */
const MAX_BUFFERED = 4 << 20;

interface Client { res: ServerResponse; filter: Filter }

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function json(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x));
}

export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const { host, port } = parseListen(opts.listen ?? DEFAULT_LISTEN);
  const pinDir = opts.pinDir ?? process.env.EPOLLTRACK_PIN_DIR ?? DEFAULT_PIN_DIR;
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const pollMs = opts.pollMs ?? 1000;
  const resyncMs = opts.resyncMs ?? 30000;
  const latencyMs = opts.latencyMs ?? 5000;
  const swapsPath = opts.swapsLog ?? swapsLogPath(pinDir);
  const version = packageVersion();

  const loadedHere = !isLoaded(pinDir);
  const tracker: Tracker = await openTracker({ pinDir, load: true });
  const startedAt = new Date().toISOString();

  // The browser's side: htm + preact in one ES module from node_modules, and the app.
  let htmPreact: string;
  try {
    htmPreact = readFileSync(htmStandalonePath(), 'utf8');
  } catch (err) {
    tracker.close();
    throw new BuildError(`the dashboard needs the htm package (htm/preact/standalone.mjs): run \`npm ci\` (${(err as Error).message})`);
  }
  const appJs = [
    "import { html, render, useState, useEffect, useMemo, useRef } from '/assets/htm-preact.mjs';",
    `(${dashboardApp.toString()})({ html, render, useState, useEffect, useMemo, useRef });`,
  ].join('\n');

  // --- state -----------------------------------------------------------------
  let snapVersion = 0;
  let snapshot: Snapshot = { time: startedAt, version: snapVersion, totals: { processes: 0, instances: 0, registrations: 0 }, processes: [] };
  let snapshotKey = '';
  let snapshotJson = '';
  let refreshes = 0;
  let refreshMicros = 0;
  let lastError: string | undefined;
  const swaps: SwapRecord[] = [];
  const swapCounts: SwapCounts = { swapped: 0, failed: 0, continued: 0, unmoved: 0, moved: 0 };
  const history = new Map<number, number[]>();
  let fill: MapFill | undefined;
  const samples: LatencySample[] = [];
  let sampleTurn = 0;
  let statusCache: { at: number; s: Status } | undefined;
  const clients = new Set<Client>();
  const tail = new SwapLogTail(swapsPath);
  const sockets = new SocketResolver();

  const warn = (what: string, err: unknown) => {
    const msg = `${what}: ${(err as Error)?.message ?? String(err)}`;
    if (msg !== lastError) log(`epolltrack: daemon: ${msg}`);
    lastError = msg;
  };

  const trackerStatusCached = (): Status | undefined => {
    if (!statusCache || Date.now() - statusCache.at > 10000) {
      try {
        statusCache = { at: Date.now(), s: trackerStatus({ pinDir }) };
      } catch (err) {
        warn('status', err);
      }
    }
    return statusCache?.s;
  };

  const kernelCounters = (): Record<string, bigint> => {
    try {
      return tracker.stats().kernel;
    } catch {
      return {};
    }
  };

  const statusBody = (): StatusBody => {
    const s = trackerStatusCached();
    let fallbacks: Record<string, number> = {};
    try { fallbacks = tracker.stats().fallbacks; } catch { /* closed */ }
    return {
      loaded: s?.loaded ?? false, pinDir, mode: s?.mode ?? tracker.mode, loadedAt: s?.loadedAt, hooks: s?.hooks,
      notTaken: s?.notTaken, modes: s?.modes, maps: s?.maps, fill, version,
      counters: Object.fromEntries(Object.entries(kernelCounters()).map(([k, v]) => [k, Number(v)])),
      fallbacks,
      daemon: {
        pid: process.pid, startedAt, loadedHere, clients: clients.size, refreshes, refreshMicros: Math.round(refreshMicros),
        snapshotVersion: snapVersion, swapsLog: swapsPath, lastError,
      },
    };
  };

  const metrics = new DaemonMetrics({
    snapshot: () => snapshot,
    version: () => version,
    fill: () => fill,
    mode: () => trackerStatusCached()?.mode ?? tracker.mode,
    maps: () => trackerStatusCached()?.maps,
    kernel: kernelCounters,
    fallbacks: () => tracker.stats().fallbacks,
    swaps: () => swapCounts,
    sseClients: () => clients.size,
  });

  // --- live clients ----------------------------------------------------------
  const drop = (c: Client) => {
    if (!clients.delete(c)) return;
    if (!c.res.destroyed) c.res.destroy();
  };
  const send = (c: Client, payload: string) => {
    if (c.res.destroyed || c.res.writableEnded) return drop(c);
    if (c.res.writableLength > MAX_BUFFERED) return drop(c);
    c.res.write(payload);
  };
  const msg = (v: unknown) => `data: ${json(v)}\n\n`;
  const snapshotMsg = (f: Filter) => {
    const unfiltered = f.pid === undefined && !f.comm && !f.cgroup && !f.q;
    return unfiltered ? (snapshotJson ||= msg({ type: 'snapshot', snapshot })) : msg({ type: 'snapshot', snapshot: filterSnapshot(snapshot, f) });
  };
  const broadcast = (payload: string | ((c: Client) => string)) => {
    for (const c of [...clients]) send(c, typeof payload === 'string' ? payload : payload(c));
  };

  // --- periodic work -----------------------------------------------------------
  const refresh = () => {
    const t0 = process.hrtime.bigint();
    try {
      const rows = tracker.registrations();
      const next = buildSnapshot(rows, snapVersion, sockets);
      const key = json({ totals: next.totals, processes: next.processes });
      if (key !== snapshotKey) {
        snapshotKey = key;
        snapVersion++;
        snapshot = { time: new Date().toISOString(), ...next, version: snapVersion };
        snapshotJson = '';
        broadcast((c) => snapshotMsg(c.filter));
      }
      refreshes++;
    } catch (err) {
      warn('reading registrations', err);
    }
    try {
      const fresh = tail.poll();
      if (fresh.length) {
        for (const r of fresh) {
          if (r.result === 'failed') swapCounts.failed++;
          else if (r.error) swapCounts.continued++; // a connect left to the kernel (already ours, connected, not TCP)
          else {
            swapCounts.swapped++;
            if (r.moved === 0) swapCounts.unmoved++;
          }
          swapCounts.moved += r.moved;
        }
        swaps.push(...fresh);
        swaps.splice(0, Math.max(0, swaps.length - KEEP_SWAPS));
        broadcast(msg({ type: 'swaps', counts: swapCounts, swaps: fresh.slice(-KEEP_SWAPS) }));
      }
    } catch (err) {
      warn(`reading ${swapsPath}`, err);
    }
    refreshMicros = Number(process.hrtime.bigint() - t0) / 1000;
  };

  /** Time one registered fd both ways: through the tracker and the fdinfo way. */
  const sampleLatency = () => {
    const procs = snapshot.processes.filter((p) => p.pid !== process.pid);
    if (!procs.length) return;
    for (let tries = 0; tries < Math.min(procs.length, 5); tries++) {
      const p = procs[sampleTurn++ % procs.length];
      const reg = p.instances.flatMap((i) => i.registrations).find((r) => r.target.kind !== 'gone');
      if (!reg) continue;
      try {
        tracker.membershipsOf(reg.pid, reg.fd); // warm-up: the first lookup of a process attaches its iterator
        metrics.lookups.inc({ source: tracker.lastLookup.source });
        const viaTracker = tracker.membershipsOf(reg.pid, reg.fd);
        const info = tracker.lastLookup;
        const t0 = process.hrtime.bigint();
        const viaFdinfo = fdinfoMemberships(reg.pid, reg.fd);
        const fdinfoMicros = Number(process.hrtime.bigint() - t0) / 1000;
        let nfds = 0;
        try { nfds = readdirSync(`/proc/${reg.pid}/fd`).length; } catch { /* gone */ }
        const norm = (ms: { epollPid: number; epfd: number; tfd: number; events: number; data: bigint }[]) =>
          ms.map((m) => `${m.tfd}:${m.events}:${m.data}`).sort().join(',');
        const s: LatencySample = {
          time: new Date().toISOString(), pid: reg.pid, comm: p.comm, fd: reg.fd, nfds, registrations: viaTracker.length,
          tracker: { micros: Math.round(info.micros * 10) / 10, source: info.source, ...(info.reason ? { reason: info.reason } : {}) },
          fdinfo: { micros: Math.round(fdinfoMicros * 10) / 10 },
          agree: norm(viaTracker) === norm(viaFdinfo),
        };
        metrics.lookups.inc({ source: info.source });
        metrics.latency.observe({ method: 'bpf' }, info.micros / 1e6);
        metrics.latency.observe({ method: 'fdinfo' }, fdinfoMicros / 1e6);
        samples.push(s);
        samples.splice(0, Math.max(0, samples.length - KEEP_SAMPLES));
        broadcast(msg({ type: 'latency', samples: [s] }));
        return;
      } catch {
        // the fd or process went away between the poll and now: try another
      }
    }
  };

  /**
   * Live and stale map entries: one more kernel walk plus a read of both maps
   * (about 30 µs per entry here), so every few seconds, not every refresh, and
   * spaced so that it takes at most 2% of the daemon's time on a full map.
   */
  let fillAt = 0;
  let fillMs = 0;
  const measureFill = () => {
    if (Date.now() - fillAt < Math.max(0.9 * latencyMs, 50 * fillMs)) return;
    const t0 = Date.now();
    try {
      fill = tracker.mapFill();
    } catch (err) {
      warn('counting live map entries', err);
    }
    fillAt = Date.now();
    fillMs = fillAt - t0;
  };

  /** One point per process per tick; a process gone for a whole window is forgotten. */
  const recordHistory = () => {
    const now = new Map(snapshot.processes.map((p) => [p.pid, p.registrations]));
    for (const pid of now.keys()) if (!history.has(pid)) history.set(pid, []);
    for (const [pid, pts] of history) {
      pts.push(now.get(pid) ?? 0);
      pts.splice(0, Math.max(0, pts.length - KEEP_HISTORY));
      if (!now.has(pid) && pts.every((v) => v === 0)) history.delete(pid);
    }
  };
  const historyBody = (): History => ({ periodMs: latencyMs, series: Object.fromEntries([...history].map(([pid, pts]) => [String(pid), pts])) });

  const statusTick = () => {
    measureFill();
    recordHistory();
    broadcast(msg({ type: 'status', status: statusBody() }));
    broadcast(msg({ type: 'history', history: historyBody() }));
  };

  refresh();
  measureFill();
  recordHistory();
  sampleLatency();
  const timers = [
    setInterval(refresh, pollMs),
    setInterval(() => { try { tracker.resync(); } catch (err) { warn('resync', err); } }, resyncMs),
    setInterval(() => { sampleLatency(); statusTick(); }, latencyMs),
    setInterval(() => broadcast(': ping\n\n'), 15000),
  ];
  for (const t of timers) t.unref();

  // --- HTTP --------------------------------------------------------------------
  const allowedHost = (h: string | undefined): boolean => {
    if (!h) return false;
    const name = h.startsWith('[') ? h.slice(1, h.indexOf(']')) : h.replace(/:\d+$/, '');
    return isIP(name) !== 0 || name === 'localhost' || name.toLowerCase() === host.toLowerCase();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const reply = (code: number, body: string, type: string, extra: Record<string, string> = {}) => {
      res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS, ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const error = (code: number, message: string) => reply(code, `${JSON.stringify({ error: message })}\n`, 'application/json; charset=utf-8');
    // A page elsewhere must not read this through a DNS name of its own (DNS rebinding).
    if (!allowedHost(req.headers.host)) return error(403, 'Host header must be an IP address, localhost or the --listen host');
    if (req.method !== 'GET' && req.method !== 'HEAD') return error(405, `method ${req.method} not allowed: GET only`);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return error(400, 'bad request URL');
    }
    try {
      switch (url.pathname) {
        case '/':
        case '/index.html':
          // The page's own query (filters, sort) is read by the page; what it does not know it ignores with a notice.
          return reply(200, PAGE, 'text/html; charset=utf-8', { 'content-security-policy': CSP });
        case '/app.js':
          return reply(200, appJs, 'text/javascript; charset=utf-8');
        case '/assets/htm-preact.mjs':
          return reply(200, htmPreact, 'text/javascript; charset=utf-8');
        case '/metrics': {
          query(url, {});
          return reply(200, await metrics.metrics(), metrics.contentType);
        }
        case '/api':
        case '/api/':
          query(url, {});
          return reply(200, `${JSON.stringify(API_INDEX, null, 2)}\n`, 'application/json; charset=utf-8');
        case '/api/history':
          query(url, {});
          return reply(200, `${json(historyBody())}\n`, 'application/json; charset=utf-8');
        case '/api/snapshot': {
          const f = query(url, FILTER_PARAMS) as Filter;
          return reply(200, `${json(filterSnapshot(snapshot, f))}\n`, 'application/json; charset=utf-8');
        }
        case '/api/swaps': {
          const { limit = 50 } = query(url, LIMIT_PARAM) as { limit?: number };
          return reply(200, `${json({ log: swapsPath, counts: swapCounts, swaps: swaps.slice(-limit).reverse() })}\n`, 'application/json; charset=utf-8');
        }
        case '/api/latency': {
          const { limit = 60 } = query(url, LIMIT_PARAM) as { limit?: number };
          return reply(200, `${json({ periodMs: latencyMs, samples: samples.slice(-limit) })}\n`, 'application/json; charset=utf-8');
        }
        case '/api/status':
          query(url, {});
          return reply(200, `${json(statusBody())}\n`, 'application/json; charset=utf-8');
        case '/api/events': {
          const filter = query(url, FILTER_PARAMS) as Filter;
          res.writeHead(200, {
            'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', 'x-accel-buffering': 'no', ...SECURITY_HEADERS,
          });
          if (req.method === 'HEAD') return res.end();
          const c: Client = { res, filter };
          clients.add(c);
          req.on('close', () => drop(c));
          res.on('close', () => drop(c));
          res.on('error', () => drop(c));
          res.write('retry: 2000\n\n');
          send(c, snapshotMsg(filter));
          send(c, msg({ type: 'swaps', reset: true, counts: swapCounts, swaps: swaps.slice(-KEEP_SWAPS) }));
          send(c, msg({ type: 'latency', reset: true, periodMs: latencyMs, samples }));
          send(c, msg({ type: 'status', status: statusBody() }));
          send(c, msg({ type: 'history', history: historyBody() }));
          return;
        }
        default:
          return error(404, `no such path: ${url.pathname.slice(0, 100)}`);
      }
    } catch (err) {
      if (err instanceof QueryError) return error(400, err.message);
      warn(`serving ${url.pathname}`, err);
      if (!res.headersSent) return error(500, (err as Error).message);
      res.destroy();
    }
  };

  const server = createServer((req, res) => {
    res.on('error', () => {}); // a client gone mid-write: nothing to do
    handle(req, res).catch(() => res.destroy());
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10000;
  server.requestTimeout = 0; // SSE streams are long-lived requests
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
  } catch (err) {
    for (const t of timers) clearInterval(t);
    tracker.close();
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? 'the address is in use (another daemon?): pick another with --listen'
      : e.code === 'EADDRNOTAVAIL' ? 'no such local address' : e.message;
    throw new ListenError(`cannot listen on ${host}:${port}: ${why}`, { cause: err });
  }
  server.on('error', (err) => warn('server', err));
  const addr = server.address() as { address: string; port: number };
  const urlHost = isIP(addr.address) === 6 ? `[${addr.address}]` : addr.address;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${addr.port}/`, host: addr.address, port: addr.port, pinDir, loadedHere,
    close() {
      closed ??= (async () => {
        for (const t of timers) clearInterval(t);
        for (const c of [...clients]) { clients.delete(c); c.res.end(); c.res.destroy(); }
        await new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); });
        tracker.close();
      })();
      return closed;
    },
  };
}
