/*
 * test_data.c - value bytes (src/data.c): read/write against a reference
 * buffer, inline <-> extent conversion, truncate, sparse values, SEEK_DATA/
 * SEEK_HOLE, fallocate and hole punching, mms_map, extent counts of
 * sequential writes, MMS_FULL, persistence and damaged extents.
 *
 * Every test works on a fresh store in its own temporary directory.
 */
#define MMS_TEST_HOOKS 1 /* links tests/libmms_test.la: mms_file_test_tight_map */
#include "mms_int.h"
#include "tap.h"

#include <inttypes.h>
#include <stdint.h>
#include <sys/stat.h>

#define KiB (1024ull)
#define MiB (1024ull * 1024)
#define GiB (1024ull * 1024 * 1024)
#define TiB (1024ull * GiB)
#define PG ((uint64_t)MMS_PAGE_SIZE)

static char store_path[4096];

/* A deterministic pseudo-random generator (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void fill_pattern(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((seed + i) * 131 + (seed >> 8) + 7);
}

/* Open a fresh store (max_size 0: unlimited) in a new temporary directory. */
static mms_env *fresh_store(uint64_t max_size)
{
	mms_env *env = NULL;
	snprintf(store_path, sizeof store_path, "%s/store.mms", tap_tmpdir());
	struct mms_options o = { .flags = MMS_CREATE, .max_size = max_size };
	int rc = mms_open(store_path, &o, &env);
	if (!ok(rc == 0, "open a fresh store %s", store_path)) {
		tap_diag("mms_open: %s (%s)", mms_strerror(rc), mms_open_detail());
		return NULL;
	}
	return env;
}

static mms_env *reopen_store(void)
{
	mms_env *env = NULL;
	struct mms_options o = { .flags = 0 };
	int rc = mms_open(store_path, &o, &env);
	if (!ok(rc == 0, "reopen %s", store_path)) {
		tap_diag("mms_open: %s (%s)", mms_strerror(rc), mms_open_detail());
		return NULL;
	}
	return env;
}

static uint64_t mkfile(mms_env *env, const char *name, size_t len)
{
	struct mms_stat st;
	int rc = mms_mknod(env, MMS_ROOT_INO, name, len, S_IFREG | 0644, 0, 0, &st);
	if (rc) {
		tap_diag("mms_mknod %s: %s (%s)", name, mms_strerror(rc), mms_errdetail(env));
		return 0;
	}
	return st.ino;
}

static struct mms_stat getattr(mms_env *env, uint64_t ino)
{
	struct mms_stat st;
	memset(&st, 0, sizeof st);
	int rc = mms_getattr(env, ino, &st);
	if (rc)
		tap_diag("mms_getattr %" PRIu64 ": %s", ino, mms_strerror(rc));
	return st;
}

static int do_write(mms_env *env, uint64_t ino, const void *buf, size_t len, uint64_t off)
{
	int rc = mms_write(env, ino, buf, len, off);
	if (rc)
		tap_diag("mms_write ino %" PRIu64 " %zu@%" PRIu64 ": %s (%s)", ino, len, off,
		         mms_strerror(rc), mms_errdetail(env));
	return rc;
}

/* Compare value bytes [off, off+len) with want; len must not pass the size. */
static int same_bytes(mms_env *env, uint64_t ino, const uint8_t *want, size_t len, uint64_t off)
{
	uint8_t *got = malloc(len ? len : 1);
	size_t n = 0;
	int rc = mms_read(env, ino, got, len, off, &n);
	int same = rc == 0 && n == len && memcmp(got, want, len) == 0;
	if (!same) {
		if (rc)
			tap_diag("mms_read %zu@%" PRIu64 ": %s (%s)", len, off, mms_strerror(rc),
			         mms_errdetail(env));
		else if (n != len)
			tap_diag("mms_read %zu@%" PRIu64 ": got %zu bytes", len, off, n);
		else
			for (size_t i = 0; i < len; i++)
				if (got[i] != want[i]) {
					tap_diag("first difference at byte %" PRIu64 ": got %u, want %u",
					         off + i, got[i], want[i]);
					break;
				}
	}
	free(got);
	return same;
}

/* True if value bytes [off, off+len) read as zeros. */
static int all_zero(mms_env *env, uint64_t ino, size_t len, uint64_t off)
{
	uint8_t *z = calloc(1, len ? len : 1);
	int r = same_bytes(env, ino, z, len, off);
	free(z);
	return r;
}

/* Number of non-hole pieces of the whole value, or -1. */
static long data_pieces(mms_env *env, uint64_t ino)
{
	static struct mms_extent ext[4096];
	size_t count = 0;
	long n = 0;
	int rc = mms_map(env, ino, 0, UINT64_MAX, ext, 4096, &count);
	if (rc) {
		tap_diag("mms_map: %s", mms_strerror(rc));
		return -1;
	}
	for (size_t i = 0; i < count; i++)
		if (!(ext[i].flags & MMS_MAP_HOLE))
			n++;
	return n;
}

static long long store_disk_bytes(void)
{
	struct stat st;
	if (stat(store_path, &st) != 0)
		return -1;
	return (long long)st.st_blocks * 512;
}

/* ---- Tests --------------------------------------------------------------- */

/* Random writes and reads against a reference buffer. */
/* mms_write in two steps, as mmfs makes it: *deferred counts the writes
 * that left copies for mms_deferred_run. */
static int do_write_deferred(mms_env *env, uint64_t ino, const void *buf, size_t len,
                             uint64_t off, int *deferred)
{
	struct mms_deferred d;
	int rc = mms_write_deferred(env, ino, buf, len, off, &d);
	if (rc == 0 && d.n > 0) {
		(*deferred)++;
		rc = mms_deferred_run(env, &d);
	}
	if (rc)
		tap_diag("mms_write_deferred ino %" PRIu64 " %zu@%" PRIu64 ": %s (%s)", ino, len, off,
		         mms_strerror(rc), mms_errdetail(env));
	return rc;
}

/* Random writes against a reference buffer; `deferred`: through
 * mms_write_deferred, with syncs now and then, so that copies on write
 * are deferred too. */
static void test_random_rw(int deferred)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	int ndeferred = 0;
	uint64_t ino = mkfile(env, "random", 6);
	const size_t cap = 3 * MiB;
	uint8_t *ref = calloc(1, cap), *src = malloc(256 * KiB);
	uint8_t *touched = calloc(1, cap / PG + 1);
	uint64_t size = 0, pages = 0;
	int failures = 0;

	for (int i = 0; i < 300 && failures == 0; i++) {
		size_t len = rnd_below(4) == 0 ? (size_t)rnd_below(256 * KiB) + 1 : (size_t)rnd_below(9000) + 1;
		uint64_t off = rnd_below(cap - len);
		fill_pattern(src, len, rnd());
		if (deferred ? do_write_deferred(env, ino, src, len, off, &ndeferred)
		             : do_write(env, ino, src, len, off)) {
			failures++;
			break;
		}
		if (deferred && i % 20 == 0)
			mms_sync(env);
		memcpy(ref + off, src, len);
		for (uint64_t pg = off / PG; pg < (off + len + PG - 1) / PG; pg++)
			touched[pg] = 1;
		if (off + len > size)
			size = off + len;
		if (i % 25 == 0 && rnd_below(2))
			mms_commit(env);
		/* Check a random range that the write overlaps. */
		uint64_t roff = off > 5000 ? off - rnd_below(5000) : 0;
		uint64_t rlen = len + rnd_below(10000);
		if (roff + rlen > size)
			rlen = size - roff;
		if (!same_bytes(env, ino, ref + roff, (size_t)rlen, roff))
			failures++;
	}
	ok(failures == 0, "300 random writes%s read back as the reference",
	   deferred ? " (deferred)" : "");
	if (deferred)
		ok(ndeferred > 20, "%d of them left copies to run after the change", ndeferred);
	struct mms_stat st = getattr(env, ino);
	is_int(st.size, size, "size is the end of the furthest write");
	ok(same_bytes(env, ino, ref, (size_t)size, 0), "the whole value matches the reference");
	for (uint64_t pg = 0; pg <= cap / PG; pg++)
		pages += touched[pg];
	ok(st.blocks == pages * PG, "blocks %" PRIu64 ": exactly the %" PRIu64 " pages written",
	   st.blocks, pages);

	/* Short reads only at the end. */
	uint8_t buf[100];
	size_t n = 1234;
	int rc = mms_read(env, ino, buf, sizeof buf, size - 10, &n);
	ok(rc == 0 && n == 10, "a read across the end is short (%zu bytes)", n);
	rc = mms_read(env, ino, buf, sizeof buf, size + 5, &n);
	ok(rc == 0 && n == 0, "a read past the end returns 0 bytes");
	rc = mms_read(env, ino, buf, sizeof buf, UINT64_MAX - 3, &n);
	ok(rc == 0 && n == 0, "a read at UINT64_MAX-3 returns 0 bytes");

	is_int(mms_close(env), 0, "close");
	free(ref);
	free(src);
	free(touched);
}

