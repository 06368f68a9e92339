/** The swaps log as `epolltrack supervise` writes it (root; the file format and rotation are in swaplog.unit.test.ts). */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SwapRecord } from '../../src/supervise/supervisor.js';
import { pongServer, supervisedSwap } from '../daemon/daemon-env.js';

describe('daemon: swaps log', function () {
  this.timeout(30000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ept-swaplog-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('`epolltrack supervise` logs its swaps (EPOLLTRACK_SWAPS_LOG)', async () => {
    const path = join(dir, 'swaps.jsonl');
    const pong = await pongServer();
    try {
      // without the fix-up (no tracker needed): the client's EPOLLOUT never comes, so a short timeout
      const r = await supervisedSwap('/sys/fs/bpf/epolltrack-no-such-pin', path, pong.port, ['--no-epoll-fixup'], ['--timeout', '200']);
      expect(r.code, r.err).to.equal(0);
      const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SwapRecord);
      expect(lines).to.have.length(1);
      expect(lines[0]).to.include({ from: '127.0.0.2:80', to: `127.0.0.1:${pong.port}`, result: 'swapped', fd: lines[0].fd });
      expect(statSync(path).mode & 0o777).to.equal(0o600);
      expect(readFileSync(path, 'utf8')).to.not.match(/ffff[0-9a-f]{12}/);
    } finally {
      pong.server.close();
    }
  });
});
