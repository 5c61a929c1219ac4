/*
 * slowio.c - an LD_PRELOAD shim that makes a process's large file reads
 * and writes slow on demand (tests/190: a slow disk must not hold other
 * requests up, and must not let a reader see pages reused under it).
 *
 * While the file named by MMFS_TEST_SLOW_IO exists, every pread, preadv,
 * pwrite, pwritev and splice of at least MMFS_TEST_SLOW_MIN bytes (default
 * 8192) first sleeps MMFS_TEST_SLOW_US microseconds (default 300000).
 * While it sleeps in a read, the file "$MMFS_TEST_SLOW_IO.read" exists
 * (and ".write" for a write), so that a test knows the daemon is inside
 * one.  Smaller calls (the engine's own page reads) are left alone, and
 * so are writes if MMFS_TEST_SLOW_WHAT is "read" (reads if "write").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int slowio_inside; /* calls sleeping now (atomic) */

/* Sleep first if the trigger is there and the call is big enough; `kind`
 * names the marker file made meanwhile. */
static void slowio_maybe(size_t n, const char *kind)
{
	const char *trigger = getenv("MMFS_TEST_SLOW_IO");
	const char *v;
	char marker[PATH_MAX];
	long min = 8192, us = 300000;
	int fd;

	if (trigger == NULL || access(trigger, F_OK) != 0)
		return;
	if ((v = getenv("MMFS_TEST_SLOW_WHAT")) != NULL && *v && strcmp(v, kind) != 0)
		return;
	if ((v = getenv("MMFS_TEST_SLOW_MIN")) != NULL)
		min = strtol(v, NULL, 10);
	if ((v = getenv("MMFS_TEST_SLOW_US")) != NULL)
		us = strtol(v, NULL, 10);
	if ((long)n < min)
		return;
	snprintf(marker, sizeof marker, "%s.%s", trigger, kind);
	__atomic_add_fetch(&slowio_inside, 1, __ATOMIC_ACQ_REL);
	fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	usleep((useconds_t)us);
	if (__atomic_sub_fetch(&slowio_inside, 1, __ATOMIC_ACQ_REL) == 0)
		unlink(marker);
}

static size_t slowio_iov_bytes(const struct iovec *iov, int cnt)
{
	size_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* The next definition of `name`, looked up once, as a `type`. */
#define SLOWIO_REAL(name, type) \
	static type real; \
	if (real == NULL) \
		*(void **)&real = dlsym(RTLD_NEXT, name)

typedef ssize_t (*slowio_rw_fn)(int, void *, size_t, off_t);
typedef ssize_t (*slowio_w_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*slowio_v_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*slowio_splice_fn)(int, loff_t *, int, loff_t *, size_t, unsigned int);

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	SLOWIO_REAL("pread", slowio_rw_fn);
	slowio_maybe(n, "read");
	return real(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	return pread(fd, buf, n, off);
}

ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	SLOWIO_REAL("preadv", slowio_v_fn);
	slowio_maybe(slowio_iov_bytes(iov, cnt), "read");
	return real(fd, iov, cnt, off);
}

ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return preadv(fd, iov, cnt, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	SLOWIO_REAL("pwrite", slowio_w_fn);
	slowio_maybe(n, "write");
	return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	SLOWIO_REAL("pwritev", slowio_v_fn);
	slowio_maybe(slowio_iov_bytes(iov, cnt), "write");
	return real(fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return pwritev(fd, iov, cnt, off);
}

/* libfuse splices a read reply from the store file into a pipe: a read of
 * the store when fd_in is a regular file. */
ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
               unsigned int flags)
{
	struct stat st;

	SLOWIO_REAL("splice", slowio_splice_fn);
	if (fstat(fd_in, &st) == 0 && S_ISREG(st.st_mode))
		slowio_maybe(len, "read");
	return real(fd_in, off_in, fd_out, off_out, len, flags);
}
