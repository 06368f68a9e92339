/**
 * Supervisor.serve's failure paths, against real listeners and callers
 * (build/bin/ocisend --time under build/bin/launch's filter): a file that is
 * not a listener is refused before anything is served; a notification whose
 * handling throws is answered first and reported after, and the next one is
 * served; out of fds (EMFILE), the caller gets EMFILE, not EBADF/EINVAL/EFAULT;
 * waiting holds no libuv pool thread.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { launch, type Launched } from '../../src/index.js';
import { BadInputError } from '../../src/kernel/errors.js';
import { closeFd } from '../../src/kernel/ffi.js';
import { pendingWaits, POLLIN, waitFd } from '../../src/kernel/poller.js';
import { parseEndpoint } from '../../src/supervise/seccomp.js';
import { Supervisor, type Redirect } from '../../src/supervise/supervisor.js';
import { hangingServer } from '../helpers/hang.js';

const OCISEND = join(process.cwd(), 'build', 'bin', 'ocisend');

interface Timed { us: number[]; errors: number; errno: string }

/** A shell under our filter that makes one timed connect to 127.0.0.2:7000 per line read. */
async function caller(): Promise<{ l: Launched; next: () => Promise<Timed> }> {
  const l = await launch('sh', ['-c', `while read x; do ${OCISEND} --time 1 - 127.0.0.2 7000; done`], { stdio: 'pipe' });
  const lines = createInterface({ input: l.child.stdout! })[Symbol.asyncIterator]();
  return {
    l,
    next: async () => {
      l.child.stdin!.write('go\n');
      const r = await lines.next();
      return JSON.parse(r.value as string) as Timed;
    },
  };
}

const dirs: string[] = [];
/** A fresh FIFO: opened read-write it is a pipe that never blocks the open. */
function fifoPath(): string {
  const d = mkdtempSync(join(tmpdir(), 'ept-serve-'));
  dirs.push(d);
  const p = join(d, 'fifo');
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo: ${r.stderr}`);
  return p;
}

function setNofile(soft: number, hard: number): void {
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:${hard}`]);
  if (r.status !== 0) throw new Error(`prlimit: ${r.stderr}`);
}

function nofile(): [number, number] {
  const r = spawnSync('prlimit', ['--pid', String(process.pid), '--nofile', '--raw', '--noheadings', '--output', 'SOFT,HARD']);
  const [soft, hard] = r.stdout.toString().trim().split(/\s+/).map(Number);
  return [soft, hard];
}

