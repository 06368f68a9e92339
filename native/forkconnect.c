/* forkconnect: one socket shared by a parent and its fork child, registered
 * before connect() in an epoll both hold and in an epoll of each one's own.
 * One of them connects; then each checks, in turn, that EPOLL_CTL_MOD and
 * EPOLL_CTL_DEL on its own fd still work in both epolls. One JSON line per
 * process: {"who","connect","peer","modOwn","modShared","delOwn","delShared"}.
 *
 * Usage: forkconnect parent|child IP PORT   (who connects)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int ctl(int ep, int op, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = fd };

	return epoll_ctl(ep, op, fd, &ev) ? errno : 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 1 };
	int s, shared, own, a[2], b[2], connector, child, cerr = 0, peer;
	char c = 0;
	pid_t pid;

	if (argc != 4 || inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: forkconnect parent|child IP PORT\n");
		return 2;
	}
	sa.sin_port = htons(atoi(argv[3]));
	s = socket(AF_INET, SOCK_STREAM, 0);
	shared = epoll_create1(0);
	epoll_ctl(shared, EPOLL_CTL_ADD, s, &ev);
	if (pipe(a) || pipe(b))
		return 1;
	pid = fork();
	child = pid == 0;
	connector = !strcmp(argv[1], "child") ? child : !child;
	own = epoll_create1(0);
	ev.data.u64 = 2;
	epoll_ctl(own, EPOLL_CTL_ADD, s, &ev);
	/* both registered before anyone connects */
	if (child) {
		write(a[1], "r", 1);
		read(b[0], &c, 1);
	} else {
		read(a[0], &c, 1);
		write(b[1], "r", 1);
	}
	if (connector) {
		cerr = connect(s, (struct sockaddr *)&sa, sizeof(sa)) ? errno : 0;
	} else {
		read(child ? b[0] : a[0], &c, 1); /* the connector is done */
	}
	{
		struct sockaddr_in p;
		socklen_t len = sizeof(p);
		peer = getpeername(s, (struct sockaddr *)&p, &len) == 0;
	}
	{
		int mo = ctl(own, EPOLL_CTL_MOD, s), ms = ctl(shared, EPOLL_CTL_MOD, s);
		int dox = ctl(own, EPOLL_CTL_DEL, s), dsh = ctl(shared, EPOLL_CTL_DEL, s);

		printf("{\"who\":\"%s\",\"connector\":%s,\"connect\":%d,\"peer\":%s,\"modOwn\":%d,\"modShared\":%d,\"delOwn\":%d,\"delShared\":%d}\n",
		       child ? "child" : "parent", connector ? "true" : "false", cerr, peer ? "true" : "false", mo, ms, dox, dsh);
		fflush(stdout);
	}
	if (connector)
		write(child ? a[1] : b[1], "d", 1);
	if (!child)
		waitpid(pid, NULL, 0);
	return 0;
}
