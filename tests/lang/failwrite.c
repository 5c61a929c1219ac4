/*
 * failwrite.c - an LD_PRELOAD shim that makes a process's writes to files
 * fail with EIO on demand (tests/210: a request that fails half-way).
 *
 * While the file named by MMFS_TEST_FAIL_WRITES exists, the first pwrite
 * or pwritev of the process succeeds and every later one fails with EIO;
 * once the file is gone, writes succeed again (and the count starts over).
 * write(2) and writev(2) are left alone: libfuse answers the kernel with
 * them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int failwrite_count;

/* Whether this write must fail. */
static int failwrite_now(void)
{
	const char *trigger = getenv("MMFS_TEST_FAIL_WRITES");

	if (trigger == NULL || access(trigger, F_OK) != 0) {
		__atomic_store_n(&failwrite_count, 0, __ATOMIC_RELAXED);
		return 0;
	}
	return __atomic_add_fetch(&failwrite_count, 1, __ATOMIC_RELAXED) > 1;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);

	if (failwrite_now()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "pwrite");
	return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	static ssize_t (*real)(int, const struct iovec *, int, off_t);

	if (failwrite_now()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "pwritev");
	return real(fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return pwritev(fd, iov, cnt, off);
}
