/* churn: a concurrent writer for the soak (test/soak/soak.ts). Takes its own
 * copies of files another process has open (pidfd_getfd: the same struct file)
 * and churns epoll registrations of them in epoll instances of its own, as
 * fast as it can, until killed:
 *   - ADD / MOD / DEL of a random file in a random epoll, events from a fixed
 *     set, data 0x5eed0000_0000xxxx (so a reader can tell churned entries apart),
 *   - now and then a registration under a dup'd number that is then closed
 *     (the registration stays, under an fd number no longer open),
 *   - now and then an epoll closed (its registrations torn down) and remade.
 * Usage: churn SEED PID FD... ; prints "ready N" once set up (N = its epolls);
 * on SIGTERM prints "ops N" (epoll_ctl calls made) and exits. Dies with its
 * parent (PR_SET_PDEATHSIG). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NEP 2
#define MAXF 64
#define DATA_MAGIC 0x5eed000000000000ULL

static uint64_t rs;
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	stop = 1;
}

static uint32_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (uint32_t)(rs >> 11);
}

int main(int argc, char **argv)
{
	static const uint32_t evs[] = { EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT, EPOLLIN | EPOLLET, EPOLLIN | EPOLLRDHUP };
	int ep[NEP], fds[MAXF], nf = 0, pidfd;
	unsigned long long ops = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: churn SEED PID FD...\n");
		return 2;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGTERM, on_term);
	rs = strtoull(argv[1], NULL, 0) * 2654435761ULL + 1;
	pidfd = syscall(SYS_pidfd_open, atoi(argv[2]), 0);
	if (pidfd < 0) {
		perror("churn: pidfd_open");
		return 1;
	}
	for (int i = 3; i < argc && nf < MAXF; i++) {
		int fd = syscall(SYS_pidfd_getfd, pidfd, atoi(argv[i]), 0);

		if (fd < 0) {
			perror("churn: pidfd_getfd");
			return 1;
		}
		fds[nf++] = fd;
	}
	close(pidfd);
	for (int i = 0; i < NEP; i++)
		if ((ep[i] = epoll_create1(0)) < 0) {
			perror("churn: epoll_create1");
			return 1;
		}
	printf("ready %d\n", NEP);
	fflush(stdout);

	while (!stop) {
		uint32_t r = rnd() % 100;
		int e = ep[rnd() % NEP], f = fds[rnd() % nf];
		struct epoll_event ev = { .events = evs[rnd() % (sizeof(evs) / sizeof(evs[0]))],
					  .data.u64 = DATA_MAGIC | (rnd() & 0xffff) };

		ops++;
		if (r < 40) {
			epoll_ctl(e, EPOLL_CTL_ADD, f, &ev);
		} else if (r < 65) {
			epoll_ctl(e, EPOLL_CTL_MOD, f, &ev);
		} else if (r < 97) {
			epoll_ctl(e, EPOLL_CTL_DEL, f, NULL);
		} else if (r < 99) {
			int d = dup(f);

			if (d >= 0) {
				epoll_ctl(e, EPOLL_CTL_ADD, d, &ev);
				close(d);
			}
		} else {
			int i = rnd() % NEP, n;

			close(ep[i]);
			n = epoll_create1(0);
			if (n < 0)
				return 1;
			ep[i] = n;
		}
	}
	printf("ops %llu\n", ops);
	return 0;
}