/* Inline values: the boundary, conversion, sparse writes of small values. */
static void test_inline(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	uint8_t ref[8192], buf[8192];
	struct mms_extent ext[8];
	size_t count = 0;
	memset(ref, 0, sizeof ref);

	uint64_t a = mkfile(env, "a", 1);
	fill_pattern(ref, 1000, 1);
	do_write(env, a, ref, 1000, 0);
	struct mms_stat st = getattr(env, a);
	ok(st.size == 1000 && st.blocks == st.size, "a 1000-byte value is inline (size %" PRIu64
	   ", blocks %" PRIu64 ")", st.size, st.blocks);
	int rc = mms_map(env, a, 0, 5000, ext, 8, &count);
	ok(rc == 0 && count == 1 && ext[0].flags == MMS_MAP_INLINE && ext[0].logical == 0 &&
	   ext[0].length == 1000 && memcmp(ext[0].data, ref, 1000) == 0,
	   "mms_map gives one inline piece with the bytes");
	rc = mms_map(env, a, 100, 50, ext, 8, &count);
	ok(rc == 0 && count == 1 && ext[0].logical == 100 && ext[0].length == 50 &&
	   memcmp(ext[0].data, ref + 100, 50) == 0, "mms_map of an inline sub-range");

	const size_t lim = MMS_INLINE_MAX;
	fill_pattern(ref + 1000, lim - 1000, 2);
	do_write(env, a, ref + 1000, lim - 1000, 1000);
	st = getattr(env, a);
	ok(st.size == MMS_INLINE_MAX && st.blocks == st.size, "exactly MMS_INLINE_MAX bytes stay inline");
	ok(same_bytes(env, a, ref, MMS_INLINE_MAX, 0), "inline bytes read back");

	fill_pattern(ref + lim, 1, 3);
	do_write(env, a, ref + lim, 1, lim);
	st = getattr(env, a);
	ok(st.size == lim + 1 && st.blocks == PG, "one more byte moves the value to an extent (blocks %"
	   PRIu64 ")", st.blocks);
	ok(same_bytes(env, a, ref, lim + 1, 0), "converted bytes read back");
	rc = mms_map(env, a, 0, 5000, ext, 8, &count);
	ok(rc == 0 && count == 1 && ext[0].flags == 0 && ext[0].length == lim + 1 &&
	   ext[0].physical % PG == 0, "mms_map gives one extent piece");
	if (rc == 0 && count == 1) {
		ssize_t r = pread(mms_fd(env), buf, lim + 1, (off_t)ext[0].physical);
		ok(r == (ssize_t)lim + 1 && memcmp(buf, ref, lim + 1) == 0, "the mapped file bytes are the value");
	}

	/* A write at a sparse position of an empty value. */
	uint64_t b = mkfile(env, "b", 1);
	do_write(env, b, "hello", 5, 500);
	st = getattr(env, b);
	ok(st.size == 505 && st.blocks == st.size, "a small sparse write stays inline");
	memset(ref, 0, sizeof ref);
	memcpy(ref + 500, "hello", 5);
	ok(same_bytes(env, b, ref, 505, 0), "bytes before a sparse inline write are zeros");

	uint64_t c = mkfile(env, "c", 1);
	do_write(env, c, "world", 5, 2000);
	st = getattr(env, c);
	ok(st.size == 2005 && st.blocks == PG, "a sparse write past the inline limit uses a page");
	memset(ref, 0, sizeof ref);
	memcpy(ref + 2000, "world", 5);
	ok(same_bytes(env, c, ref, 2005, 0), "bytes before it are zeros");

	/* An inline value extended far away keeps its bytes in page 0. */
	do_write(env, b, "far", 3, 1 * GiB);
	st = getattr(env, b);
	ok(st.size == GiB + 3 && st.blocks == 2 * PG, "inline value written at 1 GiB: 2 pages (blocks %"
	   PRIu64 ")", st.blocks);
	ok(same_bytes(env, b, ref + 0, 500, 0) && same_bytes(env, b, (const uint8_t *)"hello", 5, 500),
	   "its first bytes survive the conversion");
	ok(same_bytes(env, b, (const uint8_t *)"far", 3, GiB), "the far bytes read back");
	ok(all_zero(env, b, 8192, 512 * MiB), "the middle is a hole");

	/* Directories have no bytes. */
	size_t n;
	is_int(mms_write(env, MMS_ROOT_INO, "x", 1, 0), MMS_ISDIR, "write to a directory: MMS_ISDIR");
	is_int(mms_read(env, MMS_ROOT_INO, buf, 1, 0, &n), MMS_ISDIR, "read of a directory: MMS_ISDIR");
	is_int(mms_truncate(env, MMS_ROOT_INO, 0), MMS_ISDIR, "truncate of a directory: MMS_ISDIR");
	is_int(mms_write(env, 999999, "x", 1, 0), MMS_NOTFOUND, "write to a missing inode: MMS_NOTFOUND");

	/* Size limits. */
	is_int(mms_write(env, a, "xy", 2, MMS_SIZE_MAX - 1), MMS_TOOBIG, "a write past MMS_SIZE_MAX: MMS_TOOBIG");
	is_int(mms_write(env, a, "xy", 2, UINT64_MAX - 1), MMS_TOOBIG, "a write whose end overflows: MMS_TOOBIG");
	st = getattr(env, a);
	is_int(st.size, lim + 1, "failed writes leave the size");
	is_int(do_write(env, a, "end", 3, MMS_SIZE_MAX - 3), 0, "a write ending exactly at MMS_SIZE_MAX");
	st = getattr(env, a);
	ok(st.size == MMS_SIZE_MAX && st.blocks == 2 * PG, "size MMS_SIZE_MAX with 2 pages");
	ok(same_bytes(env, a, (const uint8_t *)"end", 3, MMS_SIZE_MAX - 3), "the last bytes read back");
	is_int(mms_truncate(env, a, MMS_SIZE_MAX + 1), MMS_TOOBIG, "truncate past MMS_SIZE_MAX: MMS_TOOBIG");

	is_int(mms_close(env), 0, "close");
}

/* Truncate down and up; the tail of the last kept page is zeroed. */
static void test_truncate(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	static uint8_t ref[40000];
	uint64_t f = mkfile(env, "f", 1);
	fill_pattern(ref, 10000, 11);
	do_write(env, f, ref, 10000, 0);
	struct mms_stat st = getattr(env, f);
	ok(st.size == 10000 && st.blocks == 3 * PG, "10000 bytes: 3 pages");
	struct timespec before = st.mtime;

	is_int(mms_truncate(env, f, 5000), 0, "truncate to 5000");
	st = getattr(env, f);
	ok(st.size == 5000 && st.blocks == 2 * PG, "5000 bytes: 2 pages (blocks %" PRIu64 ")", st.blocks);
	ok(st.mtime.tv_sec > before.tv_sec ||
	   (st.mtime.tv_sec == before.tv_sec && st.mtime.tv_nsec >= before.tv_nsec), "mtime moves on");
	ok(same_bytes(env, f, ref, 5000, 0), "kept bytes intact");
	is_int(mms_truncate(env, f, 9000), 0, "truncate up to 9000");
	st = getattr(env, f);
	ok(st.size == 9000 && st.blocks == 2 * PG, "growing adds no pages (blocks %" PRIu64 ")", st.blocks);
	ok(all_zero(env, f, 4000, 5000), "the grown part reads zeros (tail of page 1 was zeroed)");
	ok(same_bytes(env, f, ref, 5000, 0), "old bytes still there");

	/* The zeroed tail persists: write past it, then read it. */
	do_write(env, f, "Z", 1, 20000);
	ok(all_zero(env, f, 15000, 5000), "bytes between old data and a later write are zeros");

	is_int(mms_truncate(env, f, 100), 0, "truncate to 100");
	st = getattr(env, f);
	ok(st.size == 100 && st.blocks == PG, "100 bytes keep one page (blocks %" PRIu64 ")", st.blocks);
	ok(same_bytes(env, f, ref, 100, 0), "first 100 bytes intact");
	is_int(mms_truncate(env, f, 4096 * 3), 0, "truncate up to 3 pages");
	ok(all_zero(env, f, 4096 * 3 - 100, 100), "all but the first 100 bytes are zero");
	is_int(mms_truncate(env, f, 0), 0, "truncate to 0");
	st = getattr(env, f);
	ok(st.size == 0 && st.blocks == 0, "empty: no blocks");
	size_t n = 7;
	uint8_t buf[16];
	ok(mms_read(env, f, buf, sizeof buf, 0, &n) == 0 && n == 0, "an empty value reads 0 bytes");

	/* Inline truncation. */
	uint64_t g = mkfile(env, "g", 1);
	fill_pattern(ref, 500, 12);
	do_write(env, g, ref, 500, 0);
	is_int(mms_truncate(env, g, 200), 0, "inline truncate to 200");
	is_int(mms_truncate(env, g, 800), 0, "inline truncate up to 800");
	st = getattr(env, g);
	ok(st.size == 800 && st.blocks == st.size, "still inline");
	ok(same_bytes(env, g, ref, 200, 0) && all_zero(env, g, 600, 200), "inline tail zeroed");
	is_int(mms_truncate(env, g, 100000), 0, "inline truncate up past the inline limit");
	st = getattr(env, g);
	ok(st.size == 100000 && st.blocks <= PG, "100000 bytes, at most one page (blocks %" PRIu64 ")", st.blocks);
	ok(same_bytes(env, g, ref, 200, 0) && all_zero(env, g, 100000 - 200, 200), "bytes and zeros after growth");
	is_int(mms_truncate(env, g, 0), 0, "truncate to 0");
	st = getattr(env, g);
	ok(st.size == 0 && st.blocks == 0, "empty again");

	/* Truncate to the middle of a large value frees its tail. */
	uint64_t h = mkfile(env, "h", 1);
	uint8_t *big = malloc(4 * MiB);
	fill_pattern(big, 4 * MiB, 13);
	do_write(env, h, big, 4 * MiB, 0);
	struct mms_info before_info, after_info;
	mms_stats(env, &before_info);
	is_int(mms_truncate(env, h, MiB + 7), 0, "truncate 4 MiB to 1 MiB + 7");
	mms_stats(env, &after_info);
	st = getattr(env, h);
	ok(st.blocks == MiB + PG, "blocks: 257 pages (%" PRIu64 ")", st.blocks);
	ok(before_info.data_bytes - after_info.data_bytes == 4 * MiB - MiB - PG,
	   "store data bytes drop by the freed pages (%" PRIu64 " -> %" PRIu64 ")",
	   before_info.data_bytes, after_info.data_bytes);
	ok(same_bytes(env, h, big, MiB + 7, 0), "kept bytes intact");
	mms_truncate(env, h, 2 * MiB);
	ok(all_zero(env, h, MiB - 7, MiB + 7), "regrown range reads zeros");
	free(big);

	is_int(mms_close(env), 0, "close");
}

