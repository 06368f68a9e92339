/* libepolltrack-fixup: epoll_ctl with a chosen fd number, from an fd table of
 * its own, called synchronously from the supervisor.
 *
 * An epoll registration is keyed by (file, fd number). To re-create one for a
 * new file under the original number N, the file must sit at N in the
 * caller's fd table. ept_ctl_batch() hands the requests to a worker thread
 * that unshared its fd table (CLONE_FILES) once and emptied it: it takes each
 * epoll and file from the process's own table with pidfd_getfd, puts the file
 * at N, runs epoll_ctl, and closes what it took, so nothing it holds outlives
 * a request and the process's own fds are never touched.
 *
 * Most of the time the number N is free in the process's own table: then
 * fcntl(F_DUPFD, N) takes exactly N atomically (no other thread can be
 * clobbered) and the request runs right here, with no thread hand-off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fixup.h"

static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER; /* one batch at a time */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct ept_ctl *pending;
static int pending_n, busy, worker_err = -1;

static int clashes(int fd, const struct ept_ctl *reqs, int n)
{
	for (int i = 0; i < n; i++)
		if (reqs[i].tfd == fd)
			return 1;
	return 0;
}

/* Take fd of this process into the worker's table, at a number no request puts a file at. */
static int take(int pidfd, int fd, const struct ept_ctl *reqs, int n, int above)
{
	int got = syscall(SYS_pidfd_getfd, pidfd, fd, 0), moved;

	if (got < 0 || !clashes(got, reqs, n))
		return got;
	moved = fcntl(got, F_DUPFD, above);
	close(got);
	return moved;
}

static void run_batch(int pidfd, struct ept_ctl *reqs, int n)
{
	int above = 0;

	for (int i = 0; i < n; i++)
		if (reqs[i].tfd >= above)
			above = reqs[i].tfd + 1;
	for (int i = 0; i < n; i++) {
		struct ept_ctl *r = &reqs[i];
		struct epoll_event ev = { .events = r->events, .data.u64 = r->data };
		int ep = take(pidfd, r->epfd, reqs, n, above);
		int file = ep < 0 ? -1 : take(pidfd, r->file, reqs, n, above);

		if (ep < 0 || file < 0)
			r->result = errno;
		else if (dup2(file, r->tfd) < 0)
			r->result = errno;
		else
			r->result = epoll_ctl(ep, r->op, r->tfd, &ev) ? errno : 0;
		if (ep >= 0 && file >= 0)
			close(r->tfd);
		if (file >= 0)
			close(file);
		if (ep >= 0)
			close(ep);
	}
}

static void *worker(void *arg)
{
	int pidfd;

	(void)arg;
	/* A table of our own, emptied: copies of the process's fds would keep their files alive. */
	if (unshare(CLONE_FILES) || syscall(SYS_close_range, 0, ~0U, 0)) {
		pthread_mutex_lock(&mu);
		worker_err = errno;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
		return NULL;
	}
	pidfd = syscall(SYS_pidfd_open, getpid(), 0);
	pthread_mutex_lock(&mu);
	worker_err = pidfd < 0 ? errno : 0;
	pthread_cond_broadcast(&cv);
	while (!worker_err) {
		while (!busy)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		run_batch(pidfd, pending, pending_n);
		pthread_mutex_lock(&mu);
		busy = 0;
		pthread_cond_broadcast(&cv);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* Run requests in this thread, at N taken with F_DUPFD, up to the first whose N is in use;
 * returns how many ran (n when all did). */
static int run_direct(struct ept_ctl *reqs, int n)
{
	for (int i = 0; i < n; i++) {
		int at = fcntl(reqs[i].file, F_DUPFD_CLOEXEC, reqs[i].tfd);

		if (at >= 0 && at != reqs[i].tfd)
			close(at);
		if (at != reqs[i].tfd) {
			/* undo nothing: requests before i ran for real; hand the rest to the worker */
			return i;
		}
		{
			struct epoll_event ev = { .events = reqs[i].events, .data.u64 = reqs[i].data };
			reqs[i].result = epoll_ctl(reqs[i].epfd, reqs[i].op, at, &ev) ? errno : 0;
		}
		close(at);
	}
	return n;
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

/* Run the requests in order; each gets its errno in ->result. Returns 0 or -errno (no worker). */
int ept_ctl_batch(struct ept_ctl *reqs, int n)
{
	static int started;
	int err, done;

	pthread_mutex_lock(&call_lock);
	if (!started)
		raise_nofile();
	done = run_direct(reqs, n);
	if (done == n) {
		pthread_mutex_unlock(&call_lock);
		return 0;
	}
	reqs += done;
	n -= done;
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
		pending = reqs;
		pending_n = n;
		busy = 1;
		pthread_cond_broadcast(&cv);
		while (busy)
			pthread_cond_wait(&cv, &mu);
	}
	pthread_mutex_unlock(&mu);
	pthread_mutex_unlock(&call_lock);
	return -err;
}
