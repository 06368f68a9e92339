// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* epolltrack: follow epoll registrations and answer "which epoll instances hold
 * this file" from live kernel state.
 *
 * Three hook sets share one inline handler per event; the loader turns off the
 * autoload of the sets the running kernel does not allow (loader/probe.ts picks,
 * src/kernel/names.ts lists the hooks of each mode):
 *   fentry/fexit   do_epoll_ctl, do_epoll_create, per-epitem removal functions
 *   kprobe         the same through kprobes/kretprobes
 *   tracepoint     syscalls/sys_exit_epoll_ctl, sys_exit_epoll_create{,1},
 *                  sys_enter_close
 * Two iterators read live state: `lookup` (one task, one fd) and `seed` (every
 * task file, for cold start and resync).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "epolltrack.h"

#define EPOLL_CTL_ADD 1
#define EPOLL_CTL_DEL 2
#define EPOLL_CTL_MOD 3

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Options, set by user space before load. */
const volatile __u32 targ_tgid = 0; /* only track this process (0: all) */

/* Inputs of the iterators, written by user space before each run (.bss). */
struct et_iter_in iter_in = {};

/* Both caches are LRU: an entry no hook removed (a removal the kernel inlined,
 * a hook that missed) is evicted when room is needed, so stale entries cannot
 * pile up and a full map never refuses a new entry. Every entry is a hint that
 * is verified on use. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct et_reg_key);
	__type(value, struct et_reg_val);
} regs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct et_loc);
} epolls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ET_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* kprobe mode: do_epoll_ctl arguments saved at entry, keyed by thread id. */
struct ctl_args {
	__s32 epfd;
	__s32 op;
	__s32 fd;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct ctl_args);
} start SEC(".maps");

/* ---- kernel drift ---------------------------------------------------------- */

/* The vendored vmlinux.h (bpf/x86/) is from 6.1, the oldest kernel supported, and
 * the kernel tests also build against each test kernel's own BTF: a field that
 * differs between kernels is declared here in a local ___flavour struct with
 * plain types only (no type that some kernels lack, as libbpf-tools'
 * core_fixes.bpf.h does), read after bpf_core_field_exists().
 *
 * v6.13 "fs: port files to file_ref" (Christian Brauner, Oct 2024) replaced
 * file->f_count (atomic_long_t, 1 == one reference) with file->f_ref
 * (file_ref_t { atomic64_t refcnt; }, 0 == one reference). file_ref_t does not
 * exist before 6.13, so it is spelled out here. */
struct file___o {
	struct {
		long counter;
	} f_count;
} __attribute__((preserve_access_index));

struct file___x {
	struct {
		struct {
			long counter;
		} refcnt;
	} f_ref;
} __attribute__((preserve_access_index));

static __always_inline bool file_has_one_ref(struct file *file)
{
	struct file___x *fx = (void *)file;
	struct file___o *fo = (void *)file;

	if (bpf_core_field_exists(fx->f_ref))
		return BPF_CORE_READ(fx, f_ref.refcnt.counter) == 0;
	return BPF_CORE_READ(fo, f_count.counter) == 1;
}

/* v6.4 "epoll: use refcount to reduce ep_mutex contention" added epitem->dying:
 * an epitem being torn down by eventpoll_release_file() is no longer live. */
struct epitem___x {
	bool dying;
} __attribute__((preserve_access_index));

static __always_inline bool epi_dying(struct epitem *epi)
{
	struct epitem___x *ex = (void *)epi;

	if (bpf_core_field_exists(ex->dying))
		return BPF_CORE_READ(ex, dying);
	return false;
}

/* ---- helpers --------------------------------------------------------------- */

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u32 cur_gen(void)
{
	__u32 idx = ET_STAT_GEN;
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	return v ? (__u32)*v : 0;
}

/* A task's fd table, read once per event. */
struct fdt_view {
	struct file **arr;
	__u32 max_fds;
};

static __always_inline bool fdt_of(struct task_struct *task, struct fdt_view *v)
{
	struct files_struct *files = BPF_CORE_READ(task, files);
	struct fdtable *fdt;

	if (!files)
		return false;
	fdt = BPF_CORE_READ(files, fdt);
	if (!fdt)
		return false;
	v->max_fds = BPF_CORE_READ(fdt, max_fds);
	v->arr = BPF_CORE_READ(fdt, fd);
	return true;
}

static __always_inline struct file *fdt_file(struct fdt_view *v, __u32 fd)
{
	struct file *f = NULL;

	if (fd >= v->max_fds)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &v->arr[fd]);
	return f;
}

