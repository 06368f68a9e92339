/**
 * `epolltrack agent` with real OCI runtimes as production nodes run them: runc
 * (Debian's 1.1.5) and crun (Debian's 1.8) directly, and runc through
 * containerd (Debian's 1.6, `ctr run --config`, the path Kubernetes nodes
 * take), each with a container whose config has linux.seccomp.listenerPath =
 * the agent's socket and an SCMP_ACT_NOTIFY rule for connect(); the runtime
 * sends the listener fd with the OCI state JSON by SCM_RIGHTS. In the
 * container (rootfs: busybox-static and a static build of native/epclient; a
 * fresh network namespace, loopback only) epclient registers its socket in
 * epoll before connecting to 127.0.0.2:P, where nothing listens: only the
 * agent's redirect to the host's 127.0.0.1 can answer. containerd runs on
 * socket, root and state dirs of the test's own and is stopped after.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/kernel/bpfobject.js';
import { IN_CI, suiteTracker } from '../helpers/env.js';
import { Daemon, run, which } from '../helpers/netns.js';

const CLI = join(packageRoot(), 'dist', 'src', 'cli', 'main.js');
const FROM_PORT = 7000;

interface ClientLine { i: number; pid: number; fd: number; connect: string; out: boolean; in: boolean; reply: string; mod: number; del: number }

interface Runtime {
  name: string;
  /** the programs it needs, from Debian packages */
  needs: string[];
  /** package names for the error message in CI */
  packages: string;
}

const RUNTIMES: Runtime[] = [
  { name: 'runc', needs: ['runc'], packages: 'runc' },
  { name: 'crun', needs: ['crun'], packages: 'crun' },
  { name: 'containerd (ctr)', needs: ['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc'], packages: 'containerd runc' },
];

