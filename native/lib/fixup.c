/* libepolltrack-fixup: epoll_ctl with a chosen fd number, from an fd table of
 * its own, and the whole swap (ADD, SECCOMP_IOCTL_NOTIF_ADDFD, DEL) in one
 * call from the supervisor.
 *
 * An epoll registration is keyed by (file, fd number). To re-create one for a
 * new file under the original number N, the file must sit at N in the
 * caller's fd table. Most of the time every number N is free in the
 * process's own table: then fcntl(F_DUPFD, N) reserves exactly N atomically
 * (no other thread can be clobbered) and the whole swap runs right here, with
 * no thread hand-off. Otherwise one hand-off to a worker thread that
 * unshared its fd table (CLONE_FILES) once and emptied it: it takes each
 * epoll and file from the process's own table with pidfd_getfd, puts the
 * file at N, runs epoll_ctl, and closes what it took, so nothing it holds
 * outlives a request and the process's own fds are never touched.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fixup.h"

/* A swap: reqs[0..nadd) ADD the new file, then the ADDFDs, then reqs[nadd..n) DEL the old one. */
struct job {
	int listener;
	uint64_t id;
	int newfd;
	struct ept_addfd *fds;
	int nfds;
	struct ept_ctl *reqs;
	int nadd, n;
	int stage;       /* out: 0 done, 1 an ADD failed, 2 the first ADDFD failed */
};

static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER; /* one worker job at a time */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct job *pending;
static int busy, worker_err = -1;

#define MAX_HELD 64

/* Where requests run: here with reserved numbers (pidfd < 0), or in the worker's private table. */
struct place {
	int pidfd;  /* the worker's pidfd of this process, or -1 */
	int above;  /* worker: numbers taken from the process go above every tfd */
	/* here: the reserved numbers, and which of our fds' file each holds now (no dup2 to put it there again) */
	int nheld;
	int held[MAX_HELD], file[MAX_HELD];
};

/* Here: put our fd `f`'s file at the reserved number `tfd`, unless it is there already. */
static int place_at(struct place *p, int f, int tfd)
{
	int k = 0;

	if (p->pidfd < 0) {
		while (k < p->nheld && p->held[k] != tfd)
			k++;
		if (k < p->nheld && p->file[k] == f)
			return 0;
	}
	if (dup2(f, tfd) < 0) /* direct: tfd is reserved for us; worker: our private table */
		return -1;
	if (k < p->nheld)
		p->file[k] = f;
	return 0;
}

static int take(const struct place *p, int fd)
{
	int got, moved;

	if (p->pidfd < 0)
		return fd;
	got = syscall(SYS_pidfd_getfd, p->pidfd, fd, 0);
	if (got < 0 || got >= p->above)
		return got;
	moved = fcntl(got, F_DUPFD_CLOEXEC, p->above);
	close(got);
	return moved;
}

static void drop(const struct place *p, int fd)
{
	if (p->pidfd >= 0 && fd >= 0)
		close(fd);
}

/* epoll_ctl(epfd, op, tfd) with `file` at tfd; returns 0 or errno. */
static int ctl_one(struct place *p, int op, int epfd, int file, int tfd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };
	int ep = take(p, epfd), f = ep < 0 ? -1 : take(p, file), err;

	if (ep < 0 || f < 0)
		err = errno;
	else if (place_at(p, f, tfd) < 0)
		err = errno;
	else
		err = epoll_ctl(ep, op, tfd, &ev) ? errno : 0;
	if (p->pidfd >= 0 && ep >= 0 && f >= 0)
		close(tfd);
	drop(p, f);
	drop(p, ep);
	return err;
}

static int addfd_one(const struct place *p, int listener, uint64_t id, int newfd, struct ept_addfd *a)
{
	int l = take(p, listener), src = l < 0 ? -1 : take(p, newfd), r;
	struct seccomp_notif_addfd req = {
		.id = id, .flags = SECCOMP_ADDFD_FLAG_SETFD, .srcfd = src, .newfd = a->fd, .newfd_flags = a->flags,
	};

	if (l < 0 || src < 0)
		r = errno;
	else
		r = ioctl(l, SECCOMP_IOCTL_NOTIF_ADDFD, &req) < 0 ? errno : 0;
	drop(p, src);
	drop(p, l);
	return r;
}