/* The file at @fd in @task's fd table, right now (NULL if none). */
static __always_inline struct file *fd_file(struct task_struct *task, __u32 fd)
{
	struct fdt_view v;

	return fdt_of(task, &v) ? fdt_file(&v, fd) : NULL;
}

static __always_inline struct epitem *epi_of(struct hlist_node *node)
{
	return (void *)node - bpf_core_field_offset(struct epitem, fllink);
}

static __always_inline struct hlist_node *f_ep_first(struct file *file)
{
	struct hlist_head *head = BPF_CORE_READ(file, f_ep);

	return head ? BPF_CORE_READ(head, first) : NULL;
}

static __always_inline bool tgid_wanted(__u32 tgid)
{
	return targ_tgid == 0 || targ_tgid == tgid;
}

/* The id that names @task's fd table: its process id when it shares the group
 * leader's table, its own thread id after unshare(CLONE_FILES). A zombie
 * leader has no table: its live threads name theirs by thread id. */
static __always_inline __u32 table_owner(struct task_struct *task)
{
	struct files_struct *files = BPF_CORE_READ(task, files);
	__u32 tgid = BPF_CORE_READ(task, tgid);

	if (files && files == BPF_CORE_READ(task, group_leader, files))
		return tgid;
	return BPF_CORE_READ(task, pid);
}

/* ---- the handlers ---------------------------------------------------------- */

/* Record that an epoll fd of @ep can be found at @tid:@fd (tid: table_owner()). */
static __always_inline void note_epoll(__u64 ep, __u32 tid, __u32 fd)
{
	struct et_loc loc = { .tid = tid, .fd = fd };
	struct et_loc *old = bpf_map_lookup_elem(&epolls, &ep);

	if (old && old->tid == tid && old->fd == fd)
		return;
	if (bpf_map_update_elem(&epolls, &ep, &loc, BPF_ANY))
		stat_inc(ET_STAT_EPOLLS_FULL);
}

/* A successful epoll_ctl(epfd, op, fd) by the current task. */
static __always_inline void handle_ctl(int epfd, int op, int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct et_reg_key key = {};
	struct et_reg_val val = {};
	struct hlist_node *node;
	struct file *ep_file, *tfile;
	struct fdt_view fdt;
	__u64 ep;
	int i;

	if (!tgid_wanted(tgid) || epfd < 0 || fd < 0)
		return;
	if (!fdt_of(task, &fdt))
		return;
	ep_file = fdt_file(&fdt, epfd);
	tfile = fdt_file(&fdt, fd);
	if (!ep_file || !tfile)
		return;
	ep = (__u64)BPF_CORE_READ(ep_file, private_data);
	key.file = (__u64)tfile;
	key.ep = ep;
	key.tfd = fd;

	if (op == EPOLL_CTL_DEL) {
		bpf_map_delete_elem(&regs, &key);
		stat_inc(ET_STAT_DEL);
		return;
	}
	if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD)
		return;
	stat_inc(op == EPOLL_CTL_ADD ? ET_STAT_ADD : ET_STAT_MOD);
	note_epoll(ep, table_owner(task), epfd);

	/* Read the registration back from the kernel rather than from the
	 * caller's buffer: the kernel adds EPOLLERR|EPOLLHUP, and another thread
	 * may have changed the fd since the call. */
	node = f_ep_first(tfile);
	for (i = 0; i < ET_MAX_EPI && node; i++) {
		struct epitem *epi = epi_of(node);

		if ((__u64)BPF_CORE_READ(epi, ep) == ep &&
		    BPF_CORE_READ(epi, ffd.fd) == fd &&
		    BPF_CORE_READ(epi, ffd.file) == tfile) {
			val.events = BPF_CORE_READ(epi, event.events);
			val.data = BPF_CORE_READ(epi, event.data);
			val.target_tgid = tgid;
			val.ep_tgid = tgid;
			val.ep_fd = epfd;
			val.gen = cur_gen();
			if (bpf_map_update_elem(&regs, &key, &val, BPF_ANY))
				stat_inc(ET_STAT_REGS_FULL);
			return;
		}
		node = BPF_CORE_READ(node, next);
	}
	stat_inc(ET_STAT_UNCERTAIN);
}

static __always_inline void handle_create(int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct file *f;

	if (fd < 0 || !tgid_wanted(tgid))
		return;
	f = fd_file(task, fd);
	if (f)
		note_epoll((__u64)BPF_CORE_READ(f, private_data), table_owner(task), fd);
}

/* One epitem is being removed from its epoll instance. */
static __always_inline void handle_remove(struct eventpoll *ep, struct epitem *epi)
{
	struct et_reg_key key = {};

	key.file = (__u64)BPF_CORE_READ(epi, ffd.file);
	key.ep = (__u64)ep;
	key.tfd = BPF_CORE_READ(epi, ffd.fd);
	if (!bpf_map_delete_elem(&regs, &key))
		stat_inc(ET_STAT_REMOVE);
}

