/** `epolltrack bench --plot`: the SVG chart of lookup latency against fds, rendered from a fixed result (root-free). */
import { expect } from 'chai';
import type { BenchResult } from '../../src/cli/bench.js';
import { escapeXml, formatMicros, formatRatio, formatTick, renderBenchSvg } from '../../src/cli/plot.js';
import { checkWellFormed, RESULT } from '../helpers/plot.js';

describe('bench --plot (rendering)', function () {
  it('renders both series, log ticks, the labels and the title into well-formed SVG', () => {
    const svg = renderBenchSvg(RESULT);
    const names = checkWellFormed(svg);
    expect(names[0]).to.equal('svg');
    expect(svg).to.match(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg).to.not.match(/@import|url\(|<image|font-face|href=/, 'no external resources or fonts');

    // Both series: a median line, a p5–p95 band and three points each; no min–max bars.
    const series = [...svg.matchAll(/<g class="series" data-series="([^"]+)"/g)].map((m) => m[1]);
    expect(series).to.deep.equal(['epolltrack (BPF tracker)', 'fdinfo way (/proc/PID/fdinfo walk)']);
    expect(svg.match(/class="median"/g)).to.have.length(2);
    expect(svg.match(/class="band"/g)).to.have.length(2);
    expect(svg).to.not.include('errorbar');
    expect(svg.match(/class="point"/g)!.length).to.be.at.least(6);
    for (const v of ['11 µs', '9 µs', '9.2 µs', '4.3 ms', '49.9 ms', '93.8 ms']) expect(svg).to.include(`>${v}</text>`);

    // Log latency ticks: every decade from 1 µs (below p5 8.8 µs) to 1 s (above p95 106.2 ms), and no further:
    // the 2.5 s outlier and the 651 µs one are in the table, not in the picture.
    const ticks = [...svg.matchAll(/<text class="tick"[^>]*>([^<]+)<\/text>/g)].map((m) => m[1]);
    expect(ticks).to.include.members(['1 µs', '10 µs', '100 µs', '1 ms', '10 ms', '100 ms', '1 s']);
    expect(ticks).to.not.include('10 s');
    expect(ticks).to.not.include('100 ns');
    expect(svg).to.not.include('651').and.to.not.include('2.5 s');
    // The tracker's band spans p5 10.4 µs .. p95 12.9 µs at 1k fds: its top sits below the 100 µs line.
    const band = /<g class="series" data-series="epolltrack[^"]*"[^>]*>\s*<polygon class="band" points="([^"]+)"/.exec(svg)![1].split(' ').map((p) => Number(p.split(',')[1]));
    const y100us = Number(/<text class="tick" x="[\d.]+" y="([\d.]+)" dy="4">100 µs</.exec(svg)![1]);
    expect(Math.min(...band)).to.be.above(y100us);
    expect(ticks).to.include.members(['1k', '2k', '5k', '10k', '20k']);
    // Decades are evenly spaced on a log axis.
    const ys = ['1 µs', '10 µs', '100 µs', '1 ms'].map((l) => Number(new RegExp(`<text class="tick" x="[\\d.]+" y="([\\d.]+)" dy="4">${l}<`).exec(svg)![1]));
    const gaps = ys.slice(1).map((y, k) => ys[k] - y);
    for (const g of gaps) expect(g).to.be.closeTo(gaps[0], 0.2);

    // Axis labels, legend, title with machine (escaped), kernel, mode and date.
    expect(svg).to.include('fds held by the process (log scale)');
    expect(svg).to.include('lookup latency (log scale)');
    expect(svg).to.include('class="legend"');
    expect(svg).to.include('bands: p5–p95 (min and max: see the bench table)');
    expect(svg).to.include('AMD EPYC &lt;test&gt; &amp; co x2, 23 GiB · kernel 6.18.44-test · tracepoint mode · 2026-11-30');
    // 3 significant digits, and the cost of tracking beside the speed-up
    expect(svg).to.include('10,200× faster at 19k fds');
    expect(svg).to.not.include('10159');
    expect(svg).to.include('>lookup speed-up at 19k fds: 10,200×</tspan>');
    expect(svg).to.match(/<tspan class="cost"[^>]*>cost of tracking \(tracepoint mode\): epoll_ctl ADD\+DEL pair 2\.01×, getppid \(unrelated\) 1\.32×<\/tspan>/);
    const skipped = renderBenchSvg({ ...RESULT, syscalls: { skipped: 'trackers are loaded at /sys/fs/bpf/x: no clean baseline' } });
    expect(skipped).to.include('cost of tracking: not measured (trackers are loaded at /sys/fs/bpf/x: no clean baseline)');
  });

  it('formats latencies and ticks, escapes XML, marks fallbacks, copes with one size', () => {
    expect([9.25, 187.2, 4300, 93800, 1.5e6, 0.5, 999.7, 2515.4].map(formatMicros))
      .to.deep.equal(['9.25 µs', '187 µs', '4.3 ms', '93.8 ms', '1.5 s', '500 ns', '1 ms', '2.52 ms']);
    expect([2515, 10159, 390.4, 2.0078, 0.834, 1].map(formatRatio)).to.deep.equal(['2,520×', '10,200×', '390×', '2.01×', '0.834×', '1×']);
    expect([0.1, 1, 10, 100, 1000, 1e4, 1e5, 1e6].map(formatTick)).to.deep.equal(['100 ns', '1 µs', '10 µs', '100 µs', '1 ms', '10 ms', '100 ms', '1 s']);
    expect(escapeXml(`a<b>&"'`)).to.equal('a&lt;b&gt;&amp;&quot;&apos;');
    const one: BenchResult = { ...RESULT, lookups: [{ ...RESULT.lookups[0], source: 'fdinfo' }] };
    const svg = renderBenchSvg(one);
    checkWellFormed(svg);
    expect(svg).to.include('11 µs (fdinfo)</text>');
    expect(svg.match(/class="band"/g)).to.have.length(2);
    expect(svg).to.not.include('NaN');
    expect(() => renderBenchSvg({ ...RESULT, lookups: [] })).to.throw(/no lookup rows/);
  });
});