static void run_reqs(struct place *p, struct ept_ctl *reqs, int n)
{
	for (int i = 0; i < n; i++)
		reqs[i].result = ctl_one(p, reqs[i].op, reqs[i].epfd, reqs[i].file, reqs[i].tfd, reqs[i].events, reqs[i].data);
}

static void run_job(struct place *p, struct job *j)
{
	int ok = 0;

	j->stage = 0;
	for (int i = 0; i < j->nadd; i++) {
		j->reqs[i].result = ctl_one(p, j->reqs[i].op, j->reqs[i].epfd, j->reqs[i].file, j->reqs[i].tfd,
					    j->reqs[i].events, j->reqs[i].data);
		if (j->reqs[i].result) {
			j->stage = 1;
			break;
		}
		ok++;
	}
	if (!j->stage && j->nfds) {
		for (int i = 0; i < j->nfds; i++)
			j->fds[i].result = addfd_one(p, j->listener, j->id, j->newfd, &j->fds[i]);
		if (j->fds[0].result)
			j->stage = 2; /* nothing installed: the later ones failed the same way */
	}
	if (j->stage) {
		/* Undo the ADDs: the caller still has the old file everywhere. */
		for (int i = 0; i < ok; i++)
			ctl_one(p, EPOLL_CTL_DEL, j->reqs[i].epfd, j->reqs[i].file, j->reqs[i].tfd, 0, 0);
		return;
	}
	run_reqs(p, j->reqs + j->nadd, j->n - j->nadd);
}

static void worker_set(int err)
{
	pthread_mutex_lock(&mu);
	worker_err = err;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void *worker(void *arg)
{
	struct place p = { .pidfd = -1 };

	(void)arg;
	/* A table of our own, emptied: copies of the process's fds would keep their files alive. */
	if (unshare(CLONE_FILES) || syscall(SYS_close_range, 0, ~0U, 0)) {
		worker_set(errno);
		return NULL;
	}
	p.pidfd = syscall(SYS_pidfd_open, getpid(), 0);
	worker_set(p.pidfd < 0 ? errno : 0);
	if (p.pidfd < 0)
		return NULL;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!busy)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		p.above = 0;
		for (int i = 0; i < pending->n; i++)
			if (pending->reqs[i].tfd >= p.above)
				p.above = pending->reqs[i].tfd + 1;
		run_job(&p, pending);
		pthread_mutex_lock(&mu);
		busy = 0;
		pthread_cond_broadcast(&cv);
	}
	return NULL;
}

