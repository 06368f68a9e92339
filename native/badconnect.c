/* badconnect: connect() with bad arguments, as a hostile or buggy caller would.
 * Usage: badconnect MODE IP PORT   -> prints {"mode":..,"ret":..,"errno":"..."}
 *   badptr    address pointer 0x1 (EFAULT)
 *   unmapped  pointer into an unmapped page (EFAULT)
 *   biglen    addrlen 4096 (EINVAL)
 *   neglen    addrlen -1 (EINVAL)
 *   shortlen  addrlen 8 for an IPv4 address (EINVAL from the kernel)
 *   notsock   connect on a pipe fd (ENOTSOCK)
 *   badfd     connect on fd 999 (EBADF)
 *   block     a plain blocking connect (for hang tests; prints when it returns)
 *   race      two threads connect the same socket at once (prints two lines)
 *   racedup   two threads connect one socket at once, through two numbers (fd
 *             and its dup): two lines, then whether both numbers still hold one
 *             file and it is connected ({"mode":"after","same":1,"peer":1})
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int race_fd[2];
static struct sockaddr_in race_addr;
static pthread_barrier_t race_start;

static void *race(void *arg)
{
	int fd = race_fd[(long)arg], r;

	pthread_barrier_wait(&race_start);
	r = connect(fd, (struct sockaddr *)&race_addr, sizeof(race_addr));
	printf("{\"mode\":\"race\",\"fd\":%d,\"ret\":%d,\"errno\":\"%s\",\"ms\":0}\n", fd, r, r ? strerrorname_np(errno) : "");
	fflush(stdout);
	return arg;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	const char *mode;
	int s, r, p[2];
	struct timespec t0, t1;

	if (argc != 4)
		return 2;
	mode = argv[1];
	inet_pton(AF_INET, argv[2], &a.sin_addr);
	a.sin_port = htons(atoi(argv[3]));
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (!strcmp(mode, "race") || !strcmp(mode, "racedup")) {
		pthread_t t[2];
		struct stat st[2];
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);

		race_fd[0] = s;
		race_fd[1] = strcmp(mode, "racedup") ? s : dup(s);
		race_addr = a;
		pthread_barrier_init(&race_start, NULL, 2);
		for (long i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, race, (void *)i);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		if (race_fd[1] != s) {
			fstat(race_fd[0], &st[0]);
			fstat(race_fd[1], &st[1]);
			printf("{\"mode\":\"after\",\"same\":%d,\"peer\":%d}\n", st[0].st_ino == st[1].st_ino,
			       getpeername(race_fd[1], (struct sockaddr *)&peer, &len) == 0);
		}
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!strcmp(mode, "badptr")) {
		r = connect(s, (struct sockaddr *)1, sizeof(a));
	} else if (!strcmp(mode, "unmapped")) {
		void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		munmap(m, 4096);
		r = connect(s, m, sizeof(a));
	} else if (!strcmp(mode, "biglen")) {
		r = connect(s, (struct sockaddr *)&a, 4096);
	} else if (!strcmp(mode, "neglen")) {
		r = connect(s, (struct sockaddr *)&a, (socklen_t)-1);
	} else if (!strcmp(mode, "shortlen")) {
		r = connect(s, (struct sockaddr *)&a, 8);
	} else if (!strcmp(mode, "notsock")) {
		if (pipe(p))
			return 3;
		r = connect(p[0], (struct sockaddr *)&a, sizeof(a));
	} else if (!strcmp(mode, "badfd")) {
		r = connect(999, (struct sockaddr *)&a, sizeof(a));
	} else {
		r = connect(s, (struct sockaddr *)&a, sizeof(a));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("{\"mode\":\"%s\",\"ret\":%d,\"errno\":\"%s\",\"ms\":%ld}\n", mode, r, r ? strerrorname_np(errno) : "",
	       (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	return 0;
}
