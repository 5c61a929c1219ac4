/*
 * test_hostile.c - crafted store files: every damage below gives a clear
 * error (MMS_CORRUPT with a detail), never a crash, a wrong answer, or a
 * write that makes the damage worse.  Each case patches a real store the
 * way an attacker (or a bad disk) could, with the checksums made right
 * again so that the damage reaches the code behind them:
 *
 *   - a leaf whose item slots overlap (mmstore put died with SIGBUS);
 *   - an orphan item naming a live inode (the next read-write open deleted
 *     that key, and synced the deletion);
 *   - a free-list entry covering a live tree page (the next put succeeded
 *     and wiped the inode tree);
 *   - an extent pointing at a tree page (get printed tree bytes, then rm
 *     committed a free list the engine could not load);
 *   - a SHARE item counting too few references (check names it) or fewer
 *     than two (a removal of a holder fails as damage);
 *   - a name pointing at an ancestor directory (dump never ended);
 *   - a size beyond the 4 PiB limit (returned as is; st_blocks wrapped);
 *   - 20,000 nested directories: check stays linear in the depth;
 *   - a free-list log page with a flipped byte, or freeing itself.
 */
#define _GNU_SOURCE
#define MMS_TEST_HOOKS 1
#include "mms_int.h"
#include "tap.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char problems[4096];

static void on_problem(void *ctx, const char *where, const char *what)
{
	(void)ctx;
	size_t l = strlen(problems);
	if (l < sizeof problems - 200)
		snprintf(problems + l, sizeof problems - l, "%s: %s; ", where, what);
}

/* mms_check of the store at path (read-only): the number of problems, or
 * ~0 if it could not run. */
static uint64_t check_store(const char *path)
{
	mms_env *env;
	uint64_t n = 0;
	problems[0] = 0;
	if (mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env))
		return ~0ull;
	if (mms_check(env, on_problem, NULL, NULL, NULL, &n))
		n = ~0ull;
	mms_close(env);
	return n;
}

static void read_page(const char *path, uint64_t pg, uint8_t *buf)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, buf, 4096, (off_t)(pg * 4096)) != 4096)
		abort();
	close(fd);
}

/* Write a tree page back with its checksum made right. */
static void write_tree_page(const char *path, uint64_t pg, uint8_t *buf)
{
	mms_put_le32(buf, mms_crc32c(0, buf + 4, 4092));
	int fd = open(path, O_WRONLY);
	if (fd < 0 || pwrite(fd, buf, 4096, (off_t)(pg * 4096)) != 4096)
		abort();
	close(fd);
}

static void write_meta_page(const char *path, uint64_t pg, uint8_t *buf)
{
	mms_put_le32(buf + 8, 0);
	mms_put_le32(buf + 8, mms_crc32c(0, buf, 4096));
	int fd = open(path, O_WRONLY);
	if (fd < 0 || pwrite(fd, buf, 4096, (off_t)(pg * 4096)) != 4096)
		abort();
	close(fd);
}

static uint64_t root_of(const char *path, int tree)
{
	mms_env *env;
	uint64_t r = 0;
	if (!mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env)) {
		r = env->meta.root[tree];
		mms_close(env);
	}
	return r;
}

static uint8_t *item_of(uint8_t *page, unsigned i)
{
	return page + mms_get_le16(page + MMS_PG_HDR + 2 * i);
}

/* A small store: its trees are single leaves. */
static void make_small(const char *path, uint64_t *ino_a, uint64_t *ino_b)
{
	mms_env *env;
	struct mms_stat st;
	uint8_t val[12000];
	memset(val, 'a', sizeof val);
	unlink(path);
	if (mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env))
		abort();
	mms_put(env, MMS_ROOT_INO, "a", 1, val, sizeof val, 0644, 0, 0, &st);
	*ino_a = st.ino;
	mms_put(env, MMS_ROOT_INO, "b", 1, val, 100, 0644, 0, 0, &st);
	*ino_b = st.ino;
	mms_put(env, MMS_ROOT_INO, "c", 1, val, 9000, 0644, 0, 0, &st);
	mms_close(env);
}

static bool key_reads(const char *path, const char *name, size_t want)
{
	mms_env *env;
	struct mms_stat st;
	static uint8_t buf[20000];
	size_t got = 0;
	bool good = false;
	if (mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env))
		return false;
	if (!mms_lookup(env, MMS_ROOT_INO, name, strlen(name), &st) &&
	    !mms_read(env, st.ino, buf, sizeof buf, 0, &got) && got == want)
		good = true;
	mms_close(env);
	return good;
}