/* A 1 TiB sparse value costs nothing. */
static void test_sparse(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	uint64_t f = mkfile(env, "huge", 4);
	mms_commit(env);
	long long disk0 = store_disk_bytes();
	is_int(mms_truncate(env, f, TiB), 0, "truncate to 1 TiB");
	uint8_t page[4096];
	fill_pattern(page, sizeof page, 21);
	do_write(env, f, page, sizeof page, TiB - sizeof page);
	do_write(env, f, page, 100, 512 * GiB + 5);
	is_int(mms_commit(env), 0, "commit");
	long long disk1 = store_disk_bytes();
	struct mms_stat st = getattr(env, f);
	ok(st.size == TiB, "size is 1 TiB");
	ok(st.blocks == 2 * PG, "two pages allocated (blocks %" PRIu64 ")", st.blocks);
	ok(disk1 - disk0 < (long long)(2 * MiB), "store file grew by %lld bytes on disk", disk1 - disk0);
	ok(all_zero(env, f, 65536, 100 * GiB), "a hole reads zeros");
	ok(same_bytes(env, f, page, 4096, TiB - 4096), "last page reads back");
	ok(same_bytes(env, f, page, 100, 512 * GiB + 5), "middle bytes read back");
	ok(all_zero(env, f, 5, 512 * GiB), "bytes before the middle write are zero");
	ok(all_zero(env, f, 4096 - 105, 512 * GiB + 105), "bytes after the middle write are zero");
	is_int(mms_truncate(env, f, 0), 0, "truncate to 0");
	st = getattr(env, f);
	ok(st.size == 0 && st.blocks == 0, "no blocks left");
	is_int(mms_close(env), 0, "close");
}

