/**
 * Help and the man page, both rendered from the command table (spec.ts).
 * Pure text functions: the root-free unit tier tests them.
 */
import type { ParseArgsConfig } from 'node:util';
import { COMMANDS, EXIT_CODES, type CommandSpec, type OptionSpec } from './spec.js';

const HELP_OPT: OptionSpec = { name: 'help', type: 'boolean', short: 'h', help: 'show this help' };

/** util.parseArgs options of a command (plus --help). */
export function parseArgsOptions(c: CommandSpec): NonNullable<ParseArgsConfig['options']> {
  const out: NonNullable<ParseArgsConfig['options']> = {};
  for (const o of [...c.options, HELP_OPT]) {
    out[o.name] = { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) };
  }
  return out;
}

function optUsage(o: OptionSpec): string {
  const v = o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : '';
  return `[--${o.name}${v}]${o.multiple ? '...' : ''}`;
}

function usageParts(c: CommandSpec): string[] {
  return ['epolltrack', c.name, ...c.options.map(optUsage), ...c.args.map((a) => (a.rest ? `-- ${a.name}` : a.name))];
}

export function usageLine(c: CommandSpec): string {
  return usageParts(c).join(' ');
}

/** The usage line wrapped between options (never inside one), continued under the command. */
function usageLines(c: CommandSpec, width: number): string[] {
  const [prog, name, ...parts] = usageParts(c);
  const head = `usage: ${prog} ${name}`;
  const out: string[] = [];
  let line = head;
  let n = 0; // parts on this line
  for (const p of parts) {
    if (n > 0 && line.length + 1 + p.length > width) {
      out.push(line);
      line = ' '.repeat(head.length);
      n = 0;
    }
    line = `${line} ${p}`;
    n++;
  }
  out.push(line);
  return out;
}

function optLabel(o: OptionSpec): string {
  return `${o.short ? `-${o.short}, ` : ''}--${o.name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
}

/** `epolltrack COMMAND --help`: summary, usage, arguments, every option with its default, examples. */
export function renderHelp(c: CommandSpec): string {
  const lines = [`epolltrack ${c.name}: ${c.summary}`, '', ...usageLines(c, 100)];
  if (c.description) lines.push('', ...wrap(c.description, 78));
  if (c.args.length) {
    lines.push('', 'arguments:');
    const w = Math.max(...c.args.map((a) => a.name.length));
    for (const a of c.args) lines.push(`  ${a.name.padEnd(w)}  ${a.help}`);
  }
  const opts = [...c.options, HELP_OPT];
  lines.push('', 'options:');
  const w = Math.max(...opts.map((o) => optLabel(o).length));
  for (const o of opts) {
    // help text wrapped under its own column, so each option stays readable in 100 columns
    const text = wrap(`${o.help}${o.default !== undefined ? ` (default: ${o.default})` : ''}`, Math.max(40, 100 - w - 4));
    lines.push(`  ${optLabel(o).padEnd(w)}  ${text[0]}`, ...text.slice(1).map((t) => `  ${''.padEnd(w)}  ${t}`));
  }
  if (c.examples.length) {
    lines.push('', 'examples:');
    // `cmd   # what it does`, aligned; a command too long for that gets its comment on the line above
    const fits = (e: { cmd: string; help: string }) => e.cmd.length <= 60;
    const we = Math.max(0, ...c.examples.filter(fits).map((e) => e.cmd.length));
    for (const e of c.examples) {
      if (fits(e)) lines.push(`  ${e.cmd.padEnd(we)}   # ${e.help}`);
      else lines.push(`  # ${e.help}`, `  ${e.cmd}`);
    }
  }
  return lines.join('\n');
}

/** `epolltrack --help`. */
export function renderOverview(defaultPinDir: string): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'epolltrack: which epoll instances hold fd N of process P, from a BPF tracker, verified live;',
    'and a seccomp supervisor that swaps connect() sockets keeping epoll exact.',
    '',
    'usage: epolltrack COMMAND [options]      epolltrack COMMAND --help (or epolltrack help COMMAND) for its options',
    '       epolltrack --version',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    '',
    `The tracker is pinned under ${defaultPinDir} (root-only); --pin-dir or EPOLLTRACK_PIN_DIR picks another.`,
    `Exit status: ${EXIT_CODES.map((e) => `${e.status} ${e.meaning.split(/[:(]/)[0].trim()}`).join('; ')}.`,
  ].join('\n');
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}

