/* udpclient: a UDP socket registered in epoll before connect(), connected,
 * "ping" sent, the answer read through epoll, then EPOLL_CTL_MOD/DEL checked.
 * One JSON line: {"connect","in","reply","mod","del","peer"}.
 *
 * Usage: udpclient IP PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET }, p;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 42 }, got;
	socklen_t len = sizeof(p);
	char reply[64] = "";
	int s, ep, cerr, in = 0, mod, del, peer;

	if (argc != 3 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: udpclient IP PORT\n");
		return 2;
	}
	sa.sin_port = htons(atoi(argv[2]));
	s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	ep = epoll_create1(0);
	epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
	cerr = connect(s, (struct sockaddr *)&sa, sizeof(sa)) ? errno : 0;
	peer = getpeername(s, (struct sockaddr *)&p, &len) == 0;
	if (!cerr && send(s, "ping", 4, 0) == 4 && epoll_wait(ep, &got, 1, 3000) == 1 && got.data.u64 == 42) {
		ssize_t n = recv(s, reply, sizeof(reply) - 1, 0);
		in = 1;
		reply[n > 0 ? n : 0] = 0;
		reply[strcspn(reply, "\r\n\"\\")] = 0;
	}
	mod = epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev) ? errno : 0;
	del = epoll_ctl(ep, EPOLL_CTL_DEL, s, &ev) ? errno : 0;
	printf("{\"connect\":%d,\"peer\":%s,\"in\":%s,\"reply\":\"%s\",\"mod\":%d,\"del\":%d}\n", cerr, peer ? "true" : "false",
	       in ? "true" : "false", reply, mod, del);
	return 0;
}
