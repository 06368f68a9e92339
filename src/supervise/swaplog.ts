/**
 * The swaps log: one JSON line per fd swap done by `epolltrack supervise` or
 * `agent` (SwapRecord: pid, fd, from, to, result, registrations moved, µs; never
 * kernel addresses), at /run/epolltrack/swaps.jsonl (EPOLLTRACK_SWAPS_LOG picks
 * another), mode 0600, rotated to swaps.jsonl.1 at 1 MiB. The daemon tails it.
 */
import {
  closeSync, fchmodSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { DEFAULT_PIN_DIR, STATE_DIR } from '../kernel/names.js';
import type { SwapRecord } from './supervisor.js';

export const DEFAULT_SWAPS_LOG = '/run/epolltrack/swaps.jsonl';
export const SWAPS_LOG_MAX_BYTES = 1 << 20;

/**
 * The swaps log of the tracker at `pinDir`: /run/epolltrack/swaps.jsonl for the
 * default one, swaps_<pin dir>.jsonl beside it for another (so a daemon shows the
 * swaps of the tracker it serves); EPOLLTRACK_SWAPS_LOG overrides both.
 */
export function swapsLogPath(pinDir: string = DEFAULT_PIN_DIR): string {
  if (process.env.EPOLLTRACK_SWAPS_LOG) return process.env.EPOLLTRACK_SWAPS_LOG;
  if (pinDir.replace(/\/+$/, '') === DEFAULT_PIN_DIR) return DEFAULT_SWAPS_LOG;
  return join(STATE_DIR, `swaps${pinDir.replace(/[^A-Za-z0-9]+/g, '_')}.jsonl`);
}

/** Only the documented fields, in a fixed order. */
function clean(r: SwapRecord): SwapRecord {
  const out: SwapRecord = {
    time: String(r.time), pid: r.pid, fd: r.fd, from: String(r.from), to: String(r.to), result: r.result,
    moved: r.moved, source: String(r.source), micros: Math.round(r.micros * 10) / 10,
  };
  if (r.tid !== undefined) out.tid = r.tid;
  if (r.errno !== undefined) out.errno = r.errno;
  if (r.error !== undefined) out.error = String(r.error);
  return out;
}

/**
 * Appends swap records; never throws (a log that cannot be written must not
 * break the supervisor). The file stays open between records: a record costs
 * a stat of the path (another writer, such as a second supervisor on the same
 * pin dir, may have rotated the log: the path then names another file, which
 * is opened) and one write.
 */
export class SwapLogWriter {
  private fd = -1;
  private ino = -1n;
  private warned = false;

  constructor(readonly path = swapsLogPath(), private readonly maxBytes = SWAPS_LOG_MAX_BYTES,
    private readonly warn: (msg: string) => void = (m) => process.stderr.write(`${m}\n`)) {}

  /** (Re)open the file at `path` for appending, mode 0600; returns its size (its inode is kept). */
  private open(): number {
    this.close();
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 }); // as the loader's state dir
    const fd = openSync(this.path, 'a', 0o600);
    try {
      fchmodSync(fd, 0o600);
      const st = fstatSync(fd, { bigint: true });
      this.ino = st.ino;
      this.fd = fd;
      return Number(st.size);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  append(rec: SwapRecord): void {
    try {
      const line = `${JSON.stringify(clean(rec))}\n`;
      const len = Buffer.byteLength(line);
      const st = this.fd < 0 ? undefined : statSync(this.path, { bigint: true, throwIfNoEntry: false });
      // the size with what other writers appended
      const size = !st || st.ino !== this.ino ? this.open() : Number(st.size);
      if (size > 0 && size + len > this.maxBytes) {
        try {
          renameSync(this.path, `${this.path}.1`);
        } catch (err) {
          // ENOENT: another supervisor writing this log rotated it first
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        this.open();
      }
      writeSync(this.fd, line);
    } catch (err) {
      this.close(); // the next record opens it afresh
      if (!this.warned) this.warn(`epolltrack: cannot write the swaps log ${this.path}: ${(err as Error).message}`);
      this.warned = true;
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

function isSwap(v: unknown): v is SwapRecord {
  const r = v as SwapRecord;
  return !!r && typeof r === 'object' && Number.isInteger(r.pid) && Number.isInteger(r.fd) && typeof r.from === 'string'
    && typeof r.to === 'string' && (r.result === 'swapped' || r.result === 'failed') && typeof r.micros === 'number';
}

/** Follows the log across rotations: new complete lines since the last call. */
export class SwapLogTail {
  private ino = -1n;
  private offset = 0;
  private started = false;

  constructor(readonly path = swapsLogPath()) {}

  private readFrom(path: string, offset: number, ino?: bigint): { recs: SwapRecord[]; end: number; ino: bigint } | undefined {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return undefined;
    }
    try {
      const st = fstatSync(fd, { bigint: true });
      if (ino !== undefined && st.ino !== ino) return undefined;
      let start = Number(st.size) < offset ? 0 : offset;
      const size = Number(st.size);
      const chunks: Buffer[] = [];
      while (start < size) {
        const b = Buffer.alloc(Math.min(size - start, 1 << 20));
        const n = readSync(fd, b, 0, b.length, start);
        if (n <= 0) break;
        chunks.push(b.subarray(0, n));
        start += n;
      }
      const buf = Buffer.concat(chunks);
      const last = buf.lastIndexOf(0x0a);
      const recs: SwapRecord[] = [];
      if (last >= 0) {
        for (const line of buf.subarray(0, last).toString('utf8').split('\n')) {
          try {
            const v: unknown = JSON.parse(line);
            if (isSwap(v)) recs.push(clean(v));
          } catch { /* not a record */ }
        }
      }
      return { recs, end: (Number(st.size) < offset ? 0 : offset) + last + 1, ino: st.ino };
    } finally {
      closeSync(fd);
    }
  }

  /** Records appended since the last call (the first call returns the rotated file's and the current one's). */
  poll(): SwapRecord[] {
    const out: SwapRecord[] = [];
    let cur: bigint | undefined;
    try {
      cur = statSync(this.path, { bigint: true }).ino;
    } catch {
      cur = undefined;
    }
    if (!this.started || (cur !== undefined && cur !== this.ino)) {
      // First time, or rotated: the rest of the old file (now .1) first.
      const first = !this.started;
      this.started = true;
      if (first || this.ino >= 0n) {
        const old = this.readFrom(`${this.path}.1`, first ? 0 : this.offset, first ? undefined : this.ino);
        if (old) out.push(...old.recs);
      }
      this.ino = cur ?? -1n;
      this.offset = 0;
    }
    if (cur === undefined) return out;
    const r = this.readFrom(this.path, this.offset);
    if (r) {
      out.push(...r.recs);
      this.offset = r.end;
      this.ino = r.ino;
    }
    return out;
  }
}