static void test_overlapping_slots(const char *dir)
{
	char path[512];
	uint64_t a, b;
	uint8_t pg[4096];
	mms_env *env;
	snprintf(path, sizeof path, "%s/overlap.mms", dir);
	make_small(path, &a, &b);
	uint64_t root = root_of(path, MMS_TREE_NAME);
	read_page(path, root, pg);
	/* item 1's slot points at item 0: two items share their bytes */
	mms_put_le16(pg + MMS_PG_HDR + 2, mms_get_le16(pg + MMS_PG_HDR));
	write_tree_page(path, root, pg);
	ok(check_store(path) > 0, "overlapping slots: check reports them (%.200s)", problems);
	is_int(mms_open(path, NULL, &env), 0, "overlapping slots: opens");
	uint8_t v[10] = { 0 };
	int rc = mms_put(env, MMS_ROOT_INO, "new", 3, v, sizeof v, 0644, 0, 0, NULL);
	is_int(rc, MMS_CORRUPT, "overlapping slots: a put is refused as damage, no crash");
	ok(strstr(mms_errdetail(env), "overlaps") != NULL, "overlapping slots: the detail says so: %s",
	   mms_errdetail(env));
	mms_rollback(env);
	mms_close(env);
}

static void test_orphan_of_live_inode(const char *dir)
{
	char path[512], crash[600];
	uint64_t a, b;
	uint8_t pg[4096];
	mms_env *env;
	struct mms_stat st;
	uint8_t v[5000];
	memset(v, 'o', sizeof v);
	snprintf(path, sizeof path, "%s/orphan.mms", dir);
	snprintf(crash, sizeof crash, "%s/orphan-crash.mms", dir);
	make_small(path, &a, &b);
	if (mms_open(path, NULL, &env))
		abort();
	mms_put(env, MMS_ROOT_INO, "gone", 4, v, sizeof v, 0644, 0, 0, &st);
	mms_hold(env, st.ino);
	mms_unlink(env, MMS_ROOT_INO, "gone", 4);
	mms_commit(env);
	char cmd[1400];
	snprintf(cmd, sizeof cmd, "cp %s %s", path, crash);
	if (system(cmd))
		abort();
	mms_close(env);
	/* the orphan item now names the live key "a" */
	uint64_t root = root_of(crash, MMS_TREE_ORPHAN);
	ok(root != 0, "orphan: the crashed store has an orphan list");
	read_page(crash, root, pg);
	mms_put_be64(item_of(pg, 0) + 4, a);
	write_tree_page(crash, root, pg);
	int rc = mms_open(crash, NULL, &env);
	is_int(rc, MMS_CORRUPT, "orphan of a live inode: the read-write open refuses");
	ok(strstr(mms_open_detail(), "orphan") != NULL, "orphan: the detail names it: %s",
	   mms_open_detail());
	if (rc == 0)
		mms_close(env);
	ok(key_reads(crash, "a", 12000), "orphan: the live key is still there, all its bytes");
}

static void test_free_entry_on_tree_page(const char *dir)
{
	char path[512];
	uint64_t a, b;
	uint8_t pg[4096];
	mms_env *env;
	snprintf(path, sizeof path, "%s/freelist.mms", dir);
	make_small(path, &a, &b);
	uint64_t iroot = root_of(path, MMS_TREE_INODE);
	/* add the inode tree's root to the free runs of both metas */
	for (uint64_t m = 0; m < 2; m++) {
		read_page(path, m, pg);
		uint32_t nfree = mms_get_le32(pg + 208), npend = mms_get_le32(pg + 212);
		if (mms_get_le64(pg + 192) != 0)
			abort(); /* a small store keeps its free list inline */
		uint8_t *e = pg + 224;
		uint32_t at = 0;
		while (at < nfree && mms_get_le64(e + 12 * at) < iroot)
			at++;
		memmove(e + 12 * (at + 1), e + 12 * at, 12 * (size_t)(nfree + npend - at));
		mms_put_le64(e + 12 * at, iroot);
		mms_put_le32(e + 12 * at + 8, 1);
		mms_put_le32(pg + 208, nfree + 1);
		write_meta_page(path, m, pg);
	}
	ok(check_store(path) > 0, "free entry on a tree page: check reports it (%.200s)", problems);
	is_int(mms_open(path, NULL, &env), 0, "free entry on a tree page: opens");
	uint8_t v[10] = { 0 };
	int rc = mms_put(env, MMS_ROOT_INO, "new", 3, v, sizeof v, 0644, 0, 0, NULL);
	if (rc == 0)
		rc = mms_commit(env);
	ok(rc == MMS_CORRUPT || rc == MMS_BADTXN, "free entry on a tree page: the put fails as damage (%s: %s)",
	   mms_strerror(rc), mms_errdetail(env));
	mms_rollback(env);
	mms_close(env);
	ok(key_reads(path, "a", 12000) && key_reads(path, "c", 9000),
	   "free entry on a tree page: every key is still there");
}

