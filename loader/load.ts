/**
 * load / unload / status of the tracking programs.
 *
 * load: check → open → set rodata and map sizes → load → pin maps → attach and
 * pin links → seed the maps (cold start) → write the state file. One cleanup
 * path undoes whatever was done when a step fails.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, destroyLink, pinLink } from '../src/kernel/bpfobject.js';
import {
  BpfError, MountError, NotRootError, NotSupportedError,
} from '../src/kernel/errors.js';
import { readStats, learnEpollFops, mapPinPath, openPinnedMaps, closeMaps, seedMaps, countEntries, type SeedResult } from '../src/kernel/maps.js';
import type { Pointer } from '../src/kernel/ffi.js';
import { EP_KEY_SIZE, REG_KEY_SIZE, VAR_OFFSET } from '../src/kernel/layout.js';
import {
  AUTO_MODES, DEFAULT_MAX_EPOLLS, DEFAULT_MAX_REGS, DEFAULT_PIN_DIR, HOOKS, ITER_PROG, MAP, MODE_COST, MODES, PINNED_MAPS, STATE_DIR,
  type Mode,
} from '../src/kernel/names.js';
import { hasBtf, planModes } from './probe.js';

export interface LoadOptions {
  pinDir?: string;
  mode?: Mode | 'auto';
  maxRegs?: number;
  maxEpolls?: number;
  /** only track this process (0 or undefined: all) */
  targetPid?: number;
}

export interface LoadState {
  pinDir: string;
  mode: Mode;
  hooks: { prog: string; target: string }[];
  /** why each mode that was not taken was not taken */
  notTaken: Partial<Record<Mode, string>>;
  maxRegs: number;
  maxEpolls: number;
  loadedAt: string;
  seed: SeedResult;
}

export interface LoadResult extends LoadState { alreadyLoaded: boolean }

function statePath(pinDir: string): string {
  return join(STATE_DIR, `${pinDir.replace(/[^A-Za-z0-9]+/g, '_')}.json`);
}

export function requireRoot(): void {
  if (process.geteuid?.() !== 0) throw new NotRootError();
}

function isBpffs(dir: string): boolean {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  return mounts.some((m) => m[2] === 'bpf' && (dir === m[1] || dir.startsWith(m[1].endsWith('/') ? m[1] : `${m[1]}/`)));
}

/** The checks every load makes, each with the fix in its message. */
export function preflight(pinDir: string): void {
  requireRoot();
  if (!hasBtf()) {
    throw new NotSupportedError('kernel has no BTF (/sys/kernel/btf/vmlinux missing): epolltrack needs CONFIG_DEBUG_INFO_BTF=y (kernel 5.11+)');
  }
  if (!isBpffs(pinDir)) {
    throw new MountError(`${pinDir} is not on a bpf file system: mount it with \`mount -t bpf bpf /sys/fs/bpf\``);
  }
}

/** Loaded: the maps are pinned and the links dir is there (empty in lazy mode, which attaches nothing). */
export function isLoaded(pinDir = DEFAULT_PIN_DIR): boolean {
  return PINNED_MAPS.every((m) => existsSync(mapPinPath(pinDir, m))) && existsSync(join(pinDir, 'links'));
}

export function readState(pinDir = DEFAULT_PIN_DIR): LoadState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(pinDir), 'utf8')) as LoadState;
  } catch {
    return undefined;
  }
}

function loadMode(mode: Mode, hooks: { prog: string; target: string; required: boolean }[], opts: Required<LoadOptions>): LoadState {
  const { pinDir } = opts;
  const links: Pointer[] = [];
  let obj: BpfObject | undefined;
  let pinned = false;
  try {
    // 1. Open the object: nothing reaches the kernel yet.
    obj = BpfObject.open();
    // 2. Keep this mode's hooks and the iterators; size the maps; set options.
    obj.keepPrograms([...hooks.map((h) => h.prog), ITER_PROG.lookup, ITER_PROG.seed]);
    obj.setMaxEntries(MAP.regs, opts.maxRegs);
    obj.setMaxEntries(MAP.epolls, opts.maxEpolls);
    if (mode !== 'kprobe') obj.setMaxEntries(MAP.start, 1);
    obj.setRodataU32(VAR_OFFSET.targTgid, opts.targetPid);
    // 3. Load and verify.
    obj.load();
    // 4. Pin the shared maps, root-only.
    mkdirSync(join(pinDir, 'maps'), { recursive: true, mode: 0o700 });
    mkdirSync(join(pinDir, 'links'), { recursive: true, mode: 0o700 });
    chmodSync(pinDir, 0o700);
    pinned = true;
    for (const m of PINNED_MAPS) obj.pinMap(m, mapPinPath(pinDir, m));
    // 5. Attach each hook; optional hooks the kernel refuses are left out.
    const attached: { prog: string; target: string }[] = [];
    for (const h of hooks) {
      let link: Pointer;
      try {
        link = obj.attach(h.prog);
      } catch (err) {
        if (h.required) throw err;
        continue;
      }
      links.push(link);
      pinLink(link, join(pinDir, 'links', h.prog));
      attached.push({ prog: h.prog, target: h.target });
    }
    // 6. Cold start: registrations made before now, read from the kernel.
    const fds = openPinnedMaps(pinDir);
    let seed: SeedResult;
    try {
      seed = seedMaps(obj, fds, learnEpollFops(obj), mode !== 'lazy');
    } finally {
      closeMaps(fds);
    }
    return {
      pinDir, mode, hooks: attached, notTaken: {}, maxRegs: opts.maxRegs, maxEpolls: opts.maxEpolls,
      loadedAt: new Date().toISOString(), seed,
    };
  } catch (err) {
    if (pinned) rmSync(pinDir, { recursive: true, force: true });
    throw err;
  } finally {
    // Pinned links keep the programs attached; our handles can go.
    for (const l of links) destroyLink(l);
    obj?.close();
  }
}

