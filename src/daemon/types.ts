/**
 * The daemon's wire types: what the server sends (SSE messages, /api/status)
 * and the dashboard reads. Shared by server.ts and client.ts so that neither
 * imports the other.
 */
import type { LoadState, Status } from '../../loader/load.js';

export interface LatencySample {
  time: string;
  pid: number;
  comm: string;
  fd: number;
  /** fds the process holds (what the fdinfo way has to visit) */
  nfds: number;
  registrations: number;
  tracker: { micros: number; source: 'bpf' | 'fdinfo'; reason?: string };
  fdinfo: { micros: number };
  /** both ways found the same epoll instances */
  agree: boolean;
}

/** GET /api/status and the dashboard's tracker-health panel. */
export interface StatusBody {
  loaded: boolean;
  pinDir: string;
  mode?: string;
  loadedAt?: string;
  hooks?: LoadState['hooks'];
  notTaken?: LoadState['notTaken'];
  modes?: Status['modes'];
  maps?: Status['maps'];
  /** map entries the kernel confirms now (live) and the others (stale), counted by the daemon every few seconds */
  fill?: { regs: { live: number; stale: number }; epolls: { live: number; stale: number } };
  /** epolltrack's version */
  version: string;
  /** kernel-side counters (u64 in the kernel; numbers here, exact below 2^53) */
  counters: Record<string, number>;
  fallbacks: Record<string, number>;
  daemon: {
    pid: number;
    startedAt: string;
    loadedHere: boolean;
    clients: number;
    refreshes: number;
    refreshMicros: number;
    snapshotVersion: number;
    swapsLog: string;
    lastError?: string;
  };
}

/** Swap totals over the whole swaps log (the rotated file too). */
export interface SwapCounts {
  swapped: number;
  failed: number;
  /** connects left to the kernel (already ours, connected, not TCP) */
  continued: number;
  /** swapped with no registration to move */
  unmoved: number;
  /** registrations moved, all swaps */
  moved: number;
}

/** Registration counts per process, one point per `periodMs`, oldest first. */
export interface History {
  periodMs: number;
  series: Record<string, number[]>;
}
