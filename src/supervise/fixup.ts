/**
 * epoll_ctl with a chosen fd number, from an fd table of its own: the native
 * ept_ctl_batch() (native/lib/fixup.c) runs the requests synchronously in a
 * short-lived thread that unshared its fd table (CLONE_FILES).
 */
import { join } from 'node:path';
import koffi from 'koffi';
import { packageRoot } from '../kernel/bpfobject.js';
import { closeFd, pidfdGetfd, pidfdOpen } from '../kernel/ffi.js';

export const EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;

export interface CtlRequest {
  op: number;
  /** the epoll instance: fd `fd` of process `pid` */
  epoll: { pid: number; fd: number };
  /** the target file: an fd of this process */
  file: number;
  /** the fd number the registration is keyed by */
  tfd: number;
  events: number;
  data: bigint;
}

const REQ_SIZE = 32; // struct ept_ctl { i32 op, epfd, file, tfd; u32 events, result; u64 data; }

let batchFn: ((buf: Buffer, n: number) => number) | undefined;
function batch(): (buf: Buffer, n: number) => number {
  if (!batchFn) {
    const lib = koffi.load(join(packageRoot(), 'build', 'lib', 'libepolltrack-fixup.so'));
    const f = lib.func('int ept_ctl_batch(void *reqs, int n)');
    batchFn = (buf, n) => f(buf, n) as number;
  }
  return batchFn;
}

/** Run the requests in order; returns an errno per request (0 for success). */
export function ctlBatch(reqs: CtlRequest[]): number[] {
  if (!reqs.length) return [];
  const taken: number[] = [];
  const epolls = new Map<string, number>();
  const buf = Buffer.alloc(REQ_SIZE * reqs.length);
  const results = new Array<number>(reqs.length).fill(0);
  try {
    reqs.forEach((r, i) => {
      const key = `${r.epoll.pid}:${r.epoll.fd}`;
      let ep = epolls.get(key);
      if (ep === undefined) {
        const pidfd = r.epoll.pid === process.pid ? -1 : pidfdOpen(r.epoll.pid);
        ep = r.epoll.pid === process.pid ? r.epoll.fd : (pidfd >= 0 ? pidfdGetfd(pidfd, r.epoll.fd) : -3);
        closeFd(pidfd);
        if (ep >= 0 && r.epoll.pid !== process.pid) taken.push(ep);
        epolls.set(key, ep);
      }
      const off = i * REQ_SIZE;
      buf.writeInt32LE(r.op, off);
      buf.writeInt32LE(ep, off + 4);
      buf.writeInt32LE(r.file, off + 8);
      buf.writeInt32LE(r.tfd, off + 12);
      buf.writeUInt32LE(r.events >>> 0, off + 16);
      buf.writeUInt32LE(0, off + 20);
      buf.writeBigUInt64LE(BigInt.asUintN(64, r.data), off + 24);
      if (ep < 0) results[i] = -ep; // the epoll fd could not be taken (ESRCH/EBADF)
    });
    const rc = batch()(buf, reqs.length);
    for (let i = 0; i < reqs.length; i++) {
      if (!results[i]) results[i] = rc < 0 ? -rc : buf.readUInt32LE(i * REQ_SIZE + 20);
    }
    return results;
  } finally {
    for (const fd of taken) closeFd(fd);
  }
}
