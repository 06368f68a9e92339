/**
 * `epolltrack agent` as a process, fed by build/bin/ocisend: a stand-in OCI
 * runtime that installs a connect-notify seccomp filter, hands the listener to
 * the agent's socket with the state JSON (as runc/crun do with listenerPath)
 * and execs a command under the filter, or injects a fault instead.
 *
 * Waiting that scales: 64 idle containers and 10 connects stuck on a target
 * whose backlog is full hold no thread and do not hold up another container.
 * Faults (a silent client, a pipe or a file as the "listener", \r in the JSON,
 * a split message, no fd, the same listener twice, a closed stderr, a killed
 * agent-recv): after each one the agent is still running and serves the next
 * container correctly. Speeds are measured by scripts/agent-bench.mjs, not here.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/kernel/bpfobject.js';
import { suiteTracker } from '../helpers/env.js';
import { hangingServer, type HangingServer } from '../helpers/hang.js';
import { Daemon, run } from '../helpers/netns.js';

const CLI = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const BIN = join(packageRoot(), 'build', 'bin');
const OCISEND = join(BIN, 'ocisend');
const EPCLIENT = join(BIN, 'epclient');

interface ClientLine { pid: number; fd: number; connect: string; out: boolean; in: boolean; reply: string; mod: number; del: number }
interface Timed { us: number[]; errors: number; errno: string }

/** The agent's fds, less the tracker's per-process iterator links (an LRU of at most 64, tracker.ts). */
function agentFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((f) => {
    try { return readlinkSync(`/proc/${pid}/fd/${f}`) !== 'anon_inode:bpf_link'; } catch { return false; }
  }).length;
}

function status(pid: number): { threads: number; fds: number; cpuTicks: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { threads: Number(/Threads:\s+(\d+)/.exec(s)![1]), fds: readdirSync(`/proc/${pid}/fd`).length, cpuTicks: Number(f[11]) + Number(f[12]) };
}

/** Children of pid (all threads). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    } catch { /* thread gone */ }
  }
  return out;
}

