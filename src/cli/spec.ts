/**
 * The command table: every command, argument and option of `epolltrack`, with
 * its default and examples, and the exit status of each error class. The
 * option parser (util.parseArgs), `--help`, `epolltrack help CMD` and the man
 * page are all generated from it. Pure data: no kernel, no FFI.
 */
import type { ErrorCode } from '../kernel/errors.js';

export interface OptionSpec {
  name: string;
  type: 'string' | 'boolean';
  /** may be given more than once (and, for selectors, as a comma list) */
  multiple?: boolean;
  short?: string;
  /** placeholder for the value: DIR, N, PID */
  value?: string;
  /** shown as the default (omitted: no default / off) */
  default?: string;
  help: string;
}

export interface ArgSpec {
  name: string;
  help: string;
  /** takes the rest of the command line (after `--`) */
  rest?: boolean;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** more about the command, for --help and the man page */
  description?: string;
  args: ArgSpec[];
  options: OptionSpec[];
  examples: { cmd: string; help: string }[];
}

const PIN_DIR: OptionSpec = {
  name: 'pin-dir', type: 'string', value: 'DIR', default: '$EPOLLTRACK_PIN_DIR or /sys/fs/bpf/epolltrack',
  help: 'where the tracker is pinned (a tracker of its own keeps it apart from the one in use)',
};
const JSON_OPT: OptionSpec = { name: 'json', type: 'boolean', help: 'print JSON (numbers as numbers; errors as {"error":{"code","message"}} on stderr)' };
const METHOD: OptionSpec = {
  name: 'method', type: 'string', value: 'bpf|fdinfo', default: 'bpf as root, fdinfo otherwise',
  help: 'bpf: the tracker (root); fdinfo: read /proc/PID/fdinfo, the slow path, which works for your own processes without root',
};
const REDIRECT: OptionSpec = {
  name: 'redirect', type: 'string', multiple: true, value: '[udp:]FROM=TO',
  help: 'serve connect()s to FROM with a socket made here, connected to TO (IP:PORT or [IPv6]:PORT; TCP sockets, or UDP with udp:; repeatable)',
};
const NO_FIXUP: OptionSpec = { name: 'no-epoll-fixup', type: 'boolean', help: 'swap sockets without moving their epoll registrations (to see the bug)' };
const VERBOSE: OptionSpec = { name: 'verbose', type: 'boolean', help: 'log each interception: pid, fd, from, to, registrations moved, µs' };

export const MAX_REGS_RANGE: [number, number] = [1, 1 << 24];
export const MAX_EPOLLS_RANGE: [number, number] = [1, 1 << 22];
export const FDS_RANGE: [number, number] = [1, 1 << 20];
export const ITERATIONS_RANGE: [number, number] = [1, 1000000];