/* Every registration of @file goes away (last reference dropped). */
static __always_inline void handle_release_file(struct file *file)
{
	struct hlist_node *node = f_ep_first(file);
	int i;

	for (i = 0; i < ET_MAX_EPI && node; i++) {
		struct epitem *epi = epi_of(node);

		handle_remove(BPF_CORE_READ(epi, ep), epi);
		node = BPF_CORE_READ(node, next);
	}
}

static __always_inline void handle_free_ep(struct eventpoll *ep)
{
	__u64 key = (__u64)ep;

	bpf_map_delete_elem(&epolls, &key);
}

/* close(fd) by the current task: drop the epoll location it held, and the
 * registrations of the file when this is its last reference. */
static __always_inline void handle_close(int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct et_loc *loc;
	struct file *f;
	__u64 priv;

	if (fd < 0 || !tgid_wanted(tgid))
		return;
	f = fd_file(task, fd);
	if (!f)
		return;
	priv = (__u64)BPF_CORE_READ(f, private_data);
	loc = bpf_map_lookup_elem(&epolls, &priv);
	if (loc && loc->tid == table_owner(task) && loc->fd == (__u32)fd)
		bpf_map_delete_elem(&epolls, &priv);
	if (BPF_CORE_READ(f, f_ep) && file_has_one_ref(f))
		handle_release_file(f);
}

/* ---- tracepoint mode ------------------------------------------------------- */