for (const rt of RUNTIMES) describe(`agent: containers run by ${rt.name} (linux.seccomp.listenerPath)`, function () {
  this.timeout(60000);
  let runc = '';
  let ctd: ChildProcess | undefined;
  let ctdSock = '';
  let tmp = '';
  let bundle = '';
  let root = '';
  let pinDir = '';
  let cleanupTracker = () => {};
  let server: Server | undefined;
  let port = 0;
  let seq = 0;
  const ids: string[] = [];
  const daemons: Daemon[] = [];

  before(async function () {
    const missing = rt.needs.filter((n) => !which(n));
    const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
    if (missing.length || !busybox) {
      if (IN_CI) throw new Error(`${[...missing, ...(busybox ? [] : ['busybox'])].join(', ')} needed: scripts/setup.sh installs ${rt.packages} busybox-static`);
      this.skip();
    }
    runc = which(rt.needs[0])!;
    const t = await suiteTracker(this, `rt-${rt.needs[0]}`);
    pinDir = t.pinDir;
    cleanupTracker = t.cleanup;
    tmp = mkdtempSync(join(tmpdir(), `ept-${rt.needs[0]}-`));
    root = join(tmp, 'runc-root');
    bundle = join(tmp, 'bundle');
    const bin = join(bundle, 'rootfs', 'bin');
    mkdirSync(bin, { recursive: true });
    mkdirSync(root);
    copyFileSync(busybox!, join(bin, 'busybox'));
    // A static epclient: the rootfs has no libc.
    const cc = await run(['cc', '-static', '-O2', '-o', join(bin, 'epclient'), join(packageRoot(), 'native', 'epclient.c'), '-lpthread'], 60000);
    if (cc.code !== 0) throw new Error(`cc -static epclient.c failed (libc6-dev has the static libc): ${cc.stderr}`);
    const spec = await run([which('runc') ?? runc, 'spec', '--bundle', bundle], 10000);
    if (spec.code !== 0) throw new Error(`runc spec: ${spec.stderr}`);

    server = createServer((s) => {
      s.on('error', () => {});
      s.on('data', (d) => { if (d.toString().includes('ping')) s.write('pong\n'); });
    });
    await new Promise<void>((res) => server!.listen(0, '127.0.0.1', res));
    port = (server.address() as { port: number }).port;
    if (rt.name.startsWith('containerd')) await startContainerd();
  });

  /** containerd on a socket, root and state of our own (no CRI plugin), as `containerd --config`. */
  async function startContainerd(): Promise<void> {
    const dir = join(tmp, 'containerd');
    mkdirSync(dir);
    ctdSock = join(dir, 'containerd.sock');
    writeFileSync(join(dir, 'config.toml'), [
      'version = 2', `root = "${join(dir, 'root')}"`, `state = "${join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]', `  address = "${ctdSock}"`, '[ttrpc]', `  address = "${ctdSock}.ttrpc"`,
      '[debug]', '  address = ""', '[metrics]', '  address = ""', '',
    ].join('\n'));
    ctd = spawn(which('containerd')!, ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    ctd.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
    for (let i = 0; i < 200 && !log.includes('containerd successfully booted'); i++) {
      if (ctd.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!log.includes('containerd successfully booted')) throw new Error(`containerd did not start:\n${log}`);
  }

  async function stopContainerd(): Promise<void> {
    if (!ctd || ctd.exitCode !== null) return;
    const gone = new Promise((r) => ctd!.once('close', r));
    ctd.kill('SIGTERM');
    const t = setTimeout(() => ctd?.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(t);
  }

  /**
   * The runtime's command. crun refuses a hybrid cgroup hierarchy (v1 controllers plus
   * /sys/fs/cgroup/unified, as on this project's VMs: "cgroups in hybrid mode not
   * supported"): there it runs in a mount namespace of its own that sees cgroup2 at
   * /sys/fs/cgroup, without cgroup management. On a pure v1 or v2 host (production nodes)
   * it runs as is.
   */
  const runtime = () => (rt.name === 'crun' && existsSync('/sys/fs/cgroup/unified')
    ? ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"', 'sh', runc, '--cgroup-manager=disabled']
    : [runc]);

  const ctrArgs = () => [which('ctr')!, '--address', ctdSock, '--namespace', `ept-${process.pid}`];

  async function deleteContainer(id: string): Promise<void> {
    if (ctd) {
      await run([...ctrArgs(), 'task', 'kill', '-s', 'SIGKILL', id], 10000);
      await run([...ctrArgs(), 'container', 'delete', id], 10000);
    } else {
      await run([...runtime(), '--root', root, 'delete', '--force', id], 10000);
    }
  }

  afterEach(async () => {
    for (const id of ids.splice(0)) await deleteContainer(id);
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
  });

  after(async () => {
    for (const id of ids.splice(0)) await deleteContainer(id);
    await Promise.all(daemons.splice(0).map((d) => d.stop()));
    await stopContainerd();
    if (server) await new Promise((r) => server!.close(r));
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    cleanupTracker();
  });

  /** config.json from `runc spec`, running epclient against 127.0.0.2:FROM_PORT under a connect-notify filter. */
  function writeConfig(sock: string, epclientArgs: string[]): void {
    const path = join(bundle, 'config.json');
    const c = JSON.parse(readFileSync(path, 'utf8'));
    c.process.terminal = false;
    c.process.args = ['/bin/epclient', ...epclientArgs, '127.0.0.2', String(FROM_PORT)];
    c.root = { path: join(bundle, 'rootfs'), readonly: true }; // absolute: containerd's shim runs elsewhere
    c.hostname = 'epolltrack-test';
    // `runc spec` asks for new pid, network, ipc, uts and mount namespaces: the
    // network one is runc's own, with loopback only.
    expect(c.linux.namespaces.map((n: { type: string }) => n.type)).to.include('network');
    c.linux.seccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      listenerPath: sock,
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [{ names: ['connect'], action: 'SCMP_ACT_NOTIFY' }],
    };
    writeFileSync(path, JSON.stringify(c, null, 2));
  }

  async function startAgent(fixup: boolean): Promise<{ agent: Daemon; sock: string }> {
    const sock = join(tmp, `agent-${seq}.sock`);
    const agent = new Daemon([
      process.execPath, CLI, 'agent', '--socket', sock, '--pin-dir', pinDir, '--verbose',
      ...(fixup ? [] : ['--no-epoll-fixup']), '--redirect', `127.0.0.2:${FROM_PORT}=127.0.0.1:${port}`,
    ]);
    daemons.push(agent);
    await agent.waitFor(/agent listening on/, 15000);
    return { agent, sock };
  }

  async function runContainer(epclientArgs: string[], sock: string): Promise<{ line: ClientLine; id: string; stdout: string; stderr: string }> {
    writeConfig(sock, epclientArgs);
    const id = `ept-${process.pid}-${seq++}`;
    ids.push(id);
    const r = ctd
      ? await run([...ctrArgs(), 'run', '--rm', '--config', join(bundle, 'config.json'), id], 30000)
      : await run([...runtime(), '--root', root, 'run', '--bundle', bundle, id], 20000);
    const json = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (r.code !== 0 || !json) throw new Error(`${rt.name} run exited ${r.code}: ${r.stdout}${r.stderr}`);
    return { line: JSON.parse(json) as ClientLine, id, stdout: r.stdout, stderr: r.stderr };
  }

  it('serves the container: epclient gets "pong" from the host and its epoll registration works', async () => {
    const { agent, sock } = await startAgent(true);
    const { line, id } = await runContainer(['--timeout', '3000'], sock);
    expect(line, JSON.stringify(line) + agent.stderr).to.include({ out: true, in: true, reply: 'pong', mod: 0, del: 0 });
    expect(line.pid).to.equal(1); // pid 1 of the container's own pid namespace
    await agent.waitFor(new RegExp(`serving container ${id} \\(pid \\d+\\)`), 2000);
    await agent.waitFor(new RegExp(`127\\.0\\.0\\.2:${FROM_PORT} -> 127\\.0\\.0\\.1:${port}: swapped, 1 epoll registration moved`), 2000);
    // The listener was handed over when its JSON was complete, not at the 5 s deadline
    // (a runtime in the foreground keeps the connection open).
    expect(agent.stderr).not.to.match(/deadline/);
  });

  it('--no-epoll-fixup: the container\'s epoll loses the socket (no answer, MOD/DEL fail with ENOENT)', async () => {
    const { agent, sock } = await startAgent(false);
    const { line } = await runContainer(['--timeout', '1000'], sock);
    expect(line, JSON.stringify(line)).to.include({ in: false, reply: '', mod: 2, del: 2 });
    await agent.waitFor(/swapped, 0 epoll registrations moved/, 2000);
  });

  it('serves several containers in turn from one agent', async () => {
    const { agent, sock } = await startAgent(true);
    for (let i = 0; i < 2; i++) {
      const { line } = await runContainer(['--timeout', '3000'], sock);
      expect(line, JSON.stringify(line)).to.include({ out: true, in: true, reply: 'pong', mod: 0, del: 0 });
    }
    await agent.waitFor(/(serving container[^\n]*\n[^\n]*swapped, 1 epoll registration moved[\s\S]*){2}/, 2000);
  });
});
