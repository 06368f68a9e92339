/**
 * The dashboard, in the browser: function components written with htm + preact
 * (htm/preact/standalone, served by the daemon). The daemon serves this
 * function's compiled source as /app.js, so it must stay self-contained: it
 * uses nothing from this module but types, and only browser globals.
 */
import type { SwapRecord } from '../supervise/supervisor.js';
import type { Instance, ProcInfo, RegRow, Snapshot } from './collect.js';
import type { History, LatencySample, StatusBody, SwapCounts } from './types.js';

type Html = (strings: TemplateStringsArray, ...values: unknown[]) => unknown;
type SetState<T> = (v: T | ((prev: T) => T)) => void;

export interface ClientLib {
  html: Html;
  render: (vnode: unknown, parent: Element) => void;
  useState: <T>(init: T) => [T, SetState<T>];
  useEffect: (fn: () => void | (() => void), deps?: unknown[]) => void;
  useMemo: <T>(fn: () => T, deps: unknown[]) => T;
  useRef: <T>(init: T) => { current: T };
}


interface Message {
  type: 'snapshot' | 'swaps' | 'latency' | 'status' | 'history';
  snapshot?: Snapshot;
  swaps?: SwapRecord[];
  counts?: SwapCounts;
  history?: History;
  samples?: LatencySample[];
  status?: StatusBody;
  reset?: boolean;
  periodMs?: number;
}

