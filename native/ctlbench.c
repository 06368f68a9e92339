/* ctlbench: the cost of an epoll_ctl ADD+DEL pair and of an unrelated syscall.
 * Usage: ctlbench [ITERATIONS] -> {"ctl_pair_ns":N,"getppid_ns":N} (best of 5 runs each) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	int ep = epoll_create1(0), p[2];
	struct epoll_event ev = { .events = EPOLLIN };
	double best_ctl = 1e18, best_sys = 1e18;

	if (ep < 0 || pipe(p) < 0)
		return 1;
	for (int run = 0; run < 5; run++) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++) {
			if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) || epoll_ctl(ep, EPOLL_CTL_DEL, p[0], &ev))
				return 2;
		}
		double t1 = now_ns();
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
		double t2 = now_ns();
		if ((t1 - t0) / n < best_ctl)
			best_ctl = (t1 - t0) / n;
		if ((t2 - t1) / n < best_sys)
			best_sys = (t2 - t1) / n;
	}
	printf("{\"ctl_pair_ns\":%.1f,\"getppid_ns\":%.1f}\n", best_ctl, best_sys);
	return 0;
}
