/** `epolltrack bench --plot`: the command writes the chart (root; rendering is in plot.unit.test.ts). */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkWellFormed } from '../helpers/plot.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');

describe('bench --plot', function () {
  it('`epolltrack bench --plot` writes the chart and still prints the table', function () {
    if (process.getuid?.() !== 0) this.skip();
    this.timeout(180000);
    const dir = mkdtempSync(join(tmpdir(), 'epolltrack-plot-'));
    try {
      const file = join(dir, 'bench.svg');
      const r = spawnSync(process.execPath, [CLI, 'bench', '--fds', '1000,2000', '--iterations', '200', '--plot', file], { encoding: 'utf8' });
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/^epolltrack bench — /);
      expect(r.stdout).to.match(/^\s+1000\s+3\s/m);
      expect(r.stderr).to.include(`chart written to ${file}`);
      const svg = readFileSync(file, 'utf8');
      checkWellFormed(svg);
      expect(svg.match(/<g class="series"/g)).to.have.length(2);
      expect(svg).to.include('>1k</text>').and.to.include('>2k</text>');
      expect(svg).to.match(/kernel \d+\.\d+[^ ]* · \w+ mode · \d{4}-\d{2}-\d{2}/);

      const bad = spawnSync(process.execPath, [CLI, 'bench', '--plot', '/nonexistent-dir/x.svg'], { encoding: 'utf8' });
      expect(bad.status).to.equal(2);
      expect(bad.stderr).to.match(/--plot takes a file in an existing directory, got '\/nonexistent-dir\/x.svg'/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
