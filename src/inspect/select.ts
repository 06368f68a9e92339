/**
 * Selecting fds the way lsof and ss users do: by process id, command, port,
 * address, kind, or the epoll instance holding them. One parser and one matcher
 * for `epolltrack ls` and the dashboard's search.
 *
 * Words: `pid`, `comm`, `port`, `addr`, `kind`, `epoll`. Values of one word are
 * alternatives (`--port 80,443`, `port:80 port:443`); different words must all
 * hold (like `lsof -a`, and like an ss filter).
 *   pid   1234                 the target's process or the epoll's process
 *   comm  nginx | /^ng.*x$/    command name starting with that (lsof -c), or a regex between slashes
 *   port  28080 | :28080       local or peer port of a tcp/udp socket (lsof -i :28080)
 *   addr  127.0.0.1 | 10.0.0.0/8 | [::1]:80 | /run/x.sock
 *                              local or peer address (IPv4-mapped IPv6 matches IPv4), a subnet,
 *                              an address with port, or a unix socket path
 *   kind  tcp | udp | unix | pipe | eventfd | ... | tcp4 | tcp6 | udp4 | udp6 | inet
 *   epoll PID:FD               registrations held by the epoll instance open at fd FD of PID
 */
import { BlockList, isIP } from 'node:net';
import { BadInputError } from '../kernel/errors.js';
import { KCMP_FILE, kcmp } from '../kernel/ffi.js';
import { FD_KINDS, type FdTarget } from './describe.js';
import type { Endpoint } from './sockets.js';

export const SELECTOR_KEYS = ['pid', 'comm', 'port', 'addr', 'kind', 'epoll'] as const;
export type SelectorKey = typeof SELECTOR_KEYS[number];

/** Kind words beyond FD_KINDS: an address family of tcp/udp. */
const KIND_ALIASES = ['tcp4', 'tcp6', 'udp4', 'udp6', 'inet', 'inet4', 'inet6'] as const;
export const KIND_WORDS: readonly string[] = [...FD_KINDS, ...KIND_ALIASES];

export interface AddrSelector {
  /** as given */
  text: string;
  /** unix socket path */
  path?: string;
  /** address or subnet (BlockList) */
  list?: BlockList;
  port?: number;
}

export interface Selector {
  pids?: number[];
  comms?: string[];
  ports?: number[];
  addrs?: AddrSelector[];
  kinds?: string[];
  epolls?: { pid: number; fd: number }[];
}

/** What a selector looks at: a registration row of `ls`, or one of the dashboard. */
export interface SelectableRow {
  pid: number;
  comm?: string;
  epollPid?: number;
  epfd?: number;
  epollComm?: string;
  target?: FdTarget;
}

export const PID_MAX = 4194304; // PID_MAX_LIMIT on 64-bit
export const FD_MAX = 0x7fffffff;

function intIn(label: string, v: string, min: number, max: number, what: string): number {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new BadInputError(`${label} takes ${what} (${min}–${max}), got '${v}'`);
  return Number(v);
}

function parseAddr(label: string, v: string): AddrSelector {
  if (v.startsWith('/') || v.startsWith('@')) return { text: v, path: v };
  let host = v;
  let port: number | undefined;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(v) ?? (/^([^:]+):(\d+)$/.exec(v));
  if (m) {
    host = m[1];
    if (m[2] !== undefined) port = intIn(label, m[2], 1, 65535, 'a port');
  }
  const list = new BlockList();
  const [ip, bits] = host.split('/');
  const family = isIP(ip);
  if (!family) throw new BadInputError(`${label} takes an IP address, subnet (10.0.0.0/8), [IPv6]:PORT, IP:PORT or a unix socket path, got '${v}'`);
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (bits !== undefined) list.addSubnet(ip, intIn(label, bits, 0, family === 6 ? 128 : 32, 'a prefix length'), type);
  else list.addAddress(ip, type);
  return { text: v, list, port };
}

function parseValue(key: SelectorKey, label: string, v: string, sel: Selector): void {
  switch (key) {
    case 'pid': (sel.pids ??= []).push(intIn(label, v, 1, PID_MAX, 'a process id')); break;
    case 'comm':
      if (/^\/.*\/$/.test(v) && v.length > 2) {
        try { new RegExp(v.slice(1, -1)); } catch (err) { throw new BadInputError(`${label} regex ${v}: ${(err as Error).message}`); }
      } else if (!v) throw new BadInputError(`${label} takes a command name (or /regex/), got ''`);
      (sel.comms ??= []).push(v);
      break;
    case 'port': (sel.ports ??= []).push(intIn(label, v.replace(/^:/, ''), 1, 65535, 'a port')); break;
    case 'addr': (sel.addrs ??= []).push(parseAddr(label, v)); break;
    case 'kind':
      if (!KIND_WORDS.includes(v)) throw new BadInputError(`${label} takes one of ${KIND_WORDS.join(', ')}; got '${v}'`);
      (sel.kinds ??= []).push(v);
      break;
    case 'epoll': {
      const m = /^(\d+):(\d+)$/.exec(v);
      if (!m) throw new BadInputError(`${label} takes PID:FD (the epoll instance at fd FD of process PID), got '${v}'`);
      (sel.epolls ??= []).push({ pid: intIn(label, m[1], 1, PID_MAX, 'a process id'), fd: intIn(label, m[2], 0, FD_MAX, 'an fd') });
      break;
    }
  }
}

/**
 * From option values (`--port 80,443 --kind tcp`): each value may hold several,
 * comma-separated. `label` names a word in error messages (default `--word`).
 */
