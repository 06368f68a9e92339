/** The swaps log file: 0600, only the documented fields, bounded by rotation, tailed across rotations (root-free). */
import { expect } from 'chai';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SwapLogTail, SwapLogWriter } from '../../src/supervise/swaplog.js';
import type { SwapRecord } from '../../src/supervise/supervisor.js';

const rec = (i: number, over: Partial<SwapRecord> = {}): SwapRecord => ({
  time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(), pid: 1000 + i, fd: 3, from: '127.0.0.2:80', to: '127.0.0.1:8080',
  result: 'swapped', moved: 1, source: 'bpf', micros: 512.345, ...over,
});

describe('swaps log file', function () {
  this.timeout(30000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ept-swaplog-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('appends one JSON line per swap, mode 0600, only the documented fields', () => {
    const path = join(dir, 'sub', 'swaps.jsonl');
    const w = new SwapLogWriter(path);
    w.append({ ...rec(1), extra: 'nope' } as SwapRecord);
    w.append(rec(2, { result: 'failed', errno: 1, error: 'not pollable', moved: 0, source: 'none' }));
    expect(statSync(path).mode & 0o777).to.equal(0o600);
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines).to.have.length(3);
    expect(lines[2]).to.equal('');
    const a = JSON.parse(lines[0]) as Record<string, unknown>;
    expect(Object.keys(a)).to.deep.equal(['time', 'pid', 'fd', 'from', 'to', 'result', 'moved', 'source', 'micros']);
    expect(a.micros).to.equal(512.3);
    expect(JSON.parse(lines[1])).to.include({ result: 'failed', errno: 1, error: 'not pollable' });
  });

  it('rotates at the size bound and the tail reads every record once, across rotations', () => {
    const path = join(dir, 'swaps.jsonl');
    const w = new SwapLogWriter(path, 1000);
    const tail = new SwapLogTail(path);
    expect(tail.poll()).to.deep.equal([]);
    const seen: number[] = [];
    for (let i = 0; i < 40; i++) {
      w.append(rec(i));
      if (i % 7 === 0) seen.push(...tail.poll().map((r) => r.pid - 1000));
      expect(statSync(path).size).to.be.at.most(1000);
    }
    seen.push(...tail.poll().map((r) => r.pid - 1000));
    expect(seen).to.deep.equal(Array.from({ length: 40 }, (_x, i) => i));
    expect(statSync(`${path}.1`).size).to.be.at.most(1000);
    expect(statSync(`${path}.1`).mode & 0o777).to.equal(0o600);
    // A line being written (no newline yet) waits; junk lines are skipped.
    appendFileSync(path, 'not json\n{"pid":');
    expect(tail.poll()).to.deep.equal([]);
    appendFileSync(path, `1,"fd":2}\n${JSON.stringify(rec(50))}\n`);
    expect(tail.poll().map((r) => r.pid)).to.deep.equal([1050]);
    // A fresh tail starts with what both files hold.
    const all = new SwapLogTail(path).poll();
    expect(all.length).to.be.greaterThan(5);
    expect(all[all.length - 1].pid).to.equal(1050);
  });

  it('a writer keeps its file open, and follows the path when another writer rotated it', () => {
    const path = join(dir, 'swaps.jsonl');
    const a = new SwapLogWriter(path, 1 << 20);
    const b = new SwapLogWriter(path, 400);
    a.append(rec(1));
    for (let i = 2; i < 6; i++) b.append(rec(i)); // b rotates: the path names a new file
    a.append(rec(99));
    const pids = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as SwapRecord).pid);
    expect(pids(`${path}.1`)).to.not.include(1099);
    expect(pids(path)).to.include(1099);
    // The file removed under it (a cleaned /run): the next record makes it again.
    rmSync(path);
    a.append(rec(100));
    expect(pids(path)).to.deep.equal([1100]);
    expect(statSync(path).mode & 0o777).to.equal(0o600);
    a.close();
    b.close();
  });

  it('two supervisors writing one log: neither fails when the other rotated it first', async () => {
    const path = join(dir, 'swaps.jsonl');
    const writer = fileURLToPath(new URL('../../src/supervise/swaplog.js', import.meta.url));
    // Two threads, as two supervise processes with the same --pin-dir: rotations race often at a 400-byte bound.
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.writer).then(({ SwapLogWriter }) => {
        const warnings = [];
        const w = new SwapLogWriter(workerData.path, 400, (m) => warnings.push(m));
        for (let i = 0; i < 3000; i++) w.append({ time: '2026-01-01T00:00:00.000Z', pid: 1, fd: 3, from: 'a', to: 'b', result: 'swapped', moved: 0, source: 'none', micros: 1 });
        parentPort.postMessage(warnings);
      });`;
    const run = () => new Promise<string[]>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { writer, path } });
      w.once('message', resolve);
      w.once('error', reject);
    });
    const warnings = (await Promise.all([run(), run(), run()])).flat();
    expect(warnings).to.deep.equal([]);
    expect(statSync(path).size).to.be.at.most(400);
  });
});