static int seek_is(mms_env *env, uint64_t ino, uint64_t off, int whence, uint64_t want)
{
	uint64_t got = 12345;
	int rc = mms_seek(env, ino, off, whence, &got);
	int r = ok(rc == 0 && got == want, "%s from %" PRIu64 " gives %" PRIu64,
	           whence == MMS_SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE", off, want);
	if (!r)
		tap_diag("rc %s, got %" PRIu64, mms_strerror(rc), got);
	return r;
}

/* SEEK_DATA/SEEK_HOLE on a sparse layout. */
static void test_seek(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	uint64_t f = mkfile(env, "sparse", 6);
	uint8_t buf[2 * 4096];
	uint64_t got;
	fill_pattern(buf, sizeof buf, 31);
	is_int(mms_seek(env, f, 0, MMS_SEEK_DATA, &got), MMS_NXIO, "SEEK_DATA on an empty value: MMS_NXIO");
	mms_truncate(env, f, 100 * PG - 100);
	is_int(mms_seek(env, f, 0, MMS_SEEK_DATA, &got), MMS_NXIO, "SEEK_DATA on an all-hole value: MMS_NXIO");
	seek_is(env, f, 77, MMS_SEEK_HOLE, 77);
	do_write(env, f, buf, 2 * 4096, 10 * PG);    /* pages 10-11 */
	do_write(env, f, buf, 100, 30 * PG + 50);    /* page 30 */
	do_write(env, f, buf, 10, 99 * PG);          /* page 99 (the last) */
	do_write(env, f, buf, 4096, 31 * PG);        /* page 31: adjacent to 30 */

	seek_is(env, f, 0, MMS_SEEK_DATA, 10 * PG);
	seek_is(env, f, 0, MMS_SEEK_HOLE, 0);
	seek_is(env, f, 10 * PG + 5, MMS_SEEK_DATA, 10 * PG + 5);
	seek_is(env, f, 10 * PG + 5, MMS_SEEK_HOLE, 12 * PG);
	seek_is(env, f, 12 * PG, MMS_SEEK_DATA, 30 * PG);
	seek_is(env, f, 30 * PG, MMS_SEEK_HOLE, 32 * PG);
	seek_is(env, f, 32 * PG, MMS_SEEK_DATA, 99 * PG);
	seek_is(env, f, 99 * PG + 1, MMS_SEEK_HOLE, 100 * PG - 100);
	is_int(mms_seek(env, f, 100 * PG - 100, MMS_SEEK_DATA, &got), MMS_NXIO, "SEEK_DATA at the size: MMS_NXIO");
	is_int(mms_seek(env, f, 100 * PG - 100, MMS_SEEK_HOLE, &got), MMS_NXIO, "SEEK_HOLE at the size: MMS_NXIO");
	is_int(mms_seek(env, f, 0, 0, &got), MMS_INVAL, "bad whence: MMS_INVAL");

	/* Data preallocated past the size is not data. */
	uint64_t g = mkfile(env, "g", 1);
	do_write(env, g, buf, 5000, 0);
	mms_fallocate(env, g, MMS_FALLOC_KEEP_SIZE, 10 * PG, PG);
	is_int(mms_seek(env, g, 4999, MMS_SEEK_DATA, &got), 0, "SEEK_DATA in the last byte");
	seek_is(env, g, 100, MMS_SEEK_HOLE, 5000);

	uint64_t h = mkfile(env, "inline", 6);
	do_write(env, h, buf, 300, 0);
	seek_is(env, h, 5, MMS_SEEK_DATA, 5);
	seek_is(env, h, 5, MMS_SEEK_HOLE, 300);
	is_int(mms_seek(env, h, 300, MMS_SEEK_DATA, &got), MMS_NXIO, "inline: SEEK_DATA at the size: MMS_NXIO");
	is_int(mms_close(env), 0, "close");
}

/* fallocate and punching holes. */
static void test_fallocate(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	static uint8_t ref[MiB];
	uint64_t f = mkfile(env, "f", 1);
	is_int(mms_fallocate(env, f, 0, 0, MiB), 0, "fallocate 1 MiB");
	struct mms_stat st = getattr(env, f);
	ok(st.size == MiB && st.blocks == MiB, "size and blocks 1 MiB (%" PRIu64 ", %" PRIu64 ")",
	   st.size, st.blocks);
	ok(all_zero(env, f, MiB, 0), "preallocated bytes read zeros");
	is_int(data_pieces(env, f), 1, "one extent");

	fill_pattern(ref, MiB, 41);
	do_write(env, f, ref, MiB, 0);
	st = getattr(env, f);
	is_int(st.blocks, MiB, "writing into preallocated space allocates nothing more");

	uint64_t ps = 3 * PG + 100, pe = 10 * PG + 50;
	is_int(mms_fallocate(env, f, MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE, ps, pe - ps), 0,
	       "punch [3p+100, 10p+50)");
	memset(ref + ps, 0, (size_t)(pe - ps));
	st = getattr(env, f);
	ok(st.size == MiB && st.blocks == MiB - 6 * PG, "size kept, 6 whole pages freed (blocks %" PRIu64 ")",
	   st.blocks);
	ok(same_bytes(env, f, ref, MiB, 0), "punched range reads zeros, the rest is intact");
	is_int(data_pieces(env, f), 2, "two extents around the hole");

	/* Punch inside one page. */
	is_int(mms_fallocate(env, f, MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE, 20 * PG + 10, 30), 0,
	       "punch 30 bytes inside a page");
	memset(ref + 20 * PG + 10, 0, 30);
	ok(same_bytes(env, f, ref, MiB, 0), "only those bytes are zero");
	/* Punch the end and past it. */
	is_int(mms_fallocate(env, f, MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE, MiB - 2 * PG, 4 * MiB),
	       0, "punch past the end");
	memset(ref + MiB - 2 * PG, 0, 2 * PG);
	st = getattr(env, f);
	ok(st.size == MiB && st.blocks == MiB - 8 * PG, "size kept, 2 more pages freed");
	ok(same_bytes(env, f, ref, MiB, 0), "contents after punching the end");

	/* Refill a hole: fallocate allocates only the hole, keeps data. */
	is_int(mms_fallocate(env, f, 0, 0, MiB), 0, "fallocate over holes and data");
	st = getattr(env, f);
	is_int(st.blocks, MiB, "every page allocated again");
	ok(same_bytes(env, f, ref, MiB, 0), "existing data kept, holes read zeros");

	/* KEEP_SIZE past the end. */
	is_int(mms_fallocate(env, f, MMS_FALLOC_KEEP_SIZE, MiB, MiB), 0, "fallocate KEEP_SIZE past the end");
	st = getattr(env, f);
	ok(st.size == MiB && st.blocks == 2 * MiB, "size kept, blocks 2 MiB");
	mms_truncate(env, f, 2 * MiB);
	ok(all_zero(env, f, MiB, MiB), "growing over preallocated pages reads zeros");

	/* Errors. */
	is_int(mms_fallocate(env, f, MMS_FALLOC_PUNCH_HOLE, 0, PG), MMS_INVAL, "PUNCH_HOLE without KEEP_SIZE");
	is_int(mms_fallocate(env, f, 0, 0, 0), MMS_INVAL, "zero length");
	is_int(mms_fallocate(env, f, 0x80, 0, 1), MMS_INVAL, "unknown mode bit");
	is_int(mms_fallocate(env, f, 0, MMS_SIZE_MAX, 1), MMS_TOOBIG, "past MMS_SIZE_MAX");

	/* Inline values. */
	uint64_t g = mkfile(env, "g", 1);
	uint8_t small[200];
	fill_pattern(small, sizeof small, 42);
	do_write(env, g, small, sizeof small, 0);
	is_int(mms_fallocate(env, g, MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE, 10, 20), 0, "punch an inline value");
	memset(small + 10, 0, 20);
	ok(same_bytes(env, g, small, sizeof small, 0), "inline punched bytes read zeros");
	is_int(mms_fallocate(env, g, 0, 0, 500), 0, "fallocate an inline value to 500");
	st = getattr(env, g);
	ok(st.size == 500 && same_bytes(env, g, small, sizeof small, 0) && all_zero(env, g, 300, 200),
	   "inline value grown to 500 with zeros");
	is_int(mms_fallocate(env, g, 0, 0, 3 * PG), 0, "fallocate an inline value past the inline limit");
	st = getattr(env, g);
	ok(st.size == 3 * PG && st.blocks == 3 * PG, "3 pages (blocks %" PRIu64 ")", st.blocks);
	ok(same_bytes(env, g, small, sizeof small, 0) && all_zero(env, g, 3 * PG - 200, 200),
	   "its bytes moved, the rest reads zeros");

	is_int(mms_close(env), 0, "close");
}

/* mms_map pieces cover exactly the asked range. */
static void test_map(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	const uint64_t size = 64 * PG + 123;
	uint8_t *ref = calloc(1, size), *buf = malloc(size);
	uint64_t f = mkfile(env, "m", 1);
	mms_truncate(env, f, size);
	for (int i = 0; i < 30; i++) {
		size_t len = (size_t)rnd_below(3 * PG) + 1;
		uint64_t off = rnd_below(size - len);
		fill_pattern(ref + off, len, (uint64_t)i + 100);
		do_write(env, f, ref + off, len, off);
		if (i % 7 == 0)
			mms_commit(env);   /* new tree pages break physical adjacency */
	}
	struct mms_extent ext[256];
	int bad = 0;
	for (int i = 0; i < 200 && !bad; i++) {
		uint64_t off = rnd_below(size + 10), len = rnd_below(size) + 1;
		size_t count = 0;
		int rc = mms_map(env, f, off, len, ext, 256, &count);
		uint64_t want_end = off >= size ? off : (off + len < size ? off + len : size);
		if (rc) {
			tap_diag("mms_map %" PRIu64 "+%" PRIu64 ": %s", off, len, mms_strerror(rc));
			bad++;
			break;
		}
		uint64_t pos = off;
		for (size_t k = 0; k < count; k++) {
			if (ext[k].logical != pos || ext[k].length == 0) {
				tap_diag("piece %zu at %" PRIu64 "+%" PRIu64 ", expected at %" PRIu64, k,
				         ext[k].logical, ext[k].length, pos);
				bad++;
				break;
			}
			if (ext[k].flags & MMS_MAP_HOLE) {
				for (uint64_t j = 0; j < ext[k].length; j++)
					if (ref[pos + j]) {
						tap_diag("hole piece over data at %" PRIu64, pos + j);
						bad++;
						break;
					}
			} else {
				ssize_t r = pread(mms_fd(env), buf, (size_t)ext[k].length, (off_t)ext[k].physical);
				if (r != (ssize_t)ext[k].length || memcmp(buf, ref + pos, (size_t)ext[k].length)) {
					tap_diag("extent piece at %" PRIu64 " does not hold the value's bytes", pos);
					bad++;
				}
			}
			if (k > 0 && (ext[k - 1].flags & MMS_MAP_HOLE) && (ext[k].flags & MMS_MAP_HOLE)) {
				tap_diag("two hole pieces in a row at %" PRIu64, pos);
				bad++;
			}
			pos += ext[k].length;
		}
		if (pos != want_end) {
			tap_diag("pieces of %" PRIu64 "+%" PRIu64 " end at %" PRIu64 ", expected %" PRIu64,
			         off, len, pos, want_end);
			bad++;
		}
	}
	ok(!bad, "200 random mms_map calls tile their ranges with the right bytes");

	/* `max` limits the pieces; the prefix is still right. */
	size_t count = 0, all = 0;
	mms_map(env, f, 0, size, ext, 256, &all);
	int rc = mms_map(env, f, 0, size, ext, 2, &count);
	ok(rc == 0 && count == (all < 2 ? all : 2) && ext[0].logical == 0 &&
	   (count < 2 || ext[1].logical == ext[0].length), "max = 2 gives the first 2 of %zu pieces", all);
	rc = mms_map(env, f, size, 10, ext, 256, &count);
	ok(rc == 0 && count == 0, "mms_map at the size gives no pieces");
	rc = mms_map(env, f, 0, 0, ext, 256, &count);
	ok(rc == 0 && count == 0, "mms_map of 0 bytes gives no pieces");

	/* A read through the same walk agrees. */
	ok(same_bytes(env, f, ref, (size_t)size, 0), "mms_read agrees with the reference");
	free(ref);
	free(buf);
	is_int(mms_close(env), 0, "close");
}

/* 64 MiB written sequentially in 1 MiB calls makes few extents. */
static void test_sequential(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	uint64_t f = mkfile(env, "seq", 3);
	uint8_t *chunk = malloc(MiB);
	int fail = 0;
	for (int i = 0; i < 64 && !fail; i++) {
		fill_pattern(chunk, MiB, (uint64_t)i);
		fail = do_write(env, f, chunk, MiB, (uint64_t)i * MiB) != 0;
	}
	ok(!fail, "64 writes of 1 MiB");
	struct mms_stat st = getattr(env, f);
	ok(st.size == 64 * MiB && st.blocks == 64 * MiB, "size and blocks 64 MiB");
	long pieces = data_pieces(env, f);
	ok(pieces >= 1 && pieces <= 8, "few extents: %ld", pieces);
	int bad = 0;
	for (int i = 0; i < 64; i += 9) {
		fill_pattern(chunk, MiB, (uint64_t)i);
		if (!same_bytes(env, f, chunk, MiB, (uint64_t)i * MiB))
			bad++;
	}
	ok(!bad, "sampled chunks read back");

	/* Appending across commits still extends in place when it can. */
	uint64_t g = mkfile(env, "append", 6);
	for (int i = 0; i < 32 && !fail; i++) {
		fill_pattern(chunk, 64 * KiB, (uint64_t)i);
		fail = do_write(env, g, chunk, 64 * KiB, (uint64_t)i * 64 * KiB) != 0;
	}
	pieces = data_pieces(env, g);
	ok(!fail && pieces >= 1 && pieces <= 4, "32 appends of 64 KiB: %ld extents", pieces);
	free(chunk);
	is_int(mms_close(env), 0, "close");
}

/* With a small max_size, a write that does not fit changes nothing. */
static void test_full(void)
{
	mms_env *env = fresh_store(4 * MiB);
	if (!env)
		return;
	const size_t chunk = 256 * KiB;
	uint8_t *ref = malloc(8 * MiB);
	uint64_t f = mkfile(env, "full", 4);
	uint64_t size = 0;
	int rc = 0, i;
	for (i = 0; i < 32; i++) {
		fill_pattern(ref + size, chunk, (uint64_t)i + 7);
		rc = mms_write(env, f, ref + size, chunk, size);
		if (rc)
			break;
		size += chunk;
		if (i % 3 == 0)
			mms_commit(env);
	}
	ok(rc == MMS_FULL, "writes stop with MMS_FULL (%s) after %d chunks", mms_strerror(rc), i);
	ok(i >= 4 && i < 16, "several chunks fit in 4 MiB (%d)", i);
	tap_diag("detail: %s", mms_errdetail(env));
	struct mms_stat st = getattr(env, f);
	ok(st.size == size && st.blocks == size, "the failed write changed neither size nor blocks");
	ok(same_bytes(env, f, ref, (size_t)size, 0), "earlier data reads back intact");
	/* The transaction is not poisoned: the store still works. */
	is_int(mms_write(env, f, "x", 1, 5), 0, "an in-place overwrite still works");
	ref[5] = 'x';
	is_int(mms_commit(env), 0, "commit after MMS_FULL");
	struct mms_info info;
	mms_stats(env, &info);
	ok(info.file_size <= 4 * MiB, "the store file stays within max_size (%" PRIu64 ")", info.file_size);
	is_int(mms_close(env), 0, "close");
	env = reopen_store();
	if (env) {
		ok(same_bytes(env, f, ref, (size_t)size, 0), "data intact after reopen");
		mms_close(env);
	}
	free(ref);
}

/* Values of every kind survive close and reopen. */
static void test_persist(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	static uint8_t big[300000];
	uint8_t small[700];
	fill_pattern(big, sizeof big, 51);
	fill_pattern(small, sizeof small, 52);
	uint64_t a = mkfile(env, "inline", 6);
	uint64_t b = mkfile(env, "extent", 6);
	uint64_t c = mkfile(env, "sparse", 6);
	uint64_t d = mkfile(env, "punched", 7);
	do_write(env, a, small, sizeof small, 0);
	do_write(env, b, big, sizeof big, 0);
	mms_truncate(env, c, 10 * GiB);
	do_write(env, c, small, sizeof small, 5 * GiB - 100);
	do_write(env, d, big, sizeof big, 0);
	mms_fallocate(env, d, MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE, 10000, 100000);
	is_int(mms_close(env), 0, "close (syncs)");

	env = reopen_store();
	if (!env)
		return;
	ok(same_bytes(env, a, small, sizeof small, 0), "inline value after reopen");
	ok(same_bytes(env, b, big, sizeof big, 0), "extent value after reopen");
	struct mms_stat st = getattr(env, c);
	ok(st.size == 10 * GiB && same_bytes(env, c, small, sizeof small, 5 * GiB - 100) &&
	   all_zero(env, c, 4096, 0), "sparse value after reopen");
	memset(big + 10000, 0, 100000);
	ok(same_bytes(env, d, big, sizeof big, 0), "punched value after reopen");

	/* Removing a value frees its space (mms_data_free_all). */
	struct mms_info before, after;
	mms_stats(env, &before);
	is_int(mms_unlink(env, MMS_ROOT_INO, "extent", 6), 0, "unlink the extent value");
	mms_stats(env, &after);
	ok(before.data_bytes - after.data_bytes == (sizeof big + PG - 1) / PG * PG,
	   "its pages are freed (%" PRIu64 " -> %" PRIu64 ")", before.data_bytes, after.data_bytes);
	is_int(mms_close(env), 0, "close");
}

/* A damaged extent item is MMS_CORRUPT naming the inode and page. */
static void test_corrupt_extent(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	uint64_t f = mkfile(env, "bad", 3);
	mms_truncate(env, f, 100 * PG);
	uint8_t key[16], val[16];
	mms_put_be64(key, f);
	mms_put_be64(key + 8, 7);
	mms_put_le64(val, env->meta.file_pages + 1000);
	mms_put_le64(val + 8, 2);
	is_int(mms_bt_put(env, MMS_TREE_EXTENT, key, sizeof key, val, sizeof val), 0,
	       "plant an extent outside the file");
	uint8_t buf[PG];
	size_t n;
	struct mms_extent ext[4];
	size_t count;
	is_int(mms_read(env, f, buf, sizeof buf, 7 * PG, &n), MMS_CORRUPT, "read: MMS_CORRUPT");
	char want[64];
	snprintf(want, sizeof want, "ino %" PRIu64 ": extent at logical page 7", f);
	ok(strstr(mms_errdetail(env), want) != NULL, "the detail names it: %s", mms_errdetail(env));
	is_int(mms_map(env, f, 0, 100 * PG, ext, 4, &count), MMS_CORRUPT, "map: MMS_CORRUPT");
	uint64_t g = mkfile(env, "good", 4);
	memset(buf, 'g', 4000);
	do_write(env, g, buf, 4000, 0);
	is_int(mms_read(env, g, buf, 4000, 0, &n), 0, "another value still reads");

	mms_put_le64(val, 10);
	mms_put_le64(val + 8, 0);
	mms_bt_put(env, MMS_TREE_EXTENT, key, sizeof key, val, sizeof val);
	is_int(mms_read(env, f, buf, sizeof buf, 7 * PG, &n), MMS_CORRUPT, "an empty extent: MMS_CORRUPT");
	mms_put_le64(val, UINT64_MAX - 1);
	mms_put_le64(val + 8, 4);
	mms_bt_put(env, MMS_TREE_EXTENT, key, sizeof key, val, sizeof val);
	is_int(mms_read(env, f, buf, sizeof buf, 7 * PG, &n), MMS_CORRUPT, "an overflowing extent: MMS_CORRUPT");
	mms_close(env);
}

/*
 * Bytes written in place past the committed size survive a rollback (or a
 * crash) while the size goes back: growing the value later must still read
 * zeros there.
 */
static void test_rollback_tail(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	static uint8_t ref[6 * 4096], junk[3 * 4096];
	fill_pattern(ref, 5000, 61);
	memset(junk, 0xee, sizeof junk);
	uint64_t f[3];
	f[0] = mkfile(env, "t0", 2);
	f[1] = mkfile(env, "t1", 2);
	f[2] = mkfile(env, "t2", 2);
	for (int i = 0; i < 3; i++) {
		do_write(env, f[i], ref, 5000, 0);
		mms_fallocate(env, f[i], MMS_FALLOC_KEEP_SIZE, 5000, 5 * 4096 - 5000);
	}
	is_int(mms_commit(env), 0, "commit three 5000-byte values with pages preallocated to 20 KiB");
	for (int i = 0; i < 3; i++)
		do_write(env, f[i], junk, sizeof junk, 5100);
	is_int(mms_rollback(env), 0, "roll back in-place writes past the size");
	struct mms_stat st = getattr(env, f[0]);
	is_int(st.size, 5000, "the size rolled back");

	is_int(mms_truncate(env, f[0], 6 * 4096), 0, "truncate up");
	ok(same_bytes(env, f[0], ref, 6 * 4096, 0), "truncate up: the old tail reads zeros");
	is_int(do_write(env, f[1], "w", 1, 6 * 4096 - 1), 0, "write past the end");
	ref[6 * 4096 - 1] = 'w';
	ok(same_bytes(env, f[1], ref, 6 * 4096, 0), "sparse write: the gap reads zeros");
	ref[6 * 4096 - 1] = 0;
	is_int(mms_fallocate(env, f[2], 0, 0, 6 * 4096), 0, "fallocate past the end");
	ok(same_bytes(env, f[2], ref, 6 * 4096, 0), "fallocate: the new range reads zeros");
	is_int(mms_close(env), 0, "close");
}

/* Random writes, truncates, punches and preallocations against a model. */
static void test_model(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	const uint64_t cap = 96 * KiB;
	uint8_t *ref = calloc(1, cap), *src = malloc(cap);
	uint64_t f = mkfile(env, "model", 5), size = 0;
	int bad = 0, i;
	for (i = 0; i < 600 && !bad; i++) {
		uint64_t off = rnd_below(cap - 1), len = rnd_below(rnd_below(2) ? 2000 : cap - off) + 1;
		if (off + len > cap)
			len = cap - off;
		int op = (int)rnd_below(10), rc = 0;
		if (op < 5) {
			fill_pattern(src, (size_t)len, rnd());
			rc = mms_write(env, f, src, (size_t)len, off);
			memcpy(ref + off, src, (size_t)len);
			if (off + len > size)
				size = off + len;
		} else if (op < 7) {
			uint64_t ns = rnd_below(4) ? rnd_below(cap) : rnd_below(1500);
			rc = mms_truncate(env, f, ns);
			if (ns < size)
				memset(ref + ns, 0, (size_t)(size - ns));
			size = ns;
		} else if (op < 9) {
			rc = mms_fallocate(env, f, MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE, off, len);
			memset(ref + off, 0, (size_t)len);
			if (size < cap)
				memset(ref + size, 0, (size_t)(cap - size));
		} else {
			unsigned mode = rnd_below(2) ? MMS_FALLOC_KEEP_SIZE : 0;
			rc = mms_fallocate(env, f, mode, off, len);
			if (!mode && off + len > size)
				size = off + len;
		}
		if (rc) {
			tap_diag("op %d (kind %d, %" PRIu64 "+%" PRIu64 "): %s (%s)", i, op, off, len,
			         mms_strerror(rc), mms_errdetail(env));
			bad++;
			break;
		}
		if (i % 50 == 0)
			mms_commit(env);
		struct mms_stat st = getattr(env, f);
		if (st.size != size) {
			tap_diag("op %d (kind %d): size %" PRIu64 ", model %" PRIu64, i, op, st.size, size);
			bad++;
		} else if (!same_bytes(env, f, ref, (size_t)size, 0)) {
			tap_diag("op %d (kind %d, %" PRIu64 "+%" PRIu64 ") made the bytes differ", i, op, off, len);
			bad++;
		}
	}
	ok(!bad, "600 random operations agree with the model (%d done)", i);
	free(ref);
	free(src);
	is_int(mms_close(env), 0, "close");
}

/* fallocate reserves host disk for the pages it allocates (it used to
 * punch them out of the file, so a later write there could still fail for
 * want of host space, although mms.h promises it cannot). */
static void test_fallocate_reserves(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	uint64_t f = mkfile(env, "reserved", 8);
	is_int(mms_sync(env), 0, "sync");
	struct stat before, after;
	fstat(mms_fd(env), &before);
	is_int(mms_fallocate(env, f, 0, 0, 4 << 20), 0, "fallocate 4 MiB");
	is_int(mms_sync(env), 0, "sync");
	fstat(mms_fd(env), &after);
	long long grew = ((long long)after.st_blocks - (long long)before.st_blocks) * 512;
	ok(grew >= (4 << 20), "the store file's disk use grew by %lld bytes (>= 4 MiB)", grew);
	uint8_t buf[4096];
	size_t n;
	is_int(mms_read(env, f, buf, sizeof buf, 1 << 20, &n), 0, "read the reserved range");
	ok(n == sizeof buf && buf[0] == 0 && buf[4095] == 0, "it reads as zeros");
	is_int(mms_close(env), 0, "close");
}

/* mms_copy_range: bytes, holes kept holes, inline sources, a short source,
 * a copy over existing bytes, overlap refused, a full store. */
static void test_copy_range(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	size_t n = 3 * MiB + 123;
	uint8_t *want = malloc(n), *zero = calloc(1, 2 * MiB);
	fill_pattern(want, n, 77);
	uint64_t a = mkfile(env, "a", 1), b = mkfile(env, "b", 1), c = mkfile(env, "c", 1);
	do_write(env, a, want, n, 0);
	uint64_t copied = 0;
	is_int(mms_copy_range(env, a, 0, b, 0, 64 * MiB, &copied), 0, "copy a to b (asks for more than a has)");
	ok(copied == n, "copied the %zu bytes a has (%" PRIu64 ")", n, copied);
	ok(getattr(env, b).size == n && same_bytes(env, b, want, n, 0), "b reads a's bytes");
	/* a sparse source: a hole of 2 MiB between two data runs */
	is_int(mms_truncate(env, c, 0), 0, "c empty");
	do_write(env, c, want, 5000, 0);
	do_write(env, c, want, 5000, 2 * MiB + 8192);
	/* the destination had bytes where the source has its hole */
	is_int(mms_copy_range(env, c, 0, b, 0, getattr(env, c).size, &copied), 0, "copy sparse c over b");
	ok(copied == 2 * MiB + 8192 + 5000, "copied c's size (%" PRIu64 ")", copied);
	ok(same_bytes(env, b, want, 5000, 0) && same_bytes(env, b, want, 5000, 2 * MiB + 8192),
	   "c's data runs are in b");
	ok(all_zero(env, b, 2 * MiB + 8192 - 8192, 8192), "c's hole reads as zeros in b");
	ok(same_bytes(env, b, want + 2 * MiB + 13192, n - 2 * MiB - 13192, 2 * MiB + 13192),
	   "b's bytes past the copy are untouched");
	uint64_t d = mkfile(env, "d", 1);
	is_int(mms_copy_range(env, c, 0, d, 0, getattr(env, c).size, &copied), 0, "copy sparse c to empty d");
	struct mms_stat ds = getattr(env, d);
	ok(ds.size == getattr(env, c).size && ds.blocks == 4 * PG,
	   "d has c's size and only its 4 data pages (%" PRIu64 " bytes of blocks)", ds.blocks);
	/* a hole at the end of the source still sets the size */
	is_int(mms_truncate(env, c, 4 * MiB), 0, "c ends in a hole");
	uint64_t e = mkfile(env, "e", 1);
	is_int(mms_copy_range(env, c, 0, e, 100, 4 * MiB, &copied), 0, "copy c to e at 100");
	ok(copied == 4 * MiB && getattr(env, e).size == 4 * MiB + 100, "e's size covers the hole (%" PRIu64 ")",
	   getattr(env, e).size);
	ok(all_zero(env, e, 100, 0) && same_bytes(env, e, want, 5000, 100), "e: zeros, then c's bytes");
	/* inline (small) source */
	uint64_t s1 = mkfile(env, "small", 5);
	do_write(env, s1, "tiny value", 10, 0);
	is_int(mms_copy_range(env, s1, 2, e, 1, 100, &copied), 0, "copy from a small value");
	ok(copied == 8 && same_bytes(env, e, (const uint8_t *)"ny value", 8, 1), "8 bytes landed at 1");
	/* past the end of the source: nothing */
	is_int(mms_copy_range(env, s1, 10, e, 0, 100, &copied), 0, "copy from the source's end");
	ok(copied == 0, "copies nothing");
	/* one file, overlapping ranges: refused; disjoint: done */
	is_int(mms_copy_range(env, a, 0, a, 4096, 8192, &copied), MMS_INVAL, "overlapping ranges of one file");
	is_int(mms_copy_range(env, a, 0, a, n, 8192, &copied), 0, "disjoint ranges of one file");
	ok(copied == 8192 && same_bytes(env, a, want, 8192, n), "a's head appended to a");
	is_int(mms_copy_range(env, a, 0, MMS_ROOT_INO, 0, 10, &copied), MMS_ISDIR, "to a directory");
	is_int(mms_commit(env), 0, "commit");
	uint64_t probs = 1;
	is_int(mms_check(env, NULL, NULL, NULL, NULL, &probs), 0, "check runs");
	is_int(probs, 0, "check is clean");
	is_int(mms_close(env), 0, "close");
	(void)zero;
	free(zero);
	free(want);

	/* a full store: the copy stops short or fails, and nothing is damaged */
	env = fresh_store(8 * MiB);
	if (!env)
		return;
	want = malloc(3 * MiB);
	fill_pattern(want, 3 * MiB, 5);
	a = mkfile(env, "a", 1);
	is_int(do_write(env, a, want, 3 * MiB, 0), 0, "3 MiB in an 8 MiB store");
	b = mkfile(env, "b", 1);
	is_int(mms_commit(env), 0, "commit");
	int rc = 0;
	uint64_t total = 0;
	/* at an odd offset the bytes are copied, not shared: they take space */
	for (int i = 0; i < 4 && !rc; i++) {
		rc = mms_copy_range(env, a, 0, b, total + 1, 3 * MiB, &copied);
		total += copied;
		if (!rc)
			rc = mms_commit(env);
	}
	is_int(rc, MMS_FULL, "copies until the store is full: MMS_FULL");
	ok(total >= 3 * MiB && total < 12 * MiB, "%" PRIu64 " bytes copied before that", total);
	ok(getattr(env, b).size == total + 1, "b's size is what was copied");
	ok(same_bytes(env, a, want, 3 * MiB, 0), "a is intact");
	is_int(mms_close(env), 0, "close");
	free(want);
}

static uint64_t data_bytes(mms_env *env)
{
	struct mms_info info;
	mms_stats(env, &info);
	return info.data_bytes;
}

static void check_clean(mms_env *env, const char *when)
{
	uint64_t probs = 1;
	int rc = mms_check(env, NULL, NULL, NULL, NULL, &probs);
	ok(rc == 0 && probs == 0, "check is clean %s (rc %d, %" PRIu64 " problems)", when, rc, probs);
}

/* mms_copy_range of whole pages shares them: no bytes move, no space is
 * taken, and a write to either side (even to pages written since the last
 * sync, which are otherwise written in place) leaves the other as it was. */
static void test_copy_share(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	size_t n = 8 * MiB + 1000; /* a partial last page */
	uint8_t *want = malloc(n), *other = malloc(n);
	fill_pattern(want, n, 3);
	fill_pattern(other, n, 99);
	uint64_t a = mkfile(env, "a", 1), b = mkfile(env, "b", 1), c = mkfile(env, "c", 1);
	do_write(env, a, want, n, 0);
	uint64_t before = data_bytes(env), copied = 0;
	is_int(mms_copy_range(env, a, 0, b, 0, n, &copied), 0, "copy a (8 MiB + 1000, unsynced) to b");
	ok(copied == n && getattr(env, b).size == n, "b has a's size (%" PRIu64 ")", copied);
	ok(data_bytes(env) == before, "no data page was added (%" PRIu64 " -> %" PRIu64 " bytes)", before,
	   data_bytes(env));
	ok(getattr(env, b).blocks == getattr(env, a).blocks, "b's blocks are a's");
	ok(same_bytes(env, b, want, n, 0), "b reads a's bytes");
	check_clean(env, "with a and b sharing");
	/* a's pages are fresh (never synced): still not written in place */
	do_write(env, a, other, 5000, 4096 * 10 + 17);
	ok(same_bytes(env, b, want, n, 0), "a write to a leaves b as it was");
	ok(same_bytes(env, a, other, 5000, 4096 * 10 + 17) && same_bytes(env, a, want, 4096 * 10 + 17, 0),
	   "a has its write");
	do_write(env, b, other, 3 * PG, 2 * MiB);
	ok(same_bytes(env, a, want + 2 * MiB, 3 * PG, 2 * MiB), "a write to b leaves a as it was");
	/* three holders: c shares the middle of b */
	is_int(mms_copy_range(env, b, MiB, c, 0, 4 * MiB, &copied), 0, "copy 4 MiB of b to c");
	ok(copied == 4 * MiB && same_bytes(env, c, want + MiB, MiB, 0), "c reads b's bytes");
	check_clean(env, "with three holders");
	is_int(mms_commit(env), 0, "commit");
	is_int(mms_sync(env), 0, "sync");
	/* grow b past its shared last page: the bytes past the old end are zero */
	do_write(env, b, "end", 3, n + 10);
	uint8_t z[10] = { 0 };
	ok(same_bytes(env, b, z, 10, n) && same_bytes(env, a, want + n - 100, 100, n - 100),
	   "b grew past the shared page; a's end is intact");
	/* dropping holders in turn frees the pages only with the last one */
	is_int(mms_truncate(env, a, 0), 0, "truncate a to 0");
	ok(same_bytes(env, c, want + MiB, MiB, 0) && same_bytes(env, b, want, 2 * MiB, 0), "b and c intact");
	check_clean(env, "after a let go");
	is_int(mms_unlink(env, MMS_ROOT_INO, "b", 1), 0, "remove b");
	ok(same_bytes(env, c, want + MiB, MiB, 0), "c intact");
	check_clean(env, "after b went");
	is_int(mms_commit(env), 0, "commit");
	is_int(mms_close(env), 0, "close");
	env = reopen_store();
	if (!env)
		goto out;
	ok(same_bytes(env, c, want + MiB, MiB, 0) && same_bytes(env, c, want + 3 * MiB, MiB, 2 * MiB),
	   "c intact after reopen");
	check_clean(env, "after reopen");
	/* a copy into a small (inline) value, at a page-aligned offset past it */
	uint64_t s = mkfile(env, "s", 1);
	do_write(env, s, "small", 5, 0);
	is_int(mms_copy_range(env, c, 0, s, 2 * PG, 2 * PG, &copied), 0, "copy 2 pages after an inline value");
	ok(same_bytes(env, s, (const uint8_t *)"small", 5, 0) && all_zero(env, s, 2 * PG - 5, 5) &&
	   same_bytes(env, s, want + MiB, 2 * PG, 2 * PG), "s: its bytes, zeros, c's pages");
	/* overwrite a shared range with a share of another */
	is_int(mms_copy_range(env, s, 2 * PG, c, 0, 2 * PG, &copied), 0, "copy s's shared pages back over c");
	ok(same_bytes(env, c, want + MiB, 2 * PG, 0), "c unchanged (same bytes)");
	check_clean(env, "after sharing over shared pages");
	is_int(mms_unlink(env, MMS_ROOT_INO, "c", 1), 0, "remove c");
	is_int(mms_unlink(env, MMS_ROOT_INO, "s", 1), 0, "remove s");
	ok(data_bytes(env) == 0, "every data page is free (%" PRIu64 " bytes)", data_bytes(env));
	check_clean(env, "with nothing shared left");

	/* Pages written since the last sync, shared, committed; then one holder
	 * lets go and the other writes them: a rollback (like a crash) brings
	 * back the committed state, where both hold the old bytes. */
	uint64_t x = mkfile(env, "x", 1), y = mkfile(env, "y", 1);
	do_write(env, x, want, 4 * PG, 0);
	is_int(mms_copy_range(env, x, 0, y, 0, 4 * PG, &copied), 0, "share x's fresh pages with y");
	is_int(mms_commit(env), 0, "commit (no sync: the pages stay fresh)");
	is_int(mms_truncate(env, y, 0), 0, "y lets go");
	do_write(env, x, other, 4 * PG, 0);
	ok(same_bytes(env, x, other, 4 * PG, 0), "x has its new bytes");
	is_int(mms_rollback(env), 0, "roll back");
	ok(same_bytes(env, y, want, 4 * PG, 0), "y has the committed bytes again");
	ok(same_bytes(env, x, want, 4 * PG, 0), "so has x");
	check_clean(env, "after the rollback");
	is_int(mms_close(env), 0, "close");

	/* a full store still takes shared copies: they need no data pages */
	env = fresh_store(8 * MiB);
	if (!env)
		goto out;
	a = mkfile(env, "a", 1);
	is_int(do_write(env, a, want, 3 * MiB, 0), 0, "3 MiB in an 8 MiB store");
	b = mkfile(env, "b", 1);
	int rc = 0;
	for (int i = 0; i < 8 && !rc; i++) {
		rc = mms_copy_range(env, a, 0, b, (uint64_t)i * 3 * MiB, 3 * MiB, &copied);
		if (!rc)
			rc = mms_commit(env);
	}
	is_int(rc, 0, "eight shared copies of 3 MiB into an 8 MiB store");
	ok(getattr(env, b).size == 24 * MiB && same_bytes(env, b, want, 3 * MiB, 21 * MiB), "b holds them");
	check_clean(env, "of the full store");
	is_int(mms_close(env), 0, "close");
out:
	free(want);
	free(other);
}

/* mms_get and mms_get_ref: one call by name, a copy or a pointer. */
static void test_get(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	uint8_t want[20000], buf[20000];
	const void *p = NULL;
	struct mms_stat st;
	size_t n = 0;
	fill_pattern(want, sizeof want, 5);
	uint64_t small = mkfile(env, "small", 5), big = mkfile(env, "big", 3);
	uint64_t sparse = mkfile(env, "sparse", 6), empty = mkfile(env, "empty", 5);
	(void)empty;
	do_write(env, small, want, 100, 0);
	do_write(env, big, want, sizeof want, 0);
	do_write(env, sparse, want, 1000, 0);
	do_write(env, sparse, want, 1000, 3 * 4096);
	is_int(mms_get(env, MMS_ROOT_INO, "small", 5, buf, sizeof buf, &n, &st), 0, "get small");
	ok(n == 100 && st.ino == small && !memcmp(buf, want, 100), "its 100 bytes and attributes");
	is_int(mms_get(env, MMS_ROOT_INO, "big", 3, buf, sizeof buf, &n, NULL), 0, "get big");
	ok(n == sizeof want && !memcmp(buf, want, sizeof want), "its %zu bytes", sizeof want);
	memset(buf, 0xee, sizeof buf);
	is_int(mms_get(env, MMS_ROOT_INO, "big", 3, buf, 4000, &n, NULL), 0, "get into a small buffer");
	ok(n == sizeof want && !memcmp(buf, want, 4000) && buf[4000] == 0xee,
	   "the first 4000 bytes, and the whole size (%zu)", n);
	is_int(mms_get(env, MMS_ROOT_INO, "sparse", 6, buf, sizeof buf, &n, NULL), 0, "get sparse");
	ok(n == 3 * 4096 + 1000 && !memcmp(buf, want, 1000) && buf[5000] == 0 &&
	   !memcmp(buf + 3 * 4096, want, 1000), "data, a hole of zeros, data");
	is_int(mms_get(env, MMS_ROOT_INO, "empty", 5, NULL, 0, &n, NULL), 0, "get an empty key");
	is_int(n, 0, "size 0");
	is_int(mms_get(env, MMS_ROOT_INO, "none", 4, buf, sizeof buf, &n, NULL), MMS_NOTFOUND,
	       "a missing name: MMS_NOTFOUND");
	struct mms_stat d;
	is_int(mms_mkdir(env, MMS_ROOT_INO, "dir", 3, 0755, 0, 0, &d), 0, "mkdir");
	is_int(mms_get(env, MMS_ROOT_INO, "dir", 3, buf, sizeof buf, &n, NULL), MMS_ISDIR,
	       "a directory: MMS_ISDIR");
	is_int(mms_symlink(env, MMS_ROOT_INO, "ln", 2, "small", 5, 0, 0, NULL), 0, "symlink");
	is_int(mms_get(env, MMS_ROOT_INO, "ln", 2, buf, sizeof buf, &n, NULL), MMS_INVAL,
	       "a symlink: MMS_INVAL");
	/* the pointer variant */
	is_int(mms_get_ref(env, MMS_ROOT_INO, "small", 5, &p, &n, NULL), 0, "get_ref small");
	ok(n == 100 && p && !memcmp(p, want, 100), "points at the inline bytes");
	is_int(mms_get_ref(env, MMS_ROOT_INO, "big", 3, &p, &n, NULL), 0,
	       "get_ref big (uncommitted: written since the last sync)");
	ok(n == sizeof want && p && !memcmp(p, want, sizeof want), "points at its bytes in the map");
	is_int(mms_commit(env), 0, "commit");
	is_int(mms_get_ref(env, MMS_ROOT_INO, "big", 3, &p, &n, NULL), 0, "get_ref big after a commit");
	ok(p && !memcmp(p, want, sizeof want), "the same bytes");
	is_int(mms_get_ref(env, MMS_ROOT_INO, "sparse", 6, &p, &n, NULL), MMS_RANGE,
	       "a value with a hole: MMS_RANGE");
	is_int(mms_get_ref(env, MMS_ROOT_INO, "empty", 5, &p, &n, NULL), 0, "get_ref of an empty key");
	ok(p != NULL && n == 0, "a pointer and size 0");
	mms_close(env);
}

static int hook_calls;
static void count_hook(void *ctx)
{
	(void)ctx;
	hook_calls++;
}

/* Whether every piece of f's bytes [0, len) is MMS_MAP_STABLE. */
static int all_stable(mms_env *env, uint64_t f, uint64_t len)
{
	struct mms_extent ext[16];
	size_t count = 0;
	if (mms_map(env, f, 0, len, ext, 16, &count) != 0 || count == 0)
		return 0;
	for (size_t i = 0; i < count; i++)
		if (!(ext[i].flags & MMS_MAP_STABLE))
			return 0;
	return 1;
}

/* MMS_MAP_STABLE and the reuse hook: pages written since the last sync are
 * not stable; synced ones are, and once freed they wait for the hook. */
static void test_stable(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	uint8_t want[8 * 4096], buf[8 * 4096];
	struct mms_extent ext[4];
	size_t count = 0, n = 0;
	fill_pattern(want, sizeof want, 9);
	mms_set_reuse_hook(env, count_hook, NULL);
	uint64_t f = mkfile(env, "f", 1), small = mkfile(env, "small", 5);
	do_write(env, f, want, sizeof want, 0);
	do_write(env, small, want, 100, 0);
	ok(!all_stable(env, f, sizeof want), "written since the last sync: not stable");
	is_int(mms_commit(env), 0, "commit");
	ok(!all_stable(env, f, sizeof want), "committed, not synced: not stable");
	is_int(mms_sync(env), 0, "sync");
	ok(all_stable(env, f, sizeof want), "synced: stable");
	is_int(mms_map(env, small, 0, 100, ext, 4, &count), 0, "map the inline value");
	ok(count == 1 && (ext[0].flags & MMS_MAP_INLINE) && !(ext[0].flags & MMS_MAP_STABLE),
	   "inline bytes are never stable");
	/* an overwrite of the middle copies those pages; the old ones are
	 * pending until the next sync, which calls the hook first */
	uint64_t old = 0;
	is_int(mms_map(env, f, 0, sizeof want, ext, 4, &count), 0, "map f");
	old = ext[0].physical;
	do_write(env, f, want, 2 * 4096, 3 * 4096);
	memcpy(want + 3 * 4096, want, 2 * 4096);
	is_int(mms_map(env, f, 0, sizeof want, ext, 4, &count), 0, "map f after the overwrite");
	ok(count == 3 && (ext[0].flags & MMS_MAP_STABLE) && !(ext[1].flags & MMS_MAP_STABLE) &&
	   (ext[2].flags & MMS_MAP_STABLE) && ext[0].physical == old,
	   "the copied pages are not stable, the untouched ones still are");
	hook_calls = 0;
	is_int(mms_commit(env), 0, "commit");
	is_int(hook_calls, 0, "no hook at a commit");
	is_int(mms_sync(env), 0, "sync");
	is_int(hook_calls, 1, "the sync that makes the old pages reusable calls the hook once");
	hook_calls = 0;
	is_int(mms_sync(env), 0, "a sync with nothing new");
	is_int(hook_calls, 0, "calls no hook");
	ok(all_stable(env, f, sizeof want), "after it, all of f is stable again");
	is_int(mms_read(env, f, buf, sizeof buf, 0, &n), 0, "read f");
	ok(n == sizeof want && !memcmp(buf, want, sizeof want), "its bytes");
	mms_close(env);
}

/* Whether f's first extent starts inside pages [lo, lo+n). */
static int lands_in(mms_env *env, uint64_t f, uint64_t lo, uint64_t n)
{
	struct mms_extent ext[4];
	size_t count = 0;
	if (mms_map(env, f, 0, PG, ext, 4, &count) != 0 || count == 0)
		return -1;
	uint64_t p = ext[0].physical / PG;
	return p >= lo && p < lo + n;
}

/* mms_sync_end_keep: the runs the sync frees stay unusable (through a
 * commit and a rollback) until punched and released; then first fit
 * takes them again. */
static void test_sync_keep(void)
{
	mms_env *env = fresh_store(0);
	if (!env)
		return;
	static uint8_t buf[64 * 4096];
	struct mms_extent ext[4];
	size_t count = 0;
	int needed = 0;
	fill_pattern(buf, sizeof buf, 3);
	uint64_t f = mkfile(env, "f", 1);
	do_write(env, f, buf, sizeof buf, 0);
	is_int(mms_sync(env), 0, "sync 64 pages of f");
	is_int(mms_map(env, f, 0, sizeof buf, ext, 4, &count), 0, "map f");
	uint64_t lo = ext[0].physical / PG;
	is_int(mms_truncate(env, f, 0), 0, "truncate f to 0 (its pages wait for a sync)");
	is_int(mms_sync_begin(env, &needed), 0, "sync in steps: begin");
	is_int(mms_sync_io(env), 0, "io");
	is_int(mms_sync_end_keep(env), 0, "end, keeping the freed run for the caller to punch");
	/* a rollback to the synced meta, whose pending runs a reload frees */
	uint64_t h = mkfile(env, "h", 1);
	is_int(mms_rollback(env), 0, "roll back a change to the synced state");
	h = mkfile(env, "h", 1);
	do_write(env, h, buf, sizeof buf, 0);
	is_int(lands_in(env, h, lo, 64), 0, "a write after the rollback does not take the held pages");
	is_int(mms_commit(env), 0, "commit");
	uint64_t g = mkfile(env, "g", 1);
	do_write(env, g, buf, sizeof buf, 0);
	is_int(lands_in(env, g, lo, 64), 0, "nor one after a commit");
	mms_sync_drop(env);
	is_int(mms_sync_punch(env), 0, "punch the held run");
	mms_sync_release(env);
	uint64_t k = mkfile(env, "k", 1);
	do_write(env, k, buf, sizeof buf, 0);
	is_int(lands_in(env, k, lo, 64), 1, "released: first fit takes them again");
	ok(same_bytes(env, k, buf, sizeof buf, 0) && same_bytes(env, g, buf, sizeof buf, 0) &&
	   same_bytes(env, h, buf, sizeof buf, 0), "g, h and k hold their bytes");
	is_int(mms_sync(env), 0, "sync");
	uint64_t probs = 1;
	is_int(mms_check(env, NULL, NULL, NULL, NULL, &probs), 0, "check runs");
	is_int(probs, 0, "check is clean");
	mms_close(env);
}

int main(void)
{
	mms_file_test_tight_map = 1; /* every growth of the file moves the map */
	tap_plan_none();
	test_stable();
	test_sync_keep();
	test_get();
	test_fallocate_reserves();
	test_random_rw(0);
	test_random_rw(1);
	test_inline();
	test_truncate();
	test_sparse();
	test_seek();
	test_fallocate();
	test_map();
	test_sequential();
	test_full();
	test_persist();
	test_corrupt_extent();
	test_rollback_tail();
	test_model();
	test_copy_range();
	test_copy_share();
	return tap_done();
}
