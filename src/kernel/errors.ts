/**
 * Errors raised by epolltrack. Each class has a fixed `name` and a stable
 * `code`; messages are one line naming the cause and the fix. The original
 * error, when there is one, is kept as `cause`; a failed system call's errno,
 * when there is one, as `errno`.
 */
import { constants } from 'node:os';

export type ErrorCode =
  | 'EPT_ERR'
  | 'EPT_NOT_SUPPORTED'
  | 'EPT_NOT_ROOT'
  | 'EPT_NOT_LOADED'
  | 'EPT_NO_SUCH_PROCESS'
  | 'EPT_BAD_FD'
  | 'EPT_PERMISSION'
  | 'EPT_LIBBPF'
  | 'EPT_BPF'
  | 'EPT_MAP_FULL'
  | 'EPT_BAD_INPUT'
  | 'EPT_MOUNT'
  | 'EPT_REPLACE'
  | 'EPT_CLOSED'
  | 'EPT_BUILD'
  | 'EPT_LISTEN'
  | 'EPT_PROCESS_ACCESS'
  | 'EPT_USAGE';

export interface ErrorOptions {
  cause?: unknown;
  /** the errno (positive) of the system call that failed */
  errno?: number;
}

export class EpolltrackError extends Error {
  readonly code: ErrorCode;
  /** the errno (positive) of the system call that failed, when one did */
  declare readonly errno?: number;
  constructor(message: string, options?: ErrorOptions & { code?: ErrorCode }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = options?.code ?? 'EPT_ERR';
    if (options?.errno !== undefined) this.errno = options.errno;
  }
}
Object.defineProperty(EpolltrackError.prototype, 'name', { value: 'EpolltrackError', enumerable: false });

function defineError<C extends ErrorCode>(name: string, code: C, defaultMessage: string) {
  const cls = class extends EpolltrackError {
    declare readonly code: C;
    constructor(message: string = defaultMessage, options?: ErrorOptions) {
      super(message, { ...options, code });
    }
  };
  Object.defineProperty(cls.prototype, 'name', { value: name, enumerable: false });
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

/** The running kernel lacks something epolltrack needs (BTF, a hook type, an iterator). */
export const NotSupportedError = defineError('NotSupportedError', 'EPT_NOT_SUPPORTED',
  'not supported by this kernel');
export type NotSupportedError = InstanceType<typeof NotSupportedError>;

export const NotRootError = defineError('NotRootError', 'EPT_NOT_ROOT',
  'epolltrack needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE): run it with sudo');
export type NotRootError = InstanceType<typeof NotRootError>;

export const NotLoadedError = defineError('NotLoadedError', 'EPT_NOT_LOADED',
  'the tracker is not loaded: run `epolltrack load` first');
export type NotLoadedError = InstanceType<typeof NotLoadedError>;

export const NoSuchProcessError = defineError('NoSuchProcessError', 'EPT_NO_SUCH_PROCESS',
  'no such process');
export type NoSuchProcessError = InstanceType<typeof NoSuchProcessError>;

export const BadFdError = defineError('BadFdError', 'EPT_BAD_FD', 'no open file at that fd');
export type BadFdError = InstanceType<typeof BadFdError>;

export const PermissionError = defineError('PermissionError', 'EPT_PERMISSION', 'permission denied');
export type PermissionError = InstanceType<typeof PermissionError>;

export const LibbpfError = defineError('LibbpfError', 'EPT_LIBBPF',
  'libbpf.so.1 not found: install it with `apt-get install libbpf1`');
export type LibbpfError = InstanceType<typeof LibbpfError>;

export const BpfError = defineError('BpfError', 'EPT_BPF', 'a BPF operation failed');
export type BpfError = InstanceType<typeof BpfError>;

export const MapFullError = defineError('MapFullError', 'EPT_MAP_FULL',
  'a tracker map is full: reload with larger --max-regs/--max-epolls');
export type MapFullError = InstanceType<typeof MapFullError>;

export const BadInputError = defineError('BadInputError', 'EPT_BAD_INPUT', 'bad input');
export type BadInputError = InstanceType<typeof BadInputError>;

export const MountError = defineError('MountError', 'EPT_MOUNT', 'a needed file system is not mounted');
export type MountError = InstanceType<typeof MountError>;

/** The tracker (or another handle) was closed and used again. */
export const ClosedError = defineError('ClosedError', 'EPT_CLOSED',
  'the tracker is closed: open a new one');
export type ClosedError = InstanceType<typeof ClosedError>;

/** A part epolltrack ships (the BPF object, a native helper, an npm dependency) is missing or stale. */
export const BuildError = defineError('BuildError', 'EPT_BUILD',
  'a part of epolltrack is missing or stale: run `npm ci && npm run build`');
export type BuildError = InstanceType<typeof BuildError>;

/** A socket to serve on (dashboard, agent) could not be set up. */
export const ListenError = defineError('ListenError', 'EPT_LISTEN',
  'cannot listen on that address: pick a free one with --listen');
export type ListenError = InstanceType<typeof ListenError>;

/**
 * replaceFd could not swap the file; `errno` is what the intercepted syscall
 * should fail with (always set).
 */
export class ReplaceError extends EpolltrackError {
  declare readonly code: 'EPT_REPLACE';
  declare readonly errno: number;
  constructor(message = 'the fd could not be replaced', errnoValue: number = constants.errno.EIO, cause?: unknown) {
    super(message, { cause, errno: errnoValue, code: 'EPT_REPLACE' });
  }
}
Object.defineProperty(ReplaceError.prototype, 'name', { value: 'ReplaceError', enumerable: false });

const PREFERRED: Record<number, string> = { [constants.errno.EAGAIN]: 'EAGAIN', [constants.errno.EOPNOTSUPP]: 'EOPNOTSUPP' };
let names: Map<number, string> | undefined;

/**
 * The name of an errno (positive or negative), from os.constants.errno:
 * `errnoName(13)` is 'EACCES'. 524 is the kernel-internal ENOTSUPP that BPF
 * returns; any other unknown number reads `errno N`.
 */
export function errnoName(e: number): string {
  if (!names) {
    names = new Map();
    for (const [name, n] of Object.entries(constants.errno)) if (!names.has(n)) names.set(n, name);
    for (const [n, name] of Object.entries(PREFERRED)) names.set(Number(n), name);
    names.set(524, 'ENOTSUPP');
  }
  const a = Math.abs(e);
  return names.get(a) ?? `errno ${a}`;
}

/** The process exists but its fds cannot be read by this user (EACCES/EPERM on /proc/PID/fd). */
export const ProcessAccessError = defineError('ProcessAccessError', 'EPT_PROCESS_ACCESS',
  'cannot read the fds of that process');
export type ProcessAccessError = InstanceType<typeof ProcessAccessError>;

/** A command line or option the CLI cannot take (unknown option, stray argument, value out of range). */
export const UsageError = defineError('UsageError', 'EPT_USAGE', 'bad usage: see --help');
export type UsageError = InstanceType<typeof UsageError>;

/** True when `err` says the kernel does not support something (tests skip on it outside CI). */
export function isNotSupported(err: unknown): err is NotSupportedError {
  return err instanceof NotSupportedError;
}
