/* libepolltrack-fixup: epoll_ctl with a chosen fd number, from an fd table of
 * its own, called synchronously from the supervisor.
 *
 * An epoll registration is keyed by (file, fd number). To re-create one for a
 * new file under the original number N, the file must sit at N in the
 * caller's fd table. ept_ctl_batch() runs the requests in a short-lived thread
 * that first unshares its fd table (CLONE_FILES): it can put any file at any
 * number without touching the process's own fds, and everything it put there
 * goes away with the thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

struct ept_ctl {
	int32_t op;      /* EPOLL_CTL_ADD / DEL / MOD */
	int32_t epfd;    /* the epoll, an fd of this process */
	int32_t file;    /* the target file, an fd of this process */
	int32_t tfd;     /* the number the registration is keyed by */
	uint32_t events;
	uint32_t result; /* 0 or errno */
	uint64_t data;
};

struct batch {
	struct ept_ctl *reqs;
	int n;
	int err;
};

/* Move fd out of the way of every tfd of the batch (above them all). */
static int clear_of(int fd, struct batch *b, int above)
{
	for (int i = 0; i < b->n; i++) {
		if (b->reqs[i].tfd == fd) {
			int moved = fcntl(fd, F_DUPFD, above);
			return moved < 0 ? -1 : moved;
		}
	}
	return fd;
}

static void *run(void *arg)
{
	struct batch *b = arg;
	int above = 0;

	if (unshare(CLONE_FILES)) {
		b->err = errno;
		return NULL;
	}
	for (int i = 0; i < b->n; i++)
		if (b->reqs[i].tfd >= above)
			above = b->reqs[i].tfd + 1;
	for (int i = 0; i < b->n; i++) {
		struct ept_ctl *r = &b->reqs[i];
		int ep = clear_of(r->epfd, b, above), file = clear_of(r->file, b, above);
		struct epoll_event ev = { .events = r->events, .data.u64 = r->data };

		if (ep < 0 || file < 0) {
			r->result = errno;
			continue;
		}
		/* Later requests may name the fds moved here by their old numbers. */
		for (int j = i + 1; j < b->n; j++) {
			if (b->reqs[j].epfd == r->epfd) b->reqs[j].epfd = ep;
			if (b->reqs[j].file == r->file) b->reqs[j].file = file;
		}
		r->epfd = ep;
		r->file = file;
		if (file != r->tfd && dup2(file, r->tfd) < 0) {
			r->result = errno;
			continue;
		}
		r->result = epoll_ctl(ep, r->op, r->tfd, &ev) ? errno : 0;
	}
	return NULL; /* the private fd table, and every fd put in it, goes with the thread */
}

int ept_ctl_batch(struct ept_ctl *reqs, int n)
{
	static int raised;
	struct batch b = { .reqs = reqs, .n = n };
	pthread_t t;
	int e;

	if (!raised) { /* tfd can be any number the supervised process may use */
		struct rlimit rl;
		if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		raised = 1;
	}
	e = pthread_create(&t, NULL, run, &b);
	if (e)
		return -e;
	pthread_join(t, NULL);
	return -b.err;
}
