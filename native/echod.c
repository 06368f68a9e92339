/* echod: the storm's target server. One thread, epoll: each connection gets
 * "pong\n" once it has sent something, and is closed. Prints its port
 * (127.0.0.1, chosen by the kernel) and serves until killed.
 *
 * Usage: echod
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	struct epoll_event ev = { .events = EPOLLIN }, evs[256];
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), ep = epoll_create1(EPOLL_CLOEXEC);
	char buf[512];
	struct rlimit rl;

	/* every client of the storm may be connected at once */
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	if (ls < 0 || ep < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4096) ||
	    getsockname(ls, (struct sockaddr *)&a, &len)) {
		perror("echod");
		return 1;
	}
	ev.data.fd = ls;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev)) {
		perror("echod: epoll_ctl");
		return 1;
	}
	printf("%d\n", ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == ls) {
				int c;

				while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct epoll_event cev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = c };

					if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev))
						close(c);
				}
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r > 0 && write(fd, "pong\n", 5) < 0) {
				/* the client went away: nothing to answer */
			}
			if (r >= 0 || errno != EAGAIN)
				close(fd); /* answered, or gone; closing removes it from the epoll */
		}
	}
}