/** Load, attach and pin the tracker. Loading twice is harmless. */
export function load(options: LoadOptions = {}): LoadResult {
  const opts: Required<LoadOptions> = {
    pinDir: options.pinDir ?? DEFAULT_PIN_DIR,
    mode: options.mode ?? 'auto',
    maxRegs: options.maxRegs ?? DEFAULT_MAX_REGS,
    maxEpolls: options.maxEpolls ?? DEFAULT_MAX_EPOLLS,
    targetPid: options.targetPid ?? 0,
  };
  preflight(opts.pinDir);
  if (isLoaded(opts.pinDir)) {
    const st = readState(opts.pinDir);
    if (st) return { ...st, alreadyLoaded: true };
  }
  rmSync(opts.pinDir, { recursive: true, force: true });

  const plans = planModes();
  // auto never takes tracepoint mode: it slows every syscall on the host.
  const order: Mode[] = opts.mode === 'auto' ? [...AUTO_MODES] : [opts.mode];
  const notTaken: Partial<Record<Mode, string>> = {};
  let lastErr: unknown;
  for (const mode of order) {
    const p = plans[mode];
    if (p.unavailable) {
      notTaken[mode] = p.unavailable;
      continue;
    }
    try {
      const st = loadMode(mode, p.hooks, opts);
      st.notTaken = notTaken;
      mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
      writeFileSync(statePath(opts.pinDir), JSON.stringify(st, null, 2), { mode: 0o600 });
      return { ...st, alreadyLoaded: false };
    } catch (err) {
      if (!(err instanceof BpfError || err instanceof NotSupportedError)) throw err;
      notTaken[mode] = err.message;
      lastErr = err;
    }
  }
  const why = Object.entries(notTaken).map(([m, r]) => `${m}: ${r}`).join('; ');
  if (opts.mode !== 'auto') throw new NotSupportedError(`${opts.mode} mode is not supported here: ${notTaken[opts.mode]}`, { cause: lastErr });
  throw new NotSupportedError(`no hook mode works on this kernel: ${why}`, { cause: lastErr });
}

/** Remove every pin (links detach when their pins go) and the state file. */
export function unload(options: { pinDir?: string } = {}): { removed: boolean } {
  const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
  requireRoot();
  const removed = existsSync(pinDir);
  rmSync(pinDir, { recursive: true, force: true });
  rmSync(statePath(pinDir), { force: true });
  return { removed };
}

/**
 * Without the state file (another /run, a reboot of the container around the
 * pins), the pinned links still say which programs are attached.
 */
function stateFromPins(pinDir: string): Partial<LoadState> {
  const progs = readdirSync(join(pinDir, 'links'));
  const mode = MODES.find((m) => HOOKS[m].some((h) => progs.includes(h.prog))) ?? 'lazy';
  return { mode, hooks: mode ? HOOKS[mode].filter((h) => progs.includes(h.prog)).map(({ prog, target }) => ({ prog, target })) : [] };
}

export interface Status {
  loaded: boolean;
  pinDir: string;
  mode?: Mode;
  hooks?: { prog: string; target: string }[];
  notTaken?: Partial<Record<Mode, string>>;
  /** availability of each mode on this kernel right now (static probes, no trial load) */
  modes: Record<Mode, string>;
  /** what each mode costs the rest of the host */
  costs: Record<Mode, string>;
  maps?: { regs: { entries: number; capacity: number }; epolls: { entries: number; capacity: number } };
  counters?: Record<string, string>;
  loadedAt?: string;
}

export function status(options: { pinDir?: string } = {}): Status {
  const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
  requireRoot();
  const plans = planModes();
  const modes = Object.fromEntries(MODES.map((m) => [m, plans[m].unavailable ? `unavailable: ${plans[m].unavailable}` : 'available'])) as Record<Mode, string>;
  const costs = { ...MODE_COST };
  if (!isLoaded(pinDir)) return { loaded: false, pinDir, modes, costs };
  const st = readState(pinDir) ?? stateFromPins(pinDir);
  const fds = openPinnedMaps(pinDir);
  try {
    const counters = Object.fromEntries(Object.entries(readStats(fds.stats)).map(([k, v]) => [k, v.toString()]));
    return {
      loaded: true, pinDir, mode: st?.mode, hooks: st?.hooks, notTaken: st?.notTaken, modes, costs, loadedAt: st?.loadedAt,
      maps: {
        regs: { entries: countEntries(fds.regs, REG_KEY_SIZE), capacity: st?.maxRegs ?? DEFAULT_MAX_REGS },
        epolls: { entries: countEntries(fds.epolls, EP_KEY_SIZE), capacity: st?.maxEpolls ?? DEFAULT_MAX_EPOLLS },
      },
      counters,
    };
  } finally {
    closeMaps(fds);
  }
}

