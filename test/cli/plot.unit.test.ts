/** `epolltrack bench --plot`: the SVG chart of lookup latency against fds, rendered from a fixed result (root-free). */
import { expect } from 'chai';
import type { BenchResult } from '../../src/cli/bench.js';
import { escapeXml, formatMicros, formatTick, renderBenchSvg } from '../../src/cli/plot.js';
import { checkWellFormed, RESULT } from '../helpers/plot.js';

describe('bench --plot (rendering)', function () {
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
});