describe('Supervisor.serve: failure paths', function () {
  this.timeout(60000);
  let server: Server;
  let redirects: Redirect[] = [];

  before(async () => {
    server = createServer((s) => s.on('error', () => {}).end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    redirects = [{ from: parseEndpoint('127.0.0.2:7000')!, to: parseEndpoint(`127.0.0.1:${port}`)! }];
  });
  after(() => {
    server?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('refuses a pipe with data and a regular file as the listener (BadInputError), and does not spin', async () => {
    const fifo = fifoPath();
    const withData = openSync(fifo, 'r+');
    writeSync(withData, 'data\n');
    const fds = [withData, openSync('/proc/self/exe', 'r')];
    try {
      for (const fd of fds) {
        const sup = new Supervisor({ redirects });
        let err: unknown;
        await sup.serve(fd).catch((e: unknown) => { err = e; });
        expect(err).to.be.instanceOf(BadInputError);
        expect((err as BadInputError).code).to.equal('EPT_BAD_INPUT');
        expect((err as Error).message).to.match(/is not a seccomp listener \(NOTIF_ID_VALID: (ENOTTY|EINVAL)\)/);
      }
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  });

  it('a notification whose handling throws is answered (EIO) before the error is reported; the next is served', async () => {
    const { l, next } = await caller();
    const errors: string[] = [];
    let fault = true;
    const sup = new Supervisor({
      redirects: {
        filter: (f: (r: Redirect) => boolean) => {
          if (fault) throw new Error('injected fault');
          return redirects.filter(f);
        },
      } as unknown as Redirect[],
      fixup: false,
      onError: (e) => { errors.push(e.message); throw new Error('a reporter that throws'); },
    });
    const serving = sup.serve(l.listenerFd);
    try {
      const bad = await next();
      expect(bad).to.include({ errors: 1, errno: 'EIO' });
      expect(errors).to.deep.equal(['injected fault']);
      fault = false;
      const good = await next();
      expect(good).to.include({ errors: 0 });
    } finally {
      l.child.stdin!.end();
      await l.exited;
      await serving;
      closeFd(l.listenerFd);
    }
  });

  it('out of fds (EMFILE): the caller gets EMFILE, the cause is reported, and the next connect is served', async () => {
    const { l, next } = await caller();
    const errors: string[] = [];
    const sup = new Supervisor({ redirects, fixup: false, onError: (e) => errors.push(e.message) });
    const serving = sup.serve(l.listenerFd);
    const [soft, hard] = nofile();
    const fillers: number[] = [];
    try {
      expect(await next()).to.include({ errors: 0 });
      const highest = Math.max(...readdirSync('/proc/self/fd').map(Number));
      setNofile(highest + 16, hard);
      for (;;) {
        try { fillers.push(openSync('/dev/null', 'r')); } catch { break; }
      }
      const r = await next();
      for (const f of fillers.splice(0)) closeSync(f);
      setNofile(soft, hard);
      expect(r).to.include({ errors: 1, errno: 'EMFILE' });
      // Reported: in the swap record when the swap itself ran out, else through onError.
      const said = [...errors, ...sup.swaps.map((w) => w.error ?? '')].join('\n');
      expect(said).to.match(/out of file descriptors \(EMFILE\)|EMFILE/);
      expect(await next()).to.include({ errors: 0 });
    } finally {
      for (const f of fillers) closeSync(f);
      setNofile(soft, hard);
      l.child.stdin!.end();
      await l.exited;
      await serving;
      closeFd(l.listenerFd);
    }
  });

  it('one process tree: 10 blocking connects stuck on a full backlog do not hold up its other connects', async () => {
    // A server that never accepts, with its queue full: connects to it hang.
    const hang = hangingServer();
    const stuckRule = { from: parseEndpoint('127.0.0.2:7001')!, to: parseEndpoint(`127.0.0.1:${hang.port}`)! };
    const l = await launch('sh', ['-c',
      `for i in 1 2 3 4 5 6 7 8 9 10; do ${OCISEND} --time 1 - 127.0.0.2 7001 >/dev/null & p="$p $!"; done; read x; ${OCISEND} --time 20 - 127.0.0.2 7000; kill $p`],
    { stdio: 'pipe' });
    const swaps: string[] = [];
    const sup = new Supervisor({ redirects: [...redirects, stuckRule], fixup: false });
    sup.on('swap', (r: { to: string }) => swaps.push(r.to));
    const serving = sup.serve(l.listenerFd);
    const lines = createInterface({ input: l.child.stdout! })[Symbol.asyncIterator]();
    try {
      await new Promise((r) => setTimeout(r, 500)); // the 10 are waiting on the full backlog
      l.child.stdin!.write('go\n');
      const t = JSON.parse((await lines.next()).value as string) as Timed;
      expect(t).to.include({ errors: 0 });
      expect(t.us).to.have.length(20);
      // Served while the 10 still wait: none of them has a swap record yet (their timeout is 30 s).
      expect(swaps.filter((to) => to.endsWith(`:${hang.port}`))).to.have.length(0);
      expect(swaps).to.have.length(20);
    } finally {
      l.child.stdin!.end();
      await l.exited;
      sup.stop();
      await serving;
      closeFd(l.listenerFd);
      hang.close();
    }
  });

  it('waits hold no libuv pool thread: with 100 waits pending forever, fs work on the pool still runs', async () => {
    const fifo = fifoPath();
    const fds = Array.from({ length: 100 }, () => openSync(fifo, 'r+')); // never readable: nothing writes
    const ctl = new AbortController();
    setMaxListeners(200, ctl.signal);
    const waits = fds.map((fd) => waitFd(fd, POLLIN, { signal: ctl.signal }));
    try {
      expect(pendingWaits()).to.be.at.least(100);
      // 8 concurrent fs calls, each on a pool thread (4 by default): they finish while 100 waits are pending.
      const texts = await Promise.all(Array.from({ length: 8 }, () => readFile('/proc/self/status', 'utf8')));
      expect(texts.every((t) => t.includes('Threads:'))).to.equal(true);
    } finally {
      ctl.abort();
      expect(await Promise.all(waits)).to.deep.equal(fds.map(() => 0));
      for (const fd of fds) closeSync(fd);
    }
    expect(pendingWaits()).to.equal(0);
  });
});
