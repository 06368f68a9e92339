/* timeoconnect: a blocking connect() and read() under SO_SNDTIMEO/SO_RCVTIMEO
 * set before connect. One JSON line: {"connect","connectMs","read","readMs"}
 * with errno names ("ok" for success).
 *
 * Usage: timeoconnect [--sndtimeo MS] [--rcvtimeo MS] IP PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *name(int e)
{
	switch (e) {
	case 0: return "ok";
	case EAGAIN: return "EAGAIN";
	case EINPROGRESS: return "EINPROGRESS";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENOTCONN: return "ENOTCONN";
	default: return strerror(e);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int i, snd = 0, rcv = 0, s, ce, re;
	long t0, cms, rms;
	char buf[16];

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--sndtimeo") && i + 1 < argc) snd = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rcvtimeo") && i + 1 < argc) rcv = atoi(argv[++i]);
	}
	if (argc - i != 2 || inet_pton(AF_INET, argv[i], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: timeoconnect [--sndtimeo MS] [--rcvtimeo MS] IP PORT\n");
		return 2;
	}
	sa.sin_port = htons(atoi(argv[i + 1]));
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (snd) {
		struct timeval tv = { .tv_sec = snd / 1000, .tv_usec = (snd % 1000) * 1000 };
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (rcv) {
		struct timeval tv = { .tv_sec = rcv / 1000, .tv_usec = (rcv % 1000) * 1000 };
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	t0 = now_ms();
	ce = connect(s, (struct sockaddr *)&sa, sizeof(sa)) ? errno : 0;
	cms = now_ms() - t0;
	t0 = now_ms();
	re = ce ? ENOTCONN : (read(s, buf, sizeof(buf)) < 0 ? errno : 0);
	rms = ce ? 0 : now_ms() - t0;
	printf("{\"connect\":\"%s\",\"connectMs\":%ld,\"read\":\"%s\",\"readMs\":%ld}\n", name(ce), cms, name(re), rms);
	return 0;
}
