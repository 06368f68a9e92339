#!/usr/bin/env node
/**
 * epolltrack command line. Commands, options, defaults, examples and exit
 * statuses come from one table (spec.ts); help and the man page are rendered
 * from it (help.ts). Every command uses the public entry (src/index.ts).
 * An error is one line on stderr, `epolltrack CMD: <cause and fix>` (with
 * --json one object, {"error":{"code","message"}}), and the exit status of its
 * class (EXIT_CODES).
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  BadFdError, BadInputError, EpolltrackError, NoSuchProcessError, NotRootError, PermissionError, UsageError,
} from '../kernel/errors.js';
import { DEFAULT_PIN_DIR, MAP, MODES, type Mode } from '../kernel/names.js';
import { FD_MAX, PID_MAX, SELECTOR_KEYS } from '../inspect/select.js';
import { exitAfterCleanup } from './interrupt.js';
import { countersToNumbers, hex, location, nameOf, table, toJson } from './format.js';
import { parseArgsOptions, renderHelp, renderOverview } from './help.js';
import {
  COMMANDS, commandSpec, exitStatus, FDS_RANGE, ITERATIONS_RANGE, MAX_EPOLLS_RANGE, MAX_REGS_RANGE, type CommandSpec,
} from './spec.js';

/** The library, loaded only for commands that use it: help and --version start fast. */
type Lib = typeof import('../index.js');
let L: Lib;

type Values = Record<string, string | boolean | string[] | undefined>;
interface Ctx { values: Values; positionals: string[]; json: boolean }
type Runner = (ctx: Ctx) => Promise<number | void> | number | void;

const out = (s: string): void => { process.stdout.write(`${s}\n`); };
const note = (s: string) => process.stderr.write(`epolltrack: note: ${s}\n`);
const isRoot = () => (process.geteuid?.() ?? 0) === 0;

