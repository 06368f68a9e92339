/**
 * A redirect rule matches an IPv4 address and its IPv4-mapped IPv6 form alike,
 * with real connects under a real seccomp supervisor: a rule for 127.0.0.99:P
 * serves a Node.js client's AF_INET6 connect to [::ffff:127.0.0.99]:P, and a
 * rule written [::ffff:127.0.0.99]:P serves an AF_INET connect to 127.0.0.99:P.
 * Nothing listens at 127.0.0.99:P: a connect the supervisor does not serve is
 * refused.
 */
import { expect } from 'chai';
import { createServer, type Server } from 'node:net';
import { supervise } from '../../src/supervise/launch.js';
import { parseEndpoint } from '../../src/supervise/endpoint.js';

const CLIENT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
let got = '';
s.on('connect', () => s.write('ping\\n'));
s.on('data', (d) => { got += d; if (got.includes('\\n')) { console.log(JSON.stringify({ family: s.remoteFamily, reply: got.trim() })); s.destroy(); } });
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); });
`;

async function runClient(host: string, port: number, from: string, to: string): Promise<{ reply?: string; error?: string }> {
  let out = '';
  const r = await supervise(process.execPath, ['-e', CLIENT, host, String(port)], {
    redirects: [{ from: parseEndpoint(from)!, to: parseEndpoint(to)! }], fixup: false, stdio: 'pipe',
    onSpawn: (_pid, child) => { child.stdout!.on('data', (d: Buffer) => { out += d.toString(); }); },
  });
  expect(r.code, out).to.equal(0);
  return JSON.parse(out.trim()) as { reply?: string; error?: string };
}

describe('supervise: IPv4 and IPv4-mapped IPv6 redirect rules', function () {
  this.timeout(60000);
  let server: Server;
  let port = 0;
  // An unused port at 127.0.0.99 (nothing of ours listens there), picked per run.
  const fromPort = 40000 + (process.pid % 20000);

  before(async function () {
    if (process.getuid?.() !== 0) this.skip();
    server = createServer((s) => s.on('data', () => s.end(`pong ${s.localPort}\n`)).on('error', () => {}));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(() => server?.close());

  it('a rule for 127.0.0.99:P serves an AF_INET6 connect to [::ffff:127.0.0.99]:P', async () => {
    const r = await runClient('::ffff:127.0.0.99', fromPort, `127.0.0.99:${fromPort}`, `127.0.0.1:${port}`);
    expect(r).to.include({ reply: `pong ${port}` });
  });

  it('a rule for [::ffff:127.0.0.99]:P serves an AF_INET connect to 127.0.0.99:P', async () => {
    const r = await runClient('127.0.0.99', fromPort, `[::ffff:127.0.0.99]:${fromPort}`, `127.0.0.1:${port}`);
    expect(r).to.include({ reply: `pong ${port}` });
  });

  it('other addresses and ports are left to the kernel (refused: nothing listens there)', async () => {
    expect(await runClient('::ffff:127.0.0.99', fromPort, `127.0.0.98:${fromPort}`, `127.0.0.1:${port}`)).to.deep.equal({ error: 'ECONNREFUSED' });
    expect(await runClient('127.0.0.99', fromPort, `[::ffff:127.0.0.99]:${fromPort + 1}`, `127.0.0.1:${port}`)).to.deep.equal({ error: 'ECONNREFUSED' });
  });
});
