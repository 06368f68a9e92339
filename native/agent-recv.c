/* epolltrack-agent-recv: accept seccomp listener fds from OCI runtimes.
 *
 * runc and crun (linux.seccomp.listenerPath) connect to a unix socket, send the
 * container state JSON with the listener fd in SCM_RIGHTS, and close. This
 * program listens on PATH (mode 0600) and serves every connection at once, each
 * with a deadline, from one epoll loop. It never waits a fixed time: a message
 * is complete when its JSON object is (runc and crun run in the foreground keep
 * the connection open), or when the runtime closes its end.
 *
 * To the agent (stdout), length-prefixed records, native byte order:
 *   struct rec { u32 type; i32 fd; u32 conn; u32 len; } + len bytes
 *   REC_READY   listening
 *   REC_FD      fd (a valid seccomp listener, ours until acked), payload: the JSON
 *   REC_LOG     payload: one line about a connection that was refused or cut short
 *   REC_FATAL   payload: why this program cannot run (then it exits)
 * From the agent (stdin): one i32 per REC_FD, the fd it took its own copy of
 * (pidfd_getfd); that fd is then closed here. EOF on stdin (the agent is gone)
 * ends this program; so does the agent's death (PR_SET_PDEATHSIG).
 *
 * Usage: agent-recv SOCKET_PATH [TIMEOUT_MS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG (1 << 20)	/* the state JSON is a few KiB; more is refused */
#define MAX_CONNS 128		/* more wait in the listen backlog */
#define MAX_FDS 8		/* per connection; runc and crun send one */

enum { REC_READY = 1, REC_FD = 2, REC_LOG = 3, REC_FATAL = 4 };

struct rec {
	uint32_t type;
	int32_t fd;
	uint32_t conn;
	uint32_t len;
};
_Static_assert(sizeof(struct rec) == 16, "struct rec is 16 bytes (src/supervise/agent.ts)");

struct conn {
	int fd;			/* -1: slot free */
	uint32_t serial;
	long deadline;
	char *buf;
	size_t len, cap;
	int fds[MAX_FDS];
	int nfds;
	int truncated;		/* the kernel dropped fds (MSG_CTRUNC) */
	int depth, in_str, esc, started;	/* JSON scan: is the object complete? */
};

static struct conn conns[MAX_CONNS];
static int ep, lsock, nconns, listening;
static long timeout_ms = 5000;

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One record to the agent; a failed write means the agent is gone. */
static void emit(uint32_t type, int fd, uint32_t serial, const char *data, size_t len)
{
	struct rec r = { .type = type, .fd = fd, .conn = serial, .len = len };
	struct iovec iov[2] = { { &r, sizeof(r) }, { (void *)data, len } };
	size_t total = sizeof(r) + len, done = 0;

	while (done < total) {
		ssize_t w = writev(STDOUT_FILENO, iov, 2);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			exit(0);
		done += w;
		for (int i = 0; i < 2 && w > 0; i++) {
			size_t take = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + take;
			iov[i].iov_len -= take;
			w -= take;
		}
	}
}

static void say(uint32_t type, uint32_t serial, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit(type, -1, serial, line, n < 0 ? 0 : (size_t)n >= sizeof(line) ? sizeof(line) - 1 : (size_t)n);
}

/* 0 when fd is a seccomp listener: NOTIF_ID_VALID of an id nothing has is ENOENT there, ENOTTY/EINVAL elsewhere. */
static int listener_errno(int fd)
{
	uint64_t id = 0;

	if (!ioctl(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) || errno == ENOENT)
		return 0;
	return errno;
}

static void drop(struct conn *c)
{
	for (int i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	nconns--;
	if (!listening) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
		listening = !epoll_ctl(ep, EPOLL_CTL_ADD, lsock, &ev);
	}
}

/* The message is complete (EOF) or cut short (deadline): hand over its listeners. */
static void finish(struct conn *c, const char *why)
{
	int handed = 0;

	if (why)
		say(REC_LOG, c->serial, "connection %u: %s after %zu bytes", c->serial, why, c->len);
	if (c->truncated)
		say(REC_LOG, c->serial, "connection %u: more than %d fds: the rest were dropped", c->serial, MAX_FDS);
	for (int i = 0; i < c->nfds; i++) {
		int e = listener_errno(c->fds[i]);
		if (e) {
			say(REC_LOG, c->serial, "connection %u: fd %d is not a seccomp listener (%s): not served",
			    c->serial, i, strerrorname_np(e) ? strerrorname_np(e) : strerror(e));
			continue;
		}
		/* Ours until the agent acks; drop() must not close it. */
		emit(REC_FD, c->fds[i], c->serial, c->buf ? c->buf : "", c->len);
		c->fds[i] = -1;
		handed++;
	}
	if (!c->nfds)
		say(REC_LOG, c->serial, "connection %u: no fd came with the message: nothing to serve", c->serial);
	for (int i = 0, j = 0; i < c->nfds; i++)
		if (c->fds[i] >= 0)
			c->fds[j++] = c->fds[i];
	c->nfds -= handed;
	drop(c);
}

/*
 * Scan new bytes of the state JSON: 1 once the top-level object is complete.
 * runc and crun run in the foreground keep the connection open for the
 * container's life (the socket is not closed when they are done), so the end
 * of the object, not EOF, ends the message.
 */
