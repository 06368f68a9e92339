/**
 * FFI to the system libbpf (libbpf.so.1) and the few libc calls epolltrack
 * needs, through koffi. Everything here is synchronous and returns raw
 * results; callers turn failures into errors (src/errors.ts).
 */
import koffi from 'koffi';
import { LibbpfError } from './errors.js';

export type Pointer = unknown; // an opaque native pointer handed back to libbpf

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

const PrintFn = koffi.proto('int libbpf_print_fn(int level, const char *fmt, void *ap)');

function load(name: string): ReturnType<typeof koffi.load> {
  try {
    return koffi.load(name);
  } catch (cause) {
    if (name.startsWith('libbpf')) throw new LibbpfError(undefined, { cause });
    throw cause;
  }
}

let libbpfLib: ReturnType<typeof bindLibbpf> | undefined;
let libcLib: ReturnType<typeof bindLibc> | undefined;

function bindLibbpf() {
  const lib = load('libbpf.so.1');
  return {
    set_print: lib.func('void *libbpf_set_print(libbpf_print_fn *fn)'),
    obj_open_file: lib.func('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
    obj_load: lib.func('int bpf_object__load(bpf_object *obj)'),
    obj_close: lib.func('void bpf_object__close(bpf_object *obj)'),
    find_prog: lib.func('bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)'),
    find_map: lib.func('bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),
    next_prog: lib.func('bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prog)'),
    prog_name: lib.func('const char *bpf_program__name(bpf_program *prog)'),
    prog_set_autoload: lib.func('int bpf_program__set_autoload(bpf_program *prog, bool autoload)'),
    prog_fd: lib.func('int bpf_program__fd(bpf_program *prog)'),
    prog_attach: lib.func('bpf_link *bpf_program__attach(bpf_program *prog)'),
    prog_attach_iter: lib.func('bpf_link *bpf_program__attach_iter(bpf_program *prog, const bpf_iter_attach_opts *opts)'),
    map_fd: lib.func('int bpf_map__fd(bpf_map *map)'),
    map_set_max_entries: lib.func('int bpf_map__set_max_entries(bpf_map *map, uint32_t max)'),
    map_reuse_fd: lib.func('int bpf_map__reuse_fd(bpf_map *map, int fd)'),
    map_pin: lib.func('int bpf_map__pin(bpf_map *map, const char *path)'),
    map_initial_value: lib.func('void *bpf_map__initial_value(bpf_map *map, _Out_ size_t *psize)'),
    link_pin: lib.func('int bpf_link__pin(bpf_link *link, const char *path)'),
    link_fd: lib.func('int bpf_link__fd(bpf_link *link)'),
    link_destroy: lib.func('int bpf_link__destroy(bpf_link *link)'),
    obj_get: lib.func('int bpf_obj_get(const char *path)'),
    map_lookup: lib.func('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    map_update: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    map_delete: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
    map_next_key: lib.func('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),
    iter_create: lib.func('int bpf_iter_create(int link_fd)'),
    btf_load_vmlinux_btf: lib.func('btf *btf__load_vmlinux_btf(void)'),
    btf_find_by_name_kind: lib.func('int btf__find_by_name_kind(btf *btf, const char *name, uint32_t kind)'),
    btf_free: lib.func('void btf__free(btf *btf)'),
  };
}

function bindLibc() {
  const lib = load('libc.so.6');
  return {
    read: lib.func('long read(int fd, _Out_ void *buf, size_t count)'),
    close: lib.func('int close(int fd)'),
    vsnprintf: lib.func('int vsnprintf(_Out_ char *buf, size_t size, const char *fmt, void *ap)'),
    epoll_create1: lib.func('int epoll_create1(int flags)'),
    epoll_ctl: lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
    syscall5: lib.func('long syscall(long nr, long a, long b, long c, long d, long e)'),
    syscall5p: lib.func('long syscall(long nr, long a, long b, long c, long d, void *e)'),
    geteuid: lib.func('uint32_t geteuid(void)'),
    mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
    munmap: lib.func('int munmap(void *addr, size_t len)'),
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

export function errno(): number {
  return koffi.errno();
}

export { OpaqueBtf, OpaqueLink, OpaqueMap, OpaqueObj, OpaqueProg, IterAttachOpts };

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
    const n = vsnprintf(buf, buf.length, fmt, ap) as number;
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

const SYS_kcmp = 312;
const SYS_pidfd_open = 434;
const SYS_pidfd_getfd = 438;
export const KCMP_FILE = 0;
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

export function pidfdOpen(pid: number): number {
  const r = sys(SYS_pidfd_open, pid, 0);
  return r < 0 ? -errno() : r;
}

export function pidfdGetfd(pidfd: number, fd: number): number {
  const r = sys(SYS_pidfd_getfd, pidfd, fd, 0);
  return r < 0 ? -errno() : r;
}

export function closeFd(fd: number): void {
  if (fd >= 0) libc().close(fd);
}
