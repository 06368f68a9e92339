/**
 * A TCP server on 127.0.0.1 that never accepts, with its queue already full:
 * a connect to it hangs until its timeout. The supervisor and agent suites
 * point redirects at it to hold connects pending.
 */
import { closeFd } from '../../src/kernel/ffi.js';
import { AF_INET, c, encodeSockaddr, SOCK_NONBLOCK, SOCK_STREAM } from '../../src/supervise/seccomp.js';

export interface HangingServer { port: number; close(): void }

export function hangingServer(): HangingServer {
  const fd = c().socket(AF_INET, SOCK_STREAM, 0) as number;
  const a = encodeSockaddr({ family: AF_INET, ip: '127.0.0.1', port: 0 });
  c().bind(fd, a, a.length);
  c().listen(fd, 0);
  const b = Buffer.alloc(16);
  c().getsockname(fd, b, [16]);
  const port = b.readUInt16BE(2);
  // Connects that fill the backlog and are never accepted.
  const fillers: number[] = [];
  for (let i = 0; i < 3; i++) {
    const f = c().socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0) as number;
    const to = encodeSockaddr({ family: AF_INET, ip: '127.0.0.1', port });
    c().connect(f, to, to.length);
    fillers.push(f);
  }
  return {
    port,
    close: () => {
      for (const f of fillers) closeFd(f);
      closeFd(fd);
    },
  };
}
