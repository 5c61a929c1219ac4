/*
 * readrace.c - readers that bypass the kernel's cache race writers that
 * free and reuse pages, and syncs that make freed pages reusable
 * (tests/190: a read without the lock never sees a page reused under it).
 *
 *   readrace MOUNT DIR SECONDS
 *
 * DIR (inside the mount at MOUNT) gets RR_FILES files of RR_PAGES pages.
 * Every 8-byte word of a page holds its file's number and the version of
 * the write that made it.  Writers overwrite whole files (copy-on-write:
 * the old pages are freed), a syncer sets user.mmfs.sync on MOUNT (freed
 * pages become reusable), and readers read two pages at a time with
 * O_DIRECT (each such read is a READ request).  A page is right if all its
 * words are one word of its own file; a page of another file means a read
 * was served from reused pages.  Prints the counts; exits 1 on a wrong
 * page or a failed call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define RR_FILES 8
#define RR_PAGES 16
#define RR_PAGE 4096
#define RR_WRITERS 2
#define RR_READERS 3

static const char *rr_mount, *rr_dir;
static double rr_end;
static long rr_reads, rr_writes, rr_syncs, rr_bad, rr_failed;

static double rr_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rr_path(char *out, size_t size, int f)
{
	snprintf(out, size, "%s/r%d", rr_dir, f);
}

static void rr_fail(const char *what, const char *path)
{
	fprintf(stderr, "readrace: %s %s: %s\n", what, path, strerror(errno));
	__atomic_add_fetch(&rr_failed, 1, __ATOMIC_RELAXED);
}

static int rr_write(int f, uint64_t version, uint64_t *buf)
{
	char path[4096];
	uint64_t word = ((uint64_t)f << 48) | version;
	int fd;

	for (size_t i = 0; i < RR_PAGES * RR_PAGE / 8; i++)
		buf[i] = word;
	rr_path(path, sizeof path, f);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	if (fd < 0 || pwrite(fd, buf, RR_PAGES * RR_PAGE, 0) != RR_PAGES * RR_PAGE) {
		rr_fail("write", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void *rr_writer(void *arg)
{
	uint64_t *buf = malloc(RR_PAGES * RR_PAGE);
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
	uint64_t version = (uint64_t)(uintptr_t)arg << 32;

	while (buf != NULL && rr_now() < rr_end && !rr_failed) {
		if (rr_write(rand_r(&seed) % RR_FILES, ++version, buf) != 0)
			break;
		__atomic_add_fetch(&rr_writes, 1, __ATOMIC_RELAXED);
	}
	free(buf);
	return NULL;
}

static void *rr_syncer(void *arg)
{
	(void)arg;
	while (rr_now() < rr_end && !rr_failed) {
		if (setxattr(rr_mount, "user.mmfs.sync", "1", 1, 0) != 0) {
			rr_fail("setxattr user.mmfs.sync on", rr_mount);
			break;
		}
		__atomic_add_fetch(&rr_syncs, 1, __ATOMIC_RELAXED);
		usleep(2000);
	}
	return NULL;
}

static void *rr_reader(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 104729u + 3;
	char path[4096];
	void *mem = NULL;

	if (posix_memalign(&mem, RR_PAGE, 2 * RR_PAGE) != 0)
		return NULL;
	uint64_t *buf = mem;
	while (rr_now() < rr_end && !rr_failed) {
		int f = rand_r(&seed) % RR_FILES;
		off_t at = (off_t)(rand_r(&seed) % (RR_PAGES - 1)) * RR_PAGE;
		rr_path(path, sizeof path, f);
		int fd = open(path, O_RDONLY | O_DIRECT);
		if (fd < 0 || pread(fd, buf, 2 * RR_PAGE, at) != 2 * RR_PAGE) {
			rr_fail("O_DIRECT read", path);
			if (fd >= 0)
				close(fd);
			break;
		}
		close(fd);
		for (int p = 0; p < 2; p++) {
			const uint64_t *w = buf + p * (RR_PAGE / 8);
			int ok = (int)(w[0] >> 48) == f;
			for (size_t i = 1; ok && i < RR_PAGE / 8; i++)
				ok = w[i] == w[0];
			if (!ok) {
				fprintf(stderr, "readrace: %s page %lld: words of file %d version %#" PRIx64
				        " (first word %#" PRIx64 ", last %#" PRIx64 ")\n", path,
				        (long long)(at / RR_PAGE + p), (int)(w[0] >> 48),
				        (uint64_t)(w[0] & 0xffffffffffffull), w[0], w[RR_PAGE / 8 - 1]);
				__atomic_add_fetch(&rr_bad, 1, __ATOMIC_RELAXED);
			}
		}
		__atomic_add_fetch(&rr_reads, 1, __ATOMIC_RELAXED);
	}
	free(mem);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[RR_WRITERS + RR_READERS + 1];
	uint64_t *buf;
	int n = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: readrace MOUNT DIR SECONDS\n");
		return 2;
	}
	rr_mount = argv[1];
	rr_dir = argv[2];
	buf = malloc(RR_PAGES * RR_PAGE);
	for (int f = 0; buf != NULL && f < RR_FILES; f++)
		if (rr_write(f, 0, buf) != 0)
			return 1;
	free(buf);
	if (setxattr(rr_mount, "user.mmfs.sync", "1", 1, 0) != 0) {
		rr_fail("setxattr user.mmfs.sync on", rr_mount);
		return 1;
	}
	rr_end = rr_now() + atof(argv[3]);
	for (long i = 0; i < RR_WRITERS; i++)
		pthread_create(&th[n++], NULL, rr_writer, (void *)i);
	for (long i = 0; i < RR_READERS; i++)
		pthread_create(&th[n++], NULL, rr_reader, (void *)i);
	pthread_create(&th[n++], NULL, rr_syncer, NULL);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	printf("reads=%ld writes=%ld syncs=%ld bad=%ld failed=%ld\n", rr_reads, rr_writes,
	       rr_syncs, rr_bad, rr_failed);
	return rr_bad || rr_failed ? 1 : 0;
}
