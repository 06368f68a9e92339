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
#include <sys/stat.h>
#include <sys/uio.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "fixup.h"

/* The value of each spec[i] on fd, a socket of (domain, type), into vals[i]. */
static void read_opts(int fd, int domain, int type, const struct ept_optspec *spec, int n, struct ept_optval *vals)
{
	int inet = domain == AF_INET || domain == AF_INET6;

	for (int i = 0; i < n; i++) {
		const struct ept_optspec *s = &spec[i];
		socklen_t vlen = s->max <= (int)sizeof(vals[i].val) ? (socklen_t)s->max : sizeof(vals[i].val);

		memset(vals[i].val, 0, sizeof(vals[i].val));
		if (!inet || (s->family && s->family != domain) || (s->type && s->type != type))
			vals[i].len = EPT_OPT_SKIPPED;
		else
			vals[i].len = getsockopt(fd, s->level, s->name, vals[i].val, &vlen) ? -errno : (int32_t)vlen;
	}
}

int ept_sock_probe(int fd, struct ept_sockprobe *out, const struct ept_optspec *spec, int n, struct ept_optval *vals)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(int);

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
	len = sizeof(sa);
	if ((out->domain == AF_INET || out->domain == AF_INET6) && getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		out->local_port = ntohs(((struct sockaddr_in *)&sa)->sin_port); /* same offset in sockaddr_in6 */
	read_opts(fd, out->domain, out->type, spec, n, vals);
	return 0;
}

/*
 * The replacement socket of struct ept_connect: made, set up like c->like, a
 * socket of (c->like_domain, c->type) (each option of spec read from it that
 * differs from defaults, the fresh socket's, is set; SO_RCVBUF/SO_SNDBUF
 * halved, as the kernel doubles them; options of the other address family
 * skipped), bound to c->bind_port,
 * connected to c->addr. 0 with c->fd and c->connect_err (0 or EINPROGRESS);
 * when socket() or connect() fails, that errno (also in c->connect_err), c->fd -1.
 */
int ept_sock_make(struct ept_connect *c, const struct ept_optspec *spec, const struct ept_optval *defaults, int nopts)
{
	struct ept_optval vals[EPT_OPTS_MAX];
	struct stat st;
	int fd;

	c->unset = 0;
	c->connect_err = 0;
	fd = socket(c->family, c->type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		c->connect_err = errno;
		c->fd = -1;
		return c->connect_err;
	}
	if (c->like >= 0 && nopts <= EPT_OPTS_MAX) {
		read_opts(c->like, c->like_domain, c->type, spec, nopts, vals);
		for (int i = 0; i < nopts; i++) {
			const struct ept_optspec *s = &spec[i];
			int32_t len = vals[i].len;
			uint8_t *v = vals[i].val;
			int half;

			if (len < 0 || (len == defaults[i].len && !memcmp(v, defaults[i].val, len)))
				continue; /* not read, or as a fresh socket has it */
			if ((s->level == IPPROTO_IP && c->family != AF_INET) || (s->level == IPPROTO_IPV6 && c->family != AF_INET6))
				continue; /* the other address family's */
			if (s->level == SOL_SOCKET && (s->name == SO_RCVBUF || s->name == SO_SNDBUF) && len >= 4) {
				memcpy(&half, v, sizeof(half));
				half /= 2;
				memcpy(v, &half, sizeof(half));
			}
			if (s->level == IPPROTO_TCP && s->name == TCP_CONGESTION)
				len = strnlen((char *)v, len);
			if (setsockopt(fd, s->level, s->name, v, len) && i < 64)
				c->unset |= 1ULL << i;
		}
	}
	if (c->bind_port) {
		struct sockaddr_storage any = { .ss_family = c->family };

		((struct sockaddr_in *)&any)->sin_port = htons(c->bind_port); /* same offset in sockaddr_in6 */
		/* best effort: the caller's port may be taken in this namespace */
		(void)!bind(fd, (struct sockaddr *)&any, c->family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	}
	if (!fstat(fd, &st))
		c->ino = st.st_ino;
	if (connect(fd, (struct sockaddr *)c->addr, c->addrlen)) {
		c->connect_err = errno;
		if (c->connect_err != EINPROGRESS) {
			close(fd);
			c->fd = -1;
			return c->connect_err;
		}
	}
	c->fd = fd;
	return 0;
}

long ept_read_mem(int pid, uint64_t addr, void *buf, uint64_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)(uintptr_t)addr, .iov_len = len };
	ssize_t r = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	return r < 0 ? -errno : r;
}
