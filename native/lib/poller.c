/* libepolltrack-poller: one thread waits for every fd the supervisor waits on.
 *
 * The supervisor waits on many fds at once: the seccomp listener of each
 * container and each replacement socket still connecting. libuv can watch
 * sockets and pipes, but not a seccomp listener, and a blocking poll() per fd
 * on libuv's thread pool holds one of its few threads for as long as it waits.
 * Here one thread sleeps in epoll_wait() over all of them (EPOLLONESHOT: an fd
 * reports once until it is re-armed) and writes each readiness as a fixed-size
 * record to a pipe whose read end the event loop watches.
 *
 *   ept_poller_start()         the read end of the pipe (or -errno)
 *   ept_poller_arm(fd, ev, tk) watch fd for ev once, reported with token tk
 *   ept_poller_disarm(fd)      stop watching fd (before closing it)
 *   ept_poller_ready(fd, ev)   revents of fd now, without waiting
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* One readiness report; 16 bytes, so a pipe write of one is atomic. */
struct ept_ready {
	uint64_t token;
	uint32_t events;
	uint32_t pad;
};
_Static_assert(sizeof(struct ept_ready) == 16, "struct ept_ready is 16 bytes (src/kernel/poller.ts)");

static int epfd = -1;
static int pipe_w = -1;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static void *run(void *arg)
{
	struct epoll_event evs[64];
	struct ept_ready out[64];

	for (;;) {
		int n = epoll_wait(epfd, evs, 64, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		for (int i = 0; i < n; i++)
			out[i] = (struct ept_ready){ .token = evs[i].data.u64, .events = evs[i].events };
		/* Blocks while the loop is behind: the pipe holds 4096 reports. */
		for (size_t off = 0, len = n * sizeof(out[0]); off < len;) {
			ssize_t w = write(pipe_w, (char *)out + off, len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return NULL; /* the reader is gone */
			off += w;
		}
	}
}

int ept_poller_start(void)
{
	static int pipe_r = -1;
	int p[2], ret;
	pthread_attr_t attr;
	pthread_t t;

	pthread_mutex_lock(&start_lock);
	if (pipe_r >= 0) {
		ret = pipe_r;
		goto out;
	}
	ret = -errno;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0 || pipe2(p, O_CLOEXEC)) {
		ret = -errno;
		goto fail;
	}
	pipe_w = p[1];
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	ret = -pthread_create(&t, &attr, run, NULL);
	pthread_attr_destroy(&attr);
	if (ret) {
		close(p[0]);
		close(p[1]);
		goto fail;
	}
	pipe_r = ret = p[0];
	goto out;
fail:
	if (epfd >= 0)
		close(epfd);
	epfd = pipe_w = -1;
out:
	pthread_mutex_unlock(&start_lock);
	return ret;
}

int ept_poller_arm(int fd, uint32_t events, uint64_t token)
{
	struct epoll_event ev = { .events = events | EPOLLONESHOT, .data.u64 = token };

	if (epfd < 0)
		return -EBADF;
	if (!epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev))
		return 0;
	if (errno == ENOENT && !epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev))
		return 0;
	return -errno;
}

int ept_poller_disarm(int fd)
{
	if (epfd < 0)
		return -EBADF;
	return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) ? -errno : 0;
}

int ept_poller_ready(int fd, uint32_t events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n = poll(&p, 1, 0);

	return n < 0 ? -errno : n ? p.revents : 0;
}
