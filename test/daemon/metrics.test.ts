/** /metrics: valid Prometheus text format, bounded labels, numbers that match what the test made. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openTracker, status } from '../../src/index.js';
import { IN_CI } from '../helpers/env.js';
import { Epctl } from '../helpers/epctl.js';
import { fetchJson, fetchText, testDaemon, waitFor, type TestDaemon } from './daemon-env.js';

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Exposition { help: Map<string, string>; type: Map<string, string>; samples: Sample[] }

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\["\\\\n])*"';
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? (-?[0-9.]+(?:e[+-]?\\d+)?|NaN|\\+Inf|-Inf)(?: -?\\d+)?$`);
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** A strict reader of the text exposition format (version 0.0.4): throws on any line it does not accept. */
function parseExposition(text: string): Exposition {
  const out: Exposition = { help: new Map(), type: new Map(), samples: [] };
  const lines = text.split('\n');
  expect(lines[lines.length - 1], 'ends with a newline').to.equal('');
  for (const [i, line] of lines.entries()) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (m) {
      expect(m[2], `line ${i + 1}`).to.match(new RegExp(`^${NAME}$`));
      if (m[1] === 'HELP') out.help.set(m[2], m[3]);
      else {
        expect(TYPES.has(m[3]), `line ${i + 1}: type ${m[3]}`).to.equal(true);
        expect(out.type.has(m[2]), `line ${i + 1}: TYPE twice`).to.equal(false);
        out.type.set(m[2], m[3]);
      }
      continue;
    }
    expect(line.startsWith('#'), `line ${i + 1}: a comment other than HELP/TYPE: ${line}`).to.equal(false);
    m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`line ${i + 1} is not 'name{labels} value': ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
    const name = m[1];
    const family = out.type.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    expect(out.type.has(family), `line ${i + 1}: ${name} has no TYPE line before it`).to.equal(true);
    expect(out.help.has(family), `line ${i + 1}: ${name} has no HELP line`).to.equal(true);
    out.samples.push({ name, labels, value: Number(m[3].replace('+Inf', 'Infinity')) });
  }
  return out;
}

const pick = (e: Exposition, name: string, labels: Record<string, string> = {}) =>
  e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
const value = (e: Exposition, name: string, labels: Record<string, string> = {}) => {
  const s = pick(e, name, labels);
  expect(s, `${name} ${JSON.stringify(labels)}`).to.have.length(1);
  return s[0].value;
};

describe('daemon: Prometheus metrics', function () {
  this.timeout(30000);
  let env: TestDaemon;
  let p: Epctl;

  before(async function () {
    env = await testDaemon(this, 'metrics');
    p = await Epctl.spawn();
  });
  after(async () => {
    p?.kill();
    await env?.cleanup();
  });

  it('parses as the text format and counts the test process\'s registrations exactly', async () => {
    // 3 epoll instances, 25 registrations: enough to be among the top processes of any test host.
    const eps = [(await p.cmd('create'))[0], (await p.cmd('create'))[0], (await p.cmd('create'))[0]];
    let n = 0;
    for (let i = 0; i < 5; i++) {
      const [a, b] = await p.cmd('socketpair');
      const [efd] = await p.cmd('eventfd');
      for (const fd of [a, b]) for (const ep of eps.slice(0, 2)) { await p.cmd(`add ${ep} ${fd} 1 ${++n}`); }
      await p.cmd(`add ${eps[2]} ${efd} 1 ${++n}`);
    }
    expect(n).to.equal(25);
    appendFileSync(env.swapsLog, [
      { time: new Date().toISOString(), pid: 1, fd: 3, from: '127.0.0.2:80', to: '127.0.0.1:8080', result: 'swapped', moved: 2, source: 'bpf', micros: 500 },
      { time: new Date().toISOString(), pid: 1, fd: 4, from: '127.0.0.2:80', to: '127.0.0.1:8080', result: 'failed', errno: 1, error: 'not pollable', moved: 0, source: 'none', micros: 80 },
      { time: new Date().toISOString(), pid: 1, fd: 5, from: '127.0.0.2:80', to: '127.0.0.1:8080', result: 'swapped', moved: 1, source: 'bpf', micros: 450 },
    ].map((r) => `${JSON.stringify(r)}\n`).join(''));

    const scrape = async () => {
      const r = await fetchText(`${env.daemon.url}metrics`);
      expect(r.status).to.equal(200);
      expect(r.headers['content-type']).to.match(/^text\/plain; version=0\.0\.4/);
      return parseExposition(r.body);
    };
    const e = await waitFor('the daemon to see 25 registrations of the test process', async () => {
      const x = await scrape();
      const s = pick(x, 'epolltrack_process_registrations', { pid: String(p.pid) });
      return s.length === 1 && s[0].value === 25 && value(x, 'epolltrack_swaps_total', { result: 'swapped' }) === 2 && x;
    });
    expect(pick(e, 'epolltrack_process_registrations', { pid: String(p.pid) })[0].labels.comm).to.equal('epctl');
    expect(value(e, 'epolltrack_process_epoll_instances', { pid: String(p.pid) })).to.equal(3);

    // Bounded: at most 20 processes + "other", and they add up to the totals.
    const per = pick(e, 'epolltrack_process_registrations');
    expect(per.length).to.be.at.most(21);
    expect(per.reduce((s, x) => s + x.value, 0)).to.equal(value(e, 'epolltrack_registrations'));
    expect(pick(e, 'epolltrack_process_epoll_instances').reduce((s, x) => s + x.value, 0)).to.equal(value(e, 'epolltrack_epoll_instances'));
    expect(value(e, 'epolltrack_registrations')).to.be.at.least(25);

    // Maps (live and stale entries), kernel counters, hook mode, swaps, lookups and latency.
    for (const map of ['regs', 'epolls']) {
      const live = value(e, 'epolltrack_map_entries', { map, state: 'live' });
      const stale = value(e, 'epolltrack_map_entries', { map, state: 'stale' });
      expect(live + stale).to.be.at.most(value(e, 'epolltrack_map_capacity', { map }));
    }
    const mode = status({ pinDir: env.pinDir }).mode!;
    // The hooks saw these 25 adds (tracepoint, fentry, kprobe): live entries, confirmed by the kernel now.
    if (['tracepoint', 'fentry', 'kprobe'].includes(mode)) {
      expect(value(e, 'epolltrack_map_entries', { map: 'regs', state: 'live' })).to.be.at.least(25);
      expect(value(e, 'epolltrack_kernel_events_total', { counter: 'add' })).to.be.at.least(25);
    }
    for (const c of ['regs_full', 'epolls_full', 'add', 'mod', 'del', 'remove', 'uncertain']) {
      expect(pick(e, 'epolltrack_kernel_events_total', { counter: c }), c).to.have.length(1);
    }
    // A generation number is not a count: it has a gauge of its own.
    expect(pick(e, 'epolltrack_kernel_events_total', { counter: 'gen' })).to.have.length(0);
    expect(e.type.get('epolltrack_resync_generation')).to.equal('gauge');
    expect(value(e, 'epolltrack_resync_generation')).to.be.at.least(1);
    // Label values are snake_case.
    for (const smp of e.samples.filter((x) => x.name.startsWith('epolltrack_') && !x.name.startsWith('epolltrack_process_') && x.name !== 'epolltrack_build_info')) {
      for (const [k, v] of Object.entries(smp.labels)) if (k !== 'le') expect(v, `${smp.name}{${k}}`).to.match(/^[a-z0-9_.]+$/);
    }
    const pkg = JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8')) as { version: string };
    expect(value(e, 'epolltrack_build_info', { version: pkg.version, mode })).to.equal(1);
    expect(pick(e, 'epolltrack_build_info')).to.have.length(1);
    // prom-client's default process metrics, on the daemon's own registry.
    expect(e.type.get('process_cpu_seconds_total')).to.equal('counter');
    expect(value(e, 'process_resident_memory_bytes')).to.be.above(1e6);
    expect(value(e, 'process_open_fds')).to.be.above(3);
    expect(value(e, 'epolltrack_hook_mode', { mode })).to.equal(1);
    expect(pick(e, 'epolltrack_hook_mode').filter((s) => s.value === 1)).to.have.length(1);
    expect(value(e, 'epolltrack_swaps_total', { result: 'failed' })).to.equal(1);
    expect(value(e, 'epolltrack_swap_registrations_moved_total')).to.equal(3);
    for (const reason of ['truncated', 'no_location', 'unverified_location', 'resynced']) {
      expect(pick(e, 'epolltrack_lookup_fallbacks_total', { reason })).to.have.length(1);
    }
    expect(e.type.get('epolltrack_lookup_duration_seconds')).to.equal('histogram');
    const lat = await waitFor('a latency sample', async () => {
      const x = await scrape();
      return value(x, 'epolltrack_lookup_duration_seconds_count', { method: 'fdinfo' }) >= 1 && x;
    });
    expect(value(lat, 'epolltrack_lookups_total', { source: 'bpf' }) + value(lat, 'epolltrack_lookups_total', { source: 'fdinfo' })).to.be.at.least(2);
    const inf = value(lat, 'epolltrack_lookup_duration_seconds_bucket', { method: 'bpf', le: '+Inf' });
    expect(inf).to.equal(value(lat, 'epolltrack_lookup_duration_seconds_count', { method: 'bpf' }));

    // The JSON API agrees: the test process, its instances and its registrations.
    const snap = await fetchJson<{ processes: { pid: number; registrations: number; instances: { registrations: { data: string }[] }[] }[] }>(
      `${env.daemon.url}api/snapshot?pid=${p.pid}`);
    expect(snap.status).to.equal(200);
    expect(snap.json.processes).to.have.length(1);
    expect(snap.json.processes[0].registrations).to.equal(25);
    expect(snap.json.processes[0].instances.map((i) => i.registrations.length).sort((a, b) => a - b)).to.deep.equal([5, 10, 10]);
    expect(snap.body).to.not.match(/ffff[0-9a-f]{12}/);
  });

  it('passes `promtool check metrics`', async function () {
    if (!existsSync('/usr/bin/promtool')) {
      if (!IN_CI) this.skip();
      throw new Error('promtool is missing: bash scripts/setup.sh installs Debian\'s prometheus package');
    }
    await waitFor('a latency sample (histogram filled)', async () => /epolltrack_lookup_duration_seconds_count\{method="bpf"\} [1-9]/.test((await fetchText(`${env.daemon.url}metrics`)).body));
    const body = (await fetchText(`${env.daemon.url}metrics`)).body;
    const r = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim(), 'promtool findings').to.equal('');
    expect(r.status).to.equal(0);
  });

  it('counts map entries the kernel no longer confirms as stale', async function () {
    // An entry whose object is gone in a way the hooks cannot see: the process exits
    // (its files are released without a close() syscall). Tracepoint mode remembers the
    // registration (regs); lazy mode remembers where the epoll was (epolls), learned by a
    // lookup. fentry/kprobe see the removal itself: nothing goes stale there.
    const mode = status({ pinDir: env.pinDir }).mode!;
    if (mode === 'fentry' || mode === 'kprobe') this.skip();
    const map = mode === 'tracepoint' ? 'regs' : 'epolls';
    const tracker = await openTracker({ pinDir: env.pinDir });
    const q = await Epctl.spawn();
    try {
      const [ep] = await q.cmd('create');
      const [efd] = await q.cmd('eventfd');
      await q.cmd(`add ${ep} ${efd} 1 7`);
      expect(tracker.membershipsOf(q.pid, efd).map((m) => m.epfd)).to.deep.equal([ep]);
    } finally {
      q.kill();
      tracker.close();
    }
    const stale = await waitFor(`a stale ${map} entry`, async () => {
      const x = parseExposition((await fetchText(`${env.daemon.url}metrics`)).body);
      const v = value(x, 'epolltrack_map_entries', { map, state: 'stale' });
      return v >= 1 && v;
    });
    expect(stale).to.be.at.least(1);
  });
});