export const COMMANDS: CommandSpec[] = [
  {
    name: 'load', summary: 'load, attach and pin the tracker (harmless if already loaded)',
    description: 'Probes BTF, kallsyms and tracefs, then tries each hook mode with a real load and keeps the first that works '
      + '(or the one --mode names). Maps and links are pinned root-only; the registrations that exist already are read from the kernel (cold start).',
    args: [],
    options: [
      { name: 'mode', type: 'string', value: 'auto|fentry|kprobe|lazy|tracepoint', default: 'auto', help: 'hook mode: auto takes the first of fentry, kprobe, lazy that loads (tracepoint only when asked: it slows every syscall on the host)' },
      { name: 'max-regs', type: 'string', value: 'N', default: '65536', help: `registrations the map holds (${MAX_REGS_RANGE[0]}–${MAX_REGS_RANGE[1]}); a full map is counted and lookups stay exact` },
      { name: 'max-epolls', type: 'string', value: 'N', default: '16384', help: `epoll instances the map holds (${MAX_EPOLLS_RANGE[0]}–${MAX_EPOLLS_RANGE[1]})` },
      PIN_DIR, JSON_OPT,
    ],
    examples: [
      { cmd: 'epolltrack load', help: 'load in the best mode this kernel allows' },
      { cmd: 'epolltrack load --mode tracepoint --max-regs 262144', help: 'force a mode, bigger map' },
    ],
  },
  {
    name: 'unload', summary: 'detach the tracker and remove its pins', args: [],
    options: [PIN_DIR, JSON_OPT],
    examples: [{ cmd: 'epolltrack unload', help: 'detach and remove /sys/fs/bpf/epolltrack' }],
  },
  {
    name: 'status', summary: 'the active mode, why the others were not taken, map fill and counters',
    description: 'Exits 0 when the tracker is loaded, 4 (not loaded) when it is not. Before a load, a mode whose static probes pass '
      + 'is "unverified": only a load tries it (--probe tries each now, without attaching anything).',
    args: [],
    options: [
      { name: 'probe', type: 'boolean', help: 'try to load each mode\'s programs now (verifier only, nothing attached) to say which would load' },
      PIN_DIR, JSON_OPT,
    ],
    examples: [
      { cmd: 'epolltrack status', help: 'is it loaded, in which mode' },
      { cmd: 'epolltrack status --probe --json', help: 'which modes would load here, as JSON' },
    ],
  },
  {
    name: 'lookup', summary: 'which epoll instances hold fd FD of process PID, and what that fd is',
    args: [{ name: 'PID', help: 'the process' }, { name: 'FD', help: 'the fd number in that process' }],
    options: [METHOD, PIN_DIR, JSON_OPT],
    examples: [
      { cmd: 'epolltrack lookup 1234 7', help: 'the epolls holding fd 7 of process 1234' },
      { cmd: 'epolltrack lookup $$ 0 --method fdinfo', help: 'without root: one of your own processes, the slow way' },
    ],
  },
  {
    name: 'ls', summary: 'epoll registrations with what each fd is, selected like lsof/ss',
    description: 'Lists every epoll registration on the host (as root, from the tracker) or in your own processes (otherwise, the fdinfo way): '
      + 'the target\'s command, pid and fd, its kind, state and addresses or path, the epoll instance holding it (PID:EPFD), '
      + 'the fd number it is registered under (TFD), events and data. Values of one selector are alternatives '
      + '(--port 80,443); different selectors must all hold (like lsof -a).',
    args: [],
    options: [
      { name: 'pid', type: 'string', multiple: true, value: 'PID[,PID...]', help: 'registrations whose target or epoll belongs to PID' },
      { name: 'comm', type: 'string', multiple: true, value: 'NAME|/REGEX/', help: 'command name starting with NAME (lsof -c), or matching /REGEX/' },
      { name: 'port', type: 'string', multiple: true, value: 'PORT[,PORT...]', help: 'tcp/udp sockets with this local or peer port (lsof -i :PORT)' },
      { name: 'addr', type: 'string', multiple: true, value: 'ADDR', help: 'local or peer address: IP, IP/PREFIX, IP:PORT, [IPv6]:PORT, or a unix socket path; IPv4-mapped IPv6 matches IPv4' },
      { name: 'kind', type: 'string', multiple: true, value: 'KIND[,KIND...]', help: 'tcp, udp, unix, netlink, socket, pipe, eventfd, timerfd, signalfd, epoll, inotify, pidfd, tty, device, file, ...; tcp4, tcp6, udp4, udp6, inet' },
      { name: 'epoll', type: 'string', multiple: true, value: 'PID:FD', help: 'what the epoll instance at fd FD of process PID watches (the instance, wherever else it is open)' },
      METHOD, PIN_DIR, JSON_OPT,
    ],
    examples: [
      { cmd: 'epolltrack ls --port 28080', help: 'who watches :28080' },
      { cmd: 'epolltrack ls --epoll 1234:5', help: 'what the epoll at fd 5 of process 1234 watches' },
      { cmd: 'epolltrack ls --comm nginx --kind tcp --addr 10.0.0.0/8', help: 'nginx\'s tcp sockets to or from 10/8' },
      { cmd: 'epolltrack ls --pid 1234 --json', help: 'one process, as JSON' },
    ],
  },
  {
    name: 'resync', summary: 'reconcile the maps with the kernel now (removals tracepoint mode cannot see)', args: [],
    options: [PIN_DIR, JSON_OPT],
    examples: [{ cmd: 'epolltrack resync', help: 'drop stale entries, learn missed ones' }],
  },
  {
    name: 'bench', summary: 'tracker lookups against the fdinfo way at N fds, and the syscall cost of tracking', args: [],
    options: [
      { name: 'fds', type: 'string', value: 'N[,N...]', default: '1000,10000,19000', help: `fd counts of the benchmark process (each ${FDS_RANGE[0]}–${FDS_RANGE[1]})` },
      { name: 'iterations', type: 'string', value: 'N', default: '2000', help: `tracker lookups per fd count (${ITERATIONS_RANGE[0]}–${ITERATIONS_RANGE[1]})` },
      { name: 'plot', type: 'string', value: 'FILE.svg', help: 'also draw the lookup latencies as an SVG chart' },
      { name: 'storm', type: 'boolean', help: 'instead: swapped connects from many processes at once to a native echo server (swaps/s, connect() p50/p99, the supervisor\'s CPU per swap, with and without the fix-up, and the floor: the same connects with no swap), one caller alone, and the fix-up\'s cost side by side (two supervisors at once, with and without it); --fds is then the fds each process holds (default 500)' },
      { name: 'processes', type: 'string', value: 'N', default: '32', help: 'with --storm: supervised processes' },
      { name: 'concurrent', type: 'string', value: 'N', default: '30', help: 'with --storm: concurrent connects per process (1–64)' },
      { name: 'rounds', type: 'string', value: 'N', default: '5', help: 'with --storm: connects per concurrent caller' },
      { name: 'runs', type: 'string', value: 'N', default: '3', help: 'with --storm: runs of each kind, taking turns (and as many pairs of the caller alone, and side-by-side runs); each row is the median run (1–100)' },
      { name: 'shared-epoll', type: 'boolean', help: 'with --storm: the threads of each program share one epoll (default: an epoll per thread, as with an event loop per thread)' },
      JSON_OPT,
    ],
    examples: [
      { cmd: 'epolltrack bench', help: 'the README\'s table' },
      { cmd: 'epolltrack bench --storm', help: 'the supervisor under 32 x 30 concurrent connects' },
      { cmd: 'epolltrack bench --fds 1000,19000 --plot bench.svg', help: 'two sizes and a chart' },
    ],
  },
  {
    name: 'supervise', summary: 'run CMD with its connect()s to FROM served by sockets made here, epoll kept exact',
    description: 'CMD and everything it forks or execs run under a seccomp filter that sends connect() to this supervisor. '
      + 'Exits with CMD\'s exit status once CMD has run.',
    args: [{ name: 'CMD [ARGS...]', help: 'the command to run, after --', rest: true }],
    options: [REDIRECT, NO_FIXUP, VERBOSE, PIN_DIR],
    examples: [{ cmd: 'epolltrack supervise --redirect 127.0.0.2:80=127.0.0.1:8080 -- nginx -c nginx.conf', help: 'serve nginx\'s connects to 127.0.0.2:80' }],
  },
  {
    name: 'agent', summary: 'serve containers: take seccomp listener fds from runc/crun (linux.seccomp.listenerPath)', args: [],
    options: [
      { name: 'socket', type: 'string', value: 'PATH', help: 'the unix socket runc/crun send listeners to (required)' },
      REDIRECT, NO_FIXUP, VERBOSE, PIN_DIR,
    ],
    examples: [{ cmd: 'epolltrack agent --socket /run/epolltrack/agent.sock --redirect 10.0.0.1:80=127.0.0.1:8080', help: 'serve every container started with that listenerPath' }],
  },
  {
    name: 'daemon', summary: 'serve a live web dashboard, a JSON API and Prometheus metrics (localhost by default)', args: [],
    description: 'Loads the tracker if it is not loaded (and leaves it loaded). There is no authentication: keep it on localhost.',
    options: [
      { name: 'listen', type: 'string', value: 'HOST:PORT', default: '127.0.0.1:9477', help: 'HOST:PORT, [IPv6]:PORT or PORT' },
      PIN_DIR,
    ],
    examples: [{ cmd: 'epolltrack daemon', help: 'then open http://127.0.0.1:9477/' }],
  },
  {
    name: 'demo', summary: 'the fd-swap scenario end to end: with and without the epoll fix-up, and lookup times', args: [], options: [],
    examples: [{ cmd: 'sudo epolltrack demo', help: 'about 10 s' }],
  },
  {
    name: 'help', summary: 'help on a command (same as epolltrack COMMAND --help)',
    args: [{ name: '[COMMAND]', help: 'the command' }], options: [],
    examples: [{ cmd: 'epolltrack help ls', help: 'every option of ls' }],
  },
];

