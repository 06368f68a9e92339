/* epolltrack-fixup: epoll_ctl with a chosen fd number, from an fd table of its own.
 *
 * An epoll registration is keyed by (file, fd number). To re-create one for a
 * new file under the original number N, the file must sit at N in the caller's
 * table; this helper has a table of its own where it can put it there.
 *
 * One request per line on stdin, one answer per line on stdout:
 *   ctl OP EPID EFD FPID FFD TFD EVENTS DATA
 *     OP: 1 ADD, 2 DEL, 3 MOD; the epoll is fd EFD of process EPID, the file is
 *     fd FFD of process FPID (both taken with pidfd_getfd); the file is put at
 *     TFD and epoll_ctl(epoll, OP, TFD, {EVENTS (hex), DATA (decimal)}) is run.
 *   -> "ok" or "err ERRNO STEP"
 * Every fd it takes is closed before the answer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static int getfd(int pid, int fd)
{
	int pfd = syscall(SYS_pidfd_open, pid, 0), r;

	if (pfd < 0)
		return -1;
	r = syscall(SYS_pidfd_getfd, pfd, fd, 0);
	close(pfd);
	return r;
}

int main(void)
{
	struct rlimit rl;
	char line[256];

	/* TFD can be any number the supervised process uses. */
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		int op, epid, efd, fpid, ffd, tfd, ep = -1, file = -1, err = 0;
		unsigned int events;
		unsigned long long data;
		const char *step = "parse";

		if (sscanf(line, "ctl %d %d %d %d %d %d %x %llu", &op, &epid, &efd, &fpid, &ffd, &tfd, &events, &data) != 8) {
			printf("err %d parse\n", EINVAL);
			continue;
		}
		step = "epoll";
		ep = getfd(epid, efd);
		if (ep < 0) {
			err = errno;
			goto out;
		}
		if (ep == tfd) { /* keep TFD free for the file */
			int moved = dup(ep);

			close(ep);
			ep = moved;
			if (ep < 0) {
				err = errno;
				goto out;
			}
		}
		step = "file";
		file = getfd(fpid, ffd);
		if (file < 0) {
			err = errno;
			goto out;
		}
		step = "dup2";
		if (file != tfd && dup2(file, tfd) < 0) {
			err = errno;
			goto out;
		}
		step = "epoll_ctl";
		{
			struct epoll_event ev = { .events = events, .data.u64 = data };
			if (epoll_ctl(ep, op, tfd, &ev))
				err = errno;
		}
		if (file != tfd)
			close(tfd);
out:
		if (ep >= 0)
			close(ep);
		if (file >= 0)
			close(file);
		if (err)
			printf("err %d %s\n", err, step);
		else
			printf("ok\n");
	}
	return 0;
}