static void test_extent_on_tree_page(const char *dir)
{
	char path[512];
	uint64_t a, b;
	uint8_t pg[4096];
	mms_env *env;
	struct mms_stat st;
	snprintf(path, sizeof path, "%s/extent.mms", dir);
	make_small(path, &a, &b);
	uint64_t eroot = root_of(path, MMS_TREE_EXTENT), iroot = root_of(path, MMS_TREE_INODE);
	read_page(path, eroot, pg);
	/* the first extent (of "a") now points at the inode tree's root */
	uint8_t *it = item_of(pg, 0);
	mms_put_le64(it + 4 + 16, iroot);
	mms_put_le64(it + 4 + 24, 1);
	write_tree_page(path, eroot, pg);
	ok(check_store(path) > 0, "extent on a tree page: check reports it (%.200s)", problems);
	is_int(mms_open(path, NULL, &env), 0, "extent on a tree page: opens");
	static uint8_t buf[20000];
	size_t got = 0;
	int rc = mms_lookup(env, MMS_ROOT_INO, "a", 1, &st);
	if (rc == 0)
		rc = mms_read(env, st.ino, buf, sizeof buf, 0, &got);
	is_int(rc, MMS_CORRUPT, "extent on a tree page: reading it is an error, not tree bytes");
	rc = mms_unlink(env, MMS_ROOT_INO, "a", 1);
	if (rc == 0)
		rc = mms_commit(env);
	ok(rc == MMS_CORRUPT || rc == MMS_BADTXN, "extent on a tree page: rm fails as damage (%s: %s)",
	   mms_strerror(rc), mms_errdetail(env));
	mms_rollback(env);
	mms_close(env);
	ok(key_reads(path, "c", 9000), "extent on a tree page: the other keys still read");
	is_int(mms_open(path, NULL, &env), 0, "extent on a tree page: opens again (the free list loads)");
	mms_close(env);
}

/* "a" (3 pages) shared by "d" and "e": its pages have 3 references.  The
 * SHARE item's count patched to `refs`. */
static void make_shared(const char *path, uint32_t refs)
{
	uint64_t a, b, copied;
	uint8_t pg[4096];
	mms_env *env;
	struct mms_stat d, e;
	make_small(path, &a, &b);
	if (mms_open(path, NULL, &env) ||
	    mms_mknod(env, MMS_ROOT_INO, "d", 1, S_IFREG | 0644, 0, 0, &d) ||
	    mms_mknod(env, MMS_ROOT_INO, "e", 1, S_IFREG | 0644, 0, 0, &e) ||
	    mms_copy_range(env, a, 0, d.ino, 0, 12000, &copied) ||
	    mms_copy_range(env, a, 0, e.ino, 0, 12000, &copied) || mms_close(env))
		abort();
	uint64_t sroot = root_of(path, MMS_TREE_SHARE);
	read_page(path, sroot, pg);
	uint8_t *it = item_of(pg, 0);
	if (mms_get_le32(it + 4 + 8 + 8) != 3)
		abort();
	mms_put_le32(it + 4 + 8 + 8, refs);
	write_tree_page(path, sroot, pg);
}

/* A SHARE item that counts too few references: check names it (the engine
 * cannot see it without a walk of every extent; dropping holders would
 * free the pages under the last one).  One that says 1 (an item counts 2 or
 * more) is damage the first time it is read: the keys that hold the pages
 * read, and a removal fails instead of freeing them. */
