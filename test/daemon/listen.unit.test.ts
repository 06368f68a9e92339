/** `--listen` parsing through node:net (root-free). */
import { expect } from 'chai';
import { parseListen } from '../../src/daemon/server.js';
import { BadInputError } from '../../src/kernel/errors.js';

describe('daemon: --listen', () => {
  it('takes HOST:PORT, [IPv6]:PORT and PORT', () => {
    expect(parseListen('127.0.0.1:9477')).to.deep.equal({ host: '127.0.0.1', port: 9477 });
    expect(parseListen('[::1]:80')).to.deep.equal({ host: '::1', port: 80 });
    expect(parseListen('[::ffff:127.0.0.99]:80')).to.deep.equal({ host: '::ffff:127.0.0.99', port: 80 });
    expect(parseListen('8080')).to.deep.equal({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('localhost:0')).to.deep.equal({ host: 'localhost', port: 0 });
  });

  it('refuses bad addresses and ports with a one-line BadInputError naming --listen', () => {
    for (const bad of ['', 'x', '1.2.3.4', '1.2.3.4:70000', '[nope]:1', 'a b:1', '[12345::1]:80', '[1:2:3:4:5:6:7:8:9]:80',
      '999.1.1.1:80', '1.2.3:80', '::1:80']) {
      let err: unknown;
      try { parseListen(bad); } catch (e) { err = e; }
      expect(err, bad).to.be.instanceOf(BadInputError);
      expect((err as BadInputError).code).to.equal('EPT_BAD_INPUT');
      expect((err as Error).message, bad).to.match(/--listen/).and.not.include('\n');
    }
  });
});
