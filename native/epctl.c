/* epctl: a test and benchmark fixture that performs epoll operations on command.
 * Reads one command per line on stdin, answers one line on stdout:
 *   "ok V..." or "err ERRNO".
 * Commands:
 *   pid | create | pipe | eventfd | socket | socketpair | close FD | dup FD | dup2 OLD NEW
 *   add|mod|del EPFD FD [EVENTS DATA]  (EVENTS hex, DATA decimal u64)
 *   write FD | read FD | wait EPFD     (wait: epoll_wait timeout 0, answers the count)
 *   nfds N        open /dev/null until the process holds N fds (raises RLIMIT_NOFILE)
 *   fork PATH     fork a child that serves commands over a connection to the unix socket PATH
 *   uadd EPFD FD EVENTS DATA   EPOLL_CTL_ADD submitted through io_uring
 *   ureg FD       a new io_uring (kept open, rings mapped) with FD as fixed file 0: answers the ring fd
 *   peer FD       getpeername works on FD: answers 1 or 0
 *   cloexec FD    set close-on-exec on FD
 *   sockopts FD   set SO_KEEPALIVE, SO_REUSEADDR, SO_RCVBUF 64K, TCP_NODELAY
 *   nonblock FD   set O_NONBLOCK
 *   connect FD IP PORT   (IPv4, as the socket's flags say: blocking or not)
 *   exit
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <linux/io_uring.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

/* One IORING_OP_EPOLL_CTL through a throw-away io_uring: the path that does not
 * pass through the epoll_ctl syscall. Returns the CQE result (0 or -errno). */
static int uring_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct io_uring_params p = { 0 };
	int ring = syscall(__NR_io_uring_setup, 1, &p), res = -ENOSYS;
	size_t sq_len, cq_len;
	char *sq, *cq;
	struct io_uring_sqe *sqes;

	if (ring < 0)
		return -errno;
	sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq != MAP_FAILED && cq != MAP_FAILED && sqes != MAP_FAILED) {
		unsigned *tail = (unsigned *)(sq + p.sq_off.tail), *array = (unsigned *)(sq + p.sq_off.array);
		unsigned idx = *tail & *(unsigned *)(sq + p.sq_off.ring_mask);

		memset(&sqes[idx], 0, sizeof(sqes[idx]));
		sqes[idx].opcode = IORING_OP_EPOLL_CTL;
		sqes[idx].fd = epfd;
		sqes[idx].off = fd;
		sqes[idx].len = op;
		sqes[idx].addr = (unsigned long)ev;
		array[idx] = idx;
		__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
		if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
			res = -errno;
		} else {
			unsigned head = *(unsigned *)(cq + p.cq_off.head);
			struct io_uring_cqe *cqe = (struct io_uring_cqe *)(cq + p.cq_off.cqes) +
						   (head & *(unsigned *)(cq + p.cq_off.ring_mask));
			res = cqe->res;
		}
	}
	close(ring); /* the mappings go with the process */
	return res;
}

