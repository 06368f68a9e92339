/**
 * The one FFI layer: the system libbpf (libbpf.so.1), the libc calls
 * epolltrack needs and build/lib/libepolltrack-fixup.so, each bound once
 * through koffi with typed signatures, so call sites need no casts.
 * Everything here is synchronous (but `.async` on libuv's pool) and returns raw
 * results; callers turn failures into errors (errors.ts).
 */
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { LibbpfError, NotSupportedError } from './errors.js';

export type Pointer = unknown; // an opaque native pointer handed back to libbpf

/** A bound native function with its TypeScript signature (and koffi's thread-pool `.async`). */
export type NativeFn<A extends unknown[], R> = ((...args: A) => R) & {
  async(...args: [...A, (err: unknown, result: R) => void]): void;
};

type Lib = ReturnType<typeof koffi.load>;

/** The one place a koffi function gets its type: the declaration string and A/R must agree. */
function fn<A extends unknown[], R>(lib: Lib, decl: string): NativeFn<A, R> {
  return lib.func(decl) as NativeFn<A, R>;
}

/** A buffer for an `_Out_`/`_Inout_` scalar (koffi writes element 0). */
type OutScalar = number[];
type Buf = Buffer | null;

const OpaqueObj = koffi.opaque('bpf_object');
const OpaqueProg = koffi.opaque('bpf_program');
const OpaqueMap = koffi.opaque('bpf_map');
const OpaqueLink = koffi.opaque('bpf_link');
const OpaqueBtf = koffi.opaque('btf');

/** struct bpf_iter_attach_opts { size_t sz; union bpf_iter_link_info *link_info; __u32 link_info_len; } */
const IterAttachOpts = koffi.struct('bpf_iter_attach_opts', {
  sz: 'size_t',
  link_info: 'void *',
  link_info_len: 'uint32_t',
});
export interface IterAttachOptsValue { sz: number; link_info: Buffer; link_info_len: number }

/** struct bpf_test_run_opts (libbpf 1.1): only sz, ctx_in and ctx_size_in are set for BPF_PROG_RUN. */
const TestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});

const PrintFn = koffi.proto('int libbpf_print_fn(int level, const char *fmt, void *ap)');

function load(name: string): Lib {
  try {
    return koffi.load(name);
  } catch (cause) {
    if (name.startsWith('libbpf')) throw new LibbpfError(undefined, { cause });
    if (name.includes('libepolltrack-fixup')) {
      throw new NotSupportedError(`${name} is missing or unloadable: run \`npm run build\``, { cause });
    }
    throw new NotSupportedError(`cannot load ${name}: ${(cause as Error).message}`, { cause });
  }
}

let libbpfLib: ReturnType<typeof bindLibbpf> | undefined;
let libcLib: ReturnType<typeof bindLibc> | undefined;
let fixupBound: ReturnType<typeof bindFixup> | undefined;

