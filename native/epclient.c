/* epclient: registers a TCP socket in epoll BEFORE connect(), connects, waits
 * for EPOLLOUT, sends "ping\n", reads the answer through epoll, then checks
 * that EPOLL_CTL_MOD and EPOLL_CTL_DEL on the socket still work. Prints one
 * JSON line per connection. A broken registration shows as "timeout".
 *
 * Usage: epclient [options] IP PORT
 *   --block        blocking connect (default non-blocking)
 *   --et --oneshot --exclusive    epoll flags
 *   --epolls N     register in N epoll instances (1-2)
 *   --dup          dup() the socket before connect (the old file stays alive)
 *   --fork         fork before connect: a child shares the epoll and the socket
 *   --threads N    N threads, each with its own socket, one shared epoll
 *   --epoll-per-thread   each thread its own epoll for all its connects (an event loop per thread; with one thread too)
 *   --timeout MS   how long to wait for each event (default 3000)
 *   --sleep MS     sleep before exiting (lets a test look at the process)
 *   --fds N        first open /dev/null until the process holds N fds
 *   --repeat K     K connections one after the other (benchmarks; per thread with --threads)
 *   --poll-if-lost wait with poll() on the socket for an event epoll did not report,
 *                  so the exchange happens anyway (benchmarks without the fix-up:
 *                  the same work; the connection still does not count as ok)
 *   --quiet        print one summary line instead of a line per connection:
 *                  {"n","ok","pong","t0","t1","us":[connect() call durations in µs, sorted]}
 *                  pong: connections that got the answer (through epoll or not)
 *                  t0/t1: CLOCK_MONOTONIC µs when the first connection began
 *                  and the last one ended
 * Each line also has "us": how long the connect() call itself took, in µs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int opt_block, opt_et, opt_oneshot, opt_excl, opt_epolls = 1, opt_dup, opt_fork, opt_threads = 1;
static int opt_timeout = 3000, opt_sleep, opt_fds, opt_repeat = 1, opt_quiet, opt_poll_lost;
static long *q_us;
static int q_n, q_ok, q_pong;
static long q_t0, q_t1;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static int shared_ep[2] = { -1, -1 };
static __thread int thread_ep[2] = { -1, -1 };
static int opt_ep_per_thread;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* Wait on @ep until @fd reports one of @want; returns the events or 0 on timeout. */
static long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Threads share one epoll: an event for another thread's socket is handed
 * over through this table instead of being lost (EPOLLET reports it once).
 * Each entry is (generation << 32 | events), and a registration's data is
 * (generation << 32 | fd): a late event of a closed socket can then never be
 * taken for one of the next socket at the same number. */
static uint64_t seen[4096];
static uint32_t next_gen;

