/* sigconnect: connect() while signals rain on the process, and count what
 * connect returned. A second thread sends SIGUSR1 to the connecting thread
 * every few microseconds. One JSON line: {"ok","einprogress","eintr",
 * "ealready","eisconn","other","connected"} (connected: getpeername worked
 * after the connect, once any EINPROGRESS connect has finished).
 *
 * Usage: sigconnect [--block] [--restart] [--n N] [--every US] IP PORT
 * (--every: microseconds between signals, default 20)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile int done;
static pid_t target;
static int every = 20;

static void on_sig(int sig) { (void)sig; }

static void *rain(void *arg)
{
	(void)arg;
	while (!done) {
		syscall(SYS_tgkill, getpid(), target, SIGUSR1);
		usleep(every);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int block = 0, restart = 0, n = 100, i, ok = 0, inprog = 0, intr = 0, already = 0, isconn = 0, other = 0, connected = 0;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct sigaction act = { .sa_handler = on_sig };
	pthread_t t;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--block")) block = 1;
		else if (!strcmp(argv[i], "--restart")) restart = 1;
		else if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--every") && i + 1 < argc) every = atoi(argv[++i]);
	}
	if (argc - i != 2 || inet_pton(AF_INET, argv[i], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: sigconnect [--block] [--restart] [--n N] [--every US] IP PORT\n");
		return 2;
	}
	sa.sin_port = htons(atoi(argv[i + 1]));
	act.sa_flags = restart ? SA_RESTART : 0;
	sigaction(SIGUSR1, &act, NULL);
	target = gettid();
	pthread_create(&t, NULL, rain, NULL);
	for (int k = 0; k < n; k++) {
		int s = socket(AF_INET, SOCK_STREAM | (block ? 0 : SOCK_NONBLOCK), 0), e;
		int r = connect(s, (struct sockaddr *)&sa, sizeof(sa));
		struct sockaddr_in p;
		socklen_t len = sizeof(p);

		e = r ? errno : 0;
		if (!e) ok++;
		else if (e == EINPROGRESS) inprog++;
		else if (e == EINTR) intr++;
		else if (e == EALREADY) already++;
		else if (e == EISCONN) isconn++;
		else other++;
		if (e == EINPROGRESS || e == EINTR || e == EALREADY) {
			struct pollfd pfd = { .fd = s, .events = POLLOUT };
			while (poll(&pfd, 1, 2000) < 0 && errno == EINTR)
				;
		}
		if (getpeername(s, (struct sockaddr *)&p, &len) == 0)
			connected++;
		close(s);
	}
	done = 1;
	pthread_join(t, NULL);
	printf("{\"ok\":%d,\"einprogress\":%d,\"eintr\":%d,\"ealready\":%d,\"eisconn\":%d,\"other\":%d,\"connected\":%d}\n",
	       ok, inprog, intr, already, isconn, other, connected);
	return 0;
}
