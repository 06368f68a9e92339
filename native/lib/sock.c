/* libepolltrack-fixup, the supervisor's per-connect probes: what a socket is
 * and how its owner set it up (every option in one call instead of one FFI
 * round trip each), and a bounded read of a stopped caller's memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fixup.h"

int ept_sock_probe(int fd, struct ept_sockprobe *out, const struct ept_optspec *spec, int n, struct ept_optval *vals)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(int);
	int inet;

	memset(out, 0, sizeof(*out));
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &out->type, &len))
		return errno;
	len = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &out->domain, &len);
	len = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &out->protocol, &len);
	out->flags = fcntl(fd, F_GETFL, 0);
	len = sizeof(sa);
	out->connected = getpeername(fd, (struct sockaddr *)&sa, &len) == 0;
	inet = out->domain == AF_INET || out->domain == AF_INET6;
	len = sizeof(sa);
	if (inet && getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		out->local_port = ntohs(((struct sockaddr_in *)&sa)->sin_port); /* same offset in sockaddr_in6 */
	for (int i = 0; i < n; i++) {
		const struct ept_optspec *s = &spec[i];
		socklen_t vlen = s->max <= (int)sizeof(vals[i].val) ? (socklen_t)s->max : sizeof(vals[i].val);

		memset(vals[i].val, 0, sizeof(vals[i].val));
		if (!inet || (s->family && s->family != out->domain) || (s->type && s->type != out->type))
			vals[i].len = EPT_OPT_SKIPPED;
		else
			vals[i].len = getsockopt(fd, s->level, s->name, vals[i].val, &vlen) ? -errno : (int32_t)vlen;
	}
	return 0;
}

long ept_read_mem(int pid, uint64_t addr, void *buf, uint64_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	ssize_t r = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	return r < 0 ? -errno : r;
}
