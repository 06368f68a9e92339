/**
 * `epolltrack supervise` with widely used third-party programs that register
 * their upstream socket in epoll BEFORE connect() (checked with
 * `strace -f -e trace=epoll_ctl,connect,socket`):
 *
 *   nginx 1.22 (reverse proxy): ngx_event_connect_peer adds the socket with
 *     EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, then connect() -> EINPROGRESS.
 *   nutcracker (twemproxy) 0.5: server_connect does event_add_conn
 *     (EPOLLIN|EPOLLOUT|EPOLLET), then connect(), then EPOLL_CTL_MOD at once.
 *
 * Each runs in a network namespace of the test's own and reaches a server on
 * the host's 127.0.0.1 only through --redirect 127.0.0.2:P=127.0.0.1:PORT
 * (nothing listens on 127.0.0.2 in the namespace). With the fix-up the request
 * gets the upstream's answer; with --no-epoll-fixup the program's epoll no
 * longer reports its upstream socket: nginx answers 504 after its 1 s timeout,
 * nutcracker answers -ERR (its connect times out, or its epoll_ctl(MOD) on
 * the socket fails with ENOENT, depending on whether a stale EPOLLOUT of the
 * old socket got through first), and the tests detect that.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { packageRoot } from '../../src/kernel/bpfobject.js';
import { IN_CI, suiteTracker } from '../helpers/env.js';
import { createNetns, Daemon, pidFromFile, run, which, type Netns } from '../helpers/netns.js';

const CLI = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const CLIENT = join(packageRoot(), 'test', 'fixtures', 'netns-client.mjs');

interface ClientResult { ok: boolean; status?: number; body?: string; reply?: string; error?: string; ms: number }

describe('supervise: third-party programs that register in epoll before connect', function () {
  this.timeout(30000);
  let ns: Netns | undefined;
  let tmp = '';
  let pinDir = '';
  let cleanupTracker = () => {};
  const token = randomBytes(6).toString('hex');
  let httpServer: HttpServer | undefined;
  let httpPort = 0;
  let httpHits = 0;
  let redisServer: Server | undefined;
  let redisPort = 0;
  let redisHits = 0;
  const daemons: Daemon[] = [];

  before(async function () {
    const t = await suiteTracker(this, 'thirdparty');
    pinDir = t.pinDir;
    cleanupTracker = t.cleanup;
    ns = createNetns('3p');
    tmp = mkdtempSync(join(tmpdir(), 'ept-3p-'));

    httpServer = createHttpServer((req, res) => {
      httpHits++;
      res.end(`upstream ${token} ${req.url}\n`);
    });
    await new Promise<void>((r) => httpServer!.listen(0, '127.0.0.1', r));
    httpPort = (httpServer.address() as { port: number }).port;

    // A tiny redis: GET KEY answers "upstream-<token>-<KEY>".
    redisServer = createServer((s) => {
      let buf = '';
      s.on('error', () => {});
      s.on('data', (d) => {
        buf += d.toString('latin1');
        for (;;) {
          const m = /^\*(\d+)\r\n/.exec(buf);
          if (!m) return;
          let at = m[0].length;
          const args: string[] = [];
          for (let i = 0; i < Number(m[1]); i++) {
            const b = /^\$(\d+)\r\n/.exec(buf.slice(at));
            if (!b || buf.length < at + b[0].length + Number(b[1]) + 2) return;
            args.push(buf.substr(at + b[0].length, Number(b[1])));
            at += b[0].length + Number(b[1]) + 2;
          }
          buf = buf.slice(at);
          redisHits++;
          if (args[0]?.toUpperCase() === 'GET') {
            const v = `upstream-${token}-${args[1]}`;
            s.write(`$${v.length}\r\n${v}\r\n`);
          } else {
            s.write('+OK\r\n');
          }
        }
      });
    });
    await new Promise<void>((r) => redisServer!.listen(0, '127.0.0.1', r));
    redisPort = (redisServer.address() as { port: number }).port;
  });

  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
  });

  after(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
    ns?.delete();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    await Promise.all([httpServer, redisServer].map((s) => s && new Promise((r) => s.close(r))));
    cleanupTracker();
  });

  function need(ctx: Mocha.Context, prog: string): string {
    const p = which(prog);
    if (!p) {
      if (IN_CI) throw new Error(`${prog} is not installed: scripts/setup.sh installs it`);
      ctx.skip();
    }
    return p!;
  }

  /** The program under `epolltrack supervise`, in the namespace; stop() sends SIGTERM to the program itself. */
  function supervised(fixup: boolean, redirect: string, cmd: string[], pidFile: string): Daemon {
    const d = new Daemon([
      process.execPath, CLI, 'supervise', '--verbose', '--pin-dir', pinDir, ...(fixup ? [] : ['--no-epoll-fixup']),
      '--redirect', redirect, '--', ...ns!.exec(cmd),
    ], () => pidFromFile(pidFile));
    daemons.push(d);
    return d;
  }

  async function client(args: string[]): Promise<ClientResult> {
    const r = await run(ns!.exec([process.execPath, CLIENT, ...args]), 15000);
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as ClientResult;
    } catch {
      throw new Error(`netns client gave no result (exit ${r.code}): ${r.stdout}${r.stderr}`);
    }
  }

  describe('nginx as a reverse proxy', () => {
    const LISTEN = 8080;
    const FROM = '127.0.0.2:80';

    function startNginx(ctx: Mocha.Context, fixup: boolean): { d: Daemon; dir: string } {
      const nginx = need(ctx, 'nginx');
      const dir = mkdtempSync(join(tmp, 'nginx-'));
      writeFileSync(join(dir, 'nginx.conf'), `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${LISTEN};
    location / {
      proxy_pass http://${FROM};
      proxy_connect_timeout 1s;
      proxy_send_timeout 1s;
      proxy_read_timeout 1s;
    }
  }
}
`);
      const d = supervised(fixup, `${FROM}=127.0.0.1:${httpPort}`,
        [nginx, '-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], join(dir, 'nginx.pid'));
      return { d, dir };
    }

    it('proxies to the upstream outside the namespace with the epoll fix-up', async function () {
      const { d } = startNginx(this, true);
      const hits = httpHits;
      const r = await client(['http', '127.0.0.1', String(LISTEN), '/fixup', '10000', '5000']);
      expect(r, JSON.stringify(r) + d.stderr).to.include({ ok: true, status: 200, body: `upstream ${token} /fixup\n` });
      expect(httpHits).to.equal(hits + 1);
      await d.waitFor(new RegExp(`${FROM} -> 127\\.0\\.0\\.1:${httpPort}: swapped, 1 epoll registration moved`), 2000);
    });

    it('--no-epoll-fixup: nginx never sees the answer (504 within its 1 s timeout)', async function () {
      const { d, dir } = startNginx(this, false);
      const r = await client(['http', '127.0.0.1', String(LISTEN), '/broken', '10000', '5000']);
      expect(r.body ?? '', JSON.stringify(r)).to.not.include(token);
      expect(r, JSON.stringify(r)).to.include({ ok: true, status: 504 });
      expect(r.ms).to.be.below(4000);
      await d.waitFor(/swapped, 0 epoll registrations moved/, 2000);
      expect(readFileSync(join(dir, 'error.log'), 'utf8')).to.match(/upstream timed out/);
    });
  });

  describe('nutcracker (twemproxy) as a redis proxy', () => {
    const LISTEN = 22121;
    const FROM = '127.0.0.2:6379';

    function startNutcracker(ctx: Mocha.Context, fixup: boolean): { d: Daemon; dir: string } {
      const nutcracker = need(ctx, 'nutcracker');
      const dir = mkdtempSync(join(tmp, 'nutcracker-'));
      writeFileSync(join(dir, 'nutcracker.yml'), [
        'epolltrack:',
        `  listen: 127.0.0.1:${LISTEN}`,
        '  redis: true',
        '  server_connections: 1',
        '  timeout: 1000',
        '  servers:',
        `   - ${FROM}:1`,
        '',
      ].join('\n'));
      const d = supervised(fixup, `${FROM}=127.0.0.1:${redisPort}`, [
        nutcracker, '-c', join(dir, 'nutcracker.yml'), '-o', join(dir, 'nutcracker.log'),
        '-p', join(dir, 'nutcracker.pid'), '-a', '127.0.0.1', '-s', '22222',
      ], join(dir, 'nutcracker.pid'));
      return { d, dir };
    }

    it('forwards GET to the upstream outside the namespace with the epoll fix-up', async function () {
      const { d } = startNutcracker(this, true);
      const hits = redisHits;
      const r = await client(['redis', '127.0.0.1', String(LISTEN), 'k1', '10000', '5000']);
      const v = `upstream-${token}-k1`;
      expect(r, JSON.stringify(r) + d.stderr).to.include({ ok: true, reply: `$${v.length}\r\n${v}\r\n` });
      expect(redisHits).to.equal(hits + 1);
      await d.waitFor(new RegExp(`${FROM} -> 127\\.0\\.0\\.1:${redisPort}: swapped, 1 epoll registration moved`), 2000);
    });

    it('--no-epoll-fixup: nutcracker loses its upstream (epoll_ctl on it fails with ENOENT) and GET gets an error', async function () {
      const { d, dir } = startNutcracker(this, false);
      const r = await client(['redis', '127.0.0.1', String(LISTEN), 'k2', '10000', '5000']);
      expect(r.reply ?? '', JSON.stringify(r)).to.not.include(token);
      expect(r.reply ?? '', JSON.stringify(r)).to.match(/^-ERR/);
      expect(r.ms).to.be.below(4000);
      await d.waitFor(/swapped, 0 epoll registrations moved/, 2000);
      expect(readFileSync(join(dir, 'nutcracker.log'), 'utf8')).to.match(/epoll ctl on e \d+ sd \d+ failed: No such file or directory/);
    });
  });
});
