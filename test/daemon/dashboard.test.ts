/**
 * The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven
 * by playwright-core): it shows a process's registrations, follows adds and
 * removes without a reload, filters, and lists a real supervisor swap.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { parseCgroup } from '../../src/daemon/collect.js';
import { Epctl } from '../helpers/epctl.js';
import { IN_CI } from '../helpers/env.js';
import { pongServer, supervisedSwap, testDaemon, waitFor, type TestDaemon } from './daemon-env.js';

const CHROMIUM = process.env.EPOLLTRACK_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

describe('daemon: dashboard in Chromium', function () {
  this.timeout(60000);
  let env: TestDaemon;
  let p: Epctl;
  let ctx: BrowserContext;
  let page: Page;
  let profile: string;
  let pong: Awaited<ReturnType<typeof pongServer>>;
  let ep = -1;
  const errors: string[] = [];

  /** Rows of the Epctl process shown on the page. */
  const rows = () => page.locator(`section.proc[data-pid="${p.pid}"] tr.reg`);

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      if (!IN_CI) this.skip();
      throw new Error(`${CHROMIUM} is missing: bash scripts/setup.sh installs Debian's chromium`);
    }
    env = await testDaemon(this, 'dashboard');
    pong = await pongServer();
    p = await Epctl.spawn();
    profile = mkdtempSync(join(tmpdir(), 'ept-chromium-'));
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, viewport: { width: 1440, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    page = ctx.pages()[0] ?? await ctx.newPage();
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    // Only loopback: anything else the page asks for fails the test.
    await page.route('**/*', (route) => {
      const u = new URL(route.request().url());
      if (u.hostname === '127.0.0.1') return route.continue();
      errors.push(`request outside loopback: ${u.href}`);
      return route.abort();
    });
  });

  after(async () => {
    await ctx?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    p?.kill();
    pong?.server.close();
    await env?.cleanup();
  });

  it('shows every registration of a process: target, events decoded, data', async () => {
    [ep] = await p.cmd('create');
    const [ep2] = await p.cmd('create');
    const [a] = await p.cmd('socketpair');
    const [r] = await p.cmd('pipe');
    const [efd] = await p.cmd('eventfd');
    const [s] = await p.cmd('socket');
    await p.cmd(`connect ${s} 127.0.0.1 ${pong.port}`);
    await p.cmd(`add ${ep} ${a} 2005 48879`); // EPOLLIN|EPOLLOUT|EPOLLRDHUP, data 0xbeef (events hex, data decimal)
    await p.cmd(`add ${ep} ${r} 1 2`);
    await p.cmd(`add ${ep} ${efd} 80000001 3`); // EPOLLIN|EPOLLET
    await p.cmd(`add ${ep} ${s} 5 255`);
    await p.cmd(`add ${ep2} ${ep} 1 5`); // an epoll in an epoll

    await page.goto(env.daemon.url);
    await waitFor('5 rows of the Epctl process', async () => (await rows().count()) === 5);
    const proc = page.locator(`section.proc[data-pid="${p.pid}"]`);
    expect(await proc.locator('.comm').textContent()).to.equal('epctl');
    expect(await proc.locator('.inst').count()).to.equal(2);
    const tcp = new RegExp(`TCP 127\\.0\\.0\\.1:\\d+ → 127\\.0\\.0\\.1:${pong.port} ESTABLISHED`);
    // socket tables are re-read within a second of a new socket turning up
    const text = await waitFor('the TCP socket described', async () => {
      const t = ((await proc.textContent()) ?? '').replace(/\u200b/g, ''); // events may break after each |
      return tcp.test(t) && t;
    });
    expect(text).to.include('unix stream (unnamed)');
    expect(text).to.match(/pipe \[\d+\]/);
    expect(text).to.include('EPOLLIN|EPOLLOUT|EPOLLERR|EPOLLHUP|EPOLLRDHUP'); // the live mask: ADD arms ERR|HUP
    expect(text).to.include('EPOLLIN|EPOLLERR|EPOLLHUP|EPOLLET');
    expect(text).to.include('0xbeef');
    const kinds = await rows().evaluateAll((trs) => trs.map((t) => (t as HTMLElement).dataset.kind));
    expect(kinds.sort()).to.deep.equal(['epoll', 'eventfd', 'pipe', 'tcp', 'unix']);
    expect(await page.content()).to.not.match(/ffff[0-9a-f]{12}/); // no kernel addresses
    await waitFor('the live indicator', async () => (await page.locator('#live').textContent())?.includes('live'));
  });

  it('follows adds and removes live, without reloading the page', async () => {
    await page.evaluate(() => { (window as unknown as { marker: number }).marker = 42; });
    const [b] = await p.cmd('eventfd');
    await p.cmd(`add ${ep} ${b} 4 2748`); // data 0xabc
    await waitFor('the new row', async () => (await rows().count()) === 6);
    expect(await page.locator(`section.proc[data-pid="${p.pid}"] tr.reg[data-tfd="${b}"]`).textContent()).to.include('0xabc');
    await p.cmd(`del ${ep} ${b}`);
    await waitFor('the row gone', async () => (await rows().count()) === 5);
    await p.cmd(`add ${ep} ${b} 1 2749`);
    await waitFor('the row back', async () => (await rows().count()) === 6);
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).to.equal(42);
    expect(await page.evaluate(() => performance.getEntriesByType('navigation').length)).to.equal(1);
  });

  it('filters by pid, command name and cgroup', async () => {
    const procs = page.locator('section.proc');
    await page.fill('#filter-pid', String(p.pid));
    await waitFor('one process', async () => (await procs.count()) === 1);
    expect(await procs.first().getAttribute('data-pid')).to.equal(String(p.pid));
    await page.fill('#filter-pid', '');
    await page.fill('#filter-comm', 'epctl');
    await waitFor('only epctl processes', async () => {
      const comms = await procs.evaluateAll((s) => s.map((e) => (e as HTMLElement).dataset.comm));
      return comms.length >= 1 && comms.every((c) => c === 'epctl') && comms.length;
    });
    await page.fill('#filter-comm', 'no-such-command-here');
    await waitFor('nothing matches', async () => (await page.locator('#none').count()) === 1);
    await page.fill('#filter-comm', '');
    const { cgroup } = parseCgroup(readFileSync(`/proc/${p.pid}/cgroup`, 'utf8'));
    await page.fill('#filter-cgroup', cgroup);
    await waitFor('epctl in its cgroup', async () => (await rows().count()) === 6);
    await page.fill('#filter-cgroup', '/no/such/cgroup');
    await waitFor('no process in that cgroup', async () => (await procs.count()) === 0);
    await page.fill('#filter-cgroup', '');
  });

  it('lists a real supervisor swap and the lookup latency; screenshot', async () => {
    const r = await supervisedSwap(env.pinDir, env.swapsLog, pong.port);
    expect(r.code, r.err).to.equal(0);
    const swaps = page.locator('#swaps li.swap');
    await waitFor('the swap in the panel', async () => (await swaps.count()) >= 1);
    expect(await swaps.first().textContent()).to.match(new RegExp(`127\\.0\\.0\\.2:80\\s*→ 127\\.0\\.0\\.1:${pong.port}`));
    await waitFor('a latency sample', async () => (await page.locator('#latency .big').count()) === 1);
    await waitFor('a latency chart', async () => (await page.locator('#latency svg.chart').count()) === 1, 10000);
    expect(await page.locator('#tracker').textContent()).to.match(/(tracepoint|fentry|kprobe|lazy) mode/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.setViewportSize({ width: 1280, height: 760 }); // a laptop screen
    await page.fill('#filter-comm', 'epctl');
    await page.waitForTimeout(3600); // let the highlight of new rows fade
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png') });
    await page.fill('#filter-comm', '');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-host.png') });
    expect(errors, errors.join('\n')).to.deep.equal([]);
  });
});
