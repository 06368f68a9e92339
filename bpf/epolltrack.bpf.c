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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct et_reg_key);
	__type(value, struct et_reg_val);
} regs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
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

/* v6.13 "fs: port files to file_ref" replaced file->f_count (atomic_long_t,
 * 1 == one reference) with file->f_ref (file_ref_t, 0 == one reference). */
struct file___o {
	atomic_long_t f_count;
} __attribute__((preserve_access_index));

struct file___x {
	file_ref_t f_ref;
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

/* ---- the handlers ---------------------------------------------------------- */

/* Record that an epoll fd of @ep can be found at @tgid:@fd. */
static __always_inline void note_epoll(__u64 ep, __u32 tgid, __u32 fd)
{
	struct et_loc loc = { .tgid = tgid, .fd = fd };
	struct et_loc *old = bpf_map_lookup_elem(&epolls, &ep);

	if (old && old->tgid == tgid && old->fd == fd)
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
	note_epoll(ep, tgid, epfd);

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
		note_epoll((__u64)BPF_CORE_READ(f, private_data), tgid, fd);
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
	if (loc && loc->tgid == tgid && loc->fd == (__u32)fd)
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

/* lookup: run with a link bound to one task; reports the file at want_fd and
 * every live registration of that file, each with a checked epoll location. */
SEC("iter/task")
int lookup(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct et_lookup_hdr hdr = {};
	struct et_lookup_item item;
	struct hlist_node *node;
	struct file *file;
	__u32 tgid, n = 0;
	int i;

	if (!task)
		return 0;
	tgid = task->tgid;
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

	/* Count first so the header can lead the records. */
	node = f_ep_first(file);
	for (i = 0; i < ET_MAX_EPI && node; i++) {
		if (!epi_dying(epi_of(node)))
			n++;
		node = BPF_CORE_READ(node, next);
	}
	if (node)
		hdr.flags |= ET_LK_TRUNCATED;
	hdr.nitems = n;
	bpf_seq_write(seq, &hdr, sizeof(hdr));

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
			item.loc_tgid = loc->tgid;
			item.loc_fd = loc->fd;
			item.loc_state = ET_LOC_REMOTE;
			if (loc->tgid == tgid)
				item.loc_state = ep_at(task, loc->fd, item.ep) ? ET_LOC_VERIFIED : ET_LOC_STALE;
		}
		if (item.loc_state != ET_LOC_VERIFIED) {
			key.file = (__u64)file;
			key.ep = item.ep;
			key.tfd = item.tfd;
			rv = bpf_map_lookup_elem(&regs, &key);
			if (rv && rv->ep_tgid == tgid && ep_at(task, rv->ep_fd, item.ep)) {
				item.loc_tgid = rv->ep_tgid;
				item.loc_fd = rv->ep_fd;
				item.loc_state = ET_LOC_VERIFIED;
			} else if (rv && item.loc_state != ET_LOC_REMOTE && rv->ep_tgid != tgid) {
				item.loc_tgid = rv->ep_tgid;
				item.loc_fd = rv->ep_fd;
				item.loc_state = ET_LOC_REMOTE;
			}
		}
		bpf_seq_write(seq, &item, sizeof(item));
	}
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
	struct et_seed_rec rec;
	struct hlist_node *node;
	__u32 tgid;
	int i;

	if (!task || !file)
		return 0;
	tgid = task->tgid;
	if (!tgid_wanted(tgid))
		return 0;

	if (iter_in.epoll_fops && (__u64)file->f_op == iter_in.epoll_fops) {
		__builtin_memset(&rec, 0, sizeof(rec));
		rec.kind = ET_SEED_EPOLL;
		rec.tgid = tgid;
		rec.fd = ctx->fd;
		rec.file = (__u64)file;
		rec.ep = (__u64)file->private_data;
		bpf_seq_write(seq, &rec, sizeof(rec));
	}

	node = f_ep_first(file);
	for (i = 0; i < ET_MAX_EPI && node; i++) {
		struct epitem *epi = epi_of(node);

		node = BPF_CORE_READ(node, next);
		if (epi_dying(epi))
			continue;
		__builtin_memset(&rec, 0, sizeof(rec));
		rec.kind = ET_SEED_REG;
		rec.tgid = tgid;
		rec.fd = ctx->fd;
		rec.tfd = BPF_CORE_READ(epi, ffd.fd);
		rec.file = (__u64)file;
		rec.ep = (__u64)BPF_CORE_READ(epi, ep);
		rec.events = BPF_CORE_READ(epi, event.events);
		rec.data = BPF_CORE_READ(epi, event.data);
		bpf_seq_write(seq, &rec, sizeof(rec));
	}
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
