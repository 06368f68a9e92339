/* libepolltrack-fixup's interface, shared with src/supervise/fixup.ts, which
 * writes struct ept_ctl with the byte offsets asserted here (EPT_CTL there;
 * test/supervise/fixup.unit.test.ts reads these asserts and compares).
 */
#ifndef EPOLLTRACK_FIXUP_H
#define EPOLLTRACK_FIXUP_H

#include <stddef.h>
#include <stdint.h>

struct ept_ctl {
	int32_t op;      /* EPOLL_CTL_ADD / DEL / MOD */
	int32_t epfd;    /* the epoll, an fd of this process */
	int32_t file;    /* the target file, an fd of this process */
	int32_t tfd;     /* the number the registration is keyed by */
	uint32_t events;
	uint32_t result; /* 0 or errno */
	uint64_t data;
};

_Static_assert(sizeof(struct ept_ctl) == 32, "struct ept_ctl size");
_Static_assert(offsetof(struct ept_ctl, op) == 0, "struct ept_ctl op");
_Static_assert(offsetof(struct ept_ctl, epfd) == 4, "struct ept_ctl epfd");
_Static_assert(offsetof(struct ept_ctl, file) == 8, "struct ept_ctl file");
_Static_assert(offsetof(struct ept_ctl, tfd) == 12, "struct ept_ctl tfd");
_Static_assert(offsetof(struct ept_ctl, events) == 16, "struct ept_ctl events");
_Static_assert(offsetof(struct ept_ctl, result) == 20, "struct ept_ctl result");
_Static_assert(offsetof(struct ept_ctl, data) == 24, "struct ept_ctl data");

/* One number of the caller to install the new file at (SECCOMP_ADDFD_FLAG_SETFD). */
struct ept_addfd {
	int32_t fd;      /* the caller's number */
	uint32_t flags;  /* O_CLOEXEC or 0 */
	int32_t result;  /* 0 or errno */
	int32_t pad;
};

_Static_assert(sizeof(struct ept_addfd) == 16, "struct ept_addfd size");
_Static_assert(offsetof(struct ept_addfd, fd) == 0, "struct ept_addfd fd");
_Static_assert(offsetof(struct ept_addfd, flags) == 4, "struct ept_addfd flags");
_Static_assert(offsetof(struct ept_addfd, result) == 8, "struct ept_addfd result");

/* What a socket is (ept_sock_probe): SO_TYPE/DOMAIN/PROTOCOL, F_GETFL flags,
 * whether it has a peer, and its local port (AF_INET/AF_INET6). */
struct ept_sockprobe {
	int32_t type;
	int32_t domain;
	int32_t protocol;
	int32_t flags;
	int32_t connected;
	int32_t local_port;
};

_Static_assert(sizeof(struct ept_sockprobe) == 24, "struct ept_sockprobe size");
_Static_assert(offsetof(struct ept_sockprobe, type) == 0, "struct ept_sockprobe type");
_Static_assert(offsetof(struct ept_sockprobe, domain) == 4, "struct ept_sockprobe domain");
_Static_assert(offsetof(struct ept_sockprobe, protocol) == 8, "struct ept_sockprobe protocol");
_Static_assert(offsetof(struct ept_sockprobe, flags) == 12, "struct ept_sockprobe flags");
_Static_assert(offsetof(struct ept_sockprobe, connected) == 16, "struct ept_sockprobe connected");
_Static_assert(offsetof(struct ept_sockprobe, local_port) == 20, "struct ept_sockprobe local_port");

/* One socket option to read: getsockopt(level, name) of up to max bytes,
 * only on sockets of this family and type (0: any). */
struct ept_optspec {
	int32_t level;
	int32_t name;
	int32_t max;
	int32_t family;
	int32_t type;
};

_Static_assert(sizeof(struct ept_optspec) == 20, "struct ept_optspec size");
_Static_assert(offsetof(struct ept_optspec, level) == 0, "struct ept_optspec level");
_Static_assert(offsetof(struct ept_optspec, name) == 4, "struct ept_optspec name");
_Static_assert(offsetof(struct ept_optspec, max) == 8, "struct ept_optspec max");
_Static_assert(offsetof(struct ept_optspec, family) == 12, "struct ept_optspec family");
_Static_assert(offsetof(struct ept_optspec, type) == 16, "struct ept_optspec type");

/* Its value: len bytes read, -errno, or EPT_OPT_SKIPPED (not for this socket). */
struct ept_optval {
	int32_t len;
	uint8_t val[16];
};

#define EPT_OPT_SKIPPED (-100000)

_Static_assert(sizeof(struct ept_optval) == 20, "struct ept_optval size");
_Static_assert(offsetof(struct ept_optval, len) == 0, "struct ept_optval len");
_Static_assert(offsetof(struct ept_optval, val) == 4, "struct ept_optval val");

/* Run the requests in order; each gets its errno in ->result. Returns 0, or
 * -errno when the worker thread could not be started (no request ran there). */
int ept_ctl_batch(struct ept_ctl *reqs, int n);

/* The swap in one call: connect newfd to addr when addrlen (its errno, 0 or
 * EINPROGRESS, into *connect_err), ADD reqs[0..nadd), ADDFD+SETFD of newfd at
 * each fds[i] on notification id, DEL reqs[nadd..n). 0 done, 1 an ADD failed,
 * 2 the first ADDFD failed (both undone), 3 the connect failed (nothing done),
 * -errno when no worker could run it. */
int ept_swap(int listener, uint64_t id, int newfd, struct ept_addfd *fds, int nfds, struct ept_ctl *reqs, int nadd, int n,
	     const void *addr, uint32_t addrlen, int32_t *connect_err);

/* Numbers below limit of process pid holding the file at its fd (kcmp); count or -errno. */
int ept_copies(int pid, int fd, int limit, int32_t *out, int max);

/* IORING_REGISTER_FILES_UPDATE of slot in ring to fd; 0 or errno. */
int ept_uring_update(int ring, unsigned slot, int fd);

/* What fd is, and the value of each spec[i] into vals[i]; 0, or errno when fd is not a socket. */
int ept_sock_probe(int fd, struct ept_sockprobe *out, const struct ept_optspec *spec, int n, struct ept_optval *vals);

/* Read len bytes at addr of process pid (process_vm_readv): bytes read, or -errno. */
long ept_read_mem(int pid, uint64_t addr, void *buf, uint64_t len);

#endif
