/**
 * `epolltrack bench --plot FILE.svg`: lookup latency against the fd count, the
 * tracker and the fdinfo way, as a plain SVG document (no dependency, no
 * external font: the generic `sans-serif` family). Both axes are logarithmic;
 * each series shows its medians as points joined by a line and its p5–p95 as a
 * band: one cold outlier does not stretch the picture (min and max are in the
 * bench table). Numbers carry 3 significant digits. Beside the speed-up, the
 * cost of tracking: what the hooks add to an epoll_ctl pair and to an
 * unrelated syscall, measured in the same run.
 */
import { BadInputError } from '../kernel/errors.js';
import type { BenchResult, LookupRow, Timing } from './bench.js';

const W = 800;
const H = 560;
const M = { left: 86, right: 28, top: 126, bottom: 78 };
const FONT = 'font-family="sans-serif"';

interface Series { name: string; color: string; marker: 'circle' | 'square'; pick: (r: LookupRow) => Timing }

const SERIES: Series[] = [
  { name: 'epolltrack (BPF tracker)', color: '#1f6fb4', marker: 'circle', pick: (r) => r.bpf },
  { name: 'fdinfo way (/proc/PID/fdinfo walk)', color: '#d9601a', marker: 'square', pick: (r) => r.fdinfo },
];

/** Escape text for XML character data and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** 3 significant digits, no exponent, no trailing zeros: 9.25, 187, 4.3, 10200. */
export function sig3(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return String(Number(v.toPrecision(3)));
}

/** A latency in microseconds to 3 significant digits: 9.25 µs, 187 µs, 4.3 ms, 93.8 ms. */
export function formatMicros(v: number): string {
  // round first, so that 999.7 µs reads 1 ms, not 1000 µs
  const r = Number(v.toPrecision(3));
  if (r >= 1e6) return `${sig3(r / 1e6)} s`;
  if (r >= 1000) return `${sig3(r / 1000)} ms`;
  if (r >= 1) return `${sig3(r)} µs`;
  return `${sig3(r * 1000)} ns`;
}

/** A ratio to 3 significant digits with thousands separated: 390×, 5,570×, 10,200×, 1.32×. */
export function formatRatio(v: number): string {
  const r = Number(v.toPrecision(3));
  return `${r >= 1000 ? r.toLocaleString('en-US') : sig3(r)}×`;
}

/** A latency axis tick (a power of ten, in µs): 100 ns, 1 µs, 10 µs, ... 1 s. */
export function formatTick(v: number): string {
  if (v >= 1e6) return `${trim(v / 1e6)} s`;
  if (v >= 1000) return `${trim(v / 1000)} ms`;
  if (v >= 1) return `${trim(v)} µs`;
  return `${trim(v * 1000)} ns`;
}

/** An fd count as an axis label: 1k, 19k, 500. */
export function formatCount(n: number): string {
  return n >= 1000 ? `${trim(n / 1000)}k` : String(n);
}

/** At most two decimals, no trailing zeros after the point: 19, 2.5, 0.25. */
function trim(v: number): string {
  return String(Math.round(v * 100) / 100);
}

const f1 = (v: number) => (Math.round(v * 10) / 10).toString();

/** A log10 scale from [lo, hi] onto [a, b]. */
function logScale(lo: number, hi: number, a: number, b: number): (v: number) => number {
  const l0 = Math.log10(lo);
  const l1 = Math.log10(hi);
  return (v) => a + ((Math.log10(v) - l0) / (l1 - l0)) * (b - a);
}

/** Values of the 1-2-5 sequence inside [lo, hi]. */
function ticks125(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out;
}

