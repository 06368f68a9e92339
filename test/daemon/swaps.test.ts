/**
 * The daemon's swaps: it reads the log of the tracker it serves (a supervisor
 * run with the same --pin-dir writes there, without EPOLLTRACK_SWAPS_LOG), and
 * its totals cover the whole log, the rotated file included.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { swapsLogPath, DEFAULT_SWAPS_LOG } from '../../src/supervise/swaplog.js';
import { fetchJson, pongServer, supervisedSwap, testDaemon, waitFor, type TestDaemon } from './daemon-env.js';

interface SwapsJson { log: string; counts: Record<string, number>; swaps: { fd: number; result: string; moved: number; to: string }[] }

describe('daemon: swaps of the tracker it serves', function () {
  this.timeout(60000);
  const saved = process.env.EPOLLTRACK_SWAPS_LOG;
  let env: TestDaemon | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await env?.cleanup();
    env = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
    if (saved === undefined) delete process.env.EPOLLTRACK_SWAPS_LOG; else process.env.EPOLLTRACK_SWAPS_LOG = saved;
  });

  it('names one log per pin dir; EPOLLTRACK_SWAPS_LOG overrides', () => {
    delete process.env.EPOLLTRACK_SWAPS_LOG;
    expect(swapsLogPath()).to.equal(DEFAULT_SWAPS_LOG);
    expect(swapsLogPath('/sys/fs/bpf/epolltrack')).to.equal(DEFAULT_SWAPS_LOG);
    expect(swapsLogPath('/sys/fs/bpf/epolltrack/')).to.equal(DEFAULT_SWAPS_LOG);
    const other = swapsLogPath('/sys/fs/bpf/epolltrack-test-1-x');
    expect(other).to.not.equal(DEFAULT_SWAPS_LOG);
    expect(other).to.match(/^\/run\/epolltrack\/swaps_sys_fs_bpf_epolltrack_test_1_x\.jsonl$/);
    process.env.EPOLLTRACK_SWAPS_LOG = '/tmp/x.jsonl';
    expect(swapsLogPath('/sys/fs/bpf/anything')).to.equal('/tmp/x.jsonl');
  });

  it('shows a swap supervised with the same --pin-dir, from that tracker\'s log', async function () {
    delete process.env.EPOLLTRACK_SWAPS_LOG;
    env = await testDaemon(this, 'swaps-own', { swapsLog: undefined });
    const log = swapsLogPath(env.pinDir);
    rmSync(log, { force: true });
    const pong = await pongServer();
    try {
      const st = await fetchJson<{ daemon: { swapsLog: string } }>(`${env.daemon.url}api/status`);
      expect(st.json.daemon.swapsLog).to.equal(log);
      const r = await supervisedSwap(env.pinDir, '', pong.port); // '' : no EPOLLTRACK_SWAPS_LOG in the child
      expect(r.code, r.err).to.equal(0);
      const s = await waitFor('the swap', async () => {
        const j = (await fetchJson<SwapsJson>(`${env!.daemon.url}api/swaps`)).json;
        return j.swaps.length >= 1 && j;
      });
      expect(s.log).to.equal(log);
      expect(s.swaps[0].to).to.equal(`127.0.0.1:${pong.port}`);
      expect(s.counts.swapped).to.equal(1);
    } finally {
      pong.server.close();
      rmSync(log, { force: true });
      rmSync(`${log}.1`, { force: true });
    }
  });

  it('totals the whole log: the rotated file and the current one', async function () {
    dir = mkdtempSync(join(tmpdir(), 'ept-swaps-'));
    const log = join(dir, 'swaps.jsonl');
    const rec = (fd: number, result: string, moved: number) => JSON.stringify({
      time: new Date().toISOString(), pid: 7, fd, from: '127.0.0.2:80', to: '127.0.0.1:9', result, moved, source: 'bpf', micros: 100,
      ...(result === 'failed' ? { errno: 111, error: 'connection refused' } : {}),
    });
    writeFileSync(`${log}.1`, `${[rec(1, 'swapped', 1), rec(2, 'swapped', 0), rec(3, 'failed', 0)].join('\n')}\n`);
    writeFileSync(log, `${[rec(4, 'swapped', 3), rec(5, 'swapped', 2)].join('\n')}\n`);
    env = await testDaemon(this, 'swaps-whole', { swapsLog: log });
    const j = (await fetchJson<SwapsJson>(`${env.daemon.url}api/swaps?limit=2`)).json;
    expect(j.counts).to.deep.equal({ swapped: 4, failed: 1, continued: 0, unmoved: 1, moved: 6 });
    expect(j.swaps.map((x) => x.fd)).to.deep.equal([5, 4]);
  });
});