export function dashboardApp(lib: ClientLib): void {
  const { html, render, useState, useEffect, useMemo, useRef } = lib;

  /** The view's state in the page's URL: these parameters, nothing else. */
  const PARAMS = ['pid', 'comm', 'cgroup', 'q', 'sort'];
  const SORTS: Record<string, string> = { regs: 'registrations', name: 'name', pid: 'pid' };
  const MODE_COST: Record<string, string> = {
    tracepoint: 'every syscall on the host takes the syscall-trace slow path (epolltrack bench measures it)',
    fentry: 'epoll calls only', kprobe: 'epoll calls only',
  };

  const fmtMicros = (us: number): string => (us < 1000 ? `${us.toFixed(1)} µs` : us < 1e6 ? `${(us / 1000).toFixed(1)} ms` : `${(us / 1e6).toFixed(2)} s`);
  const fmtTime = (iso: string): string => {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour12: false });
  };
  const regKey = (i: Instance, r: RegRow) => `${i.epollPid}:${i.epfd}:${r.pid}:${r.fd}:${r.tfd}`;
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : 0;
  };

  function Target({ r, inst }: { r: RegRow; inst: Instance }) {
    const elsewhere = r.pid !== inst.epollPid || r.fd !== r.tfd;
    return html`<span class=${`kind k-${r.target.kind}`}>${r.target.kind}</span>${r.target.desc !== r.target.kind ? r.target.desc : ''}${elsewhere
      ? html` <span class="other">(fd ${r.fd} of pid ${r.pid})</span>` : ''}`;
  }

  function InstanceView({ inst, fresh }: { inst: Instance; fresh: Set<string> }) {
    return html`<div class="inst" data-epfd=${inst.epfd}>
      <div class="inst-head">${inst.epfd >= 0 ? html`epoll <b>fd ${inst.epfd}</b>` : html`<b>epoll instance at no fd right now</b>`}${
        ` · ${inst.registrations.length} registration${inst.registrations.length === 1 ? '' : 's'}`}</div>
      <table>
        <thead><tr><th style="width:48px">TFD</th><th>TARGET</th><th style="width:32%">EVENTS</th><th style="width:120px">DATA</th></tr></thead>
        <tbody>${inst.registrations.map((r) => html`<tr key=${regKey(inst, r)} class=${`reg${fresh.has(regKey(inst, r)) ? ' fresh' : ''}`}
            data-tfd=${r.tfd} data-fd=${r.fd} data-kind=${r.target.kind}>
          <td class="num">${r.tfd}</td>
          <td class="tgt"><${Target} r=${r} inst=${inst} /></td>
          <td class="ev" title=${`0x${(r.events >>> 0).toString(16)}`}>${r.eventNames.replace(/\|/g, '|\u200b')}</td>
          <td class="num">${r.data}</td></tr>`)}</tbody>
      </table></div>`;
  }

  function Spark({ pts, periodMs }: { pts: number[] | undefined; periodMs: number }) {
    if (!pts || !pts.length) return html`<span class="spark none"></span>`;
    const w = 72, h = 18;
    const max = Math.max(1, ...pts);
    const min = Math.min(...pts);
    const lo = min === max ? 0 : min;
    const xs = (i: number) => (pts.length === 1 ? w : (i * w) / (pts.length - 1));
    const ys = (v: number) => h - 2 - ((v - lo) * (h - 4)) / Math.max(1, max - lo);
    const line = pts.map((v, i) => `${xs(i).toFixed(1)},${ys(v).toFixed(1)}`).join(' ');
    const span = Math.round((pts.length * periodMs) / 1000);
    return html`<svg class="spark" width=${w} height=${h} viewBox=${`0 0 ${w} ${h}`} data-points=${pts.join(',')}
        aria-label=${`registrations over the last ${span} s: ${min} to ${max}`}>
      <title>${`registrations, last ${span} s: min ${min}, max ${max}, now ${pts[pts.length - 1]}`}</title>
      <polyline points=${line} fill="none" stroke="#2f6fde" stroke-width="1.4" />
    </svg>`;
  }

  function ProcessView({ p, fresh, collapsed, toggle, pts, periodMs }: { p: ProcInfo; fresh: Set<string>; collapsed: boolean; toggle: () => void; pts?: number[]; periodMs: number }) {
    const total = p.total ?? p.registrations;
    return html`<section class=${`proc${collapsed ? ' collapsed' : ''}`} data-pid=${p.pid} data-comm=${p.comm}>
      <div class="proc-head" onClick=${toggle} title=${p.cmdline}>
        <span class="caret">${collapsed ? '▸' : '▾'}</span>
        <span class="comm">${p.comm}</span><span class="pid">pid ${p.pid}</span>
        <span class="cmdline">${p.cmdline}</span>
        ${p.container ? html`<span class="cg ctr" title=${p.cgroup}>container ${p.container}</span>`
          : html`<span class="cg" title=${p.cgroup}>${p.cgroup}</span>`}
        <${Spark} pts=${pts} periodMs=${periodMs} />
        <span class="n">${`${p.instances.length} epoll${p.instances.length === 1 ? '' : 's'} · `}<b class="nregs">${p.registrations}</b>${
          total !== p.registrations ? ` of ${total}` : ''}${` registration${total === 1 ? '' : 's'}`}</span>
      </div>
      ${collapsed ? '' : p.instances.map((i) => html`<${InstanceView} key=${`${i.epollPid}:${i.epfd}`} inst=${i} fresh=${fresh} />`)}
    </section>`;
  }

  function Chart({ samples }: { samples: LatencySample[] }) {
    const w = 360, h = 100, padL = 44, padB = 8, padT = 6;
    if (samples.length < 2) return html`<p class="sub">The chart fills in as samples come (one every few seconds).</p>`;
    const all = samples.flatMap((s) => [s.tracker.micros, s.fdinfo.micros]).filter((v) => v > 0);
    const lo = Math.floor(Math.log10(Math.max(0.1, Math.min(...all))));
    const hi = Math.ceil(Math.log10(Math.max(...all) * 1.01));
    const span = Math.max(1, hi - lo);
    const x = (i: number) => padL + (i * (w - padL - 4)) / Math.max(1, samples.length - 1);
    const y = (v: number) => padT + (h - padT - padB) * (1 - (Math.log10(Math.max(v, 0.1)) - lo) / span);
    const line = (f: (s: LatencySample) => number) => samples.map((s, i) => `${x(i).toFixed(1)},${y(f(s)).toFixed(1)}`).join(' ');
    const ticks: number[] = [];
    for (let e = lo; e <= hi; e++) ticks.push(e);
    return html`<svg class="chart" viewBox=${`0 0 ${w} ${h}`} role="img" aria-label="lookup time per sample, log scale">
      ${ticks.map((e) => html`<g><line x1=${padL} x2=${w - 4} y1=${y(10 ** e)} y2=${y(10 ** e)} stroke="#e6e9ef" />
        <text x=${padL - 5} y=${y(10 ** e) + 3.5} font-size="9.5" fill="#8a92a3" text-anchor="end">${fmtMicros(10 ** e).replace('.0 ', ' ')}</text></g>`)}
      <polyline points=${line((s) => s.fdinfo.micros)} fill="none" stroke="#d9822b" stroke-width="2" />
      <polyline points=${line((s) => s.tracker.micros)} fill="none" stroke="#2f6fde" stroke-width="2" />
    </svg>
    <div class="legend"><span><i style="background:#2f6fde"></i>tracker</span><span><i style="background:#d9822b"></i>fdinfo way</span><span>log scale, last ${samples.length} samples</span></div>`;
  }

  function LatencyPanel({ samples, periodMs }: { samples: LatencySample[]; periodMs: number }) {
    const last = samples[samples.length - 1];
    const mb = median(samples.map((s) => s.tracker.micros));
    const mf = median(samples.map((s) => s.fdinfo.micros));
    return html`<section class="panel" id="latency">
      <h2>Lookup latency <span>measured here every ${Math.round(periodMs / 1000)} s</span></h2>
      ${!last ? html`<p class="sub">No sample yet: needs a process with a registered fd.</p>` : html`
        <div class="big">
          <div class="bpf"><small>tracker</small><b>${fmtMicros(last.tracker.micros)}</b></div>
          <div class="fdi"><small>fdinfo way</small><b>${fmtMicros(last.fdinfo.micros)}</b></div>
          <div class="x"><small>ratio</small><b>${(last.fdinfo.micros / Math.max(0.1, last.tracker.micros)).toFixed(0)}×</b></div>
        </div>
        <div class="sub">${last.comm} (pid ${last.pid}) fd ${last.fd}: ${last.nfds} fds, ${last.registrations} registration${last.registrations === 1 ? '' : 's'},
          answered by ${last.tracker.source}${last.tracker.reason ? ` (${last.tracker.reason})` : ''}${last.agree ? ', both ways agree' : ', the two ways differ (fd changed meanwhile?)'} · ${fmtTime(last.time)}</div>
        <div class="sub">median of ${samples.length}: tracker ${fmtMicros(mb)}, fdinfo way ${fmtMicros(mf)}</div>
        <${Chart} samples=${samples.slice(-60)} />`}
    </section>`;
  }

  function SwapsPanel({ swaps, counts, log }: { swaps: SwapRecord[]; counts: SwapCounts | null; log: string }) {
    const c = counts ?? { swapped: 0, failed: 0, continued: 0, unmoved: 0, moved: 0 };
    const res = (s: SwapRecord) => (s.result === 'failed' ? 'failed' : s.error ? 'kernel' : s.moved === 0 ? 'unmoved' : 'moved');
    return html`<section class="panel" id="swaps">
      <h2>Fd swaps <span class="totals" title=${`totals over the whole log ${log}`}>
<b class="t-moved">${c.swapped - c.unmoved}</b>${` swap${c.swapped - c.unmoved === 1 ? '' : 's'} moved registrations · `}<b class=${c.unmoved ? 't-unmoved' : ''}>${c.unmoved}</b>${
          ' moved none · '}<b class=${c.failed ? 't-failed' : ''}>${c.failed}</b>${' failed'}${c.continued ? html`${' · '}<b>${c.continued}</b>${' left to the kernel'}` : ''}</span></h2>
      ${!swaps.length ? html`<p class="sub">None yet. <code>epolltrack supervise</code> and <code>agent</code> log each swap to <code>${log}</code>.</p>` : html`
      <ul class="swaps">${swaps.slice(0, 8).map((s) => html`<li class=${`swap ${res(s)}`} data-result=${res(s)} title=${s.error ?? `${s.result} (${s.source})`}>
        <div class="l1"><span class="num">${fmtTime(s.time)}</span><span class="who">pid <b>${s.pid}</b> fd <b>${s.fd}</b></span>
          <span class="res">${s.result === 'failed' ? `failed${s.errno ? ` (errno ${s.errno})` : ''}` : s.error ? 'left to the kernel'
            : s.moved === 0 ? `swapped, 0 moved · ${fmtMicros(s.micros)}` : `${s.moved} moved · ${fmtMicros(s.micros)}`}</span></div>
        <div class="l2"><span class="mono">${s.from} → ${s.to}</span>${s.result === 'failed' && s.error ? html` <span class="err">${s.error}</span>` : ''}</div></li>`)}</ul>`}
      <div class="sub">${`${c.moved} registration${c.moved === 1 ? '' : 's'} moved in all; totals over the whole log`}</div>
    </section>`;
  }

  function HealthPanel({ status }: { status: StatusBody | null }) {
    if (!status) return html`<section class="panel" id="health"><h2>Tracker health</h2><p class="sub">Waiting for the daemon…</p></section>`;
    const m = status.maps;
    const f = status.fill;
    const c = status.counters ?? {};
    const fb = status.fallbacks ?? {};
    const nfb = Object.values(fb).reduce((a, b) => a + b, 0);
    const pct = (e: number, cap: number) => (100 * e) / Math.max(1, cap);
    const meter = (live: number, stale: number, cap: number) => html`<div class="meter" title=${`${live} live, ${stale} stale of ${cap}`}>
      <i class="live" style=${`width:${Math.min(100, pct(live, cap)).toFixed(1)}%`}></i><i class="stale" style=${`width:${Math.min(100, pct(stale, cap)).toFixed(1)}%`}></i></div>`;
    const row = (name: 'regs' | 'epolls', label: string) => {
      if (!m) return '';
      const cap = m[name].capacity;
      const live = f ? f[name].live : m[name].entries;
      const stale = f ? f[name].stale : 0;
      const full = pct(live + stale, cap) >= 90;
      return html`<div class="kv" data-map=${name}><span>${label}</span><span class=${full ? 'warn' : ''}>${`${live} live`}${f ? ` · ${stale} stale` : ''}${` / ${cap} (${pct(live + stale, cap).toFixed(pct(live + stale, cap) < 1 ? 2 : 0)}% full)`}</span></div>${meter(live, stale, cap)}`;
    };
    const mode = status.mode ?? 'not loaded';
    return html`<section class="panel" id="health">
      <h2>Tracker health <span id="health-mode">${mode} mode</span></h2>
      <div class="kv"><span>hook cost</span><span class="cost">${MODE_COST[mode] ?? 'no hooks on other syscalls'}</span></div>
      ${row('regs', 'regs map')}${row('epolls', 'epolls map')}
      <div class="kv">
        <span>fallbacks</span><span class=${nfb ? 'caution' : ''} id="fallbacks">${Object.entries(fb).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(' · ') || 'none'}</span>
        <span>map full</span><span class=${c.regsFull || c.epollsFull ? 'warn' : ''}>regs ${c.regsFull ?? 0} · epolls ${c.epollsFull ?? 0}</span>
        <span>seen</span><span>add ${c.add ?? 0} · mod ${c.mod ?? 0} · del ${c.del ?? 0} · remove ${c.remove ?? 0}</span>
      </div>
    </section>`;
  }

  /** The view as the URL says: known parameters, and a notice for the rest. */
  function readUrl(): { pid: string; comm: string; cgroup: string; q: string; sort: string; ignored: string[] } {
    const u = new URLSearchParams(location.search);
    const v = { pid: u.get('pid') ?? '', comm: u.get('comm') ?? '', cgroup: u.get('cgroup') ?? '', q: u.get('q') ?? '', sort: u.get('sort') ?? 'regs', ignored: [] as string[] };
    for (const k of new Set(u.keys())) if (!PARAMS.includes(k)) v.ignored.push(k);
    if (!SORTS[v.sort]) { v.ignored.push(`sort=${v.sort}`); v.sort = 'regs'; }
    return v;
  }

  function App() {
    const init = useMemo(readUrl, []);
    const [snap, setSnap] = useState<Snapshot | null>(null);
    const [fresh, setFresh] = useState<Set<string>>(new Set());
    const [swaps, setSwaps] = useState<SwapRecord[]>([]);
    const [swapCounts, setSwapCounts] = useState<SwapCounts | null>(null);
    const [samples, setSamples] = useState<LatencySample[]>([]);
    const [periodMs, setPeriodMs] = useState(5000);
    const [status, setStatus] = useState<StatusBody | null>(null);
    const [hist, setHist] = useState<History>({ periodMs: 5000, series: {} });
    const [connected, setConnected] = useState(false);
    const [fPid, setFPid] = useState(init.pid);
    const [fComm, setFComm] = useState(init.comm);
    const [fCg, setFCg] = useState(init.cgroup);
    const [fQ, setFQ] = useState(init.q);
    /** the search the stream applies (the daemon matches); set once the daemon accepted it */
    const [qApplied, setQApplied] = useState('');
    const [searchError, setSearchError] = useState('');
    const [sort, setSort] = useState(init.sort);
    const [ignored, setIgnored] = useState<string[]>(init.ignored);
    const [collapsed, setCollapsed] = useState<Set<number>>(new Set());
    const seen = useRef<Set<string> | null>(null);

    // A search is checked by the daemon first (a word it cannot read: its one-line error, the
    // view unchanged), then the stream is reopened with it: the daemon does the matching.
    useEffect(() => {
      const q = fQ.trim();
      if (!q) { setQApplied(''); setSearchError(''); return undefined; }
      let stale = false;
      const t = setTimeout(() => {
        fetch(`/api/snapshot?q=${encodeURIComponent(q)}`).then(async (r) => {
          if (stale) return;
          if (r.ok) { setQApplied(q); setSearchError(''); return; }
          const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` })) as { error?: string };
          setSearchError(body.error ?? `HTTP ${r.status}`);
        }).catch(() => undefined);
      }, 200);
      return () => { stale = true; clearTimeout(t); };
    }, [fQ]);

    useEffect(() => {
      seen.current = null; // another selection: nothing flashes as new
      const es = new EventSource(`/api/events${qApplied ? `?q=${encodeURIComponent(qApplied)}` : ''}`);
      es.onopen = () => setConnected(true);
      es.onerror = () => setConnected(false);
      es.onmessage = (e: MessageEvent) => {
        const m = JSON.parse(e.data as string) as Message;
        if (m.type === 'snapshot' && m.snapshot) {
          const keys = new Set<string>();
          for (const p of m.snapshot.processes) for (const i of p.instances) for (const r of i.registrations) keys.add(regKey(i, r));
          const prev = seen.current;
          setFresh(prev ? new Set([...keys].filter((k) => !prev.has(k))) : new Set());
          seen.current = keys;
          setSnap(m.snapshot);
        } else if (m.type === 'swaps' && m.swaps) {
          const got = [...m.swaps].reverse();
          if (m.counts) setSwapCounts(m.counts);
          setSwaps((old) => (m.reset ? got : [...got, ...old]).slice(0, 200));
        } else if (m.type === 'latency' && m.samples) {
          if (m.periodMs) setPeriodMs(m.periodMs);
          const got = m.samples;
          setSamples((old) => (m.reset ? got : [...old, ...got]).slice(-120));
        } else if (m.type === 'status' && m.status) {
          setStatus(m.status);
        } else if (m.type === 'history' && m.history) {
          setHist(m.history);
        }
      };
      return () => es.close();
    }, [qApplied]);

    // The view lives in the URL (shareable; replaceState: no history entry per keystroke).
    useEffect(() => {
      const u = new URLSearchParams();
      if (fPid.trim()) u.set('pid', fPid.trim());
      if (fComm.trim()) u.set('comm', fComm.trim());
      if (fCg.trim()) u.set('cgroup', fCg.trim());
      if (fQ.trim()) u.set('q', fQ.trim());
      if (sort !== 'regs') u.set('sort', sort);
      const qs = u.toString();
      history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}`);
    }, [fPid, fComm, fCg, fQ, sort]);

    const shown = useMemo(() => {
      if (!snap) return [];
      const pid = fPid.trim();
      const comm = fComm.trim().toLowerCase();
      const cg = fCg.trim();
      const list = snap.processes.filter((p) => (!pid || String(p.pid) === pid)
        && (!comm || p.comm.toLowerCase().includes(comm) || p.cmdline.toLowerCase().includes(comm))
        && (!cg || p.cgroup.includes(cg) || (p.container ?? '').includes(cg)));
      const by: Record<string, (a: ProcInfo, b: ProcInfo) => number> = {
        regs: (a, b) => b.registrations - a.registrations || a.pid - b.pid,
        name: (a, b) => a.comm.localeCompare(b.comm) || a.pid - b.pid,
        pid: (a, b) => a.pid - b.pid,
      };
      return list.sort(by[sort] ?? by.regs);
    }, [snap, fPid, fComm, fCg, sort]);

    const toggle = (pid: number) => setCollapsed((s) => {
      const n = new Set(s);
      if (n.has(pid)) n.delete(pid); else n.add(pid);
      return n;
    });
    const t = snap?.all ?? snap?.totals;
    const shownRegs = shown.reduce((n, p) => n + p.registrations, 0);
    const val = (e: Event) => (e.target as HTMLInputElement).value;
    return html`
      <header>
        <span class="brand">epolltrack</span>
        <span class="badge" id="mode">${status?.mode ?? '…'} mode</span>
        <span class="totals" id="totals">
          <span><b>${t?.processes ?? '–'}</b> processes</span>
          <span><b>${t?.instances ?? '–'}</b> epoll instances</span>
          <span><b>${t?.registrations ?? '–'}</b> registrations</span>
        </span>
        <span class="spacer"></span>
        <a class="api" href="/api/">API</a>
        <a class="api" href="/metrics">metrics</a>
        <span class=${`live${connected ? '' : ' off'}`} id="live"><i></i>${connected ? 'live' : 'reconnecting…'}</span>
      </header>
      ${ignored.length ? html`<div class="notice" id="notice">Ignored ${ignored.length === 1 ? 'a parameter' : 'parameters'} this page does not know:
        <code>${ignored.join(', ')}</code> (it reads ${PARAMS.join(', ')}). <button onClick=${() => setIgnored([])}>dismiss</button></div>` : ''}
      <main>
        <div>
          <div class="filters">
            <label>search <input id="filter-q" placeholder=":443  addr:10.0.0.1  kind:udp  epoll:PID:FD" value=${fQ} onInput=${(e: Event) => setFQ(val(e))} /></label>
            <label>pid <input id="filter-pid" inputmode="numeric" placeholder="any" value=${fPid} onInput=${(e: Event) => setFPid(val(e))} /></label>
            <label>command <input id="filter-comm" placeholder="name or command line" value=${fComm} onInput=${(e: Event) => setFComm(val(e))} /></label>
            <label>cgroup / container <input id="filter-cgroup" placeholder="path or id" value=${fCg} onInput=${(e: Event) => setFCg(val(e))} /></label>
            <label>sort <select id="sort" value=${sort} onChange=${(e: Event) => setSort((e.target as HTMLSelectElement).value)}>
              ${Object.entries(SORTS).map(([k, v]) => html`<option value=${k} selected=${k === sort}>${v}</option>`)}</select></label>
            ${fPid || fComm || fCg || fQ ? html`<button onClick=${() => { setFPid(''); setFComm(''); setFCg(''); setFQ(''); }}>clear</button>` : ''}
            <span class="count" id="shown">${snap && t ? `${shown.length} of ${t.processes} processes, ${shownRegs} registrations` : ''}</span>
          </div>
          ${searchError ? html`<p class="search-error" id="search-error">${searchError}</p>` : ''}
          ${!snap ? html`<p class="empty">Connecting to the daemon…</p>`
            : !shown.length ? html`<p class="empty" id="none">${t && t.processes ? 'No process matches the filter.' : 'No epoll registrations on this host.'}</p>`
            : shown.map((p) => html`<${ProcessView} key=${p.pid} p=${p} fresh=${fresh} collapsed=${collapsed.has(p.pid)} toggle=${() => toggle(p.pid)}
                pts=${hist.series[String(p.pid)]} periodMs=${hist.periodMs} />`)}
        </div>
        <aside>
          <${HealthPanel} status=${status} />
          <${SwapsPanel} swaps=${swaps} counts=${swapCounts} log=${status?.daemon?.swapsLog ?? '/run/epolltrack/swaps.jsonl'} />
          <${LatencyPanel} samples=${samples} periodMs=${periodMs} />
        </aside>
      </main>`;
  }

  const root = document.getElementById('app');
  if (root) {
    root.textContent = '';
    render(html`<${App} />`, root);
  }
}