/* Reserve every tfd of the job in this process's table (F_DUPFD takes exactly N or fails to). */
static int reserve(const struct job *j, struct place *p)
{
	p->nheld = 0;
	for (int i = 0; i < j->n; i++) {
		int tfd = j->reqs[i].tfd, seen = 0, at, f = j->newfd >= 0 ? j->newfd : j->reqs[i].file;

		for (int k = 0; k < p->nheld; k++)
			seen |= p->held[k] == tfd;
		if (seen)
			continue;
		at = fcntl(f, F_DUPFD_CLOEXEC, tfd);
		if (at != tfd) {
			if (at >= 0)
				close(at);
			return -1;
		}
		p->file[p->nheld] = f;
		p->held[p->nheld++] = tfd;
	}
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	/* tfd can be any number the supervised process may use */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static pthread_once_t nofile_once = PTHREAD_ONCE_INIT;

/*
 * Jobs whose numbers are all free here run at once, on the calling thread,
 * concurrently with each other (each holds the numbers it reserved, and the
 * supervisor sends one job per fd table at a time). A job that finds a
 * number taken goes to the worker, one at a time.
 */
static int run(struct job *j)
{
	static int started;
	struct place here = { .pidfd = -1 };
	int err = 0;

	pthread_once(&nofile_once, raise_nofile);
	if (j->n <= MAX_HELD && reserve(j, &here) == 0) {
		run_job(&here, j);
		for (int k = 0; k < here.nheld; k++)
			close(here.held[k]);
		return 0;
	}
	for (int k = 0; k < here.nheld; k++)
		close(here.held[k]);
	pthread_mutex_lock(&call_lock);
	if (!started) {
		pthread_t t;

		if ((err = pthread_create(&t, NULL, worker, NULL))) {
			pthread_mutex_unlock(&call_lock);
			return -err;
		}
		pthread_detach(t);
		started = 1;
	}
	pthread_mutex_lock(&mu);
	while (worker_err < 0)
		pthread_cond_wait(&cv, &mu);
	err = worker_err;
	if (!err) {
		pending = j;
		busy = 1;
		pthread_cond_broadcast(&cv);
		while (busy)
			pthread_cond_wait(&cv, &mu);
	}
	pthread_mutex_unlock(&mu);
	pthread_mutex_unlock(&call_lock);
	return -err;
}

/* Run the requests in order; each gets its errno in ->result. Returns 0 or -errno (no worker). */
int ept_ctl_batch(struct ept_ctl *reqs, int n)
{
	struct job j = { .listener = -1, .newfd = -1, .reqs = reqs, .nadd = 0, .n = n };

	return n ? run(&j) : 0;
}

/*
 * The swap in one call: ADD (new file, N) for reqs[0..nadd), then ADDFD+SETFD
 * of newfd at each fds[i].fd of the notification's caller, then the DELs
 * reqs[nadd..n). An ADD that fails undoes the ones before it (returns 1); an
 * ADDFD that fails at the first number undoes the ADDs (returns 2); 0 when
 * everything ran (each result in place). -errno when no worker could run it.
 * With c, the replacement is made first (ept_sock_make); 3 when that fails.
 */
int ept_swap(int listener, uint64_t id, int newfd, struct ept_addfd *fds, int nfds, struct ept_ctl *reqs, int nadd, int n,
	     struct ept_connect *c, const struct ept_optspec *spec, const struct ept_optval *defaults, int nopts)
{
	struct job j = { .listener = listener, .id = id, .newfd = newfd, .fds = fds, .nfds = nfds, .reqs = reqs, .nadd = nadd, .n = n };
	int r;

	if (c) {
		/* A non-blocking caller's replacement, made here: the whole swap is one call off the event loop. */
		if (ept_sock_make(c, spec, defaults, nopts))
			return 3;
		j.newfd = c->fd;
		for (int i = 0; i < nadd; i++)
			if (reqs[i].file < 0)
				reqs[i].file = c->fd;
	}
	r = run(&j);
	return r < 0 ? r : j.stage; /* c->fd stays open: the supervisor closes it */
}

/* Put `fd` into slot `slot` of the io_uring fixed-file table of `ring` (IORING_REGISTER_FILES_UPDATE). 0 or errno. */
int ept_uring_update(int ring, unsigned slot, int fd)
{
	int32_t fds[1] = { fd };
	struct {
		uint32_t offset, resv;
		uint64_t fds;
	} upd = { .offset = slot, .fds = (uintptr_t)fds };
	long r = syscall(__NR_io_uring_register, ring, 6 /* IORING_REGISTER_FILES_UPDATE */, &upd, 1);

	return r == 1 ? 0 : r < 0 ? errno : EIO;
}

/*
 * Every number below `limit` of process `pid` that holds the same file as its
 * fd `fd`, ascending, into out[0..max): kcmp(KCMP_FILE) slot by slot (an empty
 * slot answers EBADF at once). Returns how many, or -errno.
 */
int ept_copies(int pid, int fd, int limit, int32_t *out, int max)
{
	int n = 0;

	for (int i = 0; i < limit; i++) {
		long r = i == fd ? 0 : syscall(SYS_kcmp, pid, pid, 0 /* KCMP_FILE */, fd, i);

		if (r == 0 && n < max)
			out[n++] = i;
		else if (r < 0 && errno != EBADF)
			return -errno;
	}
	return n;
}
