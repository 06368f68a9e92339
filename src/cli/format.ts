/**
 * How the CLI prints: aligned columns the way ss/lsof users read them, and
 * JSON with numbers as numbers (64-bit `data` as a 0x hex string). Pure
 * functions: the root-free unit tier tests them.
 */
import type { FdTarget } from '../inspect/describe.js';
import { formatEndpoint } from '../inspect/sockets.js';

export type Cell = string | number;

/** Aligned columns: each as wide as its widest cell, two spaces apart, number columns (and their heads) right-aligned as lsof does. The last column is not padded. */
export function table(head: string[], rows: Cell[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const num = head.map((_h, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || r[i] === '-'));
  const line = (r: Cell[]) => r.map((c, i) => {
    const s = String(c);
    if (i === r.length - 1) return s;
    return num[i] ? s.padStart(w[i]) : s.padEnd(w[i]);
  }).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** The NAME column, lsof style: `127.0.0.1:40000->127.0.0.1:8080`, a path, `pipe:[1234]`, `[eventfd]`. */
export function nameOf(t: FdTarget): string {
  switch (t.kind) {
    case 'tcp': case 'udp':
      if (!t.local) return t.desc;
      return t.remote ? `${formatEndpoint(t.local)}->${formatEndpoint(t.remote)}` : formatEndpoint(t.local);
    case 'unix': return t.type ? `${t.type} ${t.path ?? '(unnamed)'}` : t.desc;
    case 'netlink': return t.netlink ? `protocol ${t.netlink.protocol} portid ${t.netlink.portid}` : t.desc;
    case 'pipe': return t.path ?? `pipe:[${t.inode}]`;
    case 'eventfd': case 'timerfd': case 'signalfd': case 'inotify': case 'fanotify': case 'pidfd': case 'io_uring': case 'userfaultfd':
      return `[${t.kind}]`;
    case 'epoll': return '[eventpoll]';
    default: return t.path ?? t.desc;
  }
}

export const hex = (v: bigint) => `0x${v.toString(16)}`;
export const location = (pid: number, fd: number) => (pid > 0 && fd >= 0 ? `${pid}:${fd}` : '-');

/** JSON text: bigints as 0x hex strings, everything else as is. */
export function toJson(v: unknown, indent?: number): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? hex(x) : x), indent);
}

/** Status counters arrive as decimal strings or bigints: numbers for JSON (exact below 2^53). */
export function countersToNumbers(c: Record<string, string | number | bigint> | undefined): Record<string, number> | undefined {
  if (!c) return undefined;
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, Number(v)]));
}
