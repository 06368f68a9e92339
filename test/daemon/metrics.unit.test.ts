/** The daemon's metric label values (root-free). */
import { expect } from 'chai';
import { snakeCase } from '../../src/daemon/metrics.js';

describe('daemon metrics (unit)', () => {
  it('turns label values into snake_case', () => {
    expect(['regsFull', 'epollsFull', 'no-location', 'unverified-location', 'add'].map(snakeCase))
      .to.deep.equal(['regs_full', 'epolls_full', 'no_location', 'unverified_location', 'add']);
  });
});
