/**
 * The dashboard, in the browser: function components written with htm + preact
 * (htm/preact/standalone, served by the daemon). The daemon serves this
 * function's compiled source as /app.js, so it must stay self-contained: it
 * uses nothing from this module but types, and only browser globals.
 */
import type { SwapRecord } from '../supervise/supervisor.js';
import type { Instance, ProcInfo, RegRow, Snapshot } from './collect.js';
import type { LatencySample, StatusBody } from './types.js';

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
  type: 'snapshot' | 'swaps' | 'latency' | 'status';
  snapshot?: Snapshot;
  swaps?: SwapRecord[];
  samples?: LatencySample[];
  status?: StatusBody;
  reset?: boolean;
  periodMs?: number;
}

export function dashboardApp(lib: ClientLib): void {
  const { html, render, useState, useEffect, useMemo, useRef } = lib;

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

  function ProcessView({ p, fresh, collapsed, toggle }: { p: ProcInfo; fresh: Set<string>; collapsed: boolean; toggle: () => void }) {
    return html`<section class=${`proc${collapsed ? ' collapsed' : ''}`} data-pid=${p.pid} data-comm=${p.comm}>
      <div class="proc-head" onClick=${toggle} title=${p.cmdline}>
        <span class="caret">${collapsed ? '▸' : '▾'}</span>
        <span class="comm">${p.comm}</span><span class="pid">pid ${p.pid}</span>
        <span class="cmdline">${p.cmdline}</span>
        ${p.container ? html`<span class="cg ctr" title=${p.cgroup}>container ${p.container}</span>`
          : html`<span class="cg" title=${p.cgroup}>${p.cgroup}</span>`}
        <span class="n">${`${p.instances.length} epoll${p.instances.length === 1 ? '' : 's'} · `}<b class="nregs">${p.registrations}</b>${` registration${p.registrations === 1 ? '' : 's'}`}</span>
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

  function SwapsPanel({ swaps, log }: { swaps: SwapRecord[]; log: string }) {
    const failed = swaps.filter((s) => s.result === 'failed').length;
    const continued = swaps.filter((s) => s.result === 'swapped' && s.error).length;
    return html`<section class="panel" id="swaps">
      <h2>Recent fd swaps <span>${swaps.length - failed - continued} swapped${failed ? `, ${failed} failed` : ''}${continued ? `, ${continued} left to the kernel` : ''}</span></h2>
      ${!swaps.length ? html`<p class="sub">None yet. <code>epolltrack supervise</code> and <code>agent</code> log each swap to <code>${log}</code>.</p>` : html`
      <ul class="swaps">${swaps.slice(0, 12).map((s) => html`<li class=${`swap ${s.result}${s.error && s.result === 'swapped' ? ' kernel' : ''}`} title=${s.error ?? `${s.result} (${s.source})`}>
        <div class="l1"><span class="num">${fmtTime(s.time)}</span><span class="who">pid <b>${s.pid}</b> fd <b>${s.fd}</b></span>
          <span class="res">${s.result === 'failed' ? 'failed' : s.error ? 'left to the kernel' : `${s.moved} moved · ${fmtMicros(s.micros)}`}</span></div>
        <div class="l2"><span class="mono">${s.from} → ${s.to}</span>${s.result === 'failed' && s.error ? html` <span class="err">${s.error}</span>` : ''}</div></li>`)}</ul>`}
    </section>`;
  }

  function TrackerPanel({ status }: { status: StatusBody | null }) {
    if (!status) return '';
    const m = status.maps;
    const c = status.counters ?? {};
    const fb = status.fallbacks ?? {};
    const meter = (e: number, cap: number) => html`<div class="meter"><i style=${`width:${Math.min(100, (100 * e) / Math.max(1, cap)).toFixed(1)}%`}></i></div>`;
    return html`<section class="panel" id="tracker">
      <h2>Tracker <span>${status.mode ?? 'not loaded'} mode</span></h2>
      ${m ? html`<div class="kv"><span>regs map</span><span>${m.regs.entries} / ${m.regs.capacity}</span></div>${meter(m.regs.entries, m.regs.capacity)}
        <div class="kv"><span>epolls map</span><span>${m.epolls.entries} / ${m.epolls.capacity}</span></div>${meter(m.epolls.entries, m.epolls.capacity)}` : ''}
      <div class="kv">
        <span>seen</span><span>add ${c.add ?? 0} · mod ${c.mod ?? 0} · del ${c.del ?? 0} · remove ${c.remove ?? 0}</span>
        <span>map full</span><span class=${c.regsFull !== '0' || c.epollsFull !== '0' ? 'warn' : ''}>regs ${c.regsFull ?? 0} · epolls ${c.epollsFull ?? 0}</span>
        <span>fallbacks</span><span>${Object.entries(fb).map(([k, v]) => `${k} ${v}`).join(' · ') || 'none'}</span>
      </div>
    </section>`;
  }

  function App() {
    const [snap, setSnap] = useState<Snapshot | null>(null);
    const [fresh, setFresh] = useState<Set<string>>(new Set());
    const [swaps, setSwaps] = useState<SwapRecord[]>([]);
    const [samples, setSamples] = useState<LatencySample[]>([]);
    const [periodMs, setPeriodMs] = useState(5000);
    const [status, setStatus] = useState<StatusBody | null>(null);
    const [connected, setConnected] = useState(false);
    const [fPid, setFPid] = useState('');
    const [fComm, setFComm] = useState('');
    const [fCg, setFCg] = useState('');
    const [collapsed, setCollapsed] = useState<Set<number>>(new Set());
    const seen = useRef<Set<string> | null>(null);

    useEffect(() => {
      const es = new EventSource('/api/events');
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
          setSwaps((old) => (m.reset ? got : [...got, ...old]).slice(0, 200));
        } else if (m.type === 'latency' && m.samples) {
          if (m.periodMs) setPeriodMs(m.periodMs);
          const got = m.samples;
          setSamples((old) => (m.reset ? got : [...old, ...got]).slice(-120));
        } else if (m.type === 'status' && m.status) {
          setStatus(m.status);
        }
      };
      return () => es.close();
    }, []);

    const shown = useMemo(() => {
      if (!snap) return [];
      const pid = fPid.trim();
      const comm = fComm.trim().toLowerCase();
      const cg = fCg.trim();
      return snap.processes.filter((p) => (!pid || String(p.pid) === pid)
        && (!comm || p.comm.toLowerCase().includes(comm) || p.cmdline.toLowerCase().includes(comm))
        && (!cg || p.cgroup.includes(cg) || (p.container ?? '').includes(cg)));
    }, [snap, fPid, fComm, fCg]);

    const toggle = (pid: number) => setCollapsed((s) => {
      const n = new Set(s);
      if (n.has(pid)) n.delete(pid); else n.add(pid);
      return n;
    });
    const t = snap?.totals;
    const shownRegs = shown.reduce((n, p) => n + p.registrations, 0);
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
        <span class=${`live${connected ? '' : ' off'}`} id="live"><i></i>${connected ? 'live' : 'reconnecting…'}</span>
      </header>
      <main>
        <div>
          <div class="filters">
            <label>pid <input id="filter-pid" inputmode="numeric" placeholder="any" value=${fPid} onInput=${(e: Event) => setFPid((e.target as HTMLInputElement).value)} /></label>
            <label>command <input id="filter-comm" placeholder="name or command line" value=${fComm} onInput=${(e: Event) => setFComm((e.target as HTMLInputElement).value)} /></label>
            <label>cgroup / container <input id="filter-cgroup" placeholder="path or id" value=${fCg} onInput=${(e: Event) => setFCg((e.target as HTMLInputElement).value)} /></label>
            ${fPid || fComm || fCg ? html`<button onClick=${() => { setFPid(''); setFComm(''); setFCg(''); }}>clear</button>` : ''}
            <span class="count" id="shown">${snap ? `${shown.length} of ${snap.processes.length} processes, ${shownRegs} registrations` : ''}</span>
          </div>
          ${!snap ? html`<p class="empty">Connecting to the daemon…</p>`
            : !shown.length ? html`<p class="empty" id="none">${snap.processes.length ? 'No process matches the filter.' : 'No epoll registrations on this host.'}</p>`
            : shown.map((p) => html`<${ProcessView} key=${p.pid} p=${p} fresh=${fresh} collapsed=${collapsed.has(p.pid)} toggle=${() => toggle(p.pid)} />`)}
        </div>
        <aside>
          <${LatencyPanel} samples=${samples} periodMs=${periodMs} />
          <${SwapsPanel} swaps=${swaps} log=${status?.daemon?.swapsLog ?? '/run/epolltrack/swaps.jsonl'} />
          <${TrackerPanel} status=${status} />
        </aside>
      </main>`;
  }

  const root = document.getElementById('app');
  if (root) {
    root.textContent = '';
    render(html`<${App} />`, root);
  }
}
