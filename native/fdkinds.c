// Test fixture: one fd of each kind the resolver names, the pollable ones
// registered in one epoll instance (data = the fd number). Prints "NAME FD"
// per fd, "port P" (the TCP listener's port), then "ready"; exits when stdin
// closes. Usage: fdkinds UNIX_SOCKET_PATH
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

static int ep;

static int show(const char *name, int fd, int watch)
{
	if (fd < 0) {
		fprintf(stderr, "fdkinds: %s: %m\n", name);
		exit(1);
	}
	if (watch) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (unsigned)fd };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
			fprintf(stderr, "fdkinds: epoll_ctl %s: %m\n", name);
			exit(1);
		}
	}
	printf("%s %d\n", name, fd);
	return fd;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	socklen_t len = sizeof(a4);
	int p[2], l, c, u, s, m;
	sigset_t mask;
	char buf[64];

	if (argc < 2 || strlen(argv[1]) >= sizeof(un.sun_path)) {
		fprintf(stderr, "usage: fdkinds UNIX_SOCKET_PATH\n");
		return 2;
	}
	ep = show("epoll", epoll_create1(0), 0);
	if (pipe(p)) return 1;
	show("pipe", p[0], 1);
	show("eventfd", eventfd(0, 0), 1);
	show("timerfd", timerfd_create(CLOCK_MONOTONIC, 0), 1);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	show("signalfd", signalfd(-1, &mask, 0), 1);
	show("epoll2", epoll_create1(0), 1);

	l = show("tcp_listen", socket(AF_INET, SOCK_STREAM, 0), 1);
	if (bind(l, (struct sockaddr *)&a4, sizeof(a4)) || listen(l, 8) || getsockname(l, (struct sockaddr *)&a4, &len)) return 1;
	c = show("tcp_client", socket(AF_INET, SOCK_STREAM, 0), 1);
	if (connect(c, (struct sockaddr *)&a4, sizeof(a4))) return 1;
	show("tcp_accepted", accept(l, NULL, NULL), 1);
	show("tcp_unbound", socket(AF_INET, SOCK_STREAM, 0), 1);
	// An IPv6 socket connected to the IPv4 listener: its peer is ::ffff:127.0.0.1.
	s = show("tcp6_mapped", socket(AF_INET6, SOCK_STREAM, 0), 1);
	a6.sin6_port = a4.sin_port;
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
	if (connect(s, (struct sockaddr *)&a6, sizeof(a6))) return 1;
	show("tcp_accepted6", accept(l, NULL, NULL), 1);
	u = show("udp", socket(AF_INET, SOCK_DGRAM, 0), 1);
	if (connect(u, (struct sockaddr *)&a4, sizeof(a4))) return 1;

	m = show("unix_listen", socket(AF_UNIX, SOCK_STREAM, 0), 1);
	strcpy(un.sun_path, argv[1]);
	unlink(argv[1]);
	if (bind(m, (struct sockaddr *)&un, sizeof(un)) || listen(m, 8)) return 1;
	s = show("netlink", socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), 1);
	if (bind(s, (struct sockaddr *)&nl, sizeof(nl))) return 1;
	show("file", open("/etc/passwd", O_RDONLY), 0);
	m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m >= 0 && !grantpt(m) && !unlockpt(m) && ptsname(m)) show("tty", open(ptsname(m), O_RDWR | O_NOCTTY), 1);
	printf("port %d\nready\n", ntohs(a4.sin_port));
	fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		;
	unlink(argv[1]);
	return 0;
}