describe('agent: many containers, faults, failure paths', function () {
  this.timeout(120000);
  let tmp = '';
  let server: Server;
  let port = 0;
  let hang: HangingServer | undefined;
  let hangPort = 0;
  let pinDir = '';
  let cleanupTracker = () => {};
  const kids: ChildProcess[] = [];
  const daemons: Daemon[] = [];
  let seq = 0;

  before(async function () {
    const t = await suiteTracker(this, 'agent');
    pinDir = t.pinDir;
    cleanupTracker = t.cleanup;
    tmp = mkdtempSync(join(tmpdir(), 'ept-agent-'));
    server = createServer((s) => {
      s.on('error', () => {});
      s.on('data', (d) => { if (d.toString().includes('ping')) s.write('pong\n'); });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    hang = hangingServer(); // connects to it hang
    hangPort = hang.port;
  });

  afterEach(async () => {
    for (const k of kids.splice(0)) if (k.exitCode === null && k.signalCode === null) k.kill('SIGKILL');
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
  });

  after(() => {
    server?.close();
    hang?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    cleanupTracker();
  });

  function agentArgs(sock: string): string[] {
    return [process.execPath, CLI, 'agent', '--socket', sock, '--pin-dir', pinDir, '--verbose',
      '--redirect', `127.0.0.2:7000=127.0.0.1:${port}`, '--redirect', `127.0.0.2:7001=127.0.0.1:${hangPort}`];
  }

  async function startAgent(): Promise<{ agent: Daemon; sock: string }> {
    const sock = join(tmp, `agent-${seq++}.sock`);
    const agent = new Daemon(agentArgs(sock));
    daemons.push(agent);
    await agent.waitFor(/agent listening on/, 15000);
    return { agent, sock };
  }

  /** A container: ocisend hands its listener over, then epclient connects through it. */
  async function container(sock: string, opts: string[] = []): Promise<ClientLine> {
    const r = await run([OCISEND, ...opts, sock, EPCLIENT, '--timeout', '3000', '127.0.0.2', '7000'], 20000);
    const json = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (!json) throw new Error(`ocisend ${opts.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
    return JSON.parse(json) as ClientLine;
  }

  /** The next container is served correctly and the agent still runs. */
  async function servesNext(agent: Daemon, sock: string): Promise<void> {
    const line = await container(sock);
    expect(line, JSON.stringify(line) + agent.stderr).to.include({ out: true, in: true, reply: 'pong', mod: 0, del: 0 });
    expect(agent.running, agent.stderr).to.equal(true);
  }

  function idle(sock: string, extra: string[] = []): ChildProcess {
    const k = spawn(OCISEND, [...extra, sock, 'sleep', '600'], { stdio: 'ignore' });
    kids.push(k);
    return k;
  }

  /** Wait until something accepts on the unix socket. */
  async function listening(sock: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise<boolean>((r) => {
        const s = connect(sock, () => { s.destroy(); r(true); });
        s.on('error', () => r(false));
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nothing listens on ${sock}`);
  }

  const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

  /** Wait until `re` (global) matches the agent's output at least n times. */
  async function waitCount(agent: Daemon, re: RegExp, n: number, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (count(agent.stderr, re) < n) {
      if (Date.now() > end || !agent.running) throw new Error(`${count(agent.stderr, re)} of ${n} ${re} after ${ms} ms\n${agent.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('serves 64 idle containers and one more with no extra thread; an idle container\'s state goes when it exits', async () => {
    const { agent, sock } = await startAgent();
    await servesNext(agent, sock);
    const pid = agent.child.pid!;
    const before = status(pid);
    const fds0 = agentFds(pid);
    const idles = Array.from({ length: 64 }, () => idle(sock));
    await waitCount(agent, /serving container/g, 65, 30000);
    const during = status(pid);
    // No thread per listener: the thread count does not move with 64 more listeners.
    expect(during.threads, `threads ${before.threads} -> ${during.threads}`).to.equal(before.threads);
    await servesNext(agent, sock);
    for (const k of idles) k.kill('SIGKILL');
    await waitCount(agent, /gone: its listener closed/g, 66, 20000);
    // Every listener and every other fd of those containers is closed again: the fd count is
    // no higher than before (a cache of the tracker's may have closed one meanwhile), and flat
    // over 20 more containers one after another.
    const fds1 = agentFds(pid);
    expect(fds1).to.be.at.most(fds0);
    for (let i = 0; i < 20; i++) await servesNext(agent, sock);
    await waitCount(agent, /gone: its listener closed/g, 86, 20000);
    expect(agentFds(pid)).to.equal(fds1);
  });

  it('10 blocking connects stuck on a full backlog do not hold up another container\'s connects', async () => {
    const { agent, sock } = await startAgent();
    const stuck = Array.from({ length: 10 }, () => {
      const k = spawn(OCISEND, [sock, OCISEND, '--time', '1', '-', '127.0.0.2', '7001'], { stdio: 'ignore' });
      kids.push(k);
      return k;
    });
    await waitCount(agent, /serving container/g, 10, 20000);
    const threads = status(agent.child.pid!).threads;
    const r = await run([OCISEND, '--time', '20', sock, '127.0.0.2', '7000'], 20000);
    const t = JSON.parse(r.stdout) as Timed;
    expect(t, r.stdout).to.include({ errors: 0 });
    // All 20 were served while the 10 stuck connects still wait (the supervisor gives them 30 s).
    expect(stuck.filter((k) => k.exitCode === null).length).to.equal(10);
    expect(agent.stderr).not.to.match(/127\.0\.0\.2:7001 ->/);
    // No thread per pending connect either.
    expect(status(agent.child.pid!).threads).to.equal(threads);
    await servesNext(agent, sock);
  });

  it('a client that connects and sends nothing holds up no one; it is cut off at the deadline', async () => {
    const { agent, sock } = await startAgent();
    const silent: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = connect(sock);
      s.on('error', () => {});
      silent.push(s);
    }
    await servesNext(agent, sock);
    await servesNext(agent, sock);
    await agent.waitFor(/connection \d+: no end of message within the deadline after 0 bytes/, 10000);
    for (const s of silent) s.destroy();
    await servesNext(agent, sock);
  });

  it('a slow runtime (JSON split after the fd, connection held) does not delay others; its container is served with its state', async () => {
    const { agent, sock } = await startAgent();
    const slow = container(sock, ['--split', '1500', '--hold', '500', '--json', '{"ociVersion":"1.0.2","pid":4242,"state":{"id":"slow-one","pid":4242}}']);
    await servesNext(agent, sock); // while the slow one is still sending
    expect(agent.stderr).not.to.match(/slow-one/);
    const line = await slow;
    expect(line, JSON.stringify(line)).to.include({ out: true, in: true, reply: 'pong' });
    await agent.waitFor(/serving container slow-one \(pid 4242\)/, 2000);
  });

  it('\\r and newlines inside the JSON: the right fd is taken and later containers are served', async () => {
    const { agent, sock } = await startAgent();
    const json = '{"ociVersion":"1.0.2",\r\n"pid":77,\r"state":{"id":"cr\\rid","pid":77,\n"annotations":{"a":"x\\r\\ny"}}}';
    const line = await container(sock, ['--json', json]);
    expect(line, JSON.stringify(line) + agent.stderr).to.include({ out: true, in: true, reply: 'pong' });
    await agent.waitFor(/serving container cr\rid \(pid 77\)/, 2000);
    await servesNext(agent, sock);
    expect(agent.stderr).not.to.match(/ENOSYS|Function not implemented/);
  });

  for (const what of ['pipe', 'file'] as const) {
    it(`a ${what === 'pipe' ? 'pipe with data' : 'regular file'} sent as the listener is refused, logged, and costs no CPU`, async () => {
      const { agent, sock } = await startAgent();
      const pid = agent.child.pid!;
      const line = await container(sock, ['--send', what]);
      // That container's filter has no listener any more: the kernel answers ENOSYS.
      expect(line.connect).to.equal('Function not implemented');
      await agent.waitFor(/fd 0 is not a seccomp listener \((ENOTTY|EINVAL)\): not served/, 5000);
      const t0 = status(pid).cpuTicks;
      await new Promise((r) => setTimeout(r, 1000));
      expect(status(pid).cpuTicks - t0, 'agent CPU ticks over 1 s').to.be.below(20);
      await servesNext(agent, sock);
    });
  }

  it('no fd, or the same listener several times in one message: logged, served once', async () => {
    const { agent, sock } = await startAgent();
    const none = await container(sock, ['--send', 'none']);
    expect(none.connect).to.equal('Function not implemented');
    await agent.waitFor(/no fd came with the message/, 5000);
    const three = await container(sock, ['--fds', '3']);
    expect(three, JSON.stringify(three)).to.include({ out: true, in: true, reply: 'pong' });
    expect(count(agent.stderr, /this listener is already served/g)).to.equal(2);
    await servesNext(agent, sock);
  });

  it('a --verbose agent whose stderr closes keeps serving (EPIPE is harmless)', async () => {
    const sock = join(tmp, `agent-${seq++}.sock`);
    const args = agentArgs(sock);
    const agent = spawn(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    kids.push(agent);
    let err = '';
    agent.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    for (let i = 0; i < 300 && !err.includes('agent listening'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(err).to.include('agent listening');
    agent.stderr!.destroy();
    agent.stdout!.destroy();
    for (let i = 0; i < 3; i++) {
      const line = await container(sock);
      expect(line, JSON.stringify(line)).to.include({ out: true, in: true, reply: 'pong' });
    }
    expect(agent.exitCode).to.equal(null);
    expect(agent.signalCode).to.equal(null);
  });

  it('a killed agent-recv is replaced; a killed agent takes its agent-recv with it (no orphan)', async () => {
    const { agent, sock } = await startAgent();
    const pid = agent.child.pid!;
    const recv = childrenOf(pid);
    expect(recv).to.have.length(1);
    process.kill(recv[0], 'SIGKILL');
    await agent.waitFor(/agent-recv ended unexpectedly: starting another/, 5000);
    await listening(sock);
    await servesNext(agent, sock);
    const recv2 = childrenOf(pid);
    expect(recv2).to.have.length(1);
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100; i++) {
      try { process.kill(recv2[0], 0); } catch { break; }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(() => process.kill(recv2[0], 0), 'agent-recv outlived its agent').to.throw();
  });

  it('many runtimes at once: 32 containers handed over concurrently are all served', async () => {
    const { agent, sock } = await startAgent();
    const lines = await Promise.all(Array.from({ length: 32 }, () => container(sock)));
    for (const l of lines) expect(l, JSON.stringify(l)).to.include({ out: true, in: true, reply: 'pong', mod: 0, del: 0 });
    expect(count(agent.stderr, /swapped, 1 epoll registration moved/g)).to.equal(32);
    expect(agent.running).to.equal(true);
  });
});