export function parseSelector(values: Partial<Record<SelectorKey, string | readonly string[] | undefined>>,
  label: (key: SelectorKey) => string = (k) => `--${k}`): Selector {
  const sel: Selector = {};
  for (const key of SELECTOR_KEYS) {
    const raw = values[key];
    if (raw === undefined) continue;
    for (const one of typeof raw === 'string' ? [raw] : raw) {
      for (const v of one.split(',')) parseValue(key, label(key), v.trim(), sel);
    }
  }
  return sel;
}

/**
 * From a search line (`port:28080 comm:nginx`, `kind=tcp`): `word:value` or
 * `word=value`, or a bare value taken for what it looks like: `1234` a pid,
 * `:28080` a port, `1234:5` an epoll, an IP address or `/path` an addr, a kind
 * name a kind, anything else a command.
 */
export function parseSelectorText(text: string): Selector {
  const values: Partial<Record<SelectorKey, string[]>> = {};
  for (const tok of text.trim().split(/\s+/).filter(Boolean)) {
    const m = /^([a-z]+)[:=](.*)$/.exec(tok);
    let key: SelectorKey;
    let v = tok;
    if (m && (SELECTOR_KEYS as readonly string[]).includes(m[1])) {
      key = m[1] as SelectorKey;
      v = m[2];
    } else if (/^\d+$/.test(tok)) key = 'pid';
    else if (/^:\d+$/.test(tok)) key = 'port';
    else if (/^\d+:\d+$/.test(tok)) key = 'epoll';
    else if (KIND_WORDS.includes(tok)) key = 'kind';
    else if (isIP(tok.split('/')[0]) || /^\[.*\](:\d+)?$/.test(tok) || /^[\d.]+:\d+$/.test(tok) || /^\/.*[^/]$/.test(tok) || tok === '/') key = 'addr';
    else key = 'comm';
    (values[key] ??= []).push(v);
  }
  return parseSelector(values, (k) => `${k}:`);
}

export function isEmptySelector(sel: Selector): boolean {
  return SELECTOR_KEYS.every((k) => selectorValues(sel, k).length === 0);
}

function selectorValues(sel: Selector, key: SelectorKey): readonly unknown[] {
  return ({ pid: sel.pids, comm: sel.comms, port: sel.ports, addr: sel.addrs, kind: sel.kinds, epoll: sel.epolls }[key]) ?? [];
}

function commMatches(pattern: string, comm: string | undefined): boolean {
  if (comm === undefined) return false;
  if (/^\/.*\/$/.test(pattern) && pattern.length > 2) return new RegExp(pattern.slice(1, -1)).test(comm);
  return comm.startsWith(pattern);
}

const ipType = (address: string) => (isIP(address) === 6 ? 'ipv6' : 'ipv4');

function addrMatches(a: AddrSelector, t: FdTarget | undefined): boolean {
  if (!t) return false;
  if (a.path !== undefined) return t.kind === 'unix' && t.path === a.path;
  const hit = (e: Endpoint | undefined) => !!e && (a.port === undefined || e.port === a.port) && a.list!.check(e.address, ipType(e.address));
  return hit(t.local) || hit(t.remote);
}

function kindMatches(k: string, t: FdTarget | undefined): boolean {
  if (!t) return false;
  switch (k) {
    case 'inet': return t.kind === 'tcp' || t.kind === 'udp';
    case 'inet4': return (t.kind === 'tcp' || t.kind === 'udp') && t.family === 'inet';
    case 'inet6': return (t.kind === 'tcp' || t.kind === 'udp') && t.family === 'inet6';
    case 'tcp4': case 'udp4': return t.kind === k.slice(0, 3) && t.family === 'inet';
    case 'tcp6': case 'udp6': return t.kind === k.slice(0, 3) && t.family === 'inet6';
    default: return t.kind === k;
  }
}

/** Is the epoll instance of the row the one at pid:fd? Compared as files (kcmp), not by number. */
function epollMatches(e: { pid: number; fd: number }, row: SelectableRow): boolean {
  if (row.epollPid === undefined || row.epfd === undefined || row.epollPid <= 0 || row.epfd < 0) return false;
  if (row.epollPid === e.pid && row.epfd === e.fd) return true;
  return kcmp(row.epollPid, e.pid, KCMP_FILE, row.epfd, e.fd) === 0;
}

export function matchSelector(sel: Selector, row: SelectableRow): boolean {
  if (sel.pids?.length && !sel.pids.some((p) => p === row.pid || p === row.epollPid)) return false;
  if (sel.comms?.length && !sel.comms.some((c) => commMatches(c, row.comm) || commMatches(c, row.epollComm))) return false;
  if (sel.ports?.length && !sel.ports.some((p) => row.target?.local?.port === p || row.target?.remote?.port === p)) return false;
  if (sel.addrs?.length && !sel.addrs.some((a) => addrMatches(a, row.target))) return false;
  if (sel.kinds?.length && !sel.kinds.some((k) => kindMatches(k, row.target))) return false;
  if (sel.epolls?.length && !sel.epolls.some((e) => epollMatches(e, row))) return false;
  return true;
}

/** The selector as words again (for a URL or a heading): `pid:1 port:80`. */
export function formatSelector(sel: Selector): string {
  const words: string[] = [];
  for (const p of sel.pids ?? []) words.push(`pid:${p}`);
  for (const c of sel.comms ?? []) words.push(`comm:${c}`);
  for (const p of sel.ports ?? []) words.push(`port:${p}`);
  for (const a of sel.addrs ?? []) words.push(`addr:${a.text}`);
  for (const k of sel.kinds ?? []) words.push(`kind:${k}`);
  for (const e of sel.epolls ?? []) words.push(`epoll:${e.pid}:${e.fd}`);
  return words.join(' ');
}
