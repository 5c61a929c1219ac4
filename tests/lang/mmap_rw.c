/*
 * mmap_rw.c - read and write a file through mmap(), for the FUSE tests.
 *
 *   mmap_rw write FILE OFFSET STRING
 *       Map FILE MAP_SHARED, PROT_READ|PROT_WRITE, copy STRING to OFFSET,
 *       msync(MS_SYNC).  A file shorter than OFFSET+len(STRING) is first
 *       extended with ftruncate (mapping past the end would fault).
 *   mmap_rw read FILE OFFSET LEN
 *       Map FILE read-only and print the LEN bytes at OFFSET, as they are.
 *   mmap_rw hold FILE SECONDS [OFFSET [MARKER]]
 *       Map the whole FILE read-write and keep it mapped.  Print
 *       "start SUM" (SUM: checksum of the mapped bytes), sleep SECONDS,
 *       write MARKER (default "HELD") at OFFSET (default 0) through the
 *       mapping, msync, print "end SUM" of the bytes then.
 *   mmap_rw sum FILE
 *       Print "sum SUM" of FILE's bytes read with read(2), no mapping, to
 *       compare with what hold saw.
 *
 * SUM is the 64-bit FNV-1a hash of the bytes, 16 hex digits.  Exit status 0
 * on success, 1 on failure (with a message naming the file and the call), 2
 * on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

static int fail(const char *call, const char *file)
{
	int err = errno;
	fprintf(stderr, "mmap_rw: %s %s: %s\n", call, file, strerror(err));
	return 1;
}

static int usage(void)
{
	fprintf(stderr,
	        "usage: mmap_rw write FILE OFFSET STRING\n"
	        "       mmap_rw read FILE OFFSET LEN\n"
	        "       mmap_rw hold FILE SECONDS [OFFSET [MARKER]]\n"
	        "       mmap_rw sum FILE\n");
	return 2;
}

/* Parse a non-negative decimal number; -1 on error. */
static long long parse_num(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < 0)
		return -1;
	return v;
}

/* Map [off, off+len) of fd: the mapping starts at the page holding off. */
static unsigned char *map_range(int fd, int prot, off_t off, size_t len,
                                void **base, size_t *maplen)
{
	long page = sysconf(_SC_PAGESIZE);
	off_t start = off - off % page;
	size_t n = len + (size_t)(off - start);
	void *p = mmap(NULL, n ? n : 1, prot, MAP_SHARED, fd, start);
	if (p == MAP_FAILED)
		return NULL;
	*base = p;
	*maplen = n ? n : 1;
	return (unsigned char *)p + (off - start);
}

static int cmd_write(const char *file, const char *offs, const char *str)
{
	long long off = parse_num(offs);
	size_t len = strlen(str);
	struct stat st;
	void *base;
	size_t maplen;
	unsigned char *p;
	int fd, rc = 1;

	if (off < 0)
		return usage();
	fd = open(file, O_RDWR);
	if (fd < 0)
		return fail("open", file);
	if (fstat(fd, &st) != 0) {
		fail("fstat", file);
		goto out;
	}
	if (st.st_size < off + (long long)len && ftruncate(fd, off + (off_t)len) != 0) {
		fail("ftruncate", file);
		goto out;
	}
	if (len == 0) {
		rc = 0;
		goto out;
	}
	p = map_range(fd, PROT_READ | PROT_WRITE, off, len, &base, &maplen);
	if (!p) {
		fail("mmap", file);
		goto out;
	}
	memcpy(p, str, len);
	if (msync(base, maplen, MS_SYNC) != 0)
		fail("msync", file);
	else
		rc = 0;
	if (munmap(base, maplen) != 0 && rc == 0)
		rc = fail("munmap", file);
out:
	if (close(fd) != 0 && rc == 0)
		rc = fail("close", file);
	return rc;
}

static int cmd_read(const char *file, const char *offs, const char *lens)
{
	long long off = parse_num(offs), len = parse_num(lens);
	struct stat st;
	void *base;
	size_t maplen;
	unsigned char *p;
	int fd, rc = 1;

	if (off < 0 || len < 0)
		return usage();
	fd = open(file, O_RDONLY);
	if (fd < 0)
		return fail("open", file);
	if (fstat(fd, &st) != 0) {
		fail("fstat", file);
		goto out;
	}
	if (off + len > st.st_size) {
		fprintf(stderr, "mmap_rw: read %s: range %lld+%lld is past the end (%lld bytes)\n",
		        file, off, len, (long long)st.st_size);
		goto out;
	}
	if (len == 0) {
		rc = 0;
		goto out;
	}
	p = map_range(fd, PROT_READ, off, (size_t)len, &base, &maplen);
	if (!p) {
		fail("mmap", file);
		goto out;
	}
	if (fwrite(p, 1, (size_t)len, stdout) != (size_t)len || fflush(stdout) != 0)
		fail("write to stdout of", file);
	else
		rc = 0;
	munmap(base, maplen);
out:
	close(fd);
	return rc;
}

static int cmd_hold(const char *file, const char *secs, const char *offs, const char *marker)
{
	long long seconds = parse_num(secs), off = parse_num(offs);
	size_t mlen = strlen(marker);
	struct stat st;
	unsigned char *p;
	size_t len;
	int fd, rc = 1;

	if (seconds < 0 || off < 0)
		return usage();
	fd = open(file, O_RDWR);
	if (fd < 0)
		return fail("open", file);
	if (fstat(fd, &st) != 0) {
		fail("fstat", file);
		goto out;
	}
	len = (size_t)st.st_size;
	if (len == 0 || (size_t)off + mlen > len) {
		fprintf(stderr, "mmap_rw: hold %s: file of %zu bytes too short for the marker "
		        "at %lld\n", file, len, off);
		goto out;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fail("mmap", file);
		goto out;
	}
	printf("start %016" PRIx64 "\n", fnv1a(FNV_OFFSET, p, len));
	fflush(stdout);
	sleep((unsigned)seconds);
	memcpy(p + off, marker, mlen);
	if (msync(p, len, MS_SYNC) != 0) {
		fail("msync", file);
	} else {
		printf("end %016" PRIx64 "\n", fnv1a(FNV_OFFSET, p, len));
		rc = fflush(stdout) != 0;
	}
	munmap(p, len);
out:
	close(fd);
	return rc;
}

static int cmd_sum(const char *file)
{
	unsigned char buf[65536];
	uint64_t h = FNV_OFFSET;
	ssize_t n;
	int fd = open(file, O_RDONLY);

	if (fd < 0)
		return fail("open", file);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		h = fnv1a(h, buf, (size_t)n);
	if (n < 0) {
		fail("read", file);
		close(fd);
		return 1;
	}
	close(fd);
	printf("sum %016" PRIx64 "\n", h);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "write"))
		return cmd_write(argv[2], argv[3], argv[4]);
	if (argc == 5 && !strcmp(argv[1], "read"))
		return cmd_read(argv[2], argv[3], argv[4]);
	if (argc >= 4 && argc <= 6 && !strcmp(argv[1], "hold"))
		return cmd_hold(argv[2], argv[3], argc > 4 ? argv[4] : "0",
		                argc > 5 ? argv[5] : "HELD");
	if (argc == 3 && !strcmp(argv[1], "sum"))
		return cmd_sum(argv[2]);
	return usage();
}
