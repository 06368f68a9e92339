/**
 * The supervisor's per-connect probes against real processes: reading a
 * caller's memory (process_vm_readv), thread -> process (remembered, and
 * checked with tgkill), and what a socket is (one native call for every option).
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { closeFd, takeFd } from '../../src/kernel/ffi.js';
import { readMemory, socketInfo, tgidOf, SOCK_DGRAM, SOCK_STREAM } from '../../src/supervise/seccomp.js';
import { AF_INET } from '../../src/supervise/endpoint.js';

/** A python process that answers one line per command on stdin. */
function python(script: string): { child: ChildProcess; ask: (cmd: string) => Promise<string> } {
  const child = spawn('python3', ['-u', '-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const queue: ((l: string) => void)[] = [];
  lines.on('line', (l) => queue.shift()?.(l));
  return {
    child,
    ask: (cmd) => new Promise((resolve) => { queue.push(resolve); child.stdin!.write(`${cmd}\n`); }),
  };
}

const SCRIPT = `
import ctypes, sys, threading, socket
buf = ctypes.create_string_buffer(b"epolltrack-probe-0123456789", 32)
stop = threading.Event()
started = threading.Event()
tid = [0]
def body():
    tid[0] = threading.get_native_id()
    started.set()
    stop.wait()
t = threading.Thread(target=body)
t.start(); started.wait()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, (3).to_bytes(8, 'little') + (500000).to_bytes(8, 'little'))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.setblocking(False)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == 'addr': print(ctypes.addressof(buf))
    elif cmd == 'tid': print(tid[0])
    elif cmd == 'end': stop.set(); t.join(); print('ended')
    elif cmd == 'fds': print(s.fileno(), u.fileno())
`;

describe('supervisor probes (real processes)', function () {
  this.timeout(20000);
  let py: ReturnType<typeof python>;
  before(() => { py = python(SCRIPT); });
  after(() => { py.child.kill('SIGKILL'); });

  it('readMemory reads a stopped caller\'s bytes exactly, and refuses what is not mapped or out of range', async () => {
    const addr = BigInt(await py.ask('addr'));
    const pid = py.child.pid!;
    expect(readMemory(pid, addr, 16)?.toString('latin1')).to.equal('epolltrack-probe');
    expect(readMemory(pid, addr + 11n, 5)?.toString('latin1')).to.equal('probe');
    expect(readMemory(pid, 0x1000n, 16), 'unmapped page').to.equal(undefined);
    expect(readMemory(pid, 0n, 16), 'NULL').to.equal(undefined);
    expect(readMemory(pid, 0x7ffffffff000n, 0x2000), 'past the user address space').to.equal(undefined);
    expect(readMemory(pid, addr, 0)?.length).to.equal(0);
  });

  it('tgidOf: a thread maps to its process, again from memory, and not once the thread is gone', async () => {
    const pid = py.child.pid!;
    const tid = Number(await py.ask('tid'));
    expect(tid).to.not.equal(pid);
    expect(tgidOf(pid)).to.equal(pid);
    expect(tgidOf(tid)).to.equal(pid);
    expect(tgidOf(tid), 'remembered, checked with tgkill').to.equal(pid);
    expect(await py.ask('end')).to.equal('ended');
    expect(tgidOf(tid), 'the thread exited: a remembered answer is not trusted').to.equal(undefined);
  });

  it('socketInfo: type, family, flags and the options the program changed, in one call', async () => {
    const [s, u] = (await py.ask('fds')).split(' ').map(Number);
    const pid = py.child.pid!;
    const tcp = takeFd(pid, s), udp = takeFd(pid, u);
    try {
      const t = socketInfo(tcp)!;
      expect(t).to.include({ domain: AF_INET, type: SOCK_STREAM, nonblock: true, connected: false, sndTimeoMs: 0 });
      const changed = Object.fromEntries(t.changed.map((o) => [o.label, o.value]));
      expect(changed).to.deep.equal({ SO_RCVTIMEO: 3500, TCP_NODELAY: 1 });
      expect(t.options.map((o) => o.label)).to.include.members(['SO_RCVTIMEO', 'TCP_NODELAY', 'SO_SNDBUF', 'TCP_CONGESTION']);
      expect(t.options.map((o) => o.label)).to.not.include('UDP_CORK');
      const d = socketInfo(udp)!;
      expect(d).to.include({ domain: AF_INET, type: SOCK_DGRAM, nonblock: false });
      expect(d.changed).to.deep.equal([]);
      expect(d.options.map((o) => o.label)).to.include('UDP_CORK').and.to.not.include('TCP_NODELAY');
      const file = openSync('/dev/null', 'r');
      try { expect(socketInfo(file), 'a character device is not a socket').to.equal(undefined); } finally { closeSync(file); }
    } finally {
      closeFd(tcp);
      closeFd(udp);
    }
  });
});
