/**
 * What the running kernel allows: BTF, kallsyms, tracefs, kprobes. The loader
 * picks a mode from these facts and a trial load; nothing here changes the
 * kernel.
 */
import { existsSync, readFileSync } from 'node:fs';
import { libbpf } from '../src/kernel/ffi.js';
import { HOOKS, type HookSpec, type Mode } from '../src/kernel/names.js';

const BTF_KIND_FUNC = 12;

export const TRACEFS_DIRS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

export function hasBtf(): boolean {
  return existsSync('/sys/kernel/btf/vmlinux');
}

/** BTF function names present in vmlinux BTF (only those asked about). */
export function btfFuncs(names: Iterable<string>): Set<string> {
  const found = new Set<string>();
  if (!hasBtf()) return found;
  const btf = libbpf().btf_load_vmlinux_btf();
  if (!btf) return found;
  try {
    for (const n of names) if (libbpf().btf_find_by_name_kind(btf, n, BTF_KIND_FUNC) > 0) found.add(n);
  } finally {
    libbpf().btf_free(btf);
  }
  return found;
}

/** Text symbols present under their exact name (not only as .isra/.constprop clones). */
export function kallsymsExact(names: Iterable<string>): Set<string> {
  const wanted = new Set(names);
  const found = new Set<string>();
  let text = '';
  try {
    text = readFileSync('/proc/kallsyms', 'utf8');
  } catch {
    return found;
  }
  for (const line of text.split('\n')) {
    // "ffffffff817328b0 T do_epoll_ctl" (modules add "\t[mod]")
    const [, type, name] = line.split(/\s+/, 3);
    if ((type === 't' || type === 'T') && wanted.has(name)) found.add(name);
  }
  return found;
}

export function tracefsDir(): string | undefined {
  return TRACEFS_DIRS.find((d) => existsSync(`${d}/events`));
}

export function kprobesAvailable(): boolean {
  return existsSync('/sys/bus/event_source/devices/kprobe');
}

export interface ModePlan {
  mode: Mode;
  /** programs to load and attach, in order */
  hooks: HookSpec[];
  /** why this mode cannot be used (undefined if it can, pending a trial load) */
  unavailable?: string;
}

/** For each mode, the hooks this kernel has, or why the mode is out. */
export function planModes(): Record<Mode, ModePlan> {
  const funcs = new Set<string>();
  for (const m of ['fentry', 'kprobe'] as const) for (const h of HOOKS[m]) funcs.add(h.target);
  const inBtf = btfFuncs(funcs);
  const exact = kallsymsExact(funcs);
  const tracefs = tracefsDir();

  const plan = (mode: Mode, ok: (h: HookSpec) => boolean, gate?: string): ModePlan => {
    if (gate) return { mode, hooks: [], unavailable: gate };
    const hooks = HOOKS[mode].filter(ok);
    const missing = HOOKS[mode].filter((h) => h.required && !ok(h)).map((h) => h.target);
    if (missing.length) return { mode, hooks, unavailable: `kernel lacks ${[...new Set(missing)].join(', ')} out of line` };
    return { mode, hooks };
  };

  return {
    fentry: plan('fentry', (h) => inBtf.has(h.target) && exact.has(h.target),
      !hasBtf() ? 'no kernel BTF (/sys/kernel/btf/vmlinux)' : undefined),
    kprobe: plan('kprobe', (h) => exact.has(h.target),
      !kprobesAvailable() ? 'kernel has no kprobes (CONFIG_KPROBES off or no kprobe PMU)' : undefined),
    // No hooks: needs only BTF and the iterators/lookup programs every mode loads.
    lazy: plan('lazy', () => true, !hasBtf() ? 'no kernel BTF (/sys/kernel/btf/vmlinux)' : undefined),
    tracepoint: plan('tracepoint', (h) => tracefs !== undefined && existsSync(`${tracefs}/events/${h.target}`),
      tracefs === undefined ? 'tracefs is not mounted: mount -t tracefs none /sys/kernel/tracing' : undefined),
  };
}
