/**
 * `epolltrack agent`: a seccomp agent for OCI runtimes. runc and crun send the
 * listener fd of each container (linux.seccomp.listenerPath) with the state
 * JSON; every container is served by the same redirect rules and fix-up.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../kernel/bpfobject.js';
import { ListenError } from '../kernel/errors.js';
import { closeFd, takeFd } from '../kernel/ffi.js';
import { Supervisor, type SupervisorOptions, type SwapRecord } from './supervisor.js';

export interface ContainerInfo { id?: string; pid?: number; annotations?: Record<string, string> }

export interface Agent {
  /** resolves when the agent stops */
  done: Promise<void>;
  containers: ContainerInfo[];
  supervisors: Supervisor[];
  stop(): void;
}

export async function startAgent(socketPath: string, opts: SupervisorOptions & {
  onSwap?: (r: SwapRecord) => void;
  onContainer?: (c: ContainerInfo) => void;
}): Promise<Agent> {
  const recv = spawn(join(packageRoot(), 'build', 'bin', 'agent-recv'), [socketPath], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: recv.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done || first.value !== 'READY') {
    recv.kill();
    throw new ListenError(`the agent cannot listen on ${socketPath}: check its directory exists and no other agent serves it`);
  }
  const agent: Agent = { done: Promise.resolve(), containers: [], supervisors: [], stop: () => recv.kill() };
  const serving = new Set<Promise<void>>();
  agent.done = (async () => {
    for (;;) {
      const head = await lines.next();
      if (head.done) break;
      const m = /^FD (\d+) \d+$/.exec(head.value);
      if (!m) continue;
      const body = await lines.next();
      let info: ContainerInfo = {};
      try {
        const state = JSON.parse(body.done ? '{}' : body.value) as { pid?: number; state?: { id?: string; pid?: number; annotations?: Record<string, string> } };
        info = { id: state.state?.id, pid: state.pid ?? state.state?.pid, annotations: state.state?.annotations };
      } catch { /* not JSON: serve it anyway */ }
      const listener = takeFd(recv.pid!, Number(m[1]));
      recv.stdin!.write(`done ${m[1]}\n`);
      if (listener < 0) continue;
      agent.containers.push(info);
      opts.onContainer?.(info);
      const sup = new Supervisor(opts);
      if (opts.onSwap) sup.on('swap', opts.onSwap);
      agent.supervisors.push(sup);
      const p = sup.serve(listener).finally(() => { closeFd(listener); sup.close(); });
      serving.add(p);
      void p.finally(() => serving.delete(p));
    }
    for (const s of agent.supervisors) s.stop();
    await Promise.all(serving);
  })();
  return agent;
}
