/**
 * The dashboard's search box and /api/snapshot?q=: the words of `ls`'s
 * selectors, `port:28080` (or `:28080`, as ss writes it), `addr:127.0.0.1`,
 * `kind:tcp`, `pid:123`, `comm:nginx`, `epoll:PID:FD`; a bare address, port
 * (`:N`) or kind word means the same; any other word matches the command,
 * command line or target description. All words must match.
 *
 * The matching is done in the daemon only (filterSnapshot in collect.ts, for
 * /api/snapshot and for the dashboard's stream, /api/events?q=): the page and
 * the API select with this one matcher. When the CLI's selector module lands,
 * these two functions are what to route through it.
 */

export interface Selector {
  pid?: number;
  comm?: string;
  port?: number;
  addr?: string;
  kind?: string;
  epoll?: { pid: number; fd: number };
  text: string[];
}

/** What the matcher reads of a process, an epoll instance and a registration (a subset of collect.ts's types). */
export interface SearchProc { pid: number; comm: string; cmdline: string }
export interface SearchInst { epollPid: number; epfd: number }
export interface SearchReg { target: { kind: string; desc: string; local?: string; remote?: string } }

/** Parse a search string; words it cannot read are reported, not thrown. */
export function parseSearch(q: string): { sel: Selector; errors: string[] } {
  const KINDS = ['tcp', 'tcp6', 'udp', 'udp6', 'unix', 'netlink', 'socket', 'pipe', 'eventfd', 'timerfd', 'signalfd', 'epoll',
    'inotify', 'tty', 'device', 'file', 'anon', 'pidfd', 'io_uring'];
  const sel: Selector = { text: [] };
  const errors: string[] = [];
  const isAddr = (a: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(a) || (/^\[?[0-9a-fA-F:.]+\]?$/.test(a) && a.includes(':') && /[0-9a-fA-F]/.test(a));
  for (const word of q.trim().split(/\s+/).filter(Boolean)) {
    const m = /^(port|addr|kind|pid|comm|epoll):(.*)$/i.exec(word);
    const key = m ? m[1].toLowerCase() : undefined;
    const v = m ? m[2] : word;
    if (key === 'port' || (!key && /^:\d+$/.test(word))) {
      const n = Number(v.replace(/^:/, ''));
      if (/^:?\d{1,5}$/.test(v) && n <= 65535) sel.port = n; else errors.push(`port takes a number 0-65535, got '${v}'`);
    } else if (key === 'addr' || (!key && isAddr(word))) {
      if (isAddr(v)) sel.addr = v.replace(/^\[|\]$/g, '').toLowerCase(); else errors.push(`addr takes an IPv4 or IPv6 address, got '${v}'`);
    } else if (key === 'kind' || (!key && KINDS.includes(word.toLowerCase()))) {
      if (KINDS.includes(v.toLowerCase())) sel.kind = v.toLowerCase(); else errors.push(`kind is one of ${KINDS.join(', ')}; got '${v}'`);
    } else if (key === 'pid') {
      if (/^\d{1,8}$/.test(v) && Number(v) > 0) sel.pid = Number(v); else errors.push(`pid takes a process id, got '${v}'`);
    } else if (key === 'comm') {
      if (v) sel.comm = v.toLowerCase(); else errors.push('comm takes a name');
    } else if (key === 'epoll') {
      const e = /^(\d{1,8}):(\d{1,7})$/.exec(v);
      if (e) sel.epoll = { pid: Number(e[1]), fd: Number(e[2]) }; else errors.push(`epoll takes PID:FD, got '${v}'`);
    } else {
      sel.text.push(word.toLowerCase());
    }
  }
  return { sel, errors };
}

/** Does this registration (of this instance, of this process) match every word? */
export function searchMatches(sel: Selector, p: SearchProc, i: SearchInst, r: SearchReg): boolean {
  const t = r.target;
  const norm = (h: string) => h.replace(/^\[|\]$/g, '').toLowerCase().replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
  const hostOf = (a: string) => norm(a.replace(/:\d+$/, ''));
  const portOf = (a: string) => Number(/:(\d+)$/.exec(a)?.[1] ?? -1);
  const ends = [t.local, t.remote].filter((a): a is string => !!a && /:\d+$/.test(a));
  if (sel.pid !== undefined && p.pid !== sel.pid) return false;
  if (sel.comm && !p.comm.toLowerCase().includes(sel.comm) && !p.cmdline.toLowerCase().includes(sel.comm)) return false;
  if (sel.port !== undefined && !ends.some((a) => portOf(a) === sel.port)) return false;
  if (sel.addr !== undefined) {
    const want = norm(sel.addr);
    if (!ends.some((a) => hostOf(a) === want)) return false;
  }
  if (sel.kind && t.kind !== sel.kind && !(sel.kind === 'tcp' && t.kind === 'tcp6') && !(sel.kind === 'udp' && t.kind === 'udp6')) return false;
  if (sel.epoll && (i.epollPid !== sel.epoll.pid || i.epfd !== sel.epoll.fd)) return false;
  for (const w of sel.text) {
    if (![p.comm, p.cmdline, t.kind, t.desc].some((s) => s.toLowerCase().includes(w))) return false;
  }
  return true;
}
