/**
 * A loaded (or about to be loaded) copy of bpf/epolltrack.bpf.o, through
 * libbpf. Used by the loader (tracking programs, pinned) and by each tracker
 * (its own private copy of the iterator programs, sharing the pinned maps).
 */
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { BpfError, BuildError, errnoName, NotSupportedError } from './errors.js';
import { captureLibbpfLog, closeFd, errno, IterAttachOpts, type IterAttachOptsValue, libbpf, libc, takeLibbpfLog, type Pointer } from './ffi.js';

/** The package root (this file is dist/src/kernel/bpfobject.js). */
export function packageRoot(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/** The compiled CO-RE object shipped with the package. */
export function objectPath(): string {
  const p = process.env.EPOLLTRACK_BPF_OBJECT ?? join(packageRoot(), 'build', 'epolltrack.bpf.o');
  if (!existsSync(p)) {
    throw new BuildError(`BPF object ${p} is missing: run \`npm run build\` (needs clang, llvm, bpftool)`);
  }
  return p;
}

/** A BpfError whose message has the step, errno name and the last libbpf line that says why. */
export function bpfError(step: string, err: number, hint = ''): BpfError {
  const log = takeLibbpfLog().filter((l) => !/^\s*$/.test(l)).map((l) => l.replace(/^libbpf: /, ''));
  // The most telling line: the program the kernel refused, else the last failure.
  const why = log.find((l) => /program load failed|failed to attach|failed to create/i.test(l))
    ?? log.reverse().find((l) => /error|failed|invalid|denied|not|unknown|refus/i.test(l));
  const e = Math.abs(err);
  const msg = `${step} failed: ${errnoName(e)}${why ? ` (libbpf: ${why.trim().slice(0, 200)})` : ''}${hint ? `; ${hint}` : ''}`;
  return new BpfError(msg, { errno: e });
}

export class BpfObject {
  private obj: Pointer;
  private loaded = false;

  private constructor(obj: Pointer) {
    this.obj = obj;
  }

  /** Step 1: open the object (parses ELF and BTF, nothing reaches the kernel yet). */
  static open(path = objectPath()): BpfObject {
    captureLibbpfLog();
    const obj = libbpf().obj_open_file(path, null);
    if (!obj) throw bpfError(`opening ${path}`, errno());
    return new BpfObject(obj);
  }

  programNames(): string[] {
    const names: string[] = [];
    let p: Pointer = null;
    for (;;) {
      p = libbpf().next_prog(this.obj, p);
      if (!p) break;
      names.push(libbpf().prog_name(p));
    }
    return names;
  }

  private prog(name: string): Pointer {
    const p = libbpf().find_prog(this.obj, name);
    if (!p) throw new BuildError(`BPF program ${name} is not in the object: rebuild it`);
    return p;
  }

  private map(name: string): Pointer {
    const m = libbpf().find_map(this.obj, name);
    if (!m) throw new BuildError(`BPF map ${name} is not in the object: rebuild it`);
    return m;
  }

  /** Load only these programs (the others' autoload is turned off). */
  keepPrograms(keep: Iterable<string>): void {
    const wanted = new Set(keep);
    for (const name of this.programNames()) libbpf().prog_set_autoload(this.prog(name), wanted.has(name));
  }

  setMaxEntries(map: string, n: number): void {
    const r = libbpf().map_set_max_entries(this.map(map), n);
    if (r < 0) throw bpfError(`setting ${map} size`, r);
  }

  /** (type, key size, value size) of a map as the object defines it, or, after reuseMap, as the reused map has it. */
  mapShape(map: string): string {
    const m = this.map(map);
    return `type ${libbpf().map_type(m)}, key ${libbpf().map_key_size(m)} B, value ${libbpf().map_value_size(m)} B`;
  }

  /**
   * Use an already existing (pinned) map instead of creating one. libbpf takes
   * the shape of the map it is given, so a map pinned by another build would
   * only show up later as a verifier refusal: check the shape here and name it.
   */
  reuseMap(map: string, fd: number, where = 'the pin dir'): void {
    const want = this.mapShape(map);
    const r = libbpf().map_reuse_fd(this.map(map), fd);
    if (r < 0) throw bpfError(`reusing map ${map}`, r);
    const got = this.mapShape(map);
    if (got !== want) {
      throw new BuildError(`map ${map} pinned at ${where} was made by another epolltrack build (${got}; this build's: ${want}): `
        + `run \`epolltrack unload\` and \`epolltrack load\` again with this build`);
    }
  }

  /** Step 2: set a `const volatile` __u32 option at byte offset `off` of .rodata, before load. */
  setRodataU32(off: number, value: number): void {
    const size = [0];
    const ptr = libbpf().map_initial_value(this.map('.rodata'), size);
    if (!ptr || size[0] < off + 4) throw new BuildError('.rodata of the BPF object is not as expected: rebuild it');
    koffi.encode(ptr, off, 'uint32_t', value);
  }

  /** Step 3: load and verify the programs. */
  load(): void {
    const r = libbpf().obj_load(this.obj);
    if (r < 0) {
      const e = Math.abs(r);
      if (e === constants.errno.EPERM) {
        throw new NotSupportedError(bpfError('BPF_PROG_LOAD', r, 'the kernel refused these program types').message, { errno: e });
      }
      throw bpfError('loading the BPF object', r);
    }
    this.loaded = true;
  }

  mapFd(name: string): number {
    return libbpf().map_fd(this.map(name));
  }

  progFd(name: string): number {
    return libbpf().prog_fd(this.prog(name));
  }

  /** Step 4: attach one program where its SEC() says. */
  attach(name: string): Pointer {
    const link = libbpf().prog_attach(this.prog(name));
    if (!link) throw bpfError(`attaching ${name}`, errno());
    return link;
  }

  pinMap(name: string, path: string): void {
    const r = libbpf().map_pin(this.map(name), path);
    if (r < 0) throw bpfError(`pinning map ${name} at ${path}`, r);
  }

  /** Attach an iterator program, bound to one task when tid is given. */
  attachIter(name: string, tid?: number): Pointer {
    let opts: IterAttachOptsValue | null = null;
    if (tid !== undefined) {
      // union bpf_iter_link_info { ...; struct { __u32 tid; __u32 pid; __u32 pid_fd; } task; } (16 bytes)
      const info = Buffer.alloc(16);
      info.writeUInt32LE(tid, 0);
      opts = { sz: koffi.sizeof(IterAttachOpts), link_info: info, link_info_len: info.length };
    }
    const link = libbpf().prog_attach_iter(this.prog(name), opts);
    if (!link) throw bpfError(`attaching iterator ${name}`, errno());
    return link;
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  close(): void {
    if (this.obj) libbpf().obj_close(this.obj);
    this.obj = null;
  }
}

export function linkFd(link: Pointer): number {
  return libbpf().link_fd(link);
}

export function destroyLink(link: Pointer): void {
  if (link) libbpf().link_destroy(link);
}

export function pinLink(link: Pointer, path: string): void {
  const r = libbpf().link_pin(link, path);
  if (r < 0) throw bpfError(`pinning link at ${path}`, r);
}

/**
 * Run an attached iterator once and return everything it wrote. When
 * `expected` can tell the full length from what has been read so far, reading
 * stops there instead of asking for EOF.
 */
export function readIter(link: Pointer, buf: Buffer, expected?: (b: Buffer) => number | undefined): Buffer {
  const fd = libbpf().iter_create(linkFd(link));
  if (fd < 0) throw bpfError('creating an iterator', fd);
  try {
    let len = 0;
    for (;;) {
      if (len === buf.length) {
        const bigger = Buffer.alloc(buf.length * 2);
        buf.copy(bigger);
        buf = bigger;
      }
      const n = Number(libc().read(fd, buf.subarray(len), buf.length - len));
      if (n < 0) {
        const e = errno();
        if (e === constants.errno.EINTR) continue;
        throw bpfError('reading an iterator', -e);
      }
      if (n === 0) break;
      len += n;
      const want = expected?.(buf.subarray(0, len));
      if (want !== undefined && len >= want) break;
    }
    return buf.subarray(0, len);
  } finally {
    closeFd(fd);
  }
}
