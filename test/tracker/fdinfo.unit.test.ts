/** Parsing an epoll's /proc/PID/fdinfo text (root-free). */
import { expect } from 'chai';
import { parseEpollFdinfo } from '../../src/tracker/fdinfo.js';

describe('parseEpollFdinfo', () => {
  it('reads tfd, events, data, ino; counts repeats of one tfd (toff); skips other lines', () => {
    const text = [
      'pos:\t0', 'flags:\t02000002', 'mnt_id:\t15', 'ino:\t1057',
      'tfd:        5 events:       19 data:         deadbeef00000005  pos:0 ino:61a sdev:8',
      'tfd:        5 events: 80002001 data: ffffffffffffffff  pos:0 ino:61b sdev:8',
      'tfd:       12 events:        1 data:                0',
      'not a tfd line',
    ].join('\n');
    expect(parseEpollFdinfo(text)).to.deep.equal([
      { tfd: 5, events: 0x19, data: 0xdeadbeef00000005n, ino: 0x61an, toff: 0 },
      { tfd: 5, events: 0x80002001, data: 0xffffffffffffffffn, ino: 0x61bn, toff: 1 },
      { tfd: 12, events: 1, data: 0n, ino: -1n, toff: 0 },
    ]);
    expect(parseEpollFdinfo('')).to.deep.equal([]);
  });
});