/** Render the lookup rows of a bench result as an SVG document. */
export function renderBenchSvg(r: BenchResult): string {
  const rows = [...r.lookups].filter((x) => x.fds > 0).sort((a, b) => a.fds - b.fds);
  if (!rows.length) throw new BadInputError('bench result has no lookup rows to plot: run bench with lookups');
  const px0 = M.left;
  const px1 = W - M.right;
  const py0 = H - M.bottom; // bottom of the plot area
  const py1 = M.top;

  // x: fd count, log scale, a margin of 40% either side of the data.
  const fdsLo = rows[0].fds;
  const fdsHi = rows[rows.length - 1].fds;
  const xLo = fdsLo === fdsHi ? fdsLo / 2 : fdsLo / 1.4;
  const xHi = fdsLo === fdsHi ? fdsHi * 2 : fdsHi * 1.4;
  const x = logScale(xLo, xHi, px0, px1);

  // y: latency in µs, log scale over whole decades covering every p5, median and p95.
  const all = rows.flatMap((row) => SERIES.flatMap((s) => [s.pick(row).p5, s.pick(row).p95, s.pick(row).median])).filter((v) => v > 0);
  const yLoExp = Math.floor(Math.log10(Math.min(...all)));
  let yHiExp = Math.ceil(Math.log10(Math.max(...all)));
  if (yHiExp === yLoExp) yHiExp++;
  const yLo = 10 ** yLoExp;
  const yHi = 10 ** yHiExp;
  const y = logScale(yLo, yHi, py0, py1);
  const yc = (v: number) => y(Math.min(yHi, Math.max(yLo, v)));

  const o: string[] = [];
  o.push('<?xml version="1.0" encoding="UTF-8"?>');
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ${FONT} font-size="13">`);
  const title = 'epolltrack bench: lookup latency against fds held';
  const sub = `${r.machine} · kernel ${r.kernel} · ${r.mode} mode · ${r.date.slice(0, 10)}`;
  o.push(`<title>${escapeXml(`${title} (${sub})`)}</title>`);
  o.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  o.push(`<text class="title" x="${W / 2}" y="26" text-anchor="middle" font-size="17" font-weight="bold" fill="#222">${escapeXml(title)}</text>`);
  o.push(`<text class="subtitle" x="${W / 2}" y="47" text-anchor="middle" font-size="12.5" fill="#444">${escapeXml(sub)}</text>`);

  // Grid and ticks.
  o.push('<g class="grid" stroke-width="1">');
  for (let e = yLoExp; e <= yHiExp; e++) {
    const d = 10 ** e;
    o.push(`<line x1="${px0}" x2="${px1}" y1="${f1(y(d))}" y2="${f1(y(d))}" stroke="#d4d4d4"/>`);
    if (e < yHiExp) {
      for (let m = 2; m <= 9; m++) o.push(`<line x1="${px0}" x2="${px1}" y1="${f1(y(m * d))}" y2="${f1(y(m * d))}" stroke="#f0f0f0"/>`);
    }
  }
  const xt = ticks125(xLo, xHi);
  for (const v of xt) o.push(`<line x1="${f1(x(v))}" x2="${f1(x(v))}" y1="${py1}" y2="${py0}" stroke="#e4e4e4"/>`);
  o.push('</g>');

  o.push('<g class="axes" stroke="#333" stroke-width="1.2" fill="none">');
  o.push(`<rect x="${px0}" y="${py1}" width="${px1 - px0}" height="${py0 - py1}"/>`);
  o.push('</g>');

  o.push('<g class="y-ticks" font-size="12" fill="#333" text-anchor="end">');
  for (let e = yLoExp; e <= yHiExp; e++) {
    const yy = f1(y(10 ** e));
    o.push(`<line x1="${px0 - 6}" x2="${px0}" y1="${yy}" y2="${yy}" stroke="#333"/>`);
    o.push(`<text class="tick" x="${px0 - 9}" y="${yy}" dy="4">${escapeXml(formatTick(10 ** e))}</text>`);
    if (e < yHiExp) {
      for (let m = 2; m <= 9; m++) {
        const ym = f1(y(m * 10 ** e));
        o.push(`<line x1="${px0 - 3}" x2="${px0}" y1="${ym}" y2="${ym}" stroke="#333"/>`);
      }
    }
  }
  o.push('</g>');

  o.push('<g class="x-ticks" font-size="12" fill="#333" text-anchor="middle">');
  for (const v of xt) {
    const xx = f1(x(v));
    o.push(`<line x1="${xx}" x2="${xx}" y1="${py0}" y2="${py0 + 6}" stroke="#333"/>`);
    o.push(`<text class="tick" x="${xx}" y="${py0 + 20}">${escapeXml(formatCount(v))}</text>`);
  }
  o.push('</g>');

  o.push(`<text class="axis-label" x="${(px0 + px1) / 2}" y="${H - 36}" text-anchor="middle" fill="#222">fds held by the process (log scale)</text>`);
  o.push(`<text class="axis-label" transform="translate(22 ${(py0 + py1) / 2}) rotate(-90)" text-anchor="middle" fill="#222">lookup latency (log scale)</text>`);

  // Series: band (p5–p95), median line, markers, median labels. No min or max: the table has them.
  for (const s of SERIES) {
    const pts = rows.map((row) => ({ row, t: s.pick(row), cx: x(row.fds) }));
    o.push(`<g class="series" data-series="${escapeXml(s.name)}" fill="${s.color}" stroke="${s.color}">`);
    if (pts.length > 1) {
      const upper = pts.map((p) => `${f1(p.cx)},${f1(yc(p.t.p95))}`);
      const lower = pts.map((p) => `${f1(p.cx)},${f1(yc(p.t.p5))}`).reverse();
      o.push(`<polygon class="band" points="${[...upper, ...lower].join(' ')}" fill-opacity="0.16" stroke="none"/>`);
      o.push(`<polyline class="median" points="${pts.map((p) => `${f1(p.cx)},${f1(yc(p.t.median))}`).join(' ')}" fill="none" stroke-width="2.2"/>`);
    } else {
      // one size: the band is a short bar
      const p = pts[0];
      o.push(`<rect class="band" x="${f1(p.cx - 6)}" y="${f1(yc(p.t.p95))}" width="12" height="${f1(Math.max(1, yc(p.t.p5) - yc(p.t.p95)))}" fill-opacity="0.16" stroke="none"/>`);
    }
    for (const p of pts) {
      const ymed = yc(p.t.median);
      o.push(marker(s, p.cx, ymed));
      const fallback = s.pick === SERIES[0].pick && p.row.source !== 'bpf' ? ` (${p.row.source})` : '';
      o.push(`<text class="value" x="${f1(p.cx + 9)}" y="${f1(ymed)}" dy="-6" font-size="11.5" stroke="none">${escapeXml(formatMicros(p.t.median) + fallback)}</text>`);
    }
    o.push('</g>');
  }

  // Speed-up and the cost of tracking, side by side, under the subtitle.
  const last = rows[rows.length - 1];
  const speed = last.ratio > 0 && Number.isFinite(last.ratio) ? `lookup speed-up at ${formatCount(last.fds)} fds: ${formatRatio(last.ratio)}` : '';
  let cost: string;
  if (r.syscalls && 'baseline' in r.syscalls) {
    cost = `cost of tracking (${r.mode} mode): epoll_ctl ADD+DEL pair ${formatRatio(r.syscalls.ctlPairRatio)}, getppid (unrelated) ${formatRatio(r.syscalls.getppidRatio)}`;
  } else if (r.syscalls) {
    const why = r.syscalls.skipped;
    cost = `cost of tracking: not measured (${why.length > 80 ? `${why.slice(0, 79)}…` : why})`;
  } else {
    cost = 'cost of tracking: not measured';
  }
  o.push(`<text class="summary" x="${W / 2}" y="68" text-anchor="middle" font-size="12.5" fill="#222">`
    + `${speed ? `<tspan class="speedup" font-weight="bold">${escapeXml(speed)}</tspan>` : ''}`
    + `<tspan class="cost" x="${W / 2}" dy="${speed ? 17 : 0}">${escapeXml(cost)}</tspan></text>`);

  // Legend: one row between the summary and the plot, where no data can hide it.
  const entries = SERIES.map((s) => ({ s, w: s.name.length * 6.9 + 40 }));
  let lx = W / 2 - entries.reduce((a, e) => a + e.w, 0) / 2;
  const ly = 108;
  o.push('<g class="legend" font-size="12.5">');
  for (const { s, w } of entries) {
    o.push(`<line x1="${f1(lx)}" x2="${f1(lx + 26)}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2.2"/>`);
    o.push(`<g fill="${s.color}" stroke="${s.color}">${marker(s, lx + 13, ly)}</g>`);
    o.push(`<text x="${f1(lx + 32)}" y="${ly}" dy="4" fill="#222">${escapeXml(s.name)}</text>`);
    lx += w;
  }
  o.push('</g>');
  const n = (s: Series) => Math.min(...rows.map((row) => s.pick(row).n));
  const note = `points and lines: median of ${SERIES.map((s) => `≥${n(s)} ${s.name.split(' ')[0]}`).join(' / ')} lookups per size; bands: p5–p95 (min and max: see the bench table)`;
  o.push(`<text class="note" x="${W / 2}" y="${H - 10}" text-anchor="middle" font-size="11" fill="#666">${escapeXml(note)}</text>`);

  // The ratio at the largest N, between the two points.
  if (speed) {
    const mid = Math.sqrt(last.bpf.median * last.fdinfo.median);
    o.push(`<text class="ratio" x="${f1(x(last.fds) - 10)}" y="${f1(y(mid))}" text-anchor="end" font-size="12.5" font-weight="bold" fill="#333" stroke="#fff" stroke-width="4" stroke-linejoin="round" paint-order="stroke">${escapeXml(`${formatRatio(last.ratio)} faster at ${formatCount(last.fds)} fds`)}</text>`);
  }

  o.push('</svg>');
  return `${o.join('\n')}\n`;
}

function marker(s: Series, cx: number, cy: number): string {
  if (s.marker === 'circle') return `<circle class="point" cx="${f1(cx)}" cy="${f1(cy)}" r="4.5" stroke="#fff" stroke-width="1.2"/>`;
  return `<rect class="point" x="${f1(cx - 4.2)}" y="${f1(cy - 4.2)}" width="8.4" height="8.4" stroke="#fff" stroke-width="1.2"/>`;
}
