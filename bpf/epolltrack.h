/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Types shared by bpf/epolltrack.bpf.c and the TypeScript mirror in src/kernel/layout.ts.
 * Fixed-width types only; every struct states its padding. */
#ifndef __EPOLLTRACK_H
#define __EPOLLTRACK_H

/* How many epitems of one target file (its f_ep list) a program walks. A file in
 * more epoll instances than this makes a lookup say "truncated" and fall back. */
#define ET_MAX_EPI 32

/* regs: one entry per registration, keyed like the kernel keys an epitem. */
struct et_reg_key {
	__u64 file; /* struct file * of the target */
	__u64 ep;   /* struct eventpoll * */
	__u32 tfd;  /* fd number the registration was added under */
	__u32 pad;
};

struct et_reg_val {
	__u64 data;        /* epoll_event.data as last seen */
	__u32 events;      /* epoll_event.events as last seen (may be stale after EPOLLONESHOT) */
	__u32 target_tgid; /* process that held the target at tfd when it was seen */
	__u32 ep_tgid;     /* a process that had the epoll at ep_fd when it was seen */
	__u32 ep_fd;
	__u32 gen;         /* resync generation that last saw or wrote it */
	__u32 pad;
};

/* epolls: where an fd of an epoll instance can be found. A hint: always verified.
 * tid names the task whose fd table holds it: the process id when that table is
 * the group leader's, a thread id when the thread has a table of its own. */
struct et_loc {
	__u32 tid;
	__u32 fd;
};

/* stats: array of __u64 counters, indexed by these. */
enum et_stat {
	ET_STAT_ADD = 0,
	ET_STAT_MOD,
	ET_STAT_DEL,
	ET_STAT_REMOVE,       /* removals seen by fentry/kprobe removal hooks or close */
	ET_STAT_REGS_FULL,    /* regs update failed: map full */
	ET_STAT_EPOLLS_FULL,  /* epolls update failed: map full */
	ET_STAT_UNCERTAIN,    /* an epoll_ctl whose epitem could not be found at exit */
	ET_STAT_GEN,          /* current resync generation (written by user space) */
	ET_STAT_MAX,
};

/* Inputs of both iterators: the only variable in .bss, so it sits at offset 0. */
struct et_iter_in {
	__u64 epoll_fops; /* f_op of an epoll file, learned by user space (seed) */
	__u32 want_fd;    /* fd to look up (lookup) */
	__u32 pad;
};

/* Output of the lookup iterator: one header, then nitems items. */
#define ET_LOOKUP_MAGIC 0x45504c54 /* "EPLT" */

enum et_lookup_status {
	ET_LK_OK = 0,
	ET_LK_NO_FILES = 1, /* task has no file table (exiting) */
	ET_LK_BAD_FD = 2,   /* no file at that fd */
};

enum et_lookup_flags {
	ET_LK_TRUNCATED = 1, /* more than ET_MAX_EPI epitems */
	ET_LK_CLOEXEC = 2,   /* the fd has close-on-exec set */
};

struct et_lookup_hdr {
	__u32 magic;
	__u32 status;
	__u64 file;   /* struct file * at the fd */
	__u64 priv;   /* file->private_data (the struct eventpoll * when it is an epoll) */
	__u64 f_op;   /* file->f_op */
	__u32 tgid;   /* tgid of the task visited */
	__u32 nitems;
	__u32 flags;
	__u32 pad;
};

enum et_loc_state {
	ET_LOC_NONE = 0,     /* no location known for this epoll */
	ET_LOC_VERIFIED = 1, /* location is in the visited task and was checked in-kernel */
	ET_LOC_REMOTE = 2,   /* location is in another process: user space verifies it */
	ET_LOC_STALE = 3,    /* location was in the visited task but no longer refers to ep */
	ET_LOC_DYING = 4,    /* lookup_fd: an epitem being torn down (not a registration any more) */
};