static void test_share_count(const char *dir)
{
	char path[512];
	mms_env *env;
	snprintf(path, sizeof path, "%s/share.mms", dir);
	make_shared(path, 2);
	ok(check_store(path) == 1 && strstr(problems, "share tree") && strstr(problems, "3 times"),
	   "a share count of 2 for 3 holders: check reports it (%.300s)", problems);
	make_shared(path, 1);
	ok(check_store(path) > 0 && strstr(problems, "share tree"),
	   "a share count of 1: check reports it (%.300s)", problems);
	is_int(mms_open(path, NULL, &env), 0, "a share count of 1: opens");
	int rc = mms_unlink(env, MMS_ROOT_INO, "d", 1);
	if (rc == 0)
		rc = mms_commit(env);
	ok(rc == MMS_CORRUPT || rc == MMS_BADTXN, "a share count of 1: rm of a holder fails as damage (%s: %s)",
	   mms_strerror(rc), mms_errdetail(env));
	ok(strstr(mms_errdetail(env), "share tree") != NULL, "the message names the share tree");
	mms_rollback(env);
	mms_close(env);
	ok(key_reads(path, "a", 12000) && key_reads(path, "d", 12000) && key_reads(path, "e", 12000),
	   "a share count of 1: the three holders still read");
}

static void test_directory_cycle(const char *dir)
{
	char path[512];
	uint8_t pg[4096];
	mms_env *env;
	struct mms_stat d, s;
	snprintf(path, sizeof path, "%s/cycle.mms", dir);
	unlink(path);
	if (mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env))
		abort();
	mms_mkdir(env, MMS_ROOT_INO, "d", 1, 0755, 0, 0, &d);
	mms_mkdir(env, d.ino, "sub", 3, 0755, 0, 0, &s);
	mms_put(env, s.ino, "f", 1, "x", 1, 0644, 0, 0, NULL);
	mms_close(env);
	/* d/sub now names d itself */
	uint64_t root = root_of(path, MMS_TREE_NAME);
	read_page(path, root, pg);
	unsigned n = mms_get_le16(pg + 6);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *it = item_of(pg, i);
		if (mms_get_le16(it) == 19 && !memcmp(it + 4 + 16, "sub", 3))
			mms_put_le64(it + 4 + 19, d.ino);
	}
	write_tree_page(path, root, pg);
	ok(check_store(path) > 0, "directory cycle: check reports it (%.200s)", problems);
	is_int(mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env), 0, "directory cycle: opens");
	FILE *null = fopen("/dev/null", "w");
	int rc = mms_dump(env, null, NULL, NULL);
	fclose(null);
	is_int(rc, MMS_CORRUPT, "directory cycle: dump ends with an error");
	ok(strstr(mms_errdetail(env), "cycle") != NULL, "directory cycle: the detail says so: %s",
	   mms_errdetail(env));
	mms_close(env);
}

static void test_size_past_limit(const char *dir)
{
	char path[512];
	uint8_t pg[4096];
	mms_env *env;
	struct mms_stat st;
	snprintf(path, sizeof path, "%s/size.mms", dir);
	unlink(path);
	if (mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env))
		abort();
	mms_mknod(env, MMS_ROOT_INO, "big", 3, S_IFREG | 0644, 0, 0, &st);
	is_int(mms_truncate(env, st.ino, MMS_SIZE_MAX), 0, "size: a key of the largest size");
	uint64_t ino = st.ino;
	mms_close(env);
	uint64_t root = root_of(path, MMS_TREE_INODE);
	read_page(path, root, pg);
	unsigned n = mms_get_le16(pg + 6);
	bool patched = false;
	for (unsigned i = 0; i < n; i++) {
		uint8_t *it = item_of(pg, i);
		if (mms_get_le16(it) != 8 || mms_get_be64(it + 4) != ino)
			continue;
		/* the record: a flag byte, then varints mode uid gid gen size */
		uint8_t *p = it + 4 + 8 + 1;
		for (int f = 0; f < 4; f++)
			while (*p++ & 0x80)
				;
		/* size 2^52 takes 8 bytes; make its top byte the largest */
		if ((p[7] & 0x80) == 0) {
			p[7] = 0x7f;
			patched = true;
		}
	}
	ok(patched, "size: patched the record to a size past 4 PiB");
	write_tree_page(path, root, pg);
	ok(check_store(path) > 0, "size past the limit: check reports it (%.200s)", problems);
	is_int(mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env), 0, "size: opens");
	int rc = mms_lookup(env, MMS_ROOT_INO, "big", 3, &st);
	is_int(rc, MMS_CORRUPT, "size past the limit: stat is an error, not a wrapped size");
	mms_close(env);
}

