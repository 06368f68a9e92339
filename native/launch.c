/* epolltrack-launch: run a command under a seccomp filter that sends connect()
 * to a supervisor (SECCOMP_RET_USER_NOTIF).
 *
 * Usage: launch CTLFD CMD [ARGS...]
 * Installs the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER, writes the
 * listener fd number as "L <fd>\n" to CTLFD, waits for one line from CTLFD
 * (the supervisor has taken the listener with pidfd_getfd), closes both and
 * execs CMD. Threads and children of CMD inherit the filter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define WAIT_KILLABLE_RECV (1UL << 5)
#else
#define WAIT_KILLABLE_RECV SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#endif

static int install(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW), /* other ABIs: not intercepted */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_connect, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	int fd;

	/* Without CAP_SYS_ADMIN a filter needs no_new_privs. */
	if (geteuid() != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	/* Once the supervisor has received a connect, a signal must not interrupt the
	 * wait: the caller would see EINTR, or a restarted connect would find the
	 * swapped socket (EALREADY/EISCONN). WAIT_KILLABLE_RECV (5.19, "seccomp: Add
	 * wait_killable semantic to seccomp user notifier")
	 * makes that wait killable only; older kernels refuse the flag with EINVAL
	 * and the supervisor handles the restart instead.
	 * EPOLLTRACK_NO_WAIT_KILLABLE=1 leaves the flag off (tests of that path). */
	fd = getenv("EPOLLTRACK_NO_WAIT_KILLABLE") ? -1 : syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
								  SECCOMP_FILTER_FLAG_NEW_LISTENER | WAIT_KILLABLE_RECV, &prog);
	if (fd < 0 && (errno == EINVAL || getenv("EPOLLTRACK_NO_WAIT_KILLABLE")))
		fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	return fd;
}

int main(int argc, char **argv)
{
	char line[32];
	int ctl, lfd;
	FILE *f;

	if (argc < 3) {
		fprintf(stderr, "usage: %s CTLFD CMD [ARGS...]\n", argv[0]);
		return 127;
	}
	ctl = atoi(argv[1]);
	lfd = install();
	if (lfd < 0) {
		fprintf(stderr, "epolltrack-launch: installing the seccomp filter failed: %s\n", strerror(errno));
		return 127;
	}
	f = fdopen(ctl, "r+");
	if (!f || fprintf(f, "L %d\n", lfd) < 0 || fflush(f) || !fgets(line, sizeof(line), f) || strncmp(line, "go", 2)) {
		fprintf(stderr, "epolltrack-launch: the supervisor did not take the listener\n");
		return 127;
	}
	fclose(f);
	close(lfd);
	execvp(argv[2], argv + 2);
	fprintf(stderr, "epolltrack-launch: %s: %s\n", argv[2], strerror(errno));
	return 127;
}