function bindLibbpf() {
  const lib = load('libbpf.so.1');
  return {
    set_print: fn<[unknown], Pointer>(lib, 'void *libbpf_set_print(libbpf_print_fn *fn)'),
    obj_open_file: fn<[string, null], Pointer>(lib, 'bpf_object *bpf_object__open_file(const char *path, void *opts)'),
    obj_load: fn<[Pointer], number>(lib, 'int bpf_object__load(bpf_object *obj)'),
    obj_close: fn<[Pointer], void>(lib, 'void bpf_object__close(bpf_object *obj)'),
    find_prog: fn<[Pointer, string], Pointer>(lib, 'bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)'),
    find_map: fn<[Pointer, string], Pointer>(lib, 'bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),
    next_prog: fn<[Pointer, Pointer], Pointer>(lib, 'bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prog)'),
    prog_name: fn<[Pointer], string>(lib, 'const char *bpf_program__name(bpf_program *prog)'),
    prog_set_autoload: fn<[Pointer, boolean], number>(lib, 'int bpf_program__set_autoload(bpf_program *prog, bool autoload)'),
    prog_fd: fn<[Pointer], number>(lib, 'int bpf_program__fd(bpf_program *prog)'),
    prog_attach: fn<[Pointer], Pointer>(lib, 'bpf_link *bpf_program__attach(bpf_program *prog)'),
    prog_attach_iter: fn<[Pointer, IterAttachOptsValue | null], Pointer>(lib, 'bpf_link *bpf_program__attach_iter(bpf_program *prog, const bpf_iter_attach_opts *opts)'),
    map_fd: fn<[Pointer], number>(lib, 'int bpf_map__fd(bpf_map *map)'),
    map_set_max_entries: fn<[Pointer, number], number>(lib, 'int bpf_map__set_max_entries(bpf_map *map, uint32_t max)'),
    map_reuse_fd: fn<[Pointer, number], number>(lib, 'int bpf_map__reuse_fd(bpf_map *map, int fd)'),
    map_type: fn<[Pointer], number>(lib, 'int bpf_map__type(const bpf_map *map)'),
    map_key_size: fn<[Pointer], number>(lib, 'uint32_t bpf_map__key_size(const bpf_map *map)'),
    map_value_size: fn<[Pointer], number>(lib, 'uint32_t bpf_map__value_size(const bpf_map *map)'),
    map_pin: fn<[Pointer, string], number>(lib, 'int bpf_map__pin(bpf_map *map, const char *path)'),
    map_initial_value: fn<[Pointer, OutScalar], Pointer>(lib, 'void *bpf_map__initial_value(bpf_map *map, _Out_ size_t *psize)'),
    link_pin: fn<[Pointer, string], number>(lib, 'int bpf_link__pin(bpf_link *link, const char *path)'),
    link_fd: fn<[Pointer], number>(lib, 'int bpf_link__fd(bpf_link *link)'),
    link_destroy: fn<[Pointer], number>(lib, 'int bpf_link__destroy(bpf_link *link)'),
    obj_get: fn<[string], number>(lib, 'int bpf_obj_get(const char *path)'),
    map_lookup: fn<[number, Buffer, Buffer], number>(lib, 'int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    map_update: fn<[number, Buffer, Buffer, number], number>(lib, 'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    map_delete: fn<[number, Buffer], number>(lib, 'int bpf_map_delete_elem(int fd, const void *key)'),
    map_next_key: fn<[number, Buf, Buffer], number>(lib, 'int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),
    iter_create: fn<[number], number>(lib, 'int bpf_iter_create(int link_fd)'),
    /** BPF_PROG_RUN with struct bpf_test_run_opts already encoded in native memory (its address): no marshalling per call */
    prog_test_run_raw: fn<[number, bigint], number>(lib, 'int bpf_prog_test_run_opts(int prog_fd, void *opts)'),
    btf_load_vmlinux_btf: fn<[], Pointer>(lib, 'btf *btf__load_vmlinux_btf(void)'),
    btf_find_by_name_kind: fn<[Pointer, string, number], number>(lib, 'int btf__find_by_name_kind(btf *btf, const char *name, uint32_t kind)'),
    btf_free: fn<[Pointer], void>(lib, 'void btf__free(btf *btf)'),
  };
}

function bindLibc() {
  const lib = load('libc.so.6');
  return {
    read: fn<[number, Buffer, number], number | bigint>(lib, 'long read(int fd, _Out_ void *buf, size_t count)'),
    close: fn<[number], number>(lib, 'int close(int fd)'),
    vsnprintf: fn<[Buffer, number, string, unknown], number>(lib, 'int vsnprintf(_Out_ char *buf, size_t size, const char *fmt, void *ap)'),
    epoll_create1: fn<[number], number>(lib, 'int epoll_create1(int flags)'),
    epoll_ctl: fn<[number, number, number, Buf], number>(lib, 'int epoll_ctl(int epfd, int op, int fd, void *event)'),
    syscall5: fn<[number, number, number, number, number, number], number | bigint>(lib, 'long syscall(long nr, long a, long b, long c, long d, long e)'),
    syscall5p: fn<[number, number, number, number, number, Buffer], number | bigint>(lib, 'long syscall(long nr, long a, long b, long c, long d, void *e)'),
    mmap: fn<[null, number, number, number, number, number], Pointer>(lib, 'void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
    munmap: fn<[Pointer, number], number>(lib, 'int munmap(void *addr, size_t len)'),
    ioctl: fn<[number, number, Buffer], number>(lib, 'int ioctl(int fd, unsigned long req, void *arg)'),
    poll: fn<[Buffer, number, number], number>(lib, 'int poll(void *fds, unsigned long nfds, int timeout)'),
    socket: fn<[number, number, number], number>(lib, 'int socket(int domain, int type, int protocol)'),
    connect: fn<[number, Buffer, number], number>(lib, 'int connect(int fd, const void *addr, uint32_t len)'),
    bind: fn<[number, Buffer, number], number>(lib, 'int bind(int fd, const void *addr, uint32_t len)'),
    getsockopt: fn<[number, number, number, Buffer, OutScalar], number>(lib, 'int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)'),
    setsockopt: fn<[number, number, number, Buffer, number], number>(lib, 'int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    getsockname: fn<[number, Buffer, OutScalar], number>(lib, 'int getsockname(int fd, _Out_ void *addr, _Inout_ uint32_t *len)'),
    getpeername: fn<[number, Buffer, OutScalar], number>(lib, 'int getpeername(int fd, _Out_ void *addr, _Inout_ uint32_t *len)'),
    fcntl: fn<[number, number, number], number>(lib, 'int fcntl(int fd, int cmd, long arg)'),
    listen: fn<[number, number], number>(lib, 'int listen(int fd, int backlog)'),
    getxattr: fn<[string, string, Buffer, number], number | bigint>(lib, 'long getxattr(const char *path, const char *name, _Out_ void *value, size_t size)'),
  };
}

/** build/lib/libepolltrack-fixup.so (native/lib/fixup.c); this file is dist/src/kernel/ffi.js. */
function bindFixup() {
  const lib = load(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'lib', 'libepolltrack-fixup.so'));
  return {
    /** struct ept_ctl reqs[n] (native/lib/fixup.h); each gets its errno in ->result; returns 0 or -errno */
    ept_ctl_batch: fn<[Buffer, number], number>(lib, 'int ept_ctl_batch(void *reqs, int n)'),
    /** the whole swap: [make and connect the new socket,] ADDs, ADDFD+SETFD at each struct ept_addfd, DELs; 0, 1 (ADD failed), 2 (ADDFD failed), 3 (socket/connect failed) or -errno */
    ept_swap: fn<[number, bigint, number, Buffer, number, Buffer, number, number, Buffer | null, Buffer | null, Buffer | null, number], number>(lib,
      'int ept_swap(int listener, uint64_t id, int newfd, void *fds, int nfds, void *reqs, int nadd, int n, void *connect, const void *spec, const void *defaults, int nopts)'),
    /** numbers below limit of pid holding the file at its fd (kcmp); count or -errno */
    ept_copies: fn<[number, number, number, Int32Array, number], number>(lib, 'int ept_copies(int pid, int fd, int limit, _Out_ int32_t *out, int max)'),
    /** what a socket is (struct ept_sockprobe) and each struct ept_optspec's value (struct ept_optval); 0 or errno */
    ept_sock_probe: fn<[number, Buffer, Buffer, number, Buffer], number>(lib, 'int ept_sock_probe(int fd, void *out, const void *spec, int n, void *vals)'),
    /** make, set up, bind and connect the replacement of struct ept_connect; 0 or errno */
    ept_sock_make: fn<[Buffer, Buffer, Buffer, number], number>(lib, 'int ept_sock_make(void *c, const void *spec, const void *defaults, int nopts)'),
    /** process_vm_readv of len bytes at addr of pid into buf; bytes read or -errno */
    ept_read_mem: fn<[number, bigint, Buffer, number], number | bigint>(lib, 'long ept_read_mem(int pid, uint64_t addr, void *buf, uint64_t len)'),
    /** IORING_REGISTER_FILES_UPDATE of one slot; 0 or errno */
    ept_uring_update: fn<[number, number, number], number>(lib, 'int ept_uring_update(int ring, unsigned int slot, int fd)'),
  };
}

export function libbpf(): ReturnType<typeof bindLibbpf> {
  libbpfLib ??= bindLibbpf();
  return libbpfLib;
}

export function libc(): ReturnType<typeof bindLibc> {
  libcLib ??= bindLibc();
  return libcLib;
}

export function fixupLib(): ReturnType<typeof bindFixup> {
  fixupBound ??= bindFixup();
  return fixupBound;
}

function bindPoller() {
  const lib = load(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'build', 'lib', 'libepolltrack-poller.so'));
  return {
    /** the read end of the report pipe (the thread started once), or -errno */
    start: fn<[], number>(lib, 'int ept_poller_start(void)'),
    /** watch fd for events once (EPOLLONESHOT), reported with token; 0 or -errno */
    arm: fn<[number, number, bigint], number>(lib, 'int ept_poller_arm(int fd, uint32_t events, uint64_t token)'),
    /** stop watching fd; 0 or -errno */
    disarm: fn<[number], number>(lib, 'int ept_poller_disarm(int fd)'),
    /** revents of fd now, without waiting; or -errno */
    ready: fn<[number, number], number>(lib, 'int ept_poller_ready(int fd, uint32_t events)'),
  };
}
let pollerBound: ReturnType<typeof bindPoller> | undefined;

/** libepolltrack-poller (native/lib/poller.c): one thread waiting on many fds (src/kernel/poller.ts). */
export function pollerLib(): ReturnType<typeof bindPoller> {
  pollerBound ??= bindPoller();
  return pollerBound;
}

export function errno(): number {
  return koffi.errno();
}

export { OpaqueBtf, OpaqueLink, OpaqueMap, OpaqueObj, OpaqueProg, IterAttachOpts, TestRunOpts };

// ---- libbpf log capture ---------------------------------------------------

const LOG_LIMIT = 200;
const logLines: string[] = [];
let printCb: unknown;

/** Route libbpf's messages into a bounded buffer (printed with EPOLLTRACK_DEBUG=1). */
export function captureLibbpfLog(): void {
  if (printCb) return;
  const { vsnprintf } = libc();
  const buf = Buffer.alloc(4096);
  printCb = koffi.register((level: number, fmt: string, ap: unknown) => {
    const n = vsnprintf(buf, buf.length, fmt, ap);
    const text = buf.toString('utf8', 0, Math.max(0, Math.min(n, buf.length - 1)));
    for (const line of text.split('\n')) {
      if (!line) continue;
      logLines.push(line);
      if (logLines.length > LOG_LIMIT) logLines.shift();
      if (process.env.EPOLLTRACK_DEBUG === '1') process.stderr.write(`libbpf: ${line}\n`);
    }
    return 0;
  }, koffi.pointer(PrintFn));
  libbpf().set_print(printCb);
}

/** The last libbpf log lines (for error messages), then forget them. */
export function takeLibbpfLog(): string[] {
  return logLines.splice(0, logLines.length);
}

// ---- syscalls ---------------------------------------------------------------

const SYS_tgkill = 234;
const SYS_kcmp = 312;
const SYS_pidfd_open = 434;
const SYS_pidfd_getfd = 438;
export const KCMP_FILE = 0;
export const KCMP_FILES = 2;
export const KCMP_EPOLL_TFD = 7;

function sys(nr: number, a = 0, b = 0, c = 0, d = 0, e = 0): number {
  return Number(libc().syscall5(nr, a, b, c, d, e));
}

/** kcmp(2) returning 0 (equal), 1/2 (ordered), 3 (not equal), or -errno. */
export function kcmp(pid1: number, pid2: number, type: number, idx1: number, idx2: number | Buffer): number {
  const r = typeof idx2 === 'number'
    ? sys(SYS_kcmp, pid1, pid2, type, idx1, idx2)
    : Number(libc().syscall5p(SYS_kcmp, pid1, pid2, type, idx1, idx2));
  return r < 0 ? -errno() : r;
}

/** Is the file at pid:fd registered in the epoll at epollPid:epfd under tfd (toff-th such)? */
export function kcmpEpollTfd(pid: number, fd: number, epollPid: number, epfd: number, tfd: number, toff = 0): number {
  const slot = Buffer.alloc(12);
  slot.writeUInt32LE(epfd, 0);
  slot.writeUInt32LE(tfd, 4);
  slot.writeUInt32LE(toff, 8);
  return kcmp(pid, epollPid, KCMP_EPOLL_TFD, fd, slot);
}

/** Is thread `tid` in process `tgid` now? tgkill(tgid, tid, 0): no signal is sent. */
export function threadOf(tgid: number, tid: number): boolean {
  return sys(SYS_tgkill, tgid, tid, 0) === 0;
}

/** pidfd_open flag (v6.9): a pidfd for one thread, whose fd table pidfd_getfd then reads. */
export const PIDFD_THREAD = 0o200; // O_EXCL

export function pidfdOpen(pid: number, flags = 0): number {
  const r = sys(SYS_pidfd_open, pid, flags);
  return r < 0 ? -errno() : r;
}

export function pidfdGetfd(pidfd: number, fd: number): number {
  const r = sys(SYS_pidfd_getfd, pidfd, fd, 0);
  return r < 0 ? -errno() : r;
}

/**
 * pidfds opened during this turn of the event loop, closed at its end: a swap
 * takes the old socket and then the epolls from one process in one synchronous
 * run, and consecutive notifications often come from one process. A pidfd
 * names one process for good: if it has died meanwhile, pidfd_getfd fails with
 * ESRCH and the pid (perhaps reused) is looked up afresh.
 */
const turnPidfds = new Map<number, number>();
let turnEnds: NodeJS.Immediate | undefined;

function endTurn(): void {
  for (const fd of turnPidfds.values()) libc().close(fd);
  turnPidfds.clear();
  turnEnds = undefined;
}

function processPidfd(pid: number): number {
  const known = turnPidfds.get(pid);
  if (known !== undefined) return known;
  const pidfd = pidfdOpen(pid);
  if (pidfd < 0) return pidfd;
  if (turnPidfds.size >= 16) {
    const [oldest, fd] = turnPidfds.entries().next().value as [number, number];
    turnPidfds.delete(oldest);
    libc().close(fd);
  }
  turnPidfds.set(pid, pidfd);
  turnEnds ??= setImmediate(endTurn).unref();
  return pidfd;
}

/**
 * A copy, in this process, of fd `fd` of process `pid` (pidfd_getfd). Returns
 * the new fd, or -errno: -ESRCH when the process is gone, -EBADF when it has
 * no such fd, -EPERM without ptrace rights. The caller closes the copy (closeFd).
 */
export function takeFd(pid: number, fd: number): number {
  let pidfd = processPidfd(pid);
  if (pidfd === -constants.errno.EINVAL || pidfd === -constants.errno.ENOENT) {
    // Not a thread-group leader: a thread, whose own fd table (unshare(CLONE_FILES)) only a
    // thread pidfd reads (PIDFD_THREAD, v6.9+; before that this fails too, with EINVAL).
    pidfd = pidfdOpen(pid, PIDFD_THREAD);
    if (pidfd < 0) return pidfd;
    try {
      return pidfdGetfd(pidfd, fd);
    } finally {
      closeFd(pidfd);
    }
  }
  if (pidfd < 0) return pidfd;
  const got = pidfdGetfd(pidfd, fd);
  if (got !== -constants.errno.ESRCH || turnPidfds.get(pid) !== pidfd) return got;
  // The process this pid named earlier in this turn has died: the pid may name another one now.
  turnPidfds.delete(pid);
  libc().close(pidfd);
  pidfd = processPidfd(pid);
  return pidfd < 0 ? pidfd : pidfdGetfd(pidfd, fd);
}

export function closeFd(fd: number): void {
  if (fd >= 0) libc().close(fd);
}

/** An extended attribute as text (e.g. `system.sockprotoname` of /proc/PID/fd/N: `TCP`), undefined when absent. */
export function getxattrText(path: string, name: string): string | undefined {
  const buf = Buffer.alloc(256);
  const n = Number(libc().getxattr(path, name, buf, buf.length));
  return n > 0 ? buf.toString('latin1', 0, n).replace(/\0+$/, '') : undefined;
}
