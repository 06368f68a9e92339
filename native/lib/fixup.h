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
/* At most this many options in a spec (struct ept_connect.unset has a bit each). */
#define EPT_OPTS_MAX 64

_Static_assert(sizeof(struct ept_optval) == 20, "struct ept_optval size");
_Static_assert(offsetof(struct ept_optval, len) == 0, "struct ept_optval len");
_Static_assert(offsetof(struct ept_optval, val) == 4, "struct ept_optval val");

/* A replacement socket that ept_swap makes, sets up and connects itself: on
 * the calling thread (libuv's pool), not the supervisor's event loop. */
struct ept_connect {
	int32_t family;      /* in: socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC) */
	int32_t type;
	int32_t like;        /* in: the old socket (an fd here): its options that differ from a fresh one's are set */
	int32_t bind_port;   /* in: bind to this port first (0: no bind) */
	int32_t addrlen;     /* in: connect to addr */
	int32_t fd;          /* out: the socket made (the caller of ept_swap closes it), or < 0 */
	int32_t connect_err; /* out: 0, EINPROGRESS or the connect's errno */
	int32_t like_domain; /* in: the old socket's address family (its type is `type`) */
	uint64_t unset;      /* out: bit i: option i of the spec could not be set */
	uint64_t ino;        /* out: the socket's inode (0: socket() failed) */
	uint8_t addr[128];   /* in: struct sockaddr_in / sockaddr_in6 */
};

_Static_assert(sizeof(struct ept_connect) == 176, "struct ept_connect size");
_Static_assert(offsetof(struct ept_connect, family) == 0, "struct ept_connect family");
_Static_assert(offsetof(struct ept_connect, type) == 4, "struct ept_connect type");
_Static_assert(offsetof(struct ept_connect, like) == 8, "struct ept_connect like");
_Static_assert(offsetof(struct ept_connect, bind_port) == 12, "struct ept_connect bind_port");
_Static_assert(offsetof(struct ept_connect, addrlen) == 16, "struct ept_connect addrlen");
_Static_assert(offsetof(struct ept_connect, fd) == 20, "struct ept_connect fd");
_Static_assert(offsetof(struct ept_connect, connect_err) == 24, "struct ept_connect connect_err");
_Static_assert(offsetof(struct ept_connect, like_domain) == 28, "struct ept_connect like_domain");
_Static_assert(offsetof(struct ept_connect, unset) == 32, "struct ept_connect unset");
_Static_assert(offsetof(struct ept_connect, ino) == 40, "struct ept_connect ino");
_Static_assert(offsetof(struct ept_connect, addr) == 48, "struct ept_connect addr");

/* Run the requests in order; each gets its errno in ->result. Returns 0, or
 * -errno when the worker thread could not be started (no request ran there). */
int ept_ctl_batch(struct ept_ctl *reqs, int n);

/* The swap in one call: ADD reqs[0..nadd), ADDFD+SETFD of newfd at each fds[i]
 * on notification id, DEL reqs[nadd..n). 0 done, 1 an ADD failed, 2 the first
 * ADDFD failed (both undone), -errno when no worker could run it.
 * With c: the new socket is made first (newfd and the ADDs' file -1 stand for
 * it), set up like c->like (spec[0..nopts) read from it, set where they differ
 * from defaults[]), bound, connected; 3 when that fails (nothing else done). */
int ept_swap(int listener, uint64_t id, int newfd, struct ept_addfd *fds, int nfds, struct ept_ctl *reqs, int nadd, int n,
	     struct ept_connect *c, const struct ept_optspec *spec, const struct ept_optval *defaults, int nopts);

/* Numbers below limit of process pid holding the file at its fd (kcmp); count or -errno. */
int ept_copies(int pid, int fd, int limit, int32_t *out, int max);

/* IORING_REGISTER_FILES_UPDATE of slot in ring to fd; 0 or errno. */
int ept_uring_update(int ring, unsigned slot, int fd);

/* What fd is, and the value of each spec[i] into vals[i]; 0, or errno when fd is not a socket. */
int ept_sock_probe(int fd, struct ept_sockprobe *out, const struct ept_optspec *spec, int n, struct ept_optval *vals);

/* Make, set up, bind and connect the replacement of struct ept_connect (see there); 0 or errno. */
int ept_sock_make(struct ept_connect *c, const struct ept_optspec *spec, const struct ept_optval *defaults, int nopts);

/* Read len bytes at addr of process pid (process_vm_readv): bytes read, or -errno. */
long ept_read_mem(int pid, uint64_t addr, void *buf, uint64_t len);

#endif