SEC("tracepoint/syscalls/sys_exit_epoll_ctl")
int tracepoint__syscalls__sys_exit_epoll_ctl(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *regs;

	if (ctx->ret != 0)
		return 0;
	/* One exit hook instead of an enter+exit pair: the syscall's arguments
	 * are still in the task's saved user registers. */
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
#if defined(__TARGET_ARCH_x86)
	{
		/* dx, si, di are adjacent in x86's pt_regs: one read for all three. */
		unsigned long a[3] = {};

		bpf_probe_read_kernel(a, sizeof(a), (void *)regs + bpf_core_field_offset(struct pt_regs, dx));
		handle_ctl((int)a[2], (int)a[1], (int)a[0]);
	}
#else
	handle_ctl((int)PT_REGS_PARM1_CORE_SYSCALL(regs), (int)PT_REGS_PARM2_CORE_SYSCALL(regs),
		   (int)PT_REGS_PARM3_CORE_SYSCALL(regs));
#endif
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_create1")
int tracepoint__syscalls__sys_exit_epoll_create1(struct trace_event_raw_sys_exit *ctx)
{
	handle_create((int)ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_create")
int tracepoint__syscalls__sys_exit_epoll_create(struct trace_event_raw_sys_exit *ctx)
{
	handle_create((int)ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_close")
int tracepoint__syscalls__sys_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	handle_close((int)ctx->args[0]);
	return 0;
}

/* ---- fentry mode ----------------------------------------------------------- */

/* do_epoll_ctl is also io_uring's IORING_OP_EPOLL_CTL path. */
SEC("fexit/do_epoll_ctl")
int BPF_PROG(fexit_do_epoll_ctl, int epfd, int op, int fd, struct epoll_event *epds,
	     bool nonblock, int ret)
{
	if (ret == 0)
		handle_ctl(epfd, op, fd);
	return 0;
}

SEC("fexit/do_epoll_create")
int BPF_PROG(fexit_do_epoll_create, int flags, int ret)
{
	handle_create(ret);
	return 0;
}

/* Removal functions: the loader keeps those this kernel has out of line. */
SEC("fentry/ep_remove")
int BPF_PROG(fentry_ep_remove, struct eventpoll *ep, struct epitem *epi)
{
	handle_remove(ep, epi);
	return 0;
}

SEC("fentry/__ep_remove")
int BPF_PROG(fentry___ep_remove, struct eventpoll *ep, struct epitem *epi)
{
	handle_remove(ep, epi);
	return 0;
}

SEC("fentry/ep_remove_epi")
int BPF_PROG(fentry_ep_remove_epi, struct eventpoll *ep, struct epitem *epi)
{
	handle_remove(ep, epi);
	return 0;
}

SEC("fentry/eventpoll_release_file")
int BPF_PROG(fentry_eventpoll_release_file, struct file *file)
{
	handle_release_file(file);
	return 0;
}

SEC("fentry/ep_clear_and_put")
int BPF_PROG(fentry_ep_clear_and_put, struct eventpoll *ep)
{
	handle_free_ep(ep);
	return 0;
}

SEC("fentry/ep_free")
int BPF_PROG(fentry_ep_free, struct eventpoll *ep)
{
	handle_free_ep(ep);
	return 0;
}

/* ---- kprobe mode ----------------------------------------------------------- */

SEC("kprobe/do_epoll_ctl")
int BPF_KPROBE(kprobe_do_epoll_ctl, int epfd, int op, int fd)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct ctl_args args = { .epfd = epfd, .op = op, .fd = fd };

	bpf_map_update_elem(&start, &tid, &args, BPF_ANY);
	return 0;
}

SEC("kretprobe/do_epoll_ctl")
int BPF_KRETPROBE(kretprobe_do_epoll_ctl, int ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct ctl_args *args = bpf_map_lookup_elem(&start, &tid);

	if (!args)
		return 0;
	if (ret == 0)
		handle_ctl(args->epfd, args->op, args->fd);
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

SEC("kretprobe/do_epoll_create")
int BPF_KRETPROBE(kretprobe_do_epoll_create, int ret)
{
	handle_create(ret);
	return 0;
}

SEC("kprobe/ep_remove")
int BPF_KPROBE(kprobe_ep_remove, struct eventpoll *ep, struct epitem *epi)
{
	handle_remove(ep, epi);
	return 0;
}

SEC("kprobe/__ep_remove")
int BPF_KPROBE(kprobe___ep_remove, struct eventpoll *ep, struct epitem *epi)
{
	handle_remove(ep, epi);
	return 0;
}

SEC("kprobe/ep_remove_epi")
int BPF_KPROBE(kprobe_ep_remove_epi, struct eventpoll *ep, struct epitem *epi)
{
	handle_remove(ep, epi);
	return 0;
}

SEC("kprobe/eventpoll_release_file")
int BPF_KPROBE(kprobe_eventpoll_release_file, struct file *file)
{
	handle_release_file(file);
	return 0;
}

SEC("kprobe/ep_clear_and_put")
int BPF_KPROBE(kprobe_ep_clear_and_put, struct eventpoll *ep)
{
	handle_free_ep(ep);
	return 0;
}

SEC("kprobe/ep_free")
int BPF_KPROBE(kprobe_ep_free, struct eventpoll *ep)
{
	handle_free_ep(ep);
	return 0;
}

/* ---- iterators ------------------------------------------------------------- */

/* Is @ep reachable at @fd of @task right now? */
static __always_inline bool ep_at(struct task_struct *task, __u32 fd, __u64 ep)
{
	struct file *f = fd_file(task, fd);

	return f && (__u64)BPF_CORE_READ(f, private_data) == ep;
}

/* lookup (kernels without bpf_task_from_pid, < v6.2): run with a link bound to
 * one task; reports every live registration of the file at want_fd, each with
 * a location checked when it is in the visited table, then the header LAST.
 * One pass over the epitem list: a count pass before a write pass would let
 * another CPU's EPOLL_CTL_ADD between them cut the oldest registration. */
SEC("iter/task")
int lookup(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct et_lookup_hdr hdr = {};
	struct et_lookup_item item;
	struct hlist_node *node;
	struct file *file;
	__u32 tgid, owner, n = 0;
	int i;

	if (!task)
		return 0;
	tgid = task->tgid;
	owner = table_owner(task);
	hdr.magic = ET_LOOKUP_MAGIC;
	hdr.tgid = tgid;
	if (!task->files) {
		hdr.status = ET_LK_NO_FILES;
		bpf_seq_write(seq, &hdr, sizeof(hdr));
		return 0;
	}
	file = fd_file(task, iter_in.want_fd);
	if (!file) {
		hdr.status = ET_LK_BAD_FD;
		bpf_seq_write(seq, &hdr, sizeof(hdr));
		return 0;
	}
	hdr.file = (__u64)file;
	{
		/* close-on-exec lives in the fd table's bitmap, not in the file */
		struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
		unsigned long *coe = BPF_CORE_READ(fdt, close_on_exec);
		unsigned long word = 0;

		bpf_probe_read_kernel(&word, sizeof(word), &coe[iter_in.want_fd / 64]);
		if (word & (1UL << (iter_in.want_fd % 64)))
			hdr.flags |= ET_LK_CLOEXEC;
	}
	hdr.priv = (__u64)BPF_CORE_READ(file, private_data);
	hdr.f_op = (__u64)BPF_CORE_READ(file, f_op);

	node = f_ep_first(file);
	for (i = 0; i < ET_MAX_EPI && node; i++) {
		struct epitem *epi = epi_of(node);
		struct et_reg_key key = {};
		struct et_reg_val *rv;
		struct et_loc *loc;

		node = BPF_CORE_READ(node, next);
		if (epi_dying(epi))
			continue;
		__builtin_memset(&item, 0, sizeof(item));
		item.ep = (__u64)BPF_CORE_READ(epi, ep);
		item.tfd = BPF_CORE_READ(epi, ffd.fd);
		item.events = BPF_CORE_READ(epi, event.events);
		item.data = BPF_CORE_READ(epi, event.data);

		/* Candidate locations: the epolls map, then the registration's own. */
		loc = bpf_map_lookup_elem(&epolls, &item.ep);
		if (loc) {
			item.loc_tid = loc->tid;
			item.loc_fd = loc->fd;
			item.loc_state = ET_LOC_REMOTE;
			if (loc->tid == owner) {
				item.loc_tgid = tgid;
				item.loc_state = ep_at(task, loc->fd, item.ep) ? ET_LOC_VERIFIED : ET_LOC_STALE;
			}
		}
		if (item.loc_state != ET_LOC_VERIFIED) {
			key.file = (__u64)file;
			key.ep = item.ep;
			key.tfd = item.tfd;
			rv = bpf_map_lookup_elem(&regs, &key);
			if (rv && rv->ep_tgid == owner && ep_at(task, rv->ep_fd, item.ep)) {
				item.loc_tgid = tgid;
				item.loc_tid = owner;
				item.loc_fd = rv->ep_fd;
				item.loc_state = ET_LOC_VERIFIED;
			} else if (rv && item.loc_state != ET_LOC_REMOTE && rv->ep_tgid != owner) {
				item.loc_tid = rv->ep_tgid;
				item.loc_fd = rv->ep_fd;
				item.loc_state = ET_LOC_REMOTE;
			}
		}
		bpf_seq_write(seq, &item, sizeof(item));
		n++;
	}
	if (node)
		hdr.flags |= ET_LK_TRUNCATED;
	hdr.nitems = n;
	bpf_seq_write(seq, &hdr, sizeof(hdr));
	return 0;
}

struct seed_walk {
	struct seq_file *seq;
	struct file *file;
	struct hlist_node *node;
	__u32 tgid, owner, fd;
};

/* One epitem of a file met by the seed walk. */
static long seed_one(__u32 i, struct seed_walk *sw)
{
	struct hlist_node *node = sw->node;
	struct et_seed_rec rec = {};
	struct epitem *epi;

	if (!node)
		return 1;
	epi = epi_of(node);
	sw->node = BPF_CORE_READ(node, next);
	if (epi_dying(epi))
		return 0;
	rec.kind = ET_SEED_REG;
	rec.tgid = sw->tgid;
	rec.fd = sw->fd;
	rec.tfd = BPF_CORE_READ(epi, ffd.fd);
	rec.file = (__u64)sw->file;
	rec.ep = (__u64)BPF_CORE_READ(epi, ep);
	rec.events = BPF_CORE_READ(epi, event.events);
	rec.data = BPF_CORE_READ(epi, event.data);
	rec.tid = sw->owner;
	bpf_seq_write(sw->seq, &rec, sizeof(rec));
	return 0;
}

/* seed: every task file on the host; writes what it finds, for user space to
 * load into regs/epolls (cold start) or to reconcile them with (resync). */
SEC("iter/task_file")
int seed(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct seed_walk sw = {};
	struct et_seed_rec rec;
	__u32 tgid, owner;

	if (!task || !file)
		return 0;
	tgid = task->tgid;
	if (!tgid_wanted(tgid))
		return 0;
	owner = table_owner(task);

	if (iter_in.epoll_fops && (__u64)file->f_op == iter_in.epoll_fops) {
		__builtin_memset(&rec, 0, sizeof(rec));
		rec.kind = ET_SEED_EPOLL;
		rec.tgid = tgid;
		rec.fd = ctx->fd;
		rec.file = (__u64)file;
		rec.ep = (__u64)file->private_data;
		rec.tid = owner;
		bpf_seq_write(seq, &rec, sizeof(rec));
	}

	sw.seq = seq;
	sw.file = file;
	sw.node = f_ep_first(file);
	sw.tgid = tgid;
	sw.owner = owner;
	sw.fd = ctx->fd;
	/* The file's epitems, up to ET_SEED_MAX_EPI; past that, say so. */
	bpf_loop(ET_SEED_MAX_EPI, seed_one, &sw, 0);
	if (sw.node) {
		__builtin_memset(&rec, 0, sizeof(rec));
		rec.kind = ET_SEED_TRUNC;
		rec.tgid = tgid;
		rec.fd = ctx->fd;
		rec.file = (__u64)file;
		rec.tid = owner;
		bpf_seq_write(seq, &rec, sizeof(rec));
	}
	return 0;
}

/* ---- the lookup program ---------------------------------------------------- */

/* v6.2 "bpf: Add bpf_task_from_pid() kfunc". Weak: on older kernels the object
 * still loads without the lookup programs, and the tracker probes for them by
 * trying to load them (src/tracker/tracker.ts), never by version number. */
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym __weak;
extern void bpf_task_release(struct task_struct *p) __ksym __weak;
/* v6.2 "bpf: Add kfunc bpf_rcu_read_lock/unlock()": the epitem list is walked
 * under RCU, as the kernel's own readers do (ep_remove frees epitems after a
 * grace period), so a concurrent EPOLL_CTL_DEL cannot free a node under us. */
extern void bpf_rcu_read_lock(void) __ksym __weak;
extern void bpf_rcu_read_unlock(void) __ksym __weak;

/* The reference count of @file (v6.13 "fs: port files to file_ref": f_ref
 * counts from 0 for one reference, f_count from 1). Uses the flavours above. */
static __always_inline __u64 file_refs(struct file *file)
{
	struct file___x *fx = (void *)file;
	struct file___o *fo = (void *)file;

	if (bpf_core_field_exists(fx->f_ref))
		return BPF_CORE_READ(fx, f_ref.refcnt.counter) + 1;
	return BPF_CORE_READ(fo, f_count.counter);
}

/* Is @ep open at @fd of the task with id @tid? On success, *@tgid is its process. */
static __always_inline bool ep_at_tid(__u32 tid, __u32 fd, __u64 ep, __u32 *tgid)
{
	struct task_struct *t = bpf_task_from_pid(tid);
	bool ok = false;

	if (!t)
		return false;
	/* A location names a table by its owner: a thread that shares its
	 * leader's table is not a location of its own. */
	if (table_owner(t) == tid) {
		ok = ep_at(t, fd, ep);
		*tgid = BPF_CORE_READ(t, tgid);
	}
	bpf_task_release(t);
	return ok;
}

#define SCAN_CHUNK 16

/* The items of the last answer. The context holds the header; the items go
 * here, in a global that user space maps (libbpf makes .data.* mmap-able):
 * a syscall program cannot index its context with a variable. Each tracker
 * loads its own copy of the object, and runs one lookup at a time. */
struct et_lookup_item answer[ET_SYS_BIG] SEC(".data.answer") = {};

struct walk_ctx {
	struct task_struct *task;
	struct fdt_view fdt;
	struct hlist_node *node;
	__u32 cap, n, total, tgid, owner, nwant;
	__u64 want[ET_SYS_WANT];    /* epolls with no verified location yet ... */
	__u32 want_idx[ET_SYS_WANT]; /* ... and the item each belongs to */
	struct file *file;
	__u32 found;                /* COPIES: copies found so far */
	__u32 refs;
	__u64 epoll_fops;
	__u32 scanned;
	__u32 unlocated;
	__u32 nleft;                /* wanted epolls not found yet */
	struct file *slots[SCAN_CHUNK]; /* fd-table slots read ahead by the scans */
	__u32 found_fd;             /* the scan found want[0] at this fd */
	struct file *want_file;     /* want[0]'s own file (eventpoll->file): what the scan looks for */
};


/* Step @i: the i-th epitem of the file, copied to answer[i] with its location
 * if one checks out (a dying one is marked, user space skips it). answer[] is
 * indexed by the step, never by a counter: a counter would be a precise value
 * that differs at every step, and the verifier would never converge. */
static long walk_one(__u32 i, struct walk_ctx *w)
{
	struct et_lookup_item item = {};
	struct hlist_node *node = w->node;
	struct epitem *epi;
	struct et_loc *loc;

	if (!node)
		return 1;
	epi = epi_of(node);
	w->node = BPF_CORE_READ(node, next);
	w->total = i + 1;
	if (i >= w->cap || i >= ET_SYS_BIG)
		return 0; /* keep counting: the caller learns the answer did not fit */
	w->n = i + 1;
	item.ep = (__u64)BPF_CORE_READ(epi, ep);
	item.tfd = BPF_CORE_READ(epi, ffd.fd);
	item.events = BPF_CORE_READ(epi, event.events);
	item.data = BPF_CORE_READ(epi, event.data);
	if (epi_dying(epi)) {
		item.loc_state = ET_LOC_DYING;
		goto out;
	}
	loc = bpf_map_lookup_elem(&epolls, &item.ep);
	if (loc) {
		__u32 tid = loc->tid, fd = loc->fd, tgid = 0;

		struct file *f;

		/* In the task's own table: the fd table is already read. */
		if (tid == w->owner ? ((f = fdt_file(&w->fdt, fd)) && (__u64)BPF_CORE_READ(f, private_data) == item.ep)
				    : ep_at_tid(tid, fd, item.ep, &tgid)) {
			item.loc_tid = tid;
			item.loc_tgid = tid == w->owner ? w->tgid : tgid;
			item.loc_fd = fd;
			item.loc_state = ET_LOC_VERIFIED;
		}
	}
	if (item.loc_state != ET_LOC_VERIFIED) {
		if (!w->nwant) {
			w->want[0] = item.ep;
			w->want_idx[0] = i;
			w->nwant = 1;
			w->nleft = 1;
		} else {
			w->unlocated = 1;
		}
	}
out:
	barrier_var(i);
	answer[i & (ET_SYS_BIG - 1)] = item;
	return 0;
}

/* Slots [@base, @base + SCAN_CHUNK) of the task's fd table into w->slots: one
 * bpf_probe_read_kernel for 16 slots. A table's size is a multiple of 64
 * (BITS_PER_LONG), so a chunk never runs past its end. */
static __always_inline void read_chunk(struct walk_ctx *w, __u32 base)
{
	__builtin_memset(w->slots, 0, sizeof(w->slots));
	bpf_probe_read_kernel(w->slots, sizeof(w->slots), &w->fdt.arr[base]);
}

/* The end of the chunk that starts at @base: its 16 slots, or the table's end if that comes first. */
static __always_inline __u32 chunk_end(struct walk_ctx *w, __u32 base)
{
	__u32 end = base + SCAN_CHUNK;

	return end < w->fdt.max_fds ? end : w->fdt.max_fds;
}

/* The task's fd table, lowest first, 16 slots a step (a bpf_loop step per
 * slot cost more than the slot), until the wanted epoll's own file
 * (eventpoll->file, read once) is met: a pointer compare per slot, where
 * reading each file's f_op and private_data cost two probe reads a slot. */
static long scan_step(__u32 i, struct walk_ctx *w)
{
	__u32 base = i * SCAN_CHUNK, end;

	if (base >= w->fdt.max_fds)
		return 1;
	end = chunk_end(w, base);
	read_chunk(w, base);
	w->scanned = end;
#pragma unroll
	for (int k = 0; k < SCAN_CHUNK; k++) {
		if (base + k < end && w->slots[k] == w->want_file) {
			w->nleft = 0;
			w->found_fd = base + k;
			w->scanned = base + k + 1;
			return 1;
		}
	}
	return 0;
}

/* Slot @i of the task's fd table, read 16 slots at a time (one probe read per
 * 16 slots, one slot per bpf_loop step: the copies scan writes an answer per
 * copy by its count, which the verifier cannot follow through an unrolled chunk). */
static __always_inline struct file *slot_at(struct walk_ctx *w, __u32 i)
{
	if ((i & (SCAN_CHUNK - 1)) == 0)
		read_chunk(w, i);
	return w->slots[i & (SCAN_CHUNK - 1)];
}

/* The task's fd table: every fd holding w->file. */
static long copies_step(__u32 i, struct walk_ctx *w)
{
	__u32 n = w->found;

	if (i >= w->fdt.max_fds)
		return 1;
	w->scanned = i + 1;
	if (slot_at(w, i) != w->file)
		return 0;
	w->found = n + 1;
	if (n < w->cap && n < ET_SYS_BIG) {
		barrier_var(n); /* keep the mask: the verifier needs it */
		answer[n & (ET_SYS_BIG - 1)].tfd = i;
	}
	/* Every reference found in this table: stop (other references, e.g. in
	 * other processes or in flight, make the scan run to the end). */
	return w->found >= w->refs;
}

/* lookup_fd: one question in, the answer out (header in the context, items in
 * answer[]). One BPF_PROG_RUN, no iterator, no per-pid state. */
SEC("syscall")
int lookup_fd(struct et_sys_hdr *hdr)
{
	__u32 room = ET_SYS_BIG;
	struct walk_ctx w = {};
	struct task_struct *task;
	struct file *file;
	__u32 fd = hdr->fd, cap = hdr->cap;

	hdr->status = ET_SYS_OK;
	hdr->flags = 0;
	hdr->nitems = 0;
	hdr->total = 0;
	hdr->scanned = 0;
	task = bpf_task_from_pid(hdr->pid);
	if (!task) {
		hdr->status = ET_SYS_NO_TASK;
		return 0;
	}
	/* The fd table, its files and their epitem lists are read under RCU,
	 * as the kernel's lockless readers do. */
	bpf_rcu_read_lock();
	w.task = task;
	w.cap = cap < room ? cap : room;
	w.tgid = BPF_CORE_READ(task, tgid);
	w.owner = table_owner(task);
	w.epoll_fops = hdr->epoll_fops;
	hdr->tgid = w.tgid;
	hdr->tid = w.owner;
	if (!fdt_of(task, &w.fdt)) {
		hdr->status = ET_SYS_NO_FILES;
		goto out;
	}
	file = fdt_file(&w.fdt, fd);
	if (!file) {
		hdr->status = ET_SYS_BAD_FD;
		goto out;
	}
	w.file = file;
	hdr->file = (__u64)file;
	hdr->priv = (__u64)BPF_CORE_READ(file, private_data);
	hdr->f_op = (__u64)BPF_CORE_READ(file, f_op);
	{
		/* close-on-exec lives in the fd table's bitmap, not in the file */
		struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
		unsigned long *coe = BPF_CORE_READ(fdt, close_on_exec);
		unsigned long word = 0;

		bpf_probe_read_kernel(&word, sizeof(word), &coe[fd / 64]);
		if (word & (1UL << (fd % 64)))
			hdr->flags |= ET_SYS_CLOEXEC;
	}

	/* Both ops: a swap's lookup learns from it whether the fd is the file's only copy. */
	hdr->refs = file_refs(file);
	if (hdr->op == ET_OP_COPIES) {
		__u32 outside = hdr->outside;

		/* References in this table at most: the others are known to be outside. */
		w.refs = hdr->refs > outside ? hdr->refs - outside : 1;
		if (w.refs <= 1) {
			/* A single reference: this fd is the only copy, no scan. */
			if (w.cap)
				answer[0].tfd = fd;
			w.found = 1;
		} else {
			bpf_loop(w.fdt.max_fds, copies_step, &w, 0);
		}
		hdr->total = w.found;
		hdr->nitems = w.found < w.cap ? w.found : w.cap;
		hdr->scanned = w.scanned;
		goto out;
	}

	/* One pass over the file's epitems, written as they are read: the
	 * answer is a snapshot of the list as this walk saw it. */
	w.node = f_ep_first(file);
	bpf_loop(room + 4096, walk_one, &w, 0);
	if (w.node)
		w.unlocated++; /* longer than we walk: cannot happen below 1024+4096 */
	hdr->nitems = w.n;
	hdr->total = w.total;
	if (w.nwant && w.epoll_fops) {
		/* Unknown epolls: look in the task's own table, lowest fds first. */
		struct eventpoll *want_ep = (struct eventpoll *)w.want[0];

		hdr->flags |= ET_SYS_SCANNED;
		w.want_file = BPF_CORE_READ(want_ep, file);
		if (w.want_file)
			bpf_loop((w.fdt.max_fds + SCAN_CHUNK - 1) / SCAN_CHUNK, scan_step, &w, 0);
		hdr->scanned = w.scanned;
		if (w.nleft == 0) {
			__u32 idx = w.want_idx[0];
			struct et_lookup_item *it;

			note_epoll(w.want[0], w.owner, w.found_fd);
			barrier_var(idx);
			it = &answer[idx & (ET_SYS_BIG - 1)];
			it->loc_tgid = w.tgid;
			it->loc_tid = w.owner;
			it->loc_fd = w.found_fd;
			it->loc_state = ET_LOC_VERIFIED;
		} else {
			w.unlocated++;
		}
	}
	if (w.unlocated)
		hdr->flags |= ET_SYS_UNLOCATED;
out:
	bpf_rcu_read_unlock();
	bpf_task_release(task);
	return 0;
}

/* ---- types for user space -------------------------------------------------- */

/* Types user space decodes that no program here names: each BTF_KEEP puts one
 * in the object's BTF, where scripts/gen-layout.mjs reads the TS layout from
 * (bpf2go -type relies on the same trick). Every struct and enum of
 * epolltrack.h must be in the BTF: the generator fails the build otherwise. */
#define BTF_KEEP(type, name) type *___keep_##name __attribute__((unused))

BTF_KEEP(struct et_lookup_hdr, lookup_hdr);
BTF_KEEP(struct et_lookup_item, lookup_item);
BTF_KEEP(struct et_seed_rec, seed_rec);
BTF_KEEP(enum et_stat, stat);
BTF_KEEP(enum et_lookup_status, lookup_status);
BTF_KEEP(enum et_lookup_flags, lookup_flags);
BTF_KEEP(enum et_loc_state, loc_state);
BTF_KEEP(enum et_seed_kind, seed_kind);
BTF_KEEP(struct et_sys_hdr, sys_hdr);
BTF_KEEP(enum et_sys_op, sys_op);
BTF_KEEP(enum et_sys_status, sys_status);
BTF_KEEP(enum et_sys_flags, sys_flags);
