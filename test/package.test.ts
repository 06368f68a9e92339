/**
 * The npm package as a user gets it: `npm pack`, then installed from the
 * tarball into a clean prefix (the `epolltrack` bin runs) and into a clean
 * project (the library imports). The tarball carries the licence, the
 * README's images and the sources its source maps name.
 */
import { expect } from 'chai';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';

const ROOT = process.cwd();
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

function run(cmd: string, args: string[], cwd: string): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 180000, env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (r.error) throw r.error;
  return r;
}

describe('the npm package', function () {
  this.timeout(300000);
  let dir: string;
  let tgz: string;
  let files: string[];
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    name: string; version: string; license: string; repository?: { url?: string }; bin: Record<string, string>;
  };

  before(() => {
    for (const need of ['build/epolltrack.bpf.o', 'build/bin/launch', 'build/lib', 'dist/src/cli/main.js']) {
      if (!existsSync(join(ROOT, need))) throw new Error(`${need} is missing: run \`npm run build\` before packing`);
    }
    dir = mkdtempSync(join(tmpdir(), 'ept-package-'));
    const r = run('npm', ['pack', '--json', '--pack-destination', dir, '--loglevel=error'], ROOT);
    expect(r.status, r.stderr).to.equal(0);
    const [info] = JSON.parse(r.stdout) as { filename: string; files: { path: string }[] }[];
    tgz = join(dir, info.filename);
    files = info.files.map((f) => f.path);
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('has a licence matching package.json and a repository', () => {
    expect(pkg.license).to.equal('MIT');
    expect(files).to.include('LICENSE');
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).to.match(/^MIT License\n/);
    expect(pkg.repository?.url).to.match(/^git\+https:\/\/[^/]+\/[^/]+\/[^/]+\.git$/);
  });

  it('ships what the README shows and what the source maps point at', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const images = [...readme.matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g)].map((m) => m[1]);
    expect(images.length).to.be.at.least(1);
    for (const img of images) {
      if (/^https?:\/\//.test(img)) continue;
      expect(files, `README image ${img}`).to.include(normalize(img));
    }
    const maps = files.filter((f) => f.endsWith('.js.map'));
    expect(maps.length).to.be.at.least(10);
    for (const m of maps) {
      const { sources } = JSON.parse(readFileSync(join(ROOT, m), 'utf8')) as { sources: string[] };
      for (const s of sources) expect(files, `${m} names ${s}`).to.include(normalize(join(dirname(m), s)));
    }
    for (const f of ['build/epolltrack.bpf.o', 'build/bin/launch', 'dist/src/index.d.ts', pkg.bin.epolltrack]) expect(files).to.include(f);
    expect(files.filter((f) => /^(dist\/)?test\//.test(f)), 'no tests in the package').to.deep.equal([]);
  });

  it('installs from the tarball into a clean prefix: the epolltrack bin runs', () => {
    const prefix = join(dir, 'prefix');
    const r = run('npm', ['install', '-g', '--prefix', prefix, tgz, ...NPM_FLAGS], dir);
    expect(r.status, r.stderr).to.equal(0);
    const bin = join(prefix, 'bin', 'epolltrack');
    const help = run(bin, ['--help'], dir);
    expect(help.status, help.stderr).to.equal(0);
    expect(help.stdout).to.match(/usage: epolltrack COMMAND/);
    const sub = run(bin, ['daemon', '--help'], dir);
    expect(sub.status, sub.stderr).to.equal(0);
    expect(sub.stdout).to.include('usage: epolltrack daemon');
    // the installed copy finds its own BPF object and helpers, not the work tree's
    const installed = join(prefix, 'lib', 'node_modules', pkg.name);
    for (const f of ['build/epolltrack.bpf.o', 'build/bin/launch', 'LICENSE', 'docs/dashboard.png']) expect(existsSync(join(installed, f)), f).to.equal(true);
  });

  it('installs into a clean project: the library imports, with its types', () => {
    const proj = join(dir, 'project');
    mkdirSync(proj);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'ept-consumer', private: true, type: 'module' }));
    const r = run('npm', ['install', tgz, ...NPM_FLAGS], proj);
    expect(r.status, r.stderr).to.equal(0);
    const probe = run(process.execPath, ['--input-type=module', '-e', [
      "import * as e from 'epolltrack';",
      "const want = ['openTracker', 'fdinfoMemberships', 'replaceFd', 'supervise', 'launch'];",
      "console.log(JSON.stringify(want.map((k) => [k, typeof e[k]])));",
    ].join('\n')], proj);
    expect(probe.status, probe.stderr).to.equal(0);
    expect(JSON.parse(probe.stdout)).to.deep.equal([['openTracker', 'function'], ['fdinfoMemberships', 'function'], ['replaceFd', 'function'],
      ['supervise', 'function'], ['launch', 'function']]);
    expect(existsSync(join(proj, 'node_modules', pkg.name, 'dist', 'src', 'index.d.ts'))).to.equal(true);
  });
});
