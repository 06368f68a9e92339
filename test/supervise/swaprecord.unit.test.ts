/**
 * Root-free: how a swap record and the storm read to a person (--verbose,
 * `bench --storm`), from records as the supervisor writes them.
 */
import { expect } from 'chai';
import { formatSwap } from '../../src/cli/supervise.js';
import { formatStorm, type StormResult } from '../../src/cli/bench.js';
import type { SwapRecord } from '../../src/supervise/supervisor.js';

const base: SwapRecord = {
  time: '2026-12-03T10:00:00.000Z', pid: 42, fd: 3, from: '127.0.0.2:80', to: '127.0.0.1:8080',
  result: 'swapped', moved: 2, source: 'bpf', micros: 310,
};

describe('swap records, read by a person', () => {
  it('a plain swap names the registrations moved', () => {
    expect(formatSwap(base)).to.equal('epolltrack: pid 42 fd 3 127.0.0.2:80 -> 127.0.0.1:8080: swapped, 2 epoll registrations moved (bpf), 310 µs');
  });

  it('copies, other holders, io_uring slots and options not carried over are all named', () => {
    const line = formatSwap({
      ...base, proto: 'udp', copies: [3, 100], shared: [{ pid: 43, fd: 3 }], kept: 1,
      uring: [{ ringFd: 7, slot: 0, updated: true }, { ringFd: 8, slot: 2, updated: false, errno: 17 }], unset: ['SO_MARK'],
    });
    expect(line).to.contain('udp 127.0.0.2:80');
    expect(line).to.contain('also installed at fd 100');
    expect(line).to.contain('pid 43 fd 3');
    expect(line).to.contain('1 registration(s) kept');
    expect(line).to.contain('fd 7 slot 0 updated');
    expect(line).to.contain('fd 8 slot 2 not updated (errno 17)');
    expect(line).to.contain('not carried over: SO_MARK');
  });

  it('a failed answer reads as failed with its errno', () => {
    expect(formatSwap({ ...base, result: 'failed', errno: 2, error: 'the caller was interrupted' })).to.contain('failed: the caller was interrupted (errno 2)');
  });
});

describe('bench --storm output', () => {
  it('shows swaps/s, p50/p99 and their ratio, the supervisor\'s CPU per swap, the floor, and the fix-up cost', () => {
    const lat = (p50: number, p99: number) => ({ p50, p99, max: p99 * 2, n: 100 });
    const r: StormResult = {
      processes: 32, concurrent: 30, rounds: 5, fds: 500, runs: 3, sharedEpoll: false, fixupCost: 1.05, fixupThroughput: 1.2,
      rows: [
        { fixup: true, copies: true, swaps: 4800, failed: 0, clientOk: 4800, answered: 4800, seconds: 1.5, swapsPerSec: 3200, client: lat(2000, 8000), cpuPerSwap: 210 },
        { fixup: false, copies: true, swaps: 4800, failed: 0, clientOk: 0, answered: 4800, seconds: 1.4, swapsPerSec: 3360, client: lat(1800, 7000), cpuPerSwap: 200 },
      ],
      floor: { fixup: true, copies: true, swaps: 4800, failed: 0, clientOk: 4800, answered: 4800, seconds: 0.7, swapsPerSec: 6400, client: lat(30, 90), cpuPerSwap: 0 },
      single: { fixup: lat(400, 900), none: lat(380, 800), p50: 1.05, cpu: 1.04, cpuPerSwap: { fixup: 250, none: 240 } },
      sideBySide: {
        cpu: 1.04, throughput: 1.03,
        runs: [{ fixup: { swaps: 2400, cpuPerSwap: 208, swapsPerSec: 1600 }, none: { swaps: 2400, cpuPerSwap: 200, swapsPerSec: 1650 } }],
      },
    };
    const text = formatStorm(r);
    expect(text).to.match(/with fix-up, all copies\s+4800\s+0\s+4800\s+4800\s+3200\s+2\.0 ms\s+8\.0 ms\s+16\.0 ms\s+4\.0x\s+210 µs/);
    expect(text).to.match(/no swap \(the floor\)\s+4800\s+0\s+4800\s+4800\s+6400\s+30 µs/);
    expect(text).to.contain('the median of 3 runs');
    expect(text).to.contain('an epoll per thread');
    expect(formatStorm({ ...r, sharedEpoll: true })).to.contain('one epoll shared by the threads of each');
    expect(text).to.contain("swaps/s with the fix-up / the floor's connects/s = 0.50");
    expect(text).to.contain('one caller alone, connect() p50: 400 µs with the fix-up, 380 µs without');
    expect(text).to.contain('supervisor CPU per swap 250 µs with, 240 µs without');
    expect(text).to.contain('one caller alone (the median of 3 pairs of runs): connect() p50 with / without = 1.05x, supervisor CPU per swap with / without = 1.04x');
    expect(text).to.contain('under the storm (all copies; the median of 3 pairs of runs): supervisor CPU per swap with / without = 1.05x');
    expect(text).to.contain('swaps/s without / with = 1.20x');
    expect(text).to.contain('side by side (two supervisors at once, with and without, 16 processes each; the median of 1 runs)');
    expect(text).to.contain('supervisor CPU per swap with / without = 1.04x (target <= 1.10x); swaps/s without / with = 1.03x');
  });
});