static void test_deep_check(const char *dir)
{
	char path[512];
	mms_env *env;
	struct mms_stat st;
	snprintf(path, sizeof path, "%s/deep.mms", dir);
	unlink(path);
	if (mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env))
		abort();
	uint64_t parent = MMS_ROOT_INO;
	int rc = 0;
	for (int i = 0; i < 20000 && !rc; i++) {
		rc = mms_mkdir(env, parent, "d", 1, 0755, 0, 0, &st);
		parent = st.ino;
	}
	is_int(rc, 0, "deep: 20,000 nested directories");
	uint64_t np = 1;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	is_int(mms_check(env, NULL, NULL, NULL, NULL, &np), 0, "deep: check runs");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	is_int(np, 0, "deep: check is clean");
	tap_diag("check of 20,000 nested directories: %.3f s",
	         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	mms_close(env);
}

/* The newest meta page of the store at path (its number). */
static uint64_t newest_meta(const char *path, uint8_t *pg)
{
	uint8_t other[4096];
	read_page(path, 0, pg);
	read_page(path, 1, other);
	if (mms_get_le64(other + 24) > mms_get_le64(pg + 24)) {
		memcpy(pg, other, 4096);
		return 1;
	}
	return 0;
}

/* Put a key into a damaged store: it must fail as damage, naming `what`. */
static void put_refused(const char *path, const char *label, const char *what)
{
	mms_env *env;
	uint8_t v[10] = { 0 };
	int rc = mms_open(path, NULL, &env);
	if (!ok(rc == 0, "%s: opens (the free list loads on first use)", label))
		return;
	rc = mms_put(env, MMS_ROOT_INO, "new", 3, v, sizeof v, 0644, 0, 0, NULL);
	if (rc == 0)
		rc = mms_commit(env);
	ok(rc == MMS_CORRUPT && strstr(mms_errdetail(env), what), "%s: a put fails as damage (%s: %s)",
	   label, mms_strerror(rc), mms_errdetail(env));
	mms_rollback(env);
	mms_close(env);
}

/*
 * The free-list log (format 4): a log page with a flipped byte, and one
 * whose checksums are right but that counts itself as free; and its tail
 * in the meta (format 5), checksum right: a change that frees the base, a
 * change of no known kind, more changes than the meta holds.  Each refuses
 * writes with a detail naming what is wrong, check reports it, and every
 * key still reads.
 */