export function commandSpec(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/**
 * Exit status of each error class, in one place (README and man page list it).
 * `supervise` exits with its command's status once the command ran.
 */
export const EXIT_CODES: { status: number; codes: (ErrorCode | 'OK')[]; meaning: string }[] = [
  { status: 0, codes: ['OK'], meaning: 'success' },
  { status: 1, codes: ['EPT_ERR', 'EPT_CLOSED', 'EPT_REPLACE'], meaning: 'an unexpected or internal error' },
  { status: 2, codes: ['EPT_USAGE', 'EPT_BAD_INPUT'], meaning: 'bad command line or input: unknown command or option, stray argument, value out of range' },
  { status: 3, codes: ['EPT_NOT_ROOT'], meaning: 'needs root' },
  { status: 4, codes: ['EPT_NOT_LOADED'], meaning: 'the tracker is not loaded (status: nothing loaded)' },
  { status: 5, codes: ['EPT_NO_SUCH_PROCESS'], meaning: 'no such process' },
  { status: 6, codes: ['EPT_BAD_FD'], meaning: 'no such fd in that process (or not an epoll where one is needed)' },
  { status: 7, codes: ['EPT_PROCESS_ACCESS', 'EPT_PERMISSION'], meaning: 'cannot read that process (not yours, or no CAP_SYS_PTRACE)' },
  { status: 8, codes: ['EPT_NOT_SUPPORTED'], meaning: 'not supported by this kernel' },
  { status: 9, codes: ['EPT_MOUNT'], meaning: 'bpffs or tracefs not mounted' },
  { status: 10, codes: ['EPT_LIBBPF'], meaning: 'libbpf.so.1 missing' },
  { status: 11, codes: ['EPT_BPF'], meaning: 'a BPF operation failed' },
  { status: 12, codes: ['EPT_MAP_FULL'], meaning: 'reserved: a tracker map is full (the maps evict instead since they became LRU; nothing exits 12 today)' },
  { status: 13, codes: ['EPT_BUILD'], meaning: 'a part of epolltrack is missing or stale (rebuild), or the maps were pinned by another build (unload, load)' },
  { status: 14, codes: ['EPT_LISTEN'], meaning: 'cannot listen on that address' },
];

export function exitStatus(code: string | undefined): number {
  return EXIT_CODES.find((e) => (e.codes as string[]).includes(code ?? ''))?.status ?? 1;
}
