/** Names shared by the loader, the tracker and the tests: one place, as in bpf/epolltrack.bpf.c. */

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/epolltrack';
export const STATE_DIR = '/run/epolltrack';

/** Maps (bpf/epolltrack.bpf.c SEC(".maps")). */
export const MAP = {
  regs: 'regs',
  epolls: 'epolls',
  stats: 'stats',
  start: 'start',
  bss: '.bss',
  /** lookup_fd's items (struct et_lookup_item[SYS_BIG]), mapped into the tracker's memory */
  answer: '.data.answer',
  rodata: '.rodata',
} as const;

/** Maps that are pinned and shared between the loader and every tracker. */
export const PINNED_MAPS = [MAP.regs, MAP.epolls, MAP.stats] as const;

export const DEFAULT_MAX_REGS = 65536;
export const DEFAULT_MAX_EPOLLS = 16384;

/** Iterator programs: loaded by whoever runs them, never attached permanently. */
export const ITER_PROG = { lookup: 'lookup', seed: 'seed' } as const;

/** Lookup programs (SEC("syscall"), run with BPF_PROG_RUN; kernels with bpf_task_from_pid, v6.2+). */
export const SYS_PROG = { lookup: 'lookup_fd' } as const;

/**
 * Hook modes. `lazy` attaches nothing: the epolls map is filled by lookups
 * (an in-kernel scan of the target's fd table, then a host walk) and every
 * entry is verified on use, so the rest of the host pays nothing.
 */
export type Mode = 'fentry' | 'kprobe' | 'lazy' | 'tracepoint';
export const MODES: readonly Mode[] = ['fentry', 'kprobe', 'lazy', 'tracepoint'];
/** What `auto` tries, in order: tracepoint mode taxes every syscall on the host, so only on request. */
export const AUTO_MODES: readonly Mode[] = ['fentry', 'kprobe', 'lazy'];

/** What each mode costs the rest of the host (status shows it). */
export const MODE_COST: Record<Mode, string> = {
  fentry: 'epoll_ctl/epoll_create and epoll removals pay a BPF call; other syscalls pay nothing',
  kprobe: 'epoll_ctl/epoll_create and epoll removals pay a kprobe; other syscalls pay nothing',
  lazy: 'no hooks: nothing on the host pays; a lookup meeting an unknown epoll scans the fd table in the kernel',
  tracepoint: 'every syscall of every process on the host pays (syscall-trace work flag set on all tasks)',
};

/** A hook: the BPF program and the kernel function (or tracepoint) it needs. */
export interface HookSpec {
  prog: string;
  /** kernel function that must exist out of line (fentry/kprobe), or tracepoint path */
  target: string;
  /** required for the mode; optional hooks are taken when the kernel has them */
  required: boolean;
}

/** Removal functions across kernel versions; each one present out of line is hooked. */
const REMOVAL_FUNCS = ['ep_remove', '__ep_remove', 'ep_remove_epi'];
const FREE_FUNCS = ['ep_clear_and_put', 'ep_free'];

export const HOOKS: Record<Mode, HookSpec[]> = {
  lazy: [],
  fentry: [
    { prog: 'fexit_do_epoll_ctl', target: 'do_epoll_ctl', required: true },
    { prog: 'fexit_do_epoll_create', target: 'do_epoll_create', required: false },
    ...REMOVAL_FUNCS.map((f) => ({ prog: `fentry_${f}`, target: f, required: false })),
    { prog: 'fentry_eventpoll_release_file', target: 'eventpoll_release_file', required: false },
    ...FREE_FUNCS.map((f) => ({ prog: `fentry_${f}`, target: f, required: false })),
  ],
  kprobe: [
    { prog: 'kprobe_do_epoll_ctl', target: 'do_epoll_ctl', required: true },
    { prog: 'kretprobe_do_epoll_ctl', target: 'do_epoll_ctl', required: true },
    { prog: 'kretprobe_do_epoll_create', target: 'do_epoll_create', required: false },
    ...REMOVAL_FUNCS.map((f) => ({ prog: `kprobe_${f}`, target: f, required: false })),
    { prog: 'kprobe_eventpoll_release_file', target: 'eventpoll_release_file', required: false },
    ...FREE_FUNCS.map((f) => ({ prog: `kprobe_${f}`, target: f, required: false })),
  ],
  tracepoint: [
    { prog: 'tracepoint__syscalls__sys_exit_epoll_ctl', target: 'syscalls/sys_exit_epoll_ctl', required: true },
    { prog: 'tracepoint__syscalls__sys_exit_epoll_create1', target: 'syscalls/sys_exit_epoll_create1', required: true },
    { prog: 'tracepoint__syscalls__sys_exit_epoll_create', target: 'syscalls/sys_exit_epoll_create', required: false },
    { prog: 'tracepoint__syscalls__sys_enter_close', target: 'syscalls/sys_enter_close', required: true },
  ],
};