static void test_free_log(const char *dir)
{
	char path[512], bad[600];
	uint8_t pg[4096], lp[4096];
	uint8_t val[12000];
	mms_env *env;
	memset(val, 'v', sizeof val);
	snprintf(path, sizeof path, "%s/log.mms", dir);
	mms_alloc_test_inline_max = 2; /* a base and a log for a small store */
	mms_alloc_test_tail_max = 1;   /* and log pages, not only a tail */
	if (mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env))
		abort();
	char name[16];
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof name, "k%d", i);
		mms_put(env, MMS_ROOT_INO, name, strlen(name), val, 9000, 0644, 0, 0, NULL);
		mms_commit(env);
	}
	for (int i = 0; i < 30; i += 2) {
		snprintf(name, sizeof name, "k%d", i);
		mms_unlink(env, MMS_ROOT_INO, name, strlen(name));
		mms_commit(env);
	}
	/* (a commit may just have rewritten the base: one more starts a log) */
	for (int i = 0; i < 8 && !mms_get_le32(env->meta_page + 232); i++) {
		mms_put(env, MMS_ROOT_INO, "k0", 2, val, 9000, 0644, 0, 0, NULL);
		mms_commit(env);
	}
	mms_alloc_test_tail_max = 0; /* the last commit's changes stay in the meta */
	mms_put(env, MMS_ROOT_INO, "t", 1, val, 10, 0644, 0, 0, NULL);
	mms_commit(env);
	mms_close(env);
	mms_alloc_test_inline_max = 0;
	uint64_t m = newest_meta(path, pg);
	uint8_t meta0[4096]; /* (the cases below patch pg) */
	memcpy(meta0, pg, sizeof meta0);
	uint64_t head = mms_get_le64(pg + 224), base = mms_get_le64(pg + 192);
	uint32_t nlog = mms_get_le32(pg + 232), ntail = mms_get_le32(pg + 240);
	if (!ok(base && head && nlog && ntail, "log: the store has a base, %u log pages and %u changes "
	        "in the meta", nlog, ntail))
		return;
	ok(check_store(path) == 0, "log: check is clean before the damage (%.200s)", problems);

	/* a flipped byte in the newest log page */
	snprintf(bad, sizeof bad, "%s/log-flip.mms", dir);
	snprintf(name, sizeof name, "page %llu", (unsigned long long)head);
	char cmd[1400];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, bad);
	if (system(cmd))
		abort();
	read_page(bad, head, lp);
	lp[100] ^= 0x10;
	int fd = open(bad, O_WRONLY);
	if (fd < 0 || pwrite(fd, lp, 4096, (off_t)(head * 4096)) != 4096)
		abort();
	close(fd);
	char what[64];
	snprintf(what, sizeof what, "free-list log page %llu: checksum mismatch", (unsigned long long)head);
	put_refused(bad, "log page with a flipped byte", what);
	ok(check_store(bad) > 0 && strstr(problems, what), "log page with a flipped byte: check reports it "
	   "(%.200s)", problems);
	ok(key_reads(bad, "k1", 9000) && key_reads(bad, "k29", 9000),
	   "log page with a flipped byte: every key still reads");

	/* a log page, checksums right, that frees itself */
	snprintf(bad, sizeof bad, "%s/log-self.mms", dir);
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, bad);
	if (system(cmd))
		abort();
	read_page(bad, head, lp);
	uint32_t cnt = mms_get_le32(lp + 36);
	if (cnt >= (4096 - 40) / 12)
		abort();
	mms_put_le64(lp + 40 + 12 * cnt, 1ull << 56 | head); /* free add: the page itself */
	mms_put_le32(lp + 40 + 12 * cnt + 8, 1);
	mms_put_le32(lp + 36, cnt + 1);
	write_tree_page(bad, head, lp); /* (the same crc rule as a tree page) */
	mms_put_le32(pg + 236, mms_get_le32(lp));
	write_meta_page(bad, m, pg);
	put_refused(bad, "log page freeing itself", "counts its own pages");
	ok(check_store(bad) > 0 && strstr(problems, "counts its own pages"),
	   "log page freeing itself: check reports it (%.200s)", problems);
	ok(key_reads(bad, "k1", 9000) && key_reads(bad, "k29", 9000),
	   "log page freeing itself: every key still reads");

	/* the meta's tail, its checksum made right: a change freeing the
	 * base, one of no known kind, and more changes than fit */
	static const struct {
		const char *label, *what;
		uint64_t op;  /* the change added (0: the count is set instead) */
		uint32_t count;
	} tails[] = {
		{ "log tail freeing the base", "counts its own pages", 1, 0 },
		{ "log tail with an unknown change", "free-list log tail, entry", 9, 0 },
		{ "log tail past the meta", "a free-list log tail of 400 changes", 0, 400 },
	};
	for (size_t t = 0; t < sizeof tails / sizeof tails[0]; t++) {
		uint8_t mp[4096];
		memcpy(mp, meta0, sizeof mp);
		snprintf(bad, sizeof bad, "%s/log-tail-%zu.mms", dir, t);
		snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, bad);
		if (system(cmd))
			abort();
		if (tails[t].op) {
			if (ntail >= 319)
				abort();
			mms_put_le64(mp + 244 + 12 * ntail, tails[t].op << 56 | base);
			mms_put_le32(mp + 244 + 12 * ntail + 8, 1);
			mms_put_le32(mp + 240, ntail + 1);
		} else {
			mms_put_le32(mp + 240, tails[t].count);
		}
		write_meta_page(bad, m, mp);
		put_refused(bad, tails[t].label, tails[t].what);
		ok(check_store(bad) > 0 && strstr(problems, tails[t].what), "%s: check reports it (%.200s)",
		   tails[t].label, problems);
		ok(key_reads(bad, "k1", 9000) && key_reads(bad, "k29", 9000) && key_reads(bad, "t", 10),
		   "%s: every key still reads", tails[t].label);
	}
}

int main(void)
{
	char *dir = tap_tmpdir();
	test_overlapping_slots(dir);
	test_orphan_of_live_inode(dir);
	test_free_entry_on_tree_page(dir);
	test_extent_on_tree_page(dir);
	test_share_count(dir);
	test_directory_cycle(dir);
	test_size_past_limit(dir);
	test_deep_check(dir);
	test_free_log(dir);
	return tap_done();
}
