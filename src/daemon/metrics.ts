/**
 * Prometheus metrics of the daemon (prom-client, a registry of its own, with
 * prom-client's default process and Node.js metrics). Label values are
 * snake_case. Per-process series are bounded: the TOP_PROCESSES processes with
 * the most registrations by pid and command, the rest summed under pid="other".
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MODES } from '../kernel/names.js';
import type { FallbackReason } from '../tracker/tracker.js';
import type { Snapshot } from './collect.js';

export const TOP_PROCESSES = 20;

/** `regsFull` -> `regs_full`, `no-location` -> `no_location`: Prometheus label values. */
export function snakeCase(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[^A-Za-z0-9_]+/g, '_').toLowerCase();
}

/** Map entries the kernel confirms now (live) and the others (stale, until a resync). */
export interface MapFill { regs: { live: number; stale: number }; epolls: { live: number; stale: number } }

export interface MetricsSource {
  snapshot(): Snapshot;
  version(): string;
  mode(): string | undefined;
  fill(): MapFill | undefined;
  maps(): { regs: { entries: number; capacity: number }; epolls: { entries: number; capacity: number } } | undefined;
  kernel(): Record<string, bigint>;
  fallbacks(): Record<FallbackReason, number>;
  swaps(): { swapped: number; failed: number; continued: number; moved: number };
  sseClients(): number;
}

export class DaemonMetrics {
  readonly registry = new Registry();
  readonly lookups: Counter<'source'>;
  readonly latency: Histogram<'method'>;

  constructor(src: MetricsSource) {
    const registers = [this.registry];
    const perProcess = (name: string, help: string, value: (p: Snapshot['processes'][number]) => number) => new Gauge({
      name, help, labelNames: ['pid', 'comm'] as const, registers,
      collect() {
        this.reset();
        const procs = [...src.snapshot().processes].sort((a, b) => b.registrations - a.registrations || a.pid - b.pid);
        let other = 0;
        procs.forEach((p, i) => {
          if (i < TOP_PROCESSES) this.set({ pid: String(p.pid), comm: p.comm }, value(p));
          else other += value(p);
        });
        if (procs.length > TOP_PROCESSES) this.set({ pid: 'other', comm: 'other' }, other);
      },
    });
    perProcess('epolltrack_process_registrations', `Epoll registrations held by each of the ${TOP_PROCESSES} processes with the most (pid="other": the rest)`,
      (p) => p.registrations);
    perProcess('epolltrack_process_epoll_instances', `Epoll instances with registrations of the same ${TOP_PROCESSES} processes (pid="other": the rest)`,
      (p) => p.instances.length);
    const total = (name: string, help: string, v: () => number) => new Gauge({ name, help, registers, collect() { this.set(v()); } });
    total('epolltrack_registrations', 'Epoll registrations on the host', () => src.snapshot().totals.registrations);
    total('epolltrack_epoll_instances', 'Epoll instances with registrations on the host', () => src.snapshot().totals.instances);
    total('epolltrack_processes', 'Processes holding epoll instances with registrations', () => src.snapshot().totals.processes);
    collectDefaultMetrics({ register: this.registry });
    // prom-client names three gauges `*_total`, which Prometheus reserves for counters (promtool says so): not those.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    new Gauge({
      name: 'epolltrack_build_info', help: 'Version of epolltrack and the active hook mode (always 1)', labelNames: ['version', 'mode'] as const, registers,
      collect() {
        this.reset();
        this.set({ version: src.version(), mode: src.mode() ?? 'none' }, 1);
      },
    });
    new Gauge({
      name: 'epolltrack_map_entries',
      help: 'Entries in the tracker\'s BPF maps: live (the kernel confirms them now) or stale (left by a removal no hook saw, until the next resync)',
      labelNames: ['map', 'state'] as const, registers,
      collect() {
        this.reset();
        const f = src.fill();
        if (!f) return;
        for (const map of ['regs', 'epolls'] as const) {
          this.set({ map, state: 'live' }, f[map].live);
          this.set({ map, state: 'stale' }, f[map].stale);
        }
      },
    });
    new Gauge({
      name: 'epolltrack_map_capacity', help: 'Capacity (max entries) of the tracker\'s BPF maps', labelNames: ['map'] as const, registers,
      collect() {
        const m = src.maps();
        if (m) { this.set({ map: 'regs' }, m.regs.capacity); this.set({ map: 'epolls' }, m.epolls.capacity); }
      },
    });
    new Counter({
      name: 'epolltrack_kernel_events_total',
      help: 'Kernel-side counters of the tracker (add, mod, del, remove; regs_full/epolls_full: a map was full; uncertain)',
      labelNames: ['counter'] as const, registers,
      collect() {
        this.reset();
        for (const [k, v] of Object.entries(src.kernel())) if (k !== 'gen') this.inc({ counter: snakeCase(k) }, Number(v));
      },
    });
    new Gauge({
      name: 'epolltrack_resync_generation', help: 'Generation number of the tracker\'s maps (incremented by each resync; not a count of events)', registers,
      collect() {
        const g = src.kernel().gen;
        if (g !== undefined) this.set(Number(g));
      },
    });
    this.lookups = new Counter({
      name: 'epolltrack_lookups_total', help: 'Lookups made by the daemon through the tracker, by the source of the answer',
      labelNames: ['source'] as const, registers,
    });
    this.lookups.inc({ source: 'bpf' }, 0);
    this.lookups.inc({ source: 'fdinfo' }, 0);
    new Counter({
      name: 'epolltrack_lookup_fallbacks_total', help: 'Tracker lookups by the daemon that took the slow way, by reason',
      labelNames: ['reason'] as const, registers,
      collect() {
        this.reset();
        for (const [k, v] of Object.entries(src.fallbacks())) this.inc({ reason: snakeCase(k) }, v);
      },
    });
    this.latency = new Histogram({
      name: 'epolltrack_lookup_duration_seconds', help: 'Lookup time of one registered fd measured by the daemon: tracker (bpf) vs the fdinfo way',
      labelNames: ['method'] as const, registers,
      buckets: [2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1],
    });
    new Counter({
      name: 'epolltrack_swaps_total',
      help: 'Connects served by the supervisor (from the swaps log), by result: swapped, failed, continued (left to the kernel)',
      labelNames: ['result'] as const, registers,
      collect() {
        this.reset();
        const s = src.swaps();
        this.inc({ result: 'swapped' }, s.swapped);
        this.inc({ result: 'failed' }, s.failed);
        this.inc({ result: 'continued' }, s.continued);
      },
    });
    new Counter({
      name: 'epolltrack_swap_registrations_moved_total', help: 'Epoll registrations moved by the supervisor\'s swaps (from the swaps log)', registers,
      collect() { this.reset(); this.inc(src.swaps().moved); },
    });
    new Gauge({
      name: 'epolltrack_hook_mode', help: 'Active hook mode of the tracker (1 on the active mode)', labelNames: ['mode'] as const, registers,
      collect() {
        const m = src.mode();
        for (const mode of MODES) this.set({ mode }, m === mode ? 1 : 0);
      },
    });
    new Gauge({ name: 'epolltrack_dashboard_clients', help: 'Connected live (SSE) clients', registers, collect() { this.set(src.sseClients()); } });
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
