/**
 * The daemon against rude clients (streams dropped mid-way, bad query
 * parameters, garbage requests) and through the CLI as a user starts it.
 */
import { expect } from 'chai';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { unload } from '../../src/index.js';
import { parseListen } from '../../src/daemon/server.js';
import { Epctl } from '../helpers/epctl.js';
import { testPinDir } from '../helpers/env.js';
import { CLI, fetchJson, fetchText, freePort, testDaemon, waitFor, type TestDaemon } from './daemon-env.js';

interface StatusJson { daemon: { clients: number; loadedHere: boolean; pid: number }; pinDir: string; mode: string; counters: Record<string, unknown>; fallbacks: Record<string, unknown> }

/** Open the event stream; resolves with the response once headers are in. */
function openStream(url: string): Promise<{ res: IncomingMessage; destroy: () => void }> {
  return new Promise((resolve, reject) => {
    const req = get(url, (res) => resolve({ res, destroy: () => req.destroy() }));
    req.on('error', (err) => { if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err); });
  });
}

describe('daemon: rude clients and the CLI', function () {
  this.timeout(30000);
  let env: TestDaemon;
  let p: Epctl;

  before(async function () {
    env = await testDaemon(this, 'robust');
    p = await Epctl.spawn();
  });
  after(async () => {
    p?.kill();
    await env?.cleanup();
  });

  const clients = async () => (await fetchJson<StatusJson>(`${env.daemon.url}api/status`)).json.daemon.clients;

  it('streams server-sent events and pushes a change', async () => {
    const { res, destroy } = await openStream(`${env.daemon.url}api/events?pid=${p.pid}`);
    expect(res.statusCode).to.equal(200);
    expect(res.headers['content-type']).to.match(/^text\/event-stream/);
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => { buf += d; });
    await waitFor('the first snapshot', () => buf.includes('"type":"snapshot"'));
    const [ep] = await p.cmd('create');
    const [efd] = await p.cmd('eventfd');
    await p.cmd(`add ${ep} ${efd} 1 4660`);
    const msgs = await waitFor('a snapshot with the new registration', () => {
      const frames = buf.split('\n\n').filter((f) => f.startsWith('data: '));
      const snaps = frames.map((f) => JSON.parse(f.slice(6)) as { type: string; snapshot?: { processes: { pid: number; registrations: number }[] } })
        .filter((m) => m.type === 'snapshot');
      const last = snaps[snaps.length - 1]?.snapshot;
      return last && last.processes.length === 1 && last.processes[0].pid === p.pid && last.processes[0].registrations === 1 && frames;
    });
    for (const f of msgs) expect(f).to.match(/^data: \{.*\}$/s);
    expect(buf).to.include('"data":"0x1234"');
    destroy();
    await waitFor('the client removed', async () => (await clients()) === 0);
  });

  it('survives clients that drop the stream mid-way', async () => {
    const streams = await Promise.all(Array.from({ length: 12 }, () => openStream(`${env.daemon.url}api/events`)));
    expect(await clients()).to.equal(12);
    // half after the first bytes, half while it is being written to
    await Promise.all(streams.slice(0, 6).map(({ res, destroy }) => new Promise<void>((r) => res.once('data', () => { destroy(); r(); }))));
    for (const s of streams.slice(6)) { s.res.pause(); s.destroy(); }
    // raw sockets that hang up before or right after the request
    for (let i = 0; i < 6; i++) {
      const sock = connect(env.daemon.port, '127.0.0.1');
      sock.on('error', () => {});
      await new Promise<void>((r) => sock.once('connect', () => r()));
      if (i % 2) sock.write(`GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      sock.destroy();
    }
    const [ep] = await p.cmd('create'); // something to push to whoever is left
    const [efd] = await p.cmd('eventfd');
    await p.cmd(`add ${ep} ${efd} 1 1`);
    await waitFor('every stream client removed', async () => (await clients()) === 0);
    const st = await fetchJson<StatusJson>(`${env.daemon.url}api/status`);
    expect(st.status).to.equal(200);
    expect(st.json.pinDir).to.equal(env.pinDir);
    // Numbers as numbers, as in `status --json`: counters and fallbacks alike.
    expect(Object.keys(st.json.counters)).to.include.members(['add', 'del', 'regsFull', 'epollsFull']);
    for (const [k, v] of Object.entries({ ...st.json.counters, ...st.json.fallbacks })) expect(v, k).to.be.a('number');
  });

  it('answers bad query parameters and requests with a 400 (one JSON line), then still serves', async () => {
    const bad = [
      'api/snapshot?pid=abc', 'api/snapshot?pid=-1', 'api/snapshot?pid=0', 'api/snapshot?pid=99999999999', 'api/snapshot?pid=1&pid=2',
      'api/snapshot?nope=1', `api/snapshot?comm=${'x'.repeat(300)}`, 'api/snapshot?cgroup=%00', 'api/events?pid=1e3', 'api/events?bogus',
      'api/swaps?limit=0', 'api/swaps?limit=100000', 'api/swaps?limit=ten', 'api/latency?limit=-5', 'api/status?x=1', 'metrics?debug=1',
      'api/snapshot?q=port:99999', 'api/snapshot?q=addr:nonsense', 'api/snapshot?q=kind:banana', 'api/events?q=epoll:1', 'api/?x=1', 'api/history?y=2',
    ];
    for (const path of bad) {
      const r = await fetchText(`${env.daemon.url}${path}`);
      expect(r.status, path).to.equal(400);
      expect(r.headers['content-type'], path).to.match(/^application\/json/);
      expect(r.body.trim().split('\n'), path).to.have.length(1);
      expect(JSON.parse(r.body), path).to.have.all.keys('error');
    }
    expect((await fetchText(`${env.daemon.url}no/such/thing`)).status).to.equal(404);
    expect((await fetchText(`${env.daemon.url}api/status`, { host: 'attacker.example' })).status).to.equal(403);
    // garbage on the socket
    await new Promise<void>((r) => {
      const sock = connect(env.daemon.port, '127.0.0.1', () => sock.end('\x16\x03\x01 not http at all\r\n\r\n'));
      sock.on('error', () => r());
      sock.on('close', () => r());
      sock.resume();
    });
    expect((await fetchJson(`${env.daemon.url}api/swaps?limit=5`)).status).to.equal(200);
    expect((await fetchJson(`${env.daemon.url}api/latency?limit=1`)).status).to.equal(200);
    const st = await fetchJson<StatusJson>(`${env.daemon.url}api/status`);
    expect(st.status).to.equal(200);
    expect(st.json.daemon.clients).to.equal(0);
  });

  it('answers /api/ with an index of the API, every listed path served', async () => {
    for (const path of ['api/', 'api']) {
      const r = await fetchJson<{ endpoints: { path: string; answer: string }[] }>(`${env.daemon.url}${path}`);
      expect(r.status, path).to.equal(200);
      expect(r.json.endpoints.map((e) => e.path)).to.include.members(['/api/snapshot', '/api/events', '/api/swaps', '/api/latency', '/api/history', '/api/status', '/metrics']);
    }
    const idx = await fetchJson<{ endpoints: { path: string }[] }>(`${env.daemon.url}api/`);
    for (const { path } of idx.json.endpoints.filter((e) => e.path !== '/api/events')) {
      expect((await fetchText(`${env.daemon.url}${path.slice(1)}`)).status, path).to.equal(200);
    }
    const h = await fetchJson<{ periodMs: number; series: Record<string, number[]> }>(`${env.daemon.url}api/history`);
    expect(h.json.periodMs).to.be.above(0);
    expect(h.json.series).to.be.an('object');
  });

  it('selects registrations with search words in /api/snapshot?q=', async () => {
    const [ep] = await p.cmd('create');
    const [efd] = await p.cmd('eventfd');
    const [r] = await p.cmd('pipe');
    await p.cmd(`add ${ep} ${efd} 1 1`);
    await p.cmd(`add ${ep} ${r} 1 2`);
    type Snap = { processes: { pid: number; registrations: number; instances: { epfd: number; registrations: { fd: number; target: { kind: string } }[] }[] }[] };
    const get = async (q: string) => (await fetchJson<Snap>(`${env.daemon.url}api/snapshot?pid=${p.pid}&q=${encodeURIComponent(q)}`)).json;
    const all = await waitFor('the pipe registration', async () => {
      const s = await get('kind:pipe');
      return s.processes.length === 1 && s;
    });
    const kinds = all.processes[0].instances.flatMap((i) => i.registrations.map((x) => x.target.kind));
    expect(kinds.length).to.be.at.least(1);
    expect(kinds.every((k) => k === 'pipe')).to.equal(true);
    const byEpoll = await get(`epoll:${p.pid}:${ep}`);
    expect(byEpoll.processes[0].instances.map((i) => i.epfd)).to.deep.equal([ep]);
    expect(byEpoll.processes[0].registrations).to.equal(2);
    expect((await get(':1')).processes).to.deep.equal([]); // no socket of epctl's on port 1
  });

  it('serves its own assets: no CDN, nothing outside loopback', async () => {
    const page = await fetchText(env.daemon.url);
    expect(page.status).to.equal(200);
    expect(page.headers['content-security-policy']).to.include("default-src 'self'");
    const app = await fetchText(`${env.daemon.url}app.js`);
    const lib = await fetchText(`${env.daemon.url}assets/htm-preact.mjs`);
    expect(app.status).to.equal(200);
    expect(lib.status).to.equal(200);
    expect(app.body).to.include("from '/assets/htm-preact.mjs'");
    expect(lib.body).to.match(/export\s*\{/);
    for (const b of [page.body, app.body]) expect(b).to.not.match(/(src|href)=["']?(https?:)?\/\//);
    expect(app.body).to.not.match(/https?:\/\//);
  });

  it('parses --listen', () => {
    expect(parseListen('127.0.0.1:9477')).to.deep.equal({ host: '127.0.0.1', port: 9477 });
    expect(parseListen('[::1]:80')).to.deep.equal({ host: '::1', port: 80 });
    expect(parseListen('8080')).to.deep.equal({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('localhost:0')).to.deep.equal({ host: 'localhost', port: 0 });
    for (const bad of ['', 'x', '1.2.3.4', '1.2.3.4:70000', '[nope]:1', 'a b:1']) expect(() => parseListen(bad), bad).to.throw(/--listen/);
  });

  it('runs through the CLI: loads the tracker, serves, stops on SIGTERM', async () => {
    const pinDir = testPinDir('daemon-cli');
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'daemon', '--listen', `127.0.0.1:${port}`, '--pin-dir', pinDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    try {
      await waitFor('the daemon to start', () => out.includes('dashboard at'), 15000).catch((e: Error) => { throw new Error(`${e.message}\n${err}`); });
      expect(out).to.include(`http://127.0.0.1:${port}/`);
      const st = await fetchJson<StatusJson>(`http://127.0.0.1:${port}/api/status`);
      expect(st.json.pinDir).to.equal(pinDir);
      expect(st.json.daemon.loadedHere).to.equal(true);
      expect(st.json.daemon.pid).to.equal(child.pid);
      const snap = await fetchJson<{ processes: { pid: number }[] }>(`http://127.0.0.1:${port}/api/snapshot`);
      expect(snap.json.processes.length).to.be.at.least(1);
      expect((await fetchText(`http://127.0.0.1:${port}/metrics`)).body).to.include('epolltrack_registrations ');
      process.kill(child.pid!, 'SIGTERM');
      expect(await exited).to.equal(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
      await exited;
      if (existsSync(pinDir)) unload({ pinDir });
    }
    const usage = spawnSync(process.execPath, [CLI, 'daemon', '--listen', 'nonsense'], { encoding: 'utf8' });
    expect(usage.status).to.equal(2);
    expect(usage.stderr).to.match(/--listen takes HOST:PORT/);
    const help = spawnSync(process.execPath, [CLI, 'daemon', '--help'], { encoding: 'utf8' });
    expect(help.stdout).to.include('usage: epolltrack daemon');
  });
});
