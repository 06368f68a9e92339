/* epolltrack-agent-recv: accept seccomp listener fds from OCI runtimes.
 *
 * runc and crun (linux.seccomp.listenerPath) connect to a unix socket and send
 * the container state JSON with the listener fd in SCM_RIGHTS. This program
 * listens on PATH and, for each message, prints
 *   "FD <fd> <json-length>\n<json>\n"
 * keeps the fd open until a line "done <fd>" arrives on stdin (the agent takes
 * its own copy with pidfd_getfd meanwhile), then closes it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_MSG (1 << 20)

static void take(int conn, char *buf)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 8)];
	struct iovec iov = { .iov_base = buf, .iov_len = MAX_MSG - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
	ssize_t total = n;

	if (n <= 0)
		return;
	/* The JSON may come in more than one read after the fd. */
	while (total < MAX_MSG - 1) {
		struct pollfd p = { .fd = conn, .events = POLLIN };
		if (poll(&p, 1, 100) != 1)
			break;
		n = read(conn, buf + total, MAX_MSG - 1 - total);
		if (n <= 0)
			break;
		total += n;
	}
	buf[total] = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)CMSG_DATA(c);
		for (int i = 0; i < nfds; i++) {
			char line[64];

			for (char *p = buf; *p; p++)
				if (*p == '\n')
					*p = ' ';
			printf("FD %d %zu\n%s\n", fds[i], strlen(buf), buf);
			fflush(stdout);
			if (!fgets(line, sizeof(line), stdin))
				exit(0);
			close(fds[i]);
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *buf = malloc(MAX_MSG);
	int s;

	if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path) || !buf) {
		fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
		return 2;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	unlink(argv[1]);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) || chmod(argv[1], 0600) || listen(s, 16)) {
		fprintf(stderr, "agent-recv: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("READY\n");
	fflush(stdout);
	for (;;) {
		int conn = accept4(s, NULL, NULL, SOCK_CLOEXEC);
		if (conn < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		take(conn, buf);
		close(conn);
	}
}
