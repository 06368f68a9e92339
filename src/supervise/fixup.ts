/**
 * epoll_ctl with a chosen fd number, from an fd table of its own: the native
 * ept_ctl_batch() (native/lib/fixup.c) runs the requests synchronously in a
 * short-lived thread that unshared its fd table (CLONE_FILES).
 */
import { closeFd, fixupLib, takeFd } from '../kernel/ffi.js';

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

/**
 * struct ept_ctl (native/lib/fixup.h): size and byte offsets. fixup.h checks
 * the same numbers with _Static_assert; test/supervise/fixup.unit.test.ts
 * checks these against fixup.h.
 */
export const EPT_CTL = { size: 32, op: 0, epfd: 4, file: 8, tfd: 12, events: 16, result: 20, data: 24 } as const;
const REQ_SIZE = EPT_CTL.size;

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
        ep = r.epoll.pid === process.pid ? r.epoll.fd : takeFd(r.epoll.pid, r.epoll.fd);
        if (ep >= 0 && r.epoll.pid !== process.pid) taken.push(ep);
        epolls.set(key, ep);
      }
      const off = i * REQ_SIZE;
      buf.writeInt32LE(r.op, off + EPT_CTL.op);
      buf.writeInt32LE(ep, off + EPT_CTL.epfd);
      buf.writeInt32LE(r.file, off + EPT_CTL.file);
      buf.writeInt32LE(r.tfd, off + EPT_CTL.tfd);
      buf.writeUInt32LE(r.events >>> 0, off + EPT_CTL.events);
      buf.writeUInt32LE(0, off + EPT_CTL.result);
      buf.writeBigUInt64LE(BigInt.asUintN(64, r.data), off + EPT_CTL.data);
      if (ep < 0) results[i] = -ep; // the epoll fd could not be taken (ESRCH/EBADF/EPERM)
    });
    const rc = fixupLib().ept_ctl_batch(buf, reqs.length);
    for (let i = 0; i < reqs.length; i++) {
      if (!results[i]) results[i] = rc < 0 ? -rc : buf.readUInt32LE(i * REQ_SIZE + EPT_CTL.result);
    }
    return results;
  } finally {
    for (const fd of taken) closeFd(fd);
  }
}