static int json_complete(struct conn *c, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (c->in_str) {
			if (c->esc)
				c->esc = 0;
			else if (ch == '\\')
				c->esc = 1;
			else if (ch == '"')
				c->in_str = 0;
		} else if (ch == '"') {
			c->in_str = 1;
		} else if (ch == '{' || ch == '[') {
			c->depth++;
			c->started = 1;
		} else if (ch == '}' || ch == ']') {
			if (--c->depth == 0 && c->started)
				return 1;
		}
	}
	return 0;
}

static void readable(struct conn *c)
{
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct iovec iov;
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		ssize_t n;

		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 8192;
			char *b;
			if (cap > MAX_MSG + 1)
				cap = MAX_MSG + 1;
			if (cap - c->len < 1) {
				say(REC_LOG, c->serial, "connection %u: message longer than %d bytes: refused", c->serial, MAX_MSG);
				{ drop(c); return; }
			}
			b = realloc(c->buf, cap);
			if (!b)
				{ drop(c); return; }
			c->buf = b;
			c->cap = cap;
		}
		iov.iov_base = c->buf + c->len;
		iov.iov_len = c->cap - c->len - 1;
		n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		for (struct cmsghdr *m = CMSG_FIRSTHDR(&msg); m; m = CMSG_NXTHDR(&msg, m)) {
			if (m->cmsg_level != SOL_SOCKET || m->cmsg_type != SCM_RIGHTS)
				continue;
			int k = (m->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int *fds = (int *)CMSG_DATA(m);
			for (int i = 0; i < k; i++) {
				if (c->nfds < MAX_FDS)
					c->fds[c->nfds++] = fds[i];
				else
					close(fds[i]);
			}
		}
		if (msg.msg_flags & MSG_CTRUNC)
			c->truncated = 1;
		if (n < 0) {
			say(REC_LOG, c->serial, "connection %u: %s", c->serial, strerror(errno));
			{ drop(c); return; }
		}
		if (n == 0)
			{ finish(c, NULL); return; }
		c->len += n;
		c->buf[c->len] = 0;
		if (json_complete(c, c->buf + c->len - n, n) && c->nfds) {
			finish(c, NULL);
			return;
		}
	}
}

static void accept_all(uint32_t *serial)
{
	while (nconns < MAX_CONNS) {
		int fd = accept4(lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct conn *c = NULL;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				say(REC_LOG, 0, "accept: %s", strerror(errno));
			return;
		}
		for (int i = 0; i < MAX_CONNS && !c; i++)
			if (conns[i].fd < 0)
				c = &conns[i];
		c->fd = fd;
		c->serial = ++*serial;
		c->deadline = now_ms() + timeout_ms;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = 2 + (c - conns) };
		nconns++;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
			say(REC_LOG, c->serial, "connection %u: epoll_ctl: %s", c->serial, strerror(errno));
			drop(c);
			continue;
		}
		readable(c); /* the runtime may have sent and closed already */
	}
	/* Full: leave the rest in the backlog until a slot frees. */
	listening = epoll_ctl(ep, EPOLL_CTL_DEL, lsock, NULL) != 0;
}

static void acks(void)
{
	int32_t fd;
	ssize_t n = read(STDIN_FILENO, &fd, sizeof(fd));

	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
		exit(0); /* the agent is gone */
	if (n == sizeof(fd) && fd > STDERR_FILENO && fd != lsock && fd != ep) {
		/* only an fd handed over in a REC_FD, which no conn holds any more */
		int held = 0;
		for (int i = 0; i < MAX_CONNS && !held; i++)
			held = conns[i].fd == fd;
		if (!held)
			close(fd);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN };
	uint32_t serial = 0;

	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 0; /* the agent died before we got here */
	if (argc < 2 || argc > 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		say(REC_FATAL, 0, "usage: agent-recv SOCKET_PATH [TIMEOUT_MS] (a path of at most %zu bytes)", sizeof(sa.sun_path) - 1);
		return 2;
	}
	if (argc == 3)
		timeout_ms = atol(argv[2]) > 0 ? atol(argv[2]) : timeout_ms;
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	unlink(argv[1]);
	umask(077);
	lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (lsock < 0 || ep < 0 || bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) || chmod(argv[1], 0600) || listen(lsock, 128)) {
		say(REC_FATAL, 0, "%s: %s", argv[1], strerror(errno));
		return 1;
	}
	ev.data.u64 = 0;
	listening = !epoll_ctl(ep, EPOLL_CTL_ADD, lsock, &ev);
	ev.data.u64 = 1;
	if (!listening || epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev)) {
		say(REC_FATAL, 0, "epoll_ctl: %s", strerror(errno));
		return 1;
	}
	emit(REC_READY, -1, 0, NULL, 0);
	for (;;) {
		struct epoll_event evs[32];
		long now = now_ms(), next = -1;
		int n;

		for (int i = 0; i < MAX_CONNS; i++) {
			if (conns[i].fd < 0)
				continue;
			if (conns[i].deadline <= now) {
				finish(&conns[i], "no end of message within the deadline");
				continue;
			}
			if (next < 0 || conns[i].deadline - now < next)
				next = conns[i].deadline - now;
		}
		n = epoll_wait(ep, evs, 32, next);
		if (n < 0 && errno != EINTR) {
			say(REC_FATAL, 0, "epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			uint64_t k = evs[i].data.u64;
			if (k == 0)
				accept_all(&serial);
			else if (k == 1)
				acks();
			else if (conns[k - 2].fd >= 0)
				readable(&conns[k - 2]);
		}
	}
}
