#!/usr/bin/env node
/**
 * epolltrack command line. Every command uses the public entry (src/index.ts).
 * Errors print one line, `epolltrack: <cause and fix>`, and exit 1 (2 for usage).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  DEFAULT_PIN_DIR, EpolltrackError, fdinfoMemberships, load, MODES, openTracker, status, unload, type Membership, type Mode,
} from '../index.js';
import { bench, formatBench } from './bench.js';
import { decodeEvents } from '../kernel/events.js';
import { parseEndpoint } from '../supervise/seccomp.js';

class UsageError extends Error {}

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run: (values: Record<string, string | boolean | undefined>, positionals: string[]) => Promise<unknown> | unknown;
}

const pinDirOpt = { 'pin-dir': { type: 'string' as const } };
const jsonOpt = { json: { type: 'boolean' as const } };
const out = (s: string) => process.stdout.write(`${s}\n`);
const json = (v: unknown) => out(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x), 2));
const hex = (v: bigint) => `0x${v.toString(16)}`;

function int(name: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v)) throw new UsageError(`${name} must be a non-negative integer${v === undefined ? '' : `, got '${v}'`}`);
  return Number(v);
}

function pinDir(values: Record<string, unknown>): string {
  return (values['pin-dir'] as string | undefined) ?? process.env.EPOLLTRACK_PIN_DIR ?? DEFAULT_PIN_DIR;
}

function table(head: string[], rows: (string | number)[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r: (string | number)[]) => r.map((c, i) => String(c).padEnd(w[i])).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

const commands: Record<string, Command> = {
  load: {
    summary: 'load, attach and pin the tracker (harmless if already loaded)',
    usage: 'epolltrack load [--mode auto|fentry|kprobe|tracepoint] [--max-regs N] [--max-epolls N] [--pin-dir DIR] [--json]',
    options: { ...pinDirOpt, ...jsonOpt, mode: { type: 'string' }, 'max-regs': { type: 'string' }, 'max-epolls': { type: 'string' } },
    run(v) {
      const mode = (v.mode as string | undefined) ?? 'auto';
      if (mode !== 'auto' && !MODES.includes(mode as Mode)) throw new UsageError(`--mode must be auto, ${MODES.join(', ')}`);
      const r = load({
        pinDir: pinDir(v), mode: mode as Mode | 'auto',
        maxRegs: v['max-regs'] !== undefined ? int('--max-regs', v['max-regs'] as string) : undefined,
        maxEpolls: v['max-epolls'] !== undefined ? int('--max-epolls', v['max-epolls'] as string) : undefined,
      });
      if (v.json) return json(r);
      out(`${r.alreadyLoaded ? 'already loaded' : 'loaded'}: ${r.mode} mode, pinned at ${r.pinDir}`);
      out(`hooks: ${r.hooks.map((h) => h.target).join(', ')}`);
      for (const [m, why] of Object.entries(r.notTaken)) out(`not ${m}: ${why}`);
      if (!r.alreadyLoaded) out(`cold start: ${r.seed.registrations} registrations in ${r.seed.epolls} epoll instances found`);
    },
  },
  unload: {
    summary: 'detach the tracker and remove its pins',
    usage: 'epolltrack unload [--pin-dir DIR]',
    options: { ...pinDirOpt },
    run(v) {
      const r = unload({ pinDir: pinDir(v) });
      out(r.removed ? `unloaded ${pinDir(v)}` : `nothing loaded at ${pinDir(v)}`);
    },
  },
  status: {
    summary: 'which mode is active, why the others were not taken, map fill and counters',
    usage: 'epolltrack status [--pin-dir DIR] [--json]',
    options: { ...pinDirOpt, ...jsonOpt },
    run(v) {
      const s = status({ pinDir: pinDir(v) });
      if (v.json) return json(s);
      out(s.loaded ? `loaded: ${s.mode ?? 'unknown'} mode at ${s.pinDir}${s.loadedAt ? ` since ${s.loadedAt}` : ''}` : `not loaded at ${s.pinDir}: run \`epolltrack load\``);
      if (s.hooks) out(`hooks: ${s.hooks.map((h) => `${h.target} (${h.prog})`).join(', ')}`);
      for (const m of MODES) out(`${m}: ${s.mode === m ? 'active' : s.notTaken?.[m] ? `not taken: ${s.notTaken[m]}` : s.modes[m]}`);
      if (s.maps) out(`maps: regs ${s.maps.regs.entries}/${s.maps.regs.capacity}, epolls ${s.maps.epolls.entries}/${s.maps.epolls.capacity}`);
      if (s.counters) out(`counters: ${Object.entries(s.counters).map(([k, c]) => `${k}=${c}`).join(' ')}`);
      if (s.counters && (s.counters.regsFull !== '0' || s.counters.epollsFull !== '0')) {
        out('warning: a map was full (lookups stay exact but may fall back): reload with larger --max-regs/--max-epolls');
      }
    },
  },
  lookup: {
    summary: 'which epoll instances hold fd FD of process PID',
    usage: 'epolltrack lookup PID FD [--method bpf|fdinfo] [--pin-dir DIR] [--json]',
    options: { ...pinDirOpt, ...jsonOpt, method: { type: 'string' } },
    async run(v, pos) {
      if (pos.length !== 2) throw new UsageError('lookup takes PID and FD');
      const pid = int('PID', pos[0]);
      const fd = int('FD', pos[1]);
      const method = (v.method as string | undefined) ?? 'bpf';
      if (method !== 'bpf' && method !== 'fdinfo') throw new UsageError('--method must be bpf or fdinfo');
      let found: Membership[];
      let source: string;
      let micros: number;
      if (method === 'fdinfo') {
        const t0 = process.hrtime.bigint();
        found = fdinfoMemberships(pid, fd);
        micros = Number(process.hrtime.bigint() - t0) / 1000;
        source = 'fdinfo';
      } else {
        const t = await openTracker({ pinDir: pinDir(v) });
        try {
          found = t.membershipsOf(pid, fd);
          ({ source, micros } = t.lastLookup);
        } finally {
          t.close();
        }
      }
      if (v.json) {
        return out(JSON.stringify({
          pid, fd, source,
          memberships: found.map((m) => ({ epollPid: m.epollPid, epfd: m.epfd, tfd: m.tfd, events: m.events, data: hex(m.data) })),
          micros: Math.round(micros * 10) / 10,
        }));
      }
      if (!found.length) out(`fd ${fd} of process ${pid} is in no epoll instance (${source}, ${micros.toFixed(1)} µs)`);
      else {
        out(table(['EPOLL PID', 'EPFD', 'TFD', 'EVENTS', 'DATA'],
          found.map((m) => [m.epollPid, m.epfd, m.tfd, decodeEvents(m.events), hex(m.data)])));
        out(`(${source}, ${micros.toFixed(1)} µs)`);
      }
    },
  },
  ls: {
    summary: 'every epoll registration on the host, or of one process',
    usage: 'epolltrack ls [--pid PID] [--pin-dir DIR] [--json]',
    options: { ...pinDirOpt, ...jsonOpt, pid: { type: 'string' } },
    async run(v) {
      const t = await openTracker({ pinDir: pinDir(v) });
      try {
        const rows = t.registrations({ pid: v.pid !== undefined ? int('--pid', v.pid as string) : undefined });
        if (v.json) return out(JSON.stringify(rows.map((r) => ({ ...r, data: hex(r.data) }))));
        out(table(['PID', 'FD', 'TFD', 'EPOLL PID', 'EPFD', 'EVENTS', 'DATA'],
          rows.map((r) => [r.pid, r.fd, r.tfd, r.epollPid || '-', r.epfd >= 0 ? r.epfd : '-', decodeEvents(r.events), hex(r.data)])));
      } finally {
        t.close();
      }
    },
  },
  resync: {
    summary: 'reconcile the maps with the kernel now (removals tracepoint mode cannot see)',
    usage: 'epolltrack resync [--pin-dir DIR] [--json]',
    options: { ...pinDirOpt, ...jsonOpt },
    async run(v) {
      const t = await openTracker({ pinDir: pinDir(v) });
      try {
        const r = t.resync();
        if (v.json) return json(r);
        out(`${r.registrations} live registrations in ${r.epolls} epoll instances; ${r.removed} stale entries removed (${(r.micros / 1000).toFixed(1)} ms)`);
      } finally {
        t.close();
      }
    },
  },
  bench: {
    summary: 'tracker lookups vs the fdinfo way at N fds, and the syscall cost of tracking',
    usage: 'epolltrack bench [--fds 1000,10000,19000] [--iterations N] [--json] [--plot FILE.svg]',
    options: { ...jsonOpt, fds: { type: 'string' }, iterations: { type: 'string' }, plot: { type: 'string' } },
    async run(v) {
      const fds = v.fds !== undefined ? (v.fds as string).split(',').map((x) => int('--fds', x.trim())) : undefined;
      const plot = v.plot as string | undefined;
      const { existsSync, writeFileSync } = await import('node:fs');
      const { dirname } = await import('node:path');
      if (plot !== undefined && (!plot || !existsSync(dirname(plot)))) throw new UsageError(`--plot needs a file in an existing directory, got '${plot}'`);
      const r = await bench({
        fds, iterations: v.iterations !== undefined ? int('--iterations', v.iterations as string) : undefined,
        log: v.json ? undefined : (s) => process.stderr.write(`${s}\n`),
      });
      if (plot !== undefined) {
        const { renderBenchSvg } = await import('./plot.js');
        writeFileSync(plot, renderBenchSvg(r));
      }
      if (v.json) json(r);
      else out(formatBench(r));
      if (plot !== undefined) process.stderr.write(`chart written to ${plot}\n`);
    },
  },
  supervise: {
    summary: 'run a command with its connect()s to FROM served by sockets made here, epoll kept exact',
    usage: 'epolltrack supervise [--redirect FROM=TO]... [--no-epoll-fixup] [--verbose] [--pin-dir DIR] -- CMD [ARGS...]\n  FROM and TO are IP:PORT or [IPv6]:PORT',
    options: { ...pinDirOpt, redirect: { type: 'string', multiple: true }, 'no-epoll-fixup': { type: 'boolean' }, verbose: { type: 'boolean' } },
    async run(v, pos) {
      if (!pos.length) throw new UsageError('supervise needs a command after --');
      const { runSupervise } = await import('./supervise.js');
      process.exitCode = await runSupervise({
        redirects: parseRedirects(v.redirect as unknown as string[] | undefined),
        fixup: !v['no-epoll-fixup'], verbose: !!v.verbose, pinDir: pinDir(v), cmd: pos,
      });
    },
  },
  agent: {
    summary: 'serve containers: take seccomp listener fds from runc/crun (linux.seccomp.listenerPath)',
    usage: 'epolltrack agent --socket PATH [--redirect FROM=TO]... [--no-epoll-fixup] [--verbose] [--pin-dir DIR]',
    options: { ...pinDirOpt, socket: { type: 'string' }, redirect: { type: 'string', multiple: true }, 'no-epoll-fixup': { type: 'boolean' }, verbose: { type: 'boolean' } },
    async run(v) {
      if (!v.socket) throw new UsageError('agent needs --socket PATH');
      const { runAgent } = await import('./supervise.js');
      process.exitCode = await runAgent({
        socket: v.socket as string, redirects: parseRedirects(v.redirect as unknown as string[] | undefined),
        fixup: !v['no-epoll-fixup'], verbose: !!v.verbose, pinDir: pinDir(v),
      });
    },
  },
  daemon: {
    summary: 'serve a live web dashboard, a JSON API and Prometheus metrics (localhost by default)',
    usage: 'epolltrack daemon [--listen 127.0.0.1:9477] [--pin-dir DIR]\n  --listen takes HOST:PORT, [IPv6]:PORT or PORT; the tracker is loaded if it is not',
    options: { ...pinDirOpt, listen: { type: 'string' } },
    async run(v, pos) {
      if (pos.length) throw new UsageError(`daemon takes no arguments, got '${pos[0]}'`);
      const { parseListen } = await import('../daemon/server.js');
      const { runDaemon } = await import('./daemon.js');
      try {
        if (v.listen !== undefined) parseListen(v.listen as string);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      process.exitCode = await runDaemon({ listen: v.listen as string | undefined, pinDir: pinDir(v), out });
    },
  },
  demo: {
    summary: 'the fd-swap scenario end to end: with and without the epoll fix-up, and lookup times',
    usage: 'epolltrack demo',
    options: {},
    async run() {
      const { demo } = await import('./demo.js');
      await demo(out);
    },
  },
};

function parseRedirects(list: string[] | undefined) {
  return (list ?? []).map((r) => {
    const i = r.lastIndexOf('=');
    const from = i > 0 ? parseEndpoint(r.slice(0, i)) : undefined;
    const to = i > 0 ? parseEndpoint(r.slice(i + 1)) : undefined;
    if (!from || !to) throw new UsageError(`--redirect takes FROM=TO with IP:PORT or [IPv6]:PORT, got '${r}'`);
    return { from, to };
  });
}

function help(): string {
  const w = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'epolltrack: which epoll instances hold fd N of process P, from a BPF tracker, verified live.',
    '',
    'usage: epolltrack COMMAND [options]   (epolltrack COMMAND --help for its options)',
    '',
    ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(w)}  ${c.summary}`),
    '',
    `The tracker's maps are pinned under ${DEFAULT_PIN_DIR} (root-only); --pin-dir or EPOLLTRACK_PIN_DIR picks another.`,
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    out(help());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`epolltrack: unknown command '${name}'\n\n${help()}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    out(`${cmd.summary}\n\nusage: ${cmd.usage}`);
    return 0;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: cmd.options, allowPositionals: true, strict: true });
    await cmd.run(values as Record<string, string | boolean | undefined>, positionals);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`epolltrack ${name}: ${(err as Error).message}\nusage: ${cmd.usage}\n`);
      return 2;
    }
    if (err instanceof EpolltrackError) {
      process.stderr.write(`epolltrack: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

// `epolltrack ls | head`: a closed pipe ends the output quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err; });

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  process.stderr.write(`epolltrack: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