/* OR @ev into the entry of @data's fd if it still belongs to @data's socket. */
static void seen_or(uint64_t data, unsigned ev)
{
	uint64_t *e = &seen[(uint32_t)data & 4095], cur = __atomic_load_n(e, __ATOMIC_SEQ_CST);

	while ((cur >> 32) == (data >> 32) && !__atomic_compare_exchange_n(e, &cur, cur | ev, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

/* Take the @want bits of @data's entry; 0 if none (or the entry is another socket's). */
static unsigned seen_take(uint64_t data, unsigned want)
{
	uint64_t *e = &seen[(uint32_t)data & 4095], cur = __atomic_load_n(e, __ATOMIC_SEQ_CST);

	while ((cur >> 32) == (data >> 32) && (cur & want)) {
		if (__atomic_compare_exchange_n(e, &cur, cur & ~(uint64_t)want, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			return (unsigned)cur & want;
	}
	return 0;
}

static unsigned wait_for(int ep, uint64_t me, unsigned want)
{
	struct epoll_event evs[16];
	long end = now_ms() + opt_timeout;

	while (now_ms() < end) {
		unsigned mine = seen_take(me, want);
		if (mine)
			return mine;
		int n = epoll_wait(ep, evs, 16, 50);
		unsigned got = 0;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == me && (evs[i].events & want))
				got |= evs[i].events;
			else
				seen_or(evs[i].data.u64, evs[i].events);
		}
		if (got)
			return got;
		if (n > 0)
			usleep(1000); /* level-triggered events we do not want come back at once */
	}
	return 0;
}

/* --poll-if-lost: the event epoll did not report, waited for on the fd itself
 * (the exchange still happens; the connection does not count as ok). */
static int polled(int s, short ev)
{
	struct pollfd p = { .fd = s, .events = ev };

	return opt_poll_lost && poll(&p, 1, 5000) == 1 && (p.revents & ev);
}

static void *one(void *arg)
{
	int idx = (int)(long)arg, s, r, cerr = 0, mod = -1, del = -1, dupfd = -1;
	uint64_t me;
	long us = 0;
	unsigned out_ev = 0, in_ev = 0, base = EPOLLIN | EPOLLOUT;
	char reply[64] = "";
	int eps[2];

	s = socket(addr.ss_family, SOCK_STREAM | (opt_block ? 0 : SOCK_NONBLOCK), 0);
	me = (uint64_t)__atomic_add_fetch(&next_gen, 1, __ATOMIC_SEQ_CST) << 32 | (uint32_t)s;
	__atomic_store_n(&seen[s & 4095], me & ~0xffffffffULL, __ATOMIC_SEQ_CST); /* this socket's, nothing in it yet */
	if (opt_et)
		base |= EPOLLET;
	if (opt_oneshot)
		base |= EPOLLONESHOT;
	if (opt_excl)
		base = (base & ~EPOLLONESHOT) | EPOLLEXCLUSIVE;
	for (int i = 0; i < opt_epolls; i++) {
		struct epoll_event ev = { .events = base, .data.u64 = me };
		eps[i] = thread_ep[i] >= 0 ? thread_ep[i] : shared_ep[i] >= 0 ? shared_ep[i] : epoll_create1(0);
		if (epoll_ctl(eps[i], EPOLL_CTL_ADD, s, &ev))
			perror("epoll_ctl ADD");
	}
	if (opt_dup)
		dupfd = dup(s);
	if (opt_fork && fork() == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* holds the epoll and the old socket until the parent exits */
		if (getppid() == 1)
			_exit(0);
		pause();
		_exit(0);
	}
	{
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = connect(s, (struct sockaddr *)&addr, addrlen);
		cerr = r ? errno : 0;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
	}
	if (r == 0 || cerr == EINPROGRESS) {
		out_ev = wait_for(eps[0], me, EPOLLOUT);
		if ((out_ev || polled(s, POLLOUT)) && write(s, "ping\n", 5) == 5) {
			if (opt_oneshot) { /* re-arm for the answer */
				struct epoll_event ev = { .events = (base & ~EPOLLOUT), .data.u64 = me };
				epoll_ctl(eps[0], EPOLL_CTL_MOD, s, &ev);
			}
			in_ev = wait_for(eps[0], me, EPOLLIN);
			if (in_ev || polled(s, POLLIN)) {
				ssize_t n = read(s, reply, sizeof(reply) - 1);
				reply[n > 0 ? n : 0] = 0;
				reply[strcspn(reply, "\r\n\"\\")] = 0;
			}
		}
	}
	{
		struct epoll_event ev = { .events = EPOLLIN | (opt_excl ? EPOLLEXCLUSIVE : 0), .data.u64 = s };
		mod = epoll_ctl(eps[0], EPOLL_CTL_MOD, s, &ev) ? errno : 0;
		if (opt_excl && mod == EINVAL)
			mod = 0; /* MOD is never allowed on EPOLLEXCLUSIVE registrations */
		for (int i = 0; i < opt_epolls; i++) {
			int d = epoll_ctl(eps[i], EPOLL_CTL_DEL, s, &ev) ? errno : 0;
			if (i == 0 || d)
				del = d;
		}
	}
	pthread_mutex_lock(&out_lock);
	if (opt_quiet) {
		q_t1 = now_us();
		q_us[q_n++] = us;
		q_ok += out_ev && in_ev && !strcmp(reply, "pong") && !mod && !del;
		q_pong += !strcmp(reply, "pong");
	} else {
		printf("{\"i\":%d,\"pid\":%d,\"fd\":%d,\"connect\":\"%s\",\"out\":%s,\"in\":%s,\"reply\":\"%s\",\"mod\":%d,\"del\":%d,\"us\":%ld}\n",
		       idx, getpid(), s, cerr ? strerror(cerr) : "ok", out_ev ? "true" : "false", in_ev ? "true" : "false",
		       reply, mod, del, us);
		fflush(stdout);
	}
	pthread_mutex_unlock(&out_lock);
	if (dupfd >= 0)
		close(dupfd);
	close(s);
	for (int i = 0; i < opt_epolls; i++)
		if (shared_ep[i] < 0 && thread_ep[i] < 0)
			close(eps[i]);
	return NULL;
}

static void *many(void *arg)
{
	if (opt_ep_per_thread)
		for (int e = 0; e < opt_epolls; e++)
			thread_ep[e] = epoll_create1(0);
	for (int k = 0; k < opt_repeat; k++)
		one(arg);
	return NULL;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int i;
	pthread_t th[64];

	signal(SIGCHLD, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		if (!strcmp(argv[i], "--block")) opt_block = 1;
		else if (!strcmp(argv[i], "--et")) opt_et = 1;
		else if (!strcmp(argv[i], "--oneshot")) opt_oneshot = 1;
		else if (!strcmp(argv[i], "--exclusive")) opt_excl = 1;
		else if (!strcmp(argv[i], "--dup")) opt_dup = 1;
		else if (!strcmp(argv[i], "--fork")) opt_fork = 1;
		else if (!strcmp(argv[i], "--epolls") && i + 1 < argc) opt_epolls = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc) opt_threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) opt_timeout = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--sleep") && i + 1 < argc) opt_sleep = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--fds") && i + 1 < argc) opt_fds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) opt_repeat = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--quiet")) opt_quiet = 1;
		else if (!strcmp(argv[i], "--poll-if-lost")) opt_poll_lost = 1;
		else if (!strcmp(argv[i], "--epoll-per-thread")) opt_ep_per_thread = 1;
		else { fprintf(stderr, "epclient: unknown option %s\n", argv[i]); return 2; }
	}
	if (argc - i != 2 || opt_epolls < 1 || opt_epolls > 2 || opt_threads < 1 || opt_threads > 64) {
		fprintf(stderr, "usage: epclient [options] IP PORT\n");
		return 2;
	}
	{
		struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
		int port = atoi(argv[i + 1]);

		if (inet_pton(AF_INET, argv[i], &a4->sin_addr) == 1) {
			a4->sin_family = AF_INET;
			a4->sin_port = htons(port);
			addrlen = sizeof(*a4);
		} else if (inet_pton(AF_INET6, argv[i], &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
			a6->sin6_port = htons(port);
			addrlen = sizeof(*a6);
		} else {
			fprintf(stderr, "epclient: bad address %s\n", argv[i]);
			return 2;
		}
	}
	q_us = calloc((size_t)opt_threads * opt_repeat, sizeof(*q_us));
	if (opt_fds) {
		struct rlimit rl;
		int have = 0;

		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		for (int fd = 0; fd < (int)rl.rlim_cur; fd++)
			if (fcntl(fd, F_GETFD) >= 0)
				have++;
		while (have < opt_fds && open("/dev/null", O_RDONLY) >= 0)
			have++;
	}
	q_t0 = now_us();
	if (opt_threads > 1) {
		for (int e = 0; e < opt_epolls && !opt_ep_per_thread; e++)
			shared_ep[e] = epoll_create1(0);
		for (int t = 0; t < opt_threads; t++)
			pthread_create(&th[t], NULL, many, (void *)(long)t);
		for (int t = 0; t < opt_threads; t++)
			pthread_join(th[t], NULL);
	} else {
		for (int e = 0; e < opt_epolls && opt_ep_per_thread; e++)
			thread_ep[e] = epoll_create1(0); /* the one thread's event loop */
		for (int k = 0; k < opt_repeat; k++)
			one((void *)(long)k);
	}
	if (opt_quiet) {
		qsort(q_us, q_n, sizeof(*q_us), cmp_long);
		printf("{\"n\":%d,\"ok\":%d,\"pong\":%d,\"t0\":%ld,\"t1\":%ld,\"us\":[", q_n, q_ok, q_pong, q_t0, q_t1);
		for (int k = 0; k < q_n; k++)
			printf("%s%ld", k ? "," : "", q_us[k]);
		printf("]}\n");
		fflush(stdout);
	}
	if (opt_sleep)
		usleep(opt_sleep * 1000);
	return 0;
}
