/* ocisend: a stand-in OCI runtime for agent tests. Like runc with
 * linux.seccomp.listenerPath, it installs a seccomp filter that sends
 * connect() to a listener, hands the listener to the agent at SOCKET with the
 * state JSON (SCM_RIGHTS), and execs CMD under the filter. Options inject the
 * faults a broken or hostile sender could:
 *   --json STR     the state JSON (default: a runc-like one with our pid)
 *   --split MS     send the JSON in two parts, MS apart (the fd with the first)
 *   --hold MS      keep the connection open MS after sending
 *   --send pipe|file|none   send a pipe with data, a regular file, or no fd instead
 *   --fds N        send the listener N times in one message
 *   --time N       instead of exec: N blocking connects to IP PORT (CMD ARGS),
 *                  one after the other, printing {"errors":E,"us":[...]}
 * Usage: ocisend [options] SOCKET CMD [ARGS...]
 * SOCKET "-": no filter, nothing sent (--time under someone else's filter).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

static int install(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_connect, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

static void send_part(int s, const char *data, size_t len, int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 16)] = { 0 };
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *c;
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	if (sendmsg(s, &msg, 0) != (ssize_t)len) {
		fprintf(stderr, "ocisend: sendmsg: %s\n", strerror(errno));
		exit(127);
	}
}

static long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* N blocking connects, each timed from socket() to close(): what a caller waits. */
static int timed(const char *ip, int port, int n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int errors = 0, first = 0;

	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
		return 127;
	printf("{\"us\":[");
	for (int k = 0; k < n; k++) {
		long t0 = now_us();
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a))) {
			if (!errors++)
				first = errno;
		}
		close(s);
		printf("%s%ld", k ? "," : "", now_us() - t0);
	}
	printf("],\"errors\":%d,\"errno\":\"%s\"}\n", errors, first ? strerrorname_np(first) : "");
	return 0;
}

int main(int argc, char **argv)
{
	const char *json = NULL, *what = "listener";
	int split = 0, hold = 0, nfds = 1, i = 1, time_n = 0;
	char def[512];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s, lfd, fds[16], p[2];
	size_t len;

	for (; i < argc && !strncmp(argv[i], "--", 2); i += 2) {
		if (i + 1 >= argc)
			break;
		if (!strcmp(argv[i], "--json")) json = argv[i + 1];
		else if (!strcmp(argv[i], "--split")) split = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--hold")) hold = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--send")) what = argv[i + 1];
		else if (!strcmp(argv[i], "--fds")) nfds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--time")) time_n = atoi(argv[i + 1]);
	}
	if (argc - i < 2 || nfds < 1 || nfds > 16) {
		fprintf(stderr, "usage: ocisend [--json S] [--split MS] [--hold MS] [--send pipe|file|none] [--fds N] SOCKET CMD [ARGS...]\n");
		return 127;
	}
	if (!json) {
		snprintf(def, sizeof(def), "{\"ociVersion\":\"1.0.2\",\"fds\":[\"seccompFd\"],\"pid\":%d,\"metadata\":\"\","
			 "\"state\":{\"ociVersion\":\"1.0.2\",\"id\":\"ocisend-%d\",\"status\":\"creating\",\"pid\":%d,\"bundle\":\"/\"}}",
			 getpid(), getpid(), getpid());
		json = def;
	}
	if (!strcmp(argv[i], "-"))
		return time_n > 0 && argc - i >= 3 ? timed(argv[i + 1], atoi(argv[i + 2]), time_n) : 127;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[i]);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "ocisend: %s: %s\n", argv[i], strerror(errno));
		return 127;
	}
	lfd = install();
	if (lfd < 0) {
		fprintf(stderr, "ocisend: seccomp: %s\n", strerror(errno));
		return 127;
	}
	if (!strcmp(what, "pipe")) {
		if (pipe(p) || write(p[1], "data\n", 5) != 5)
			return 127;
		fds[0] = p[0];
	} else if (!strcmp(what, "file")) {
		fds[0] = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	} else {
		fds[0] = lfd;
	}
	for (int k = 1; k < nfds; k++)
		fds[k] = fds[0];
	if (!strcmp(what, "none"))
		nfds = 0;
	len = strlen(json);
	if (split && len > 1) {
		send_part(s, json, len / 2, fds, nfds);
		usleep(split * 1000);
		send_part(s, json + len / 2, len - len / 2, NULL, 0);
	} else {
		send_part(s, json, len, fds, nfds);
	}
	if (hold)
		usleep(hold * 1000);
	close(s);
	close(lfd);
	if (time_n > 0)
		return argc - i < 3 ? 127 : timed(argv[i + 1], atoi(argv[i + 2]), time_n);
	execvp(argv[i + 1], argv + i + 1);
	fprintf(stderr, "ocisend: %s: %s\n", argv[i + 1], strerror(errno));
	return 127;
}