/** roff-escape a text line: backslashes, hyphens (so they print as minus signs), leading dots and quotes, non-ASCII as \\[uXXXX]. */
export function roff(s: string): string {
  return s.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/, '\\&$1')
    .replace(/[^\x00-\x7f]/gu, (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`);
}

const B = (s: string) => `\\fB${roff(s)}\\fR`;

/** The man page (section 1), in roff. */
export function renderMan(version: string, date: string, defaultPinDir: string): string {
  const l: string[] = [
    `.TH EPOLLTRACK 1 "${date}" "epolltrack ${version}" "User Commands"`,
    '.SH NAME',
    'epolltrack \\- which epoll instances hold an fd, and epoll kept exact across seccomp fd swaps',
    '.SH SYNOPSIS',
  ];
  for (const c of COMMANDS) l.push('.PP', `${B(`epolltrack ${c.name}`)} ${roff(usageLine(c).split(' ').slice(2).join(' '))}`);
  l.push('.PP', `${B('epolltrack --version')}`);
  l.push('.SH DESCRIPTION',
    roff('epolltrack answers "which epoll instances hold fd N of process P?" from a CO-RE BPF tracker, in time independent of '
      + 'the number of fds P holds, verified against the live kernel; it says what each fd is (socket addresses and state, pipe, '
      + 'eventfd, file path, ...) and selects fds like lsof and ss. Its seccomp supervisor serves connect() with a socket made '
      + 'elsewhere, swaps it in with SECCOMP_IOCTL_NOTIF_ADDFD, and re-creates the epoll registrations of the old socket exactly.'),
    '.SH COMMANDS');
  for (const c of COMMANDS) {
    l.push(`.SS ${roff(c.name)}`, roff(`${c.summary}.`));
    if (c.description) l.push('.PP', roff(c.description));
    for (const a of c.args) l.push('.TP', B(a.name), roff(a.help));
    for (const o of c.options) {
      l.push('.TP', `${B(`--${o.name}`)}${o.type === 'string' ? ` \\fI${roff(o.value ?? 'VALUE')}\\fR` : ''}${o.multiple ? ' ...' : ''}`,
        roff(`${o.help}${o.default !== undefined ? ` (default: ${o.default})` : ''}.`));
    }
    if (c.examples.length) {
      l.push('.PP', 'Examples:', '.RS', '.nf');
      for (const e of c.examples) l.push(`${roff(e.cmd)}    # ${roff(e.help)}`);
      l.push('.fi', '.RE');
    }
  }
  l.push('.SH EXIT STATUS');
  for (const e of EXIT_CODES) {
    l.push('.TP', B(String(e.status)), roff(`${e.meaning}${e.codes[0] !== 'OK' ? ` (${e.codes.join(', ')})` : ''}.`));
  }
  l.push('.PP', roff('With --json, an error is one JSON object on stderr: {"error":{"code":"EPT_...","message":"..."}}.'),
    '.SH ENVIRONMENT',
    '.TP', B('EPOLLTRACK_PIN_DIR'), roff(`where the tracker is pinned (default ${defaultPinDir}).`),
    '.TP', B('EPOLLTRACK_SWAPS_LOG'), roff('the swap log of supervise and agent (default /run/epolltrack/swaps.jsonl).'),
    '.TP', B('EPOLLTRACK_DEBUG'), roff('1: print libbpf\'s messages and the stack of unexpected errors.'),
    '.SH FILES',
    '.TP', B(defaultPinDir), roff('pinned maps and links, root-only.'),
    '.TP', B('/run/epolltrack/'), roff('load state, the swap log.'),
    '.SH SECURITY',
    roff('Kernel addresses never leave the privileged process: nothing printed, logged or served holds one. '
      + 'Without root, lookup and ls read your own processes the fdinfo way (the slow path), as lsof does.'),
    '.SH SEE ALSO',
    '\\fBlsof\\fR(8), \\fBss\\fR(8), \\fBepoll\\fR(7), \\fBseccomp_unotify\\fR(2), \\fBkcmp\\fR(2), \\fBproc\\fR(5)');
  return `${l.join('\n')}\n`;
}