struct et_lookup_item {
	__u64 ep;       /* struct eventpoll * */
	__u64 data;     /* live epitem->event.data */
	__u32 events;   /* live epitem->event.events */
	__u32 tfd;      /* epitem->ffd.fd */
	__u32 loc_tgid;
	__u32 loc_fd;
	__u32 loc_state;
	__u32 loc_tid;  /* task whose fd table holds loc_fd (== loc_tgid unless it has its own table) */
};

/* Output of the seed iterator (cold start and resync): one record per live
 * registration found through a target file, and one per epoll fd. A file
 * with more epitems than ET_SEED_MAX_EPI gets that many REG records and then
 * one TRUNC record: the output of one (task, file) visit must fit the
 * iterator's seq buffer (8 pages; more is E2BIG for the whole walk, so one
 * process registering a pipe in thousands of epolls would break every walk). */
enum et_seed_kind {
	ET_SEED_REG = 1,
	ET_SEED_EPOLL = 2,
	ET_SEED_TRUNC = 3,
};
#define ET_SEED_MAX_EPI 512

struct et_seed_rec {
	__u32 kind;
	__u32 tgid;   /* task visited */
	__u32 fd;     /* fd in that task */
	__u32 tfd;    /* REG: epitem->ffd.fd */
	__u64 file;   /* REG: target file; EPOLL: epoll file */
	__u64 ep;     /* struct eventpoll * */
	__u64 data;   /* REG: live data */
	__u32 events; /* REG: live events */
	__u32 tid;    /* task whose fd table was visited (tgid unless it has its own table) */
};

/* ---- the lookup program (SEC("syscall"), run with BPF_PROG_RUN) -------------
 * One run answers one question: the header in its context buffer, the items in
 * the global answer[] (at most ET_SYS_BIG; `total` says how many there were). */
#define ET_SYS_BIG 1024
#define ET_SYS_WANT 1 /* unknown epoll instances looked for in one fd-table scan; more: host walk */

enum et_sys_op {
	ET_OP_LOOKUP = 0, /* the file's live epitems, each with a verified location */
	ET_OP_COPIES = 1, /* every fd of the task's table holding the same file (items[].tfd) */
};

enum et_sys_status {
	ET_SYS_OK = 0,
	ET_SYS_NO_TASK = 1,  /* no task with that id */
	ET_SYS_NO_FILES = 2, /* the task has no fd table (exited, or a zombie group leader) */
	ET_SYS_BAD_FD = 3,   /* no file at that fd */
};

enum et_sys_flags {
	ET_SYS_CLOEXEC = 1,   /* the fd has close-on-exec set */
	ET_SYS_SCANNED = 2,   /* the task's fd table was scanned for unknown epolls */
	ET_SYS_UNLOCATED = 4, /* some item has no verified location (user space walks the host) */
};

struct et_sys_hdr {
	__u32 op;          /* in */
	__u32 pid;         /* in: task id (process or thread) */
	__u32 fd;          /* in */
	__u32 cap;         /* in: item slots after the header (<= the program's room) */
	__u64 epoll_fops;  /* in: f_op of an epoll file */
	__u32 status;      /* out */
	__u32 flags;       /* out */
	__u32 tgid;        /* out: process of the task */
	__u32 tid;         /* out: owner of the fd table read (tgid unless the task has its own) */
	__u32 nitems;      /* out: items written */
	__u32 total;       /* out: live items seen; > nitems when they did not fit */
	__u64 file;        /* out: struct file * at fd */
	__u64 priv;        /* out: its private_data */
	__u64 f_op;        /* out */
	__u32 refs;        /* out: the file's reference count */
	__u32 scanned;     /* out: fd slots read by the scan */
	__u32 outside;     /* in (COPIES): references the caller holds outside the table (its own copy): the scan stops once refs - outside copies are found */
	__u32 pad;
};

#endif /* __EPOLLTRACK_H */
