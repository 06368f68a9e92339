/**
 * The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven
 * by playwright-core): it shows a process's registrations, follows adds and
 * removes without a reload, filters, searches by port/address/kind, sorts,
 * keeps the view in a shareable URL, shows health without scrolling, a history
 * per process, and lists real supervisor swaps with honest colours and totals.
 */
import { expect } from 'chai';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

  it('searches by port, address and kind (the words of ls), and keeps the view in the URL', async () => {
    const procs = page.locator('section.proc');
    const entries = await page.evaluate(() => history.length);
    // Who watches the pong server's port: epctl's connected socket, and this test process (the listener, the accepted socket).
    await page.fill('#filter-q', `:${pong.port}`);
    await waitFor('epctl and the test process only', async () => {
      const pids = await procs.evaluateAll((s) => s.map((e) => Number((e as HTMLElement).dataset.pid)));
      return pids.includes(p.pid) && pids.includes(process.pid) && pids.length === 2;
    });
    expect(await rows().count(), (await rows().allTextContents()).join('\n')).to.equal(1);
    expect(await rows().first().getAttribute('data-kind')).to.equal('tcp');
    expect(await page.locator(`section.proc[data-pid="${p.pid}"] .n`).textContent()).to.match(/1 of 6 registrations/);
    expect(new URL(page.url()).searchParams.get('q')).to.equal(`:${pong.port}`);

    await page.fill('#filter-q', `addr:127.0.0.1 kind:tcp pid:${p.pid}`);
    await waitFor('one TCP row of epctl', async () => (await procs.count()) === 1 && (await rows().count()) === 1);
    await page.fill('#filter-q', 'kind:eventfd');
    await waitFor('the eventfd rows of epctl', async () => {
      const kinds = await rows().evaluateAll((t) => t.map((e) => (e as HTMLElement).dataset.kind));
      return kinds.length === 2 && kinds.every((k) => k === 'eventfd');
    });
    await page.fill('#filter-q', `epoll:${p.pid}:${ep}`);
    await waitFor('the 5 rows of that epoll instance', async () => (await rows().count()) === 5 && (await page.locator(`section.proc[data-pid="${p.pid}"] .inst`).count()) === 1);
    await page.fill('#filter-q', 'port:banana');
    await waitFor('a one-line search error', async () => /port.*got 'banana'/.test((await page.locator('#search-error').textContent()) ?? ''));
    // the daemon's 400 for that word is what the page showed: Chromium logs the response, nothing else may be logged
    expect(errors.every((e) => /status of 400/.test(e)), errors.join('\n')).to.equal(true);
    errors.splice(0);

    // The URL carries the view: open it in a new tab, same filters, same rows.
    await page.fill('#filter-q', `:${pong.port}`);
    await page.fill('#filter-comm', 'epctl');
    await page.selectOption('#sort', 'name');
    await waitFor('the URL updated', () => /sort=name/.test(page.url()) && /comm=epctl/.test(page.url()));
    expect(await page.evaluate(() => history.length)).to.equal(entries); // replaceState: no history entry per keystroke
    const shared = page.url();
    const tab = await ctx.newPage();
    try {
      await tab.goto(shared);
      await waitFor('the shared view', async () => (await tab.locator(`section.proc[data-pid="${p.pid}"] tr.reg`).count()) === 1);
      expect(await tab.inputValue('#filter-q')).to.equal(`:${pong.port}`);
      expect(await tab.inputValue('#filter-comm')).to.equal('epctl');
      expect(await tab.inputValue('#sort')).to.equal('name');
      expect(await tab.locator('section.proc').count()).to.equal(1);
      expect(await tab.locator('#notice').count()).to.equal(0);
    } finally {
      await tab.close();
    }
    await page.fill('#filter-q', '');
    await page.fill('#filter-comm', '');
    await page.selectOption('#sort', 'regs');
    await waitFor('the URL cleared', () => new URL(page.url()).search === '');
  });

  it('ignores an unknown query parameter with a notice, not a 400', async () => {
    const tab = await ctx.newPage();
    try {
      const res = await tab.goto(`${env.daemon.url}?comm=epctl&bogus=1&sort=sideways`);
      expect(res?.status()).to.equal(200);
      await waitFor('the notice', async () => (await tab.locator('#notice').count()) === 1);
      const notice = await tab.locator('#notice').textContent();
      expect(notice).to.include('bogus').and.to.include('sort=sideways');
      expect(await tab.inputValue('#filter-comm')).to.equal('epctl'); // the known one still applies
      await waitFor('only epctl', async () => {
        const comms = await tab.locator('section.proc').evaluateAll((s) => s.map((e) => (e as HTMLElement).dataset.comm));
        return comms.length >= 1 && comms.every((c) => c === 'epctl');
      });
      expect(new URL(tab.url()).searchParams.has('bogus')).to.equal(false); // the shared URL drops it
    } finally {
      await tab.close();
    }
  });

  it('sorts by registrations, name or pid', async () => {
    const order = async () => page.locator('section.proc').evaluateAll((s) => s.map((e) => ({
      pid: Number((e as HTMLElement).dataset.pid), comm: (e as HTMLElement).dataset.comm ?? '',
      n: Number(e.querySelector('.nregs')?.textContent ?? 'NaN'),
    })));
    const sorted = <T>(xs: T[], cmp: (a: T, b: T) => number) => xs.every((x, i) => i === 0 || cmp(xs[i - 1], x) <= 0);
    await waitFor('by registrations, most first', async () => {
      const o = await order();
      return o.length >= 2 && sorted(o, (a, b) => b.n - a.n || a.pid - b.pid);
    });
    await page.selectOption('#sort', 'pid');
    await waitFor('by pid', async () => sorted(await order(), (a, b) => a.pid - b.pid));
    await page.selectOption('#sort', 'name');
    await waitFor('by name', async () => sorted(await order(), (a, b) => a.comm.localeCompare(b.comm) || a.pid - b.pid));
    await page.selectOption('#sort', 'regs');
  });

  it('draws a history of registration counts per process', async () => {
    const spark = page.locator(`section.proc[data-pid="${p.pid}"] svg.spark`);
    const [efd] = await p.cmd('eventfd');
    await p.cmd(`add ${ep} ${efd} 1 99`); // 7 now
    const pts = await waitFor('a sparkline ending at 7 after 6', async () => {
      const v = (await spark.getAttribute('data-points'))?.split(',').map(Number) ?? [];
      return v.length >= 2 && v[v.length - 1] === 7 && v.includes(6) && v;
    }, 15000);
    expect(Math.max(...pts)).to.equal(7);
    expect(await spark.locator('polyline').count()).to.equal(1);
    await p.cmd(`del ${ep} ${efd}`);
    await waitFor('back to 6', async () => (await spark.getAttribute('data-points'))?.endsWith(',6'), 15000);
  });

  it('shows tracker health without scrolling: map fill (live, stale), fallbacks, mode cost', async () => {
    await page.setViewportSize({ width: 1280, height: 760 }); // a laptop screen
    await page.evaluate(() => window.scrollTo(0, 0));
    const health = page.locator('#health');
    await waitFor('the health panel', async () => /regs map/.test((await health.textContent()) ?? ''));
    const box = (await health.boundingBox())!;
    expect(box.y).to.be.at.least(0);
    expect(box.y + box.height).to.be.at.most(760);
    const text = (await health.textContent()) ?? '';
    expect(text).to.match(/regs map\d+ live · \d+ stale \/ \d+/);
    expect(text).to.match(/epolls map\d+ live · \d+ stale \/ \d+/);
    expect(text).to.match(/fallbacks/);
    expect(text).to.match(/hook cost(every syscall on the host|epoll calls only|no hooks)/);
    // a narrow window: the panels move above the list, health still in view
    await page.setViewportSize({ width: 900, height: 700 });
    const narrow = (await health.boundingBox())!;
    expect(narrow.y + narrow.height).to.be.at.most(700);
    const first = (await page.locator('section.proc').first().boundingBox())!;
    expect(first.y).to.be.above(narrow.y);
    await page.setViewportSize({ width: 1440, height: 900 });
  });

  it('lists a real supervisor swap and the lookup latency; screenshot', async () => {
    const r = await supervisedSwap(env.pinDir, env.swapsLog, pong.port);
    expect(r.code, r.err).to.equal(0);
    const swaps = page.locator(`#swaps li.swap:has-text("127.0.0.1:${pong.port}")`);
    await waitFor('the swap in the panel', async () => (await swaps.count()) >= 1);
    expect(await swaps.first().textContent()).to.match(new RegExp(`127\\.0\\.0\\.2:80\\s*→ 127\\.0\\.0\\.1:${pong.port}`));
    expect(await swaps.first().getAttribute('data-result')).to.equal('moved'); // epclient registered its socket before connect
    await waitFor('a latency sample', async () => (await page.locator('#latency .big').count()) === 1);
    await waitFor('a latency chart', async () => (await page.locator('#latency svg.chart').count()) === 1, 10000);
    expect(await page.locator('#health').textContent()).to.match(/(tracepoint|fentry|kprobe|lazy) mode/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.setViewportSize({ width: 1280, height: 760 }); // a laptop screen
    await page.fill('#filter-comm', 'epctl');
    await page.waitForTimeout(3600); // let the highlight of new rows fade
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png') });
    await page.fill('#filter-comm', '');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-host.png') });
    expect(errors, errors.join('\n')).to.deep.equal([]);
  });

  it('colours swaps honestly: failures red, 0 moved not green; totals from the whole log', async () => {
    const rec = (fd: number, result: 'swapped' | 'failed', moved: number, extra = {}) => ({
      time: new Date().toISOString(), pid: 4242, fd, from: '127.0.0.2:80', to: '127.0.0.1:9', result, moved, source: 'bpf', micros: 300, ...extra,
    });
    const lines = [rec(3, 'swapped', 2), rec(4, 'swapped', 0), rec(5, 'failed', 0, { errno: 1, error: 'replacement not pollable', source: 'none' })];
    for (let i = 0; i < 20; i++) lines.push(rec(10 + i, 'swapped', 1)); // more than the panel lists
    type Counts = Record<'swapped' | 'failed' | 'unmoved' | 'moved' | 'continued', number>;
    const counts = async () => ((await (await page.request.get(`${env.daemon.url}api/swaps?limit=1`)).json()) as { counts: Counts }).counts;
    const b = await counts(); // the real swap of the test before
    appendFileSync(env.swapsLog, lines.map((r) => `${JSON.stringify(r)}\n`).join(''));
    const item = (fd: number) => page.locator(`#swaps li.swap:has-text("fd ${fd}")`);
    await waitFor('the API totals', async () => (await counts()).swapped === b.swapped + 22);
    expect(await counts()).to.deep.equal({ ...b, swapped: b.swapped + 22, failed: b.failed + 1, unmoved: b.unmoved + 1, moved: b.moved + 22 });
    // swaps that moved registrations, swaps that moved none, failures: over every record, not only those listed
    const want = new RegExp(`${b.swapped - b.unmoved + 21}\\s*swaps? moved registrations\\s*·\\s*${b.unmoved + 1}\\s*moved none\\s*·\\s*${b.failed + 1}\\s*failed`);
    await waitFor('the totals in the panel', async () => want.test((await page.locator('#swaps h2').textContent()) ?? ''));
    expect(await page.locator('#swaps li.swap').count()).to.equal(8);
    // The newest 8 are listed; 0-moved and failed ones sit further back: append one of each again to see them.
    appendFileSync(env.swapsLog, [rec(77, 'swapped', 0), rec(78, 'failed', 0, { errno: 1, error: 'replacement not pollable', source: 'none' })]
      .map((r) => `${JSON.stringify(r)}\n`).join(''));
    await waitFor('both listed', async () => (await item(77).count()) === 1 && (await item(78).count()) === 1);
    const color = (fd: number) => item(fd).locator('.res').evaluate((e) => getComputedStyle(e).color);
    const green = await color(29);
    expect(await item(29).getAttribute('data-result')).to.equal('moved');
    expect(green).to.equal('rgb(47, 133, 90)');
    expect(await item(77).getAttribute('data-result')).to.equal('unmoved');
    expect(await color(77)).to.not.equal(green);
    expect(await item(77).textContent()).to.include('0 moved');
    expect(await item(78).getAttribute('data-result')).to.equal('failed');
    expect(await color(78)).to.equal('rgb(197, 48, 48)');
    expect(await item(78).textContent()).to.include('replacement not pollable');
    expect(errors, errors.join('\n')).to.deep.equal([]);
  });
});
