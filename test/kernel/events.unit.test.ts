/** epoll event bits for people (root-free). */
import { expect } from 'chai';
import { decodeEvents } from '../../src/kernel/events.js';

describe('decodeEvents', () => {
  it('names each bit in order, unknown bits as hex, 0 as "0"', () => {
    expect(decodeEvents(0)).to.equal('0');
    expect(decodeEvents(0x1)).to.equal('EPOLLIN');
    expect(decodeEvents(0x1 | 0x4 | 0x2000 | 2 ** 31)).to.equal('EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET');
    expect(decodeEvents(2 ** 28 | 2 ** 30)).to.equal('EPOLLEXCLUSIVE|EPOLLONESHOT');
    expect(decodeEvents(0x1 | 0x800 | 0x4000)).to.equal('EPOLLIN|0x4800');
    // As events come from a __u32: a negative int32 is the same bits.
    expect(decodeEvents(-2147483647)).to.equal('EPOLLIN|EPOLLET');
    expect(decodeEvents(0xffffffff)).to.match(/^EPOLLIN\|EPOLLPRI\|.*\|EPOLLET\|0x[0-9a-f]+$/);
  });
});