export function version(): string {
  // dist/src/cli/main.js -> package.json
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** An integer option or argument in [min, max], else a usage error naming it and the range. */
export function int(name: string, v: string | undefined, min: number, max: number): number {
  if (v === undefined || !/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new UsageError(`${name} takes a whole number from ${min} to ${max}, got '${v ?? ''}'`);
  }
  return Number(v);
}

const str = (v: Values, k: string) => v[k] as string | undefined;
const pinDir = (v: Values) => str(v, 'pin-dir') ?? process.env.EPOLLTRACK_PIN_DIR ?? DEFAULT_PIN_DIR;

function method(v: Values): 'bpf' | 'fdinfo' {
  const m = str(v, 'method') ?? (isRoot() ? 'bpf' : 'fdinfo');
  if (m !== 'bpf' && m !== 'fdinfo') throw new UsageError(`--method takes bpf or fdinfo, got '${m}'`);
  return m;
}

/** Not root: the fdinfo way, and the user is told it is the slow path. */
function slowPathNote(ctx: Ctx, what: string): void {
  if (!isRoot() && !ctx.json) note(`not root: ${what} the fdinfo way (the slow path: every fd is read from /proc); run as root for the tracker`);
}

// ---- status: agree with load ---------------------------------------------------

/** Load a mode's programs (verifier only, nothing attached): undefined when it would load, else why not. */
async function trialLoad(mode: Mode): Promise<string | undefined> {
  const { BpfObject } = await import('../kernel/bpfobject.js');
  const { planModes } = await import('../../loader/probe.js');
  const plan = planModes()[mode];
  if (plan.unavailable) return plan.unavailable;
  let obj: import('../kernel/bpfobject.js').BpfObject | undefined;
  try {
    obj = BpfObject.open();
    obj.keepPrograms(plan.hooks.map((h) => h.prog));
    obj.setMaxEntries(MAP.regs, 1);
    obj.setMaxEntries(MAP.epolls, 1);
    obj.load();
    return undefined;
  } catch (err) {
    if (err instanceof EpolltrackError) return err.message;
    throw err;
  } finally {
    obj?.close();
  }
}

async function honestModes(s: ReturnType<Lib['status']>, probe: boolean): Promise<Record<Mode, string>> {
  const res = {} as Record<Mode, string>;
  for (const m of MODES) {
    if (s.mode === m) res[m] = 'active';
    else if (s.notTaken?.[m]) res[m] = `not taken: ${s.notTaken[m]}`;
    else if (s.modes[m] !== 'available') res[m] = s.modes[m];
    else if (probe) {
      const why = await trialLoad(m);
      res[m] = why ? `refused by a trial load: ${why}` : 'available: a trial load passed';
    } else if (s.loaded) res[m] = 'not tried: the load took another mode (epolltrack status --probe tries it)';
    else res[m] = 'unverified: static probes pass, only a load tries it (epolltrack status --probe)';
  }
  return res;
}

// ---- lookup / ls ---------------------------------------------------------------

/** The tracker said "no process" / "no fd": say which, from /proc (a process root cannot read is not a missing one). */
function refine(err: unknown, pid: number, fd: number): never {
  if (err instanceof NoSuchProcessError || err instanceof BadFdError || err instanceof PermissionError) L.checkFd(pid, fd);
  throw err;
}

async function lookup(ctx: Ctx): Promise<void> {
  const [p, f] = ctx.positionals;
  const pid = int('PID', p, 1, PID_MAX);
  const fd = int('FD', f, 0, FD_MAX);
  const how = method(ctx.values);
  let found: import('../index.js').Membership[];
  let info: { source: string; micros: number; reason?: string };
  if (how === 'fdinfo') {
    L.checkFd(pid, fd);
    slowPathNote(ctx, 'looking up');
    const t0 = process.hrtime.bigint();
    try {
      found = L.fdinfoMemberships(pid, fd);
    } catch (err) {
      refine(err, pid, fd);
    }
    info = { source: 'fdinfo', micros: Number(process.hrtime.bigint() - t0) / 1000 };
  } else {
    const t = await L.openTracker({ pinDir: pinDir(ctx.values) });
    try {
      // A fresh process's first calls pay for cold code (JIT, first FFI calls): a few lookups on a
      // file of our own first, so the time reported is the lookup's own, as through the API.
      const warm = openSync('/dev/null', 'r');
      try {
        for (let i = 0; i < 3; i++) t.membershipsOf(process.pid, warm);
      } finally {
        closeSync(warm);
      }
      try {
        found = t.membershipsOf(pid, fd);
      } catch (err) {
        refine(err, pid, fd);
      }
      info = { ...t.lastLookup };
    } finally {
      t.close();
    }
  }
  const r = new L.FdResolver();
  const target = r.describe(pid, fd);
  const rows = found.map((m) => ({
    epollPid: m.epollPid, epfd: m.epfd, epollComm: r.comm(m.epollPid), tfd: m.tfd, events: m.events,
    eventNames: L.eventNames(m.events), data: hex(m.data),
  }));
  if (ctx.json) {
    out(toJson({
      pid, fd, comm: r.comm(pid), target, source: info.source, ...(info.reason ? { reason: info.reason } : {}),
      memberships: rows, micros: Math.round(info.micros * 10) / 10,
    }));
    return;
  }
  out(`${r.comm(pid)} ${pid} fd ${fd}: ${target.kind} ${nameOf(target)}${target.state ? ` ${target.state}` : ''}`);
  const how2 = `${info.source}${info.reason ? `, ${info.reason}` : ''}, ${info.micros.toFixed(1)} µs`;
  if (!rows.length) out(`in no epoll instance (${how2})`);
  else {
    out(table(['EPOLL', 'COMMAND', 'TFD', 'EVENTS', 'DATA'],
      rows.map((m) => [location(m.epollPid, m.epfd), m.epollComm, m.tfd, m.eventNames.join('|') || '0', m.data])));
    out(`(${how2})`);
  }
}

async function ls(ctx: Ctx): Promise<void> {
  const v = ctx.values;
  const sel = L.parseSelector(Object.fromEntries(SELECTOR_KEYS.map((k) => [k, v[k] as string[] | undefined])));
  const how = method(v);
  for (const pid of sel.pids ?? []) L.checkProcess(pid, { readable: how === 'fdinfo' });
  for (const e of sel.epolls ?? []) L.checkEpoll(e.pid, e.fd);
  let rows: import('../index.js').Registration[];
  if (how === 'bpf') {
    const t = await L.openTracker({ pinDir: pinDir(v) });
    try {
      rows = t.registrations();
    } finally {
      t.close();
    }
  } else {
    slowPathNote(ctx, isRoot() ? 'listing' : 'listing your own processes');
    const chosen = [...new Set([...(sel.pids ?? []), ...(sel.epolls ?? []).map((e) => e.pid)])];
    rows = L.fdinfoRegistrations(chosen.length ? chosen : L.visiblePids());
  }
  // pids first (cheap), so only the rows that may match are described
  const pids = sel.pids;
  if (pids?.length) rows = rows.filter((r) => pids.includes(r.pid) || pids.includes(r.epollPid));
  const described = L.describeRegistrations(rows).filter((r) => L.matchSelector(sel, r));
  if (ctx.json) {
    out(toJson(described.map((r) => {
      const { pid, comm, fd, target, epollPid, epfd, epollComm, tfd, events, eventNames, data, ...extra } = r;
      return { pid, comm, fd, target, epollPid, epfd, epollComm, tfd, events, eventNames, data: hex(data), ...extra };
    })));
    return;
  }
  out(table(['COMMAND', 'PID', 'FD', 'KIND', 'STATE', 'EPOLL', 'TFD', 'EVENTS', 'DATA', 'NAME'],
    described.map((r) => [
      r.comm, r.pid, r.fd >= 0 ? r.fd : '-', r.target.kind, r.target.state ?? '-', location(r.epollPid, r.epfd), r.tfd,
      r.eventNames.join('|') || '0', hex(r.data), nameOf(r.target),
    ])));
}

// ---- the rest ------------------------------------------------------------------

function parseRedirects(list: string[] | undefined) {
  return (list ?? []).map((r) => {
    const m = /^(tcp|udp):/.exec(r);
    const body = m ? r.slice(4) : r;
    const i = body.lastIndexOf('=');
    const from = i > 0 ? L.parseEndpoint(body.slice(0, i)) : undefined;
    const to = i > 0 ? L.parseEndpoint(body.slice(i + 1)) : undefined;
    if (!from || !to) throw new UsageError(`--redirect takes [udp:]FROM=TO with IP:PORT or [IPv6]:PORT, got '${r}'`);
    return { from, to, proto: (m?.[1] ?? 'tcp') as 'tcp' | 'udp' };
  });
}

const runners: Record<string, Runner> = {
  load(ctx) {
    const v = ctx.values;
    const mode = str(v, 'mode') ?? 'auto';
    if (mode !== 'auto' && !MODES.includes(mode as Mode)) throw new UsageError(`--mode takes auto, ${MODES.join(', ')}; got '${mode}'`);
    const r = L.load({
      pinDir: pinDir(v), mode: mode as Mode | 'auto',
      maxRegs: v['max-regs'] !== undefined ? int('--max-regs', str(v, 'max-regs'), ...MAX_REGS_RANGE) : undefined,
      maxEpolls: v['max-epolls'] !== undefined ? int('--max-epolls', str(v, 'max-epolls'), ...MAX_EPOLLS_RANGE) : undefined,
    });
    if (ctx.json) return out(toJson(r, 2));
    out(`${r.alreadyLoaded ? 'already loaded' : 'loaded'}: ${r.mode} mode, pinned at ${r.pinDir}`);
    out(`hooks: ${r.hooks.map((h) => h.target).join(', ')}`);
    for (const [m, why] of Object.entries(r.notTaken)) out(`not ${m}: ${why}`);
    if (!r.alreadyLoaded) out(`cold start: ${r.seed.registrations} registrations in ${r.seed.epolls} epoll instances found`);
  },
  unload(ctx) {
    const dir = pinDir(ctx.values);
    const r = L.unload({ pinDir: dir });
    if (ctx.json) return out(toJson({ pinDir: dir, removed: r.removed }));
    out(r.removed ? `unloaded ${dir}` : `nothing loaded at ${dir}`);
  },
  async status(ctx) {
    const s = L.status({ pinDir: pinDir(ctx.values) });
    const modes = await honestModes(s, !!ctx.values.probe);
    const code = s.loaded ? 0 : exitStatus('EPT_NOT_LOADED');
    if (ctx.json) {
      out(toJson({ ...s, modes, counters: countersToNumbers(s.counters) }, 2));
      return code;
    }
    out(s.loaded ? `loaded: ${s.mode ?? 'unknown'} mode at ${s.pinDir}${s.loadedAt ? ` since ${s.loadedAt}` : ''}` : `not loaded at ${s.pinDir}: run \`epolltrack load\``);
    if (s.hooks) out(`hooks: ${s.hooks.map((h) => `${h.target} (${h.prog})`).join(', ')}`);
    for (const m of MODES) out(`${m}: ${modes[m]} (cost: ${s.costs[m]})`);
    if (s.maps) out(`maps: regs ${s.maps.regs.entries}/${s.maps.regs.capacity}, epolls ${s.maps.epolls.entries}/${s.maps.epolls.capacity}`);
    if (s.counters) out(`counters: ${Object.entries(s.counters).map(([k, c]) => `${k}=${c}`).join(' ')}`);
    if (s.counters && (Number(s.counters.regsFull) > 0 || Number(s.counters.epollsFull) > 0)) {
      out('warning: a map was full (lookups stay exact but may fall back): reload with larger --max-regs/--max-epolls');
    }
    return code;
  },
  lookup,
  ls,
  async resync(ctx) {
    const t = await L.openTracker({ pinDir: pinDir(ctx.values) });
    try {
      const r = t.resync();
      if (ctx.json) return out(toJson(r, 2));
      out(`${r.registrations} live registrations in ${r.epolls} epoll instances; ${r.removed} stale entries removed (${(r.micros / 1000).toFixed(1)} ms)`);
    } finally {
      t.close();
    }
  },
  async bench(ctx) {
    const v = ctx.values;
    if (v.storm) {
      if (!isRoot()) throw new NotRootError();
      const { storm, formatStorm } = await import('./bench.js');
      const n = (k: string, lo: number, hi: number) => (v[k] !== undefined ? int(`--${k}`, str(v, k), lo, hi) : undefined);
      const r = await storm({
        processes: n('processes', 1, 1024), concurrent: n('concurrent', 1, 64), rounds: n('rounds', 1, 100000), fds: n('fds', 1, 1 << 20), runs: n('runs', 1, 100), sharedEpoll: v['shared-epoll'] === true,
        log: ctx.json ? undefined : (s) => process.stderr.write(`${s}\n`),
      });
      if (ctx.json) out(toJson(r, 2));
      else out(formatStorm(r));
      return;
    }
    const fds = v.fds !== undefined ? str(v, 'fds')!.split(',').map((x) => int('--fds', x.trim(), ...FDS_RANGE)) : undefined;
    const iterations = v.iterations !== undefined ? int('--iterations', str(v, 'iterations'), ...ITERATIONS_RANGE) : undefined;
    const plot = str(v, 'plot');
    const { existsSync, writeFileSync } = await import('node:fs');
    const { dirname } = await import('node:path');
    if (plot !== undefined && (!plot || !existsSync(dirname(plot)))) throw new UsageError(`--plot takes a file in an existing directory, got '${plot}'`);
    if (!isRoot()) throw new NotRootError();
    const { bench, formatBench } = await import('./bench.js');
    const r = await bench({ fds, iterations, log: ctx.json ? undefined : (s) => process.stderr.write(`${s}\n`) });
    if (plot !== undefined) {
      const { renderBenchSvg } = await import('./plot.js');
      writeFileSync(plot, renderBenchSvg(r));
    }
    if (ctx.json) out(toJson(r, 2));
    else out(formatBench(r));
    if (plot !== undefined) process.stderr.write(`chart written to ${plot}\n`);
  },
  async supervise(ctx) {
    const v = ctx.values;
    const { runSupervise } = await import('./supervise.js');
    return runSupervise({
      redirects: parseRedirects(v.redirect as string[] | undefined),
      fixup: !v['no-epoll-fixup'], verbose: !!v.verbose, pinDir: pinDir(v), cmd: ctx.positionals,
    });
  },
  async agent(ctx) {
    const v = ctx.values;
    if (!str(v, 'socket')) throw new UsageError('agent needs --socket PATH');
    const { runAgent } = await import('./supervise.js');
    return runAgent({
      socket: str(v, 'socket')!, redirects: parseRedirects(v.redirect as string[] | undefined),
      fixup: !v['no-epoll-fixup'], verbose: !!v.verbose, pinDir: pinDir(v),
    });
  },
  async daemon(ctx) {
    const v = ctx.values;
    const { parseListen } = await import('../daemon/server.js');
    const { runDaemon } = await import('./daemon.js');
    try {
      if (v.listen !== undefined) parseListen(str(v, 'listen')!);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    return runDaemon({ listen: str(v, 'listen'), pinDir: pinDir(v), out });
  },
  async demo() {
    if (!isRoot()) throw new NotRootError();
    const { demo } = await import('./demo.js');
    await demo(out);
  },
  help(ctx) {
    const [name] = ctx.positionals;
    if (name === undefined) return out(renderOverview(DEFAULT_PIN_DIR));
    const spec = commandSpec(name);
    if (!spec) throw new UsageError(`no command '${name}'; commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
    out(renderHelp(spec));
  },
};

// ---- arguments, errors, exit ----------------------------------------------------

/** Exactly the arguments the command takes: a stray one is a usage error. */
function checkPositionals(c: CommandSpec, pos: string[]): void {
  const rest = c.args.find((a) => a.rest);
  if (rest) {
    if (!pos.length) throw new UsageError(`${c.name} needs a command after -- (epolltrack ${c.name} [options] -- ${rest.name})`);
    return;
  }
  const optional = c.args.filter((a) => a.name.startsWith('[')).length;
  const required = c.args.length - optional;
  if (pos.length > c.args.length) {
    const stray = pos[c.args.length];
    const hint = c.name === 'ls' && /^\d+$/.test(stray) ? ` (for a process: --pid ${stray})` : '';
    const takes = c.args.length ? `takes ${c.args.map((a) => a.name).join(' ')}` : 'takes no arguments';
    throw new UsageError(`unexpected argument '${stray}': ${c.name} ${takes}${hint}`);
  }
  if (pos.length < required) throw new UsageError(`${c.name} takes ${c.args.map((a) => a.name).join(' and ')}`);
}

/** util.parseArgs' messages, made one short line naming the option. */
function parseArgsMessage(err: Error & { code?: string }): string {
  const opt = /'(-[^' ]+)/.exec(err.message)?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': return `unknown option '${opt}'`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return /does not take/.test(err.message) ? `option ${opt} takes no value` : `option ${opt} needs a value`;
    default: return err.message.split('\n')[0];
  }
}

function report(err: unknown, cmd: string | undefined, json: boolean): number {
  let code: string;
  let message: string;
  const e = err as Error & { code?: string };
  if (typeof e?.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) {
    code = 'EPT_USAGE';
    message = parseArgsMessage(e);
  } else if (err instanceof EpolltrackError) {
    code = err.code;
    message = err.message;
  } else {
    code = 'EPT_ERR';
    message = `unexpected error: ${e?.message ?? String(err)}`;
    if (process.env.EPOLLTRACK_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
  }
  // One prefix: messages that begin with the program's name do not get it twice.
  message = message.replace(/^epolltrack:?\s+/i, '');
  if (code === 'EPT_USAGE' || code === 'EPT_BAD_INPUT') message += `; see epolltrack ${cmd ? `${cmd} ` : ''}--help`;
  if (json) process.stderr.write(`${JSON.stringify({ error: { code, message } })}\n`);
  else process.stderr.write(`epolltrack${cmd ? ` ${cmd}` : ''}: ${message}\n`);
  return exitStatus(code);
}

export async function main(argv: string[]): Promise<number> {
  const dashdash = argv.indexOf('--');
  const json = (dashdash < 0 ? argv : argv.slice(0, dashdash)).includes('--json');
  const [name, ...rest] = argv;
  try {
    if (name === undefined) {
      process.stderr.write(`${renderOverview(DEFAULT_PIN_DIR)}\n`);
      return exitStatus('EPT_USAGE');
    }
    if (name === '--help' || name === '-h') { await runners.help({ values: {}, positionals: rest.slice(0, 1), json }); return 0; }
    if (name === '--version' || name === '-V') {
      if (rest.filter((a) => a !== '--json').length) throw new UsageError(`--version takes no arguments, got '${rest[0]}'`);
      out(json ? JSON.stringify({ version: version() }) : `epolltrack ${version()}`);
      return 0;
    }
    const spec = commandSpec(name);
    if (!spec) throw new UsageError(`unknown command '${name}'; commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: rest, options: parseArgsOptions(spec), allowPositionals: true, strict: true });
    } catch (err) {
      return report(err, name, json);
    }
    const values = parsed.values as Values;
    if (values.help) {
      out(renderHelp(spec));
      return 0;
    }
    try {
      checkPositionals(spec, parsed.positionals);
      if (name !== 'help') L = await import('../index.js');
      const r = await runners[name]({ values, positionals: parsed.positionals, json });
      return typeof r === 'number' ? r : 0;
    } catch (err) {
      // A selector or value the library refused is the user's input: a usage error of this command.
      return report(err instanceof BadInputError ? new UsageError(err.message, { cause: err }) : err, name, json);
    }
  } catch (err) {
    return report(err, undefined, json);
  }
}

// `epolltrack ls | head`: a closed pipe ends the output quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') exitAfterCleanup(0); throw err; });

main(process.argv.slice(2)).then((code) => {
  // Nothing left running decides the exit: a failed command never hangs on a handle it opened.
  process.exit(code);
}, (err: unknown) => {
  process.stderr.write(`epolltrack: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
