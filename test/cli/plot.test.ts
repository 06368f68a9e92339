/** `epolltrack bench --plot`: the SVG chart of lookup latency against fds. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchResult, Timing } from '../../src/cli/bench.js';
import { escapeXml, formatMicros, formatTick, renderBenchSvg } from '../../src/cli/plot.js';

const CLI = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
const T = (median: number, min: number, max: number, n: number): Timing => ({ median, min, max, n });

const RESULT: BenchResult = {
  machine: 'AMD EPYC <test> & co x2, 23 GiB',
  kernel: '6.18.44-test',
  date: '2026-11-30T12:34:56.000Z',
  mode: 'tracepoint',
  lookups: [
    { fds: 1000, memberships: 3, bpf: T(11.0, 10.2, 187.2, 2000), fdinfo: T(4300, 4100, 8500, 50), ratio: 390, source: 'bpf' },
    { fds: 10000, memberships: 3, bpf: T(9.0, 8.7, 120.2, 2000), fdinfo: T(49900, 48900, 63700, 20), ratio: 5570, source: 'bpf' },
    { fds: 19000, memberships: 3, bpf: T(9.2, 9.0, 83.6, 2000), fdinfo: T(93800, 92200, 106200, 11), ratio: 10159, source: 'bpf' },
  ],
  flatness: 0.84,
};

/**
 * A small well-formedness check: one root element, every start tag closed by
 * the matching end tag, quoted attributes, no bare `<` or `&` in text.
 * Returns the element names in document order.
 */
function checkWellFormed(xml: string): string[] {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '').replace(/<!--[\s\S]*?-->/g, '');
  const names: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < body.length) {
    const lt = body.indexOf('<', i);
    const text = body.slice(i, lt < 0 ? body.length : lt);
    expect(text, `text before offset ${lt}`).to.not.match(/&(?!(?:lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);)/);
    if (stack.length === 0) expect(text.trim(), 'text outside the root element').to.equal('');
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(body);
    expect(m, `malformed tag at offset ${lt}: ${body.slice(lt, lt + 60)}`).to.not.equal(null);
    const [whole, close, name, , selfClose] = m!;
    if (close) {
      expect(stack.pop(), `</${name}> at offset ${lt}`).to.equal(name);
    } else {
      if (stack.length === 0) roots++;
      names.push(name);
      if (!selfClose) stack.push(name);
    }
    i = lt + whole.length;
  }
  expect(stack, 'unclosed elements').to.deep.equal([]);
  expect(roots, 'root elements').to.equal(1);
  return names;
}

describe('bench --plot', function () {
  it('renders both series, log ticks, the labels and the title into well-formed SVG', () => {
    const svg = renderBenchSvg(RESULT);
    const names = checkWellFormed(svg);
    expect(names[0]).to.equal('svg');
    expect(svg).to.match(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg).to.not.match(/@import|url\(|<image|font-face|href=/, 'no external resources or fonts');

    // Both series: a median line, a band and three points with error bars each.
    const series = [...svg.matchAll(/<g class="series" data-series="([^"]+)"/g)].map((m) => m[1]);
    expect(series).to.deep.equal(['epolltrack (BPF tracker)', 'fdinfo way (/proc/PID/fdinfo walk)']);
    expect(svg.match(/class="median"/g)).to.have.length(2);
    expect(svg.match(/class="band"/g)).to.have.length(2);
    expect(svg.match(/class="errorbar"/g)).to.have.length(6);
    expect(svg.match(/class="point"/g)!.length).to.be.at.least(6);
    for (const v of ['11.0 µs', '9.0 µs', '9.2 µs', '4.3 ms', '49.9 ms', '93.8 ms']) expect(svg).to.include(`>${v}</text>`);

    // Log latency ticks: every decade from 1 µs (below 8.7 µs) to 1 s (above 106.2 ms).
    const ticks = [...svg.matchAll(/<text class="tick"[^>]*>([^<]+)<\/text>/g)].map((m) => m[1]);
    expect(ticks).to.include.members(['1 µs', '10 µs', '100 µs', '1 ms', '10 ms', '100 ms', '1 s']);
    expect(ticks).to.include.members(['1k', '2k', '5k', '10k', '20k']);
    // Decades are evenly spaced on a log axis.
    const ys = ['1 µs', '10 µs', '100 µs', '1 ms'].map((l) => Number(new RegExp(`<text class="tick" x="[\\d.]+" y="([\\d.]+)" dy="4">${l}<`).exec(svg)![1]));
    const gaps = ys.slice(1).map((y, k) => ys[k] - y);
    for (const g of gaps) expect(g).to.be.closeTo(gaps[0], 0.2);

    // Axis labels, legend, title with machine (escaped), kernel, mode and date.
    expect(svg).to.include('fds held by the process (log scale)');
    expect(svg).to.include('lookup latency (log scale)');
    expect(svg).to.include('class="legend"');
    expect(svg).to.include('bars and bands: min–max');
    expect(svg).to.include('AMD EPYC &lt;test&gt; &amp; co x2, 23 GiB · kernel 6.18.44-test · tracepoint mode · 2026-11-30');
    expect(svg).to.include('10159× faster at 19k fds');
  });

  it('formats latencies and ticks, escapes XML, marks fallbacks, copes with one size', () => {
    expect([9.25, 187.2, 4300, 93800, 1.5e6, 0.5].map(formatMicros)).to.deep.equal(['9.3 µs', '187.2 µs', '4.3 ms', '93.8 ms', '1.5 s', '500 ns']);
    expect([0.1, 1, 10, 100, 1000, 1e4, 1e5, 1e6].map(formatTick)).to.deep.equal(['100 ns', '1 µs', '10 µs', '100 µs', '1 ms', '10 ms', '100 ms', '1 s']);
    expect(escapeXml(`a<b>&"'`)).to.equal('a&lt;b&gt;&amp;&quot;&apos;');
    const one: BenchResult = { ...RESULT, lookups: [{ ...RESULT.lookups[0], source: 'fdinfo' }] };
    const svg = renderBenchSvg(one);
    checkWellFormed(svg);
    expect(svg).to.include('11.0 µs (fdinfo)</text>');
    expect(svg).to.not.include('NaN');
    expect(() => renderBenchSvg({ ...RESULT, lookups: [] })).to.throw(/no lookup rows/);
  });

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
      expect(bad.stderr).to.match(/--plot needs a file in an existing directory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