static int count_fds(void)
{
	int n = 0;
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	for (int fd = 0; fd < (int)rl.rlim_cur; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static void serve(FILE *in, FILE *out)
{
	char line[256], cmd[32];
	long a, b;
	unsigned long long c, d;

	setvbuf(out, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), in)) {
		int r = -1, r2 = 0, two = 0, n;

		a = b = -1;
		c = d = 0;
		n = sscanf(line, "%31s %ld %ld %llx %llu", cmd, &a, &b, &c, &d);
		if (n < 1)
			continue;
		errno = 0;
		if (!strcmp(cmd, "pid")) {
			r = getpid();
		} else if (!strcmp(cmd, "create")) {
			r = epoll_create1(0);
		} else if (!strcmp(cmd, "pipe")) {
			int p[2];
			r = pipe(p);
			if (!r) { r = p[0]; r2 = p[1]; two = 1; }
		} else if (!strcmp(cmd, "socketpair")) {
			int p[2];
			r = socketpair(AF_UNIX, SOCK_STREAM, 0, p);
			if (!r) { r = p[0]; r2 = p[1]; two = 1; }
		} else if (!strcmp(cmd, "eventfd")) {
			r = eventfd(0, 0);
		} else if (!strcmp(cmd, "socket")) {
			r = socket(AF_INET, SOCK_STREAM, 0);
		} else if (!strcmp(cmd, "close")) {
			r = close(a);
		} else if (!strcmp(cmd, "dup")) {
			r = dup(a);
		} else if (!strcmp(cmd, "dup2")) {
			r = dup2(a, b);
		} else if (!strcmp(cmd, "add") || !strcmp(cmd, "mod") || !strcmp(cmd, "del")) {
			struct epoll_event ev = { .events = (unsigned)c, .data.u64 = d };
			int op = cmd[0] == 'a' ? EPOLL_CTL_ADD : cmd[0] == 'm' ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
			r = epoll_ctl(a, op, b, &ev);
		} else if (!strcmp(cmd, "write") || !strcmp(cmd, "read")) {
			/* never block: only when poll says the fd is ready */
			int w = cmd[0] == 'w';
			struct pollfd pfd = { .fd = a, .events = w ? POLLOUT : POLLIN };
			unsigned long long one = 1;
			char buf[64];

			if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & pfd.events)) {
				errno = EAGAIN;
			} else {
				r = w ? write(a, &one, sizeof(one)) : read(a, buf, sizeof(buf));
				r = r < 0 ? -1 : 0;
			}
		} else if (!strcmp(cmd, "wait")) {
			struct epoll_event evs[64];
			r = epoll_wait(a, evs, 64, 0);
		} else if (!strcmp(cmd, "nfds")) {
			struct rlimit rl;
			getrlimit(RLIMIT_NOFILE, &rl);
			if (rl.rlim_cur < rl.rlim_max) {
				rl.rlim_cur = rl.rlim_max;
				setrlimit(RLIMIT_NOFILE, &rl);
			}
			r = count_fds();
			while (r < a) {
				if (open("/dev/null", O_RDONLY) < 0)
					break;
				r++;
			}
		} else if (!strcmp(cmd, "fork")) {
			char path[108];
			if (sscanf(line, "%*s %107s", path) != 1) {
				errno = EINVAL;
			} else {
				pid_t pid = fork();
				if (pid == 0) {
					/* The child's commands come over a unix socket to the
					 * test, moved onto fds 0 and 1 so that every process
					 * keeps 0-2 as its only fixture fds. */
					struct sockaddr_un sa = { .sun_family = AF_UNIX };
					int c = socket(AF_UNIX, SOCK_STREAM, 0);

					snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
					if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
					    dup2(c, 0) < 0 || dup2(c, 1) < 0)
						_exit(1);
					if (c > 1)
						close(c);
					serve(fdopen(0, "r"), fdopen(1, "w"));
					_exit(0);
				}
				r = pid;
			}
		} else if (!strcmp(cmd, "connect")) {
			/* connect FD IP PORT (IPv4) */
			char ip[64];
			struct sockaddr_in sa = { .sin_family = AF_INET };
			if (sscanf(line, "%*s %*d %63s %ld", ip, &b) != 2 || inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
				errno = EINVAL;
			} else {
				sa.sin_port = htons(b);
				r = connect(a, (struct sockaddr *)&sa, sizeof(sa));
			}
		} else if (!strcmp(cmd, "uadd")) {
			/* uadd EPFD FD EVENTS DATA: EPOLL_CTL_ADD through io_uring (IORING_OP_EPOLL_CTL) */
			struct epoll_event ev = { .events = (unsigned)c, .data.u64 = d };
			r = uring_epoll_ctl(a, EPOLL_CTL_ADD, b, &ev);
			if (r < 0) {
				errno = -r;
				r = -1;
			}
		} else if (!strcmp(cmd, "ureg")) {
			struct io_uring_params p = { 0 };
			int32_t fds[1] = { (int32_t)a };

			r = syscall(__NR_io_uring_setup, 4, &p);
			if (r >= 0 && (mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
					    MAP_SHARED | MAP_POPULATE, r, IORING_OFF_SQ_RING) == MAP_FAILED ||
				       syscall(__NR_io_uring_register, r, IORING_REGISTER_FILES, fds, 1) < 0))
				r = -1;
		} else if (!strcmp(cmd, "peer")) {
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);

			r = getpeername(a, (struct sockaddr *)&ss, &len) == 0;
			errno = 0;
		} else if (!strcmp(cmd, "cloexec")) {
			r = fcntl(a, F_SETFD, FD_CLOEXEC);
		} else if (!strcmp(cmd, "nonblock")) {
			r = fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK);
		} else if (!strcmp(cmd, "sockopts")) {
			/* sockopts FD: what a caller may set before connect */
			int one = 1, rcv = 65536;
			r = setsockopt(a, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) ||
			    setsockopt(a, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
			    setsockopt(a, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) ||
			    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ? -1 : 0;
		} else if (!strcmp(cmd, "exit")) {
			fprintf(out, "ok 0\n");
			exit(0);
		} else {
			errno = EINVAL;
		}
		if (r < 0 && errno)
			fprintf(out, "err %d\n", errno);
		else if (two)
			fprintf(out, "ok %d %d\n", r, r2);
		else
			fprintf(out, "ok %d\n", r);
	}
}

int main(void)
{
	signal(SIGCHLD, SIG_IGN); /* forked children are reaped by the kernel */
	signal(SIGPIPE, SIG_IGN);
	serve(stdin, stdout);
	return 0;
}
