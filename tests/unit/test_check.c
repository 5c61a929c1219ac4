/*
 * test_check.c - damaged, foreign and truncated store files; locking; the
 * rule that an unsynced meta is not trusted after a reboot.  Open either
 * falls back or refuses with the right code, check names the damage, and
 * nothing crashes.
 */
#include "mms_int.h"
#define MMS_TEST_HOOKS 1 /* links tests/libmms_test.la */
#include "io.h"
#include "tap.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char problems[8192];
static const char *expect_what; /* set: count the problems whose text lacks it */
static int unexpected;
static void on_problem(void *ctx, const char *where, const char *what)
{
	(void)ctx;
	if (expect_what && !strstr(what, expect_what))
		unexpected++;
	size_t l = strlen(problems);
	snprintf(problems + l, sizeof(problems) - l, "%s: %s\n", where, what);
}

static void make_store(const char *path)
{
	mms_env *env;
	struct mms_stat st;
	char name[32];
	uint8_t buf[20000];
	memset(buf, 'x', sizeof(buf));
	unlink(path);
	if (mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env))
		exit(1);
	for (int i = 0; i < 300; i++) {
		int l = snprintf(name, sizeof(name), "key-%d", i);
		mms_mknod(env, MMS_ROOT_INO, name, (size_t)l, S_IFREG | 0644, 0, 0, &st);
		mms_write(env, st.ino, buf, (size_t)(i * 61 % 20000), 0);
	}
	mms_close(env);
}

static void flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	if (pread(fd, &b, 1, off) == 1) {
		b ^= 0x5a;
		if (pwrite(fd, &b, 1, off) != 1)
			abort();
	}
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

static uint64_t check_file(const char *path, int *open_rc)
{
	mms_env *env;
	uint64_t n = 0;
	problems[0] = 0;
	*open_rc = mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env);
	if (*open_rc)
		return 0;
	if (mms_check(env, on_problem, NULL, NULL, NULL, &n))
		n = ~0ull;
	mms_close(env);
	return n;
}

/* Set next_ino in both meta pages of the file, checksums made right. */
static void set_next_ino(const char *path, uint64_t next)
{
	int fd = open(path, O_RDWR);
	uint8_t pg[MMS_PAGE_SIZE];
	for (int s = 0; s < 2 && fd >= 0; s++) {
		if (pread(fd, pg, sizeof pg, (off_t)s * MMS_PAGE_SIZE) != (ssize_t)sizeof pg)
			abort();
		mms_put_le64(pg + 88, next);
		mms_put_le32(pg + 8, 0);
		mms_put_le32(pg + 8, mms_crc32c(0, pg, sizeof pg));
		if (pwrite(fd, pg, sizeof pg, (off_t)s * MMS_PAGE_SIZE) != (ssize_t)sizeof pg)
			abort();
	}
	close(fd);
}

/*
 * The checker's inode table: an array indexed by inode number when the
 * numbers are dense, else a hash table; an inode numbered past what the
 * meta allows moves an array into a hash table mid-walk.  Each way the
 * store checks as it is: clean, or with exactly the damage made.
 */
static void test_inode_table(const char *dir)
{
	char path[512];
	mms_env *env;
	struct mms_stat st;
	char name[32];
	snprintf(path, sizeof path, "%s/table.mms", dir);
	if (mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env))
		abort();
	for (int i = 0; i < 3000; i++) {
		int l = snprintf(name, sizeof name, "k%d", i);
		mms_mknod(env, MMS_ROOT_INO, name, (size_t)l, S_IFREG | 0644, 0, 0, &st);
	}
	for (int i = 0; i < 3000; i++) {
		int l = snprintf(name, sizeof name, "k%d", i);
		if (i % 15) /* 200 stay, numbered 15 apart */
			mms_unlink(env, MMS_ROOT_INO, name, (size_t)l);
	}
	uint64_t next = env->meta.next_ino;
	mms_close(env);
	int orc;
	uint64_t n = check_file(path, &orc);
	ok(orc == 0 && n == 0, "sparse inode numbers (200 keys, next inode %llu): checks clean (%.300s)",
	   (unsigned long long)next, problems);

	/* dense numbers, then a meta that allows only the first 100 */
	make_store(path);
	n = check_file(path, &orc);
	ok(orc == 0 && n == 0, "dense inode numbers: checks clean (%.300s)", problems);
	set_next_ino(path, 100);
	expect_what = "beyond the next one to allocate";
	unexpected = 0;
	n = check_file(path, &orc);
	expect_what = NULL;
	ok(orc == 0 && n == 202 && unexpected == 0,
	   "inodes 100..301 past a next inode of 100: each named once, nothing else (%llu problems: %.300s)",
	   (unsigned long long)n, problems);
}

/*
 * A check of a store the page cache does not hold asks for each branch's
 * children before it walks them (its reads overlap, where it waited on
 * one random read at a time); one of a store the cache holds asks for
 * nothing.
 */
static void test_prefetch(const char *dir)
{
	char path[512], name[32];
	mms_env *env;
	uint64_t np = 0;
	uint8_t v[200];
	snprintf(path, sizeof path, "%s/cold.mms", dir);
	if (mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env))
		abort();
	memset(v, 7, sizeof v);
	for (int i = 0; i < 20000; i++) {
		int l = snprintf(name, sizeof name, "key%06d", i);
		if (mms_put(env, MMS_ROOT_INO, name, (size_t)l, v, sizeof v, 0644, 0, 0, NULL))
			abort();
	}
	if (mms_sync(env) || mms_close(env))
		abort();
	/* out of the page cache (nothing maps it: the store is closed) */
	if (!tap_uncache(path)) {
		tap_skip("TMPDIR's file system keeps the store's pages in memory (tmpfs?): "
		         "a store out of the page cache cannot be made there");
		return;
	}
	if (mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env))
		abort();
	unsigned long before = mms_io_test_prefetches;
	int rc = mms_check(env, on_problem, NULL, NULL, NULL, &np);
	unsigned long cold = mms_io_test_prefetches - before;
	ok(rc == 0 && np == 0 && cold > 0,
	   "a check of the store out of the cache is clean and asks for pages ahead (%lu calls)", cold);
	before = mms_io_test_prefetches;
	rc = mms_check(env, on_problem, NULL, NULL, NULL, &np);
	unsigned long warm = mms_io_test_prefetches - before;
	ok(rc == 0 && np == 0 && warm == 0, "a check of the store in the cache asks for none (%lu calls)",
	   warm);
	mms_close(env);
}

int main(void)
{
	tap_plan_none();
	char *dir = tap_tmpdir();
	char path[512], other[512];
	int orc;
	mms_env *env, *env2;
	snprintf(path, sizeof(path), "%s/s.mms", dir);

	make_store(path);
	is_int(check_file(path, &orc), 0, "a fresh store checks clean");

	/* meta 0 damaged: open falls back to meta 1, check names meta 0 */
	flip(path, 100);
	uint64_t n = check_file(path, &orc);
	is_int(orc, 0, "damaged meta 0: the store still opens");
	ok(n >= 1 && strstr(problems, "meta 0"), "check names meta 0: %s", problems);
	flip(path, 100);

	/* both metas damaged: refuses */
	flip(path, 100);
	flip(path, MMS_PAGE_SIZE + 100);
	is_int(mms_open(path, NULL, &env), MMS_CORRUPT, "both metas damaged: MMS_CORRUPT");
	ok(strstr(mms_open_detail(), "meta 0") && strstr(mms_open_detail(), "meta 1"), "detail names both: %s",
	   mms_open_detail());
	flip(path, 100);
	flip(path, MMS_PAGE_SIZE + 100);

	/* a tree page and an extent-tree page damaged: check names the page */
	int trees[2] = { MMS_TREE_NAME, MMS_TREE_EXTENT };
	for (int t = 0; t < 2; t++) {
		uint64_t pg = root_of(path, trees[t]);
		ok(pg >= 2, "%s tree root at page %llu", mms_tree_name(trees[t]), (unsigned long long)pg);
		flip(path, (off_t)(pg * MMS_PAGE_SIZE + 2000));
		n = check_file(path, &orc);
		char want[64];
		snprintf(want, sizeof(want), "page %llu", (unsigned long long)pg);
		ok(orc == 0 && n >= 1 && strstr(problems, want), "damaged %s page: check names %s: %.300s",
		   mms_tree_name(trees[t]), want, problems);
		/* lookups fail cleanly, never crash */
		if (!mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env)) {
			struct mms_stat st;
			int bad = 0;
			for (int i = 0; i < 300; i++) {
				char name[32];
				int l = snprintf(name, sizeof(name), "key-%d", i);
				int rc = mms_lookup(env, MMS_ROOT_INO, name, (size_t)l, &st);
				if (rc == 0) {
					uint8_t buf[20000];
					size_t got;
					rc = mms_read(env, st.ino, buf, sizeof(buf), 0, &got);
				}
				bad += rc == MMS_CORRUPT;
			}
			ok(bad > 0, "reads through the damaged page report MMS_CORRUPT (%d)", bad);
			mms_close(env);
		}
		flip(path, (off_t)(pg * MMS_PAGE_SIZE + 2000));
	}
	is_int(check_file(path, &orc), 0, "restored store checks clean");

	/* truncated at various lengths */
	struct stat st;
	stat(path, &st);
	off_t cuts[] = { 0, 100, 4096, 8192, st.st_size / 2, st.st_size - 4096 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		snprintf(other, sizeof(other), "%s/cut%zu.mms", dir, i);
		make_store(other);
		if (truncate(other, cuts[i]))
			abort();
		int rc = mms_open(other, NULL, &env);
		ok(rc == MMS_NOTSTORE || rc == MMS_TRUNCATED || rc == MMS_CORRUPT,
		   "truncated at %lld: open refuses (%s: %s)", (long long)cuts[i], mms_strerror(rc), mms_open_detail());
		if (!rc)
			mms_close(env);
	}

	/* foreign files */
	snprintf(other, sizeof(other), "%s/foreign", dir);
	FILE *f = fopen(other, "w");
	for (int i = 0; i < 20000; i++)
		fputc(rand() & 0xff, f);
	fclose(f);
	is_int(mms_open(other, NULL, &env), MMS_NOTSTORE, "random bytes: MMS_NOTSTORE");
	f = fopen(other, "w");
	fclose(f);
	is_int(mms_open(other, NULL, &env), MMS_NOTSTORE, "empty file: MMS_NOTSTORE");
	snprintf(other, sizeof(other), "%s/missing", dir);
	is_int(mms_open(other, NULL, &env), MMS_NOTFOUND, "missing file: MMS_NOTFOUND");

	/* locking */
	is_int(mms_open(path, NULL, &env), 0, "open read-write");
	is_int(mms_open(path, NULL, &env2), MMS_LOCKED, "a second read-write opener: MMS_LOCKED");
	is_int(mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env2), MMS_LOCKED,
	       "a read-only opener while a writer holds it: MMS_LOCKED");
	mms_close(env);
	is_int(mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env), 0, "read-only");
	is_int(mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env2), 0, "two read-only openers");
	struct mms_stat sst;
	is_int(mms_mknod(env, MMS_ROOT_INO, "x", 1, S_IFREG | 0644, 0, 0, &sst), MMS_READONLY,
	       "writing a read-only store: MMS_READONLY");
	mms_env *env3;
	is_int(mms_open(path, NULL, &env3), MMS_LOCKED, "a writer while readers hold it: MMS_LOCKED");
	mms_close(env);
	mms_close(env2);

	/* a commit survives a process crash; an unsynced commit does not
	 * survive a reboot: the store opens at its last synced state */
	is_int(mms_open(path, NULL, &env), 0, "open");
	is_int(mms_mknod(env, MMS_ROOT_INO, "synced", 6, S_IFREG | 0644, 0, 0, &sst), 0, "create 'synced'");
	is_int(mms_sync(env), 0, "sync");
	is_int(mms_mknod(env, MMS_ROOT_INO, "committed", 9, S_IFREG | 0644, 0, 0, &sst), 0, "create 'committed'");
	is_int(mms_commit(env), 0, "commit");
	/* simulate a crash: copy the file as it is now, without closing */
	snprintf(other, sizeof(other), "%s/crash.mms", dir);
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "cp %s %s", path, other);
	if (system(cmd))
		abort();
	mms_close(env);
	is_int(mms_open(other, NULL, &env), 0, "after a process crash: opens");
	is_int(mms_lookup(env, MMS_ROOT_INO, "committed", 9, &sst), 0, "the committed key is there");
	mms_close(env);
	snprintf(cmd, sizeof(cmd), "cp %s %s", path, other);
	/* redo: the copy was synced by the close; make a fresh unsynced state */
	is_int(mms_open(path, NULL, &env), 0, "open");
	is_int(mms_mknod(env, MMS_ROOT_INO, "late", 4, S_IFREG | 0644, 0, 0, &sst), 0, "create 'late'");
	is_int(mms_commit(env), 0, "commit without sync");
	if (system(cmd))
		abort();
	mms_close(env);
	mms_io_test_boot_id = "another-boot";
	is_int(mms_open(other, NULL, &env), 0, "after a reboot: opens");
	is_int(mms_lookup(env, MMS_ROOT_INO, "late", 4, &sst), MMS_NOTFOUND, "the unsynced key is gone");
	is_int(mms_lookup(env, MMS_ROOT_INO, "committed", 9, &sst), 0, "the synced keys are there");
	uint64_t np = 1;
	problems[0] = 0;
	is_int(mms_check(env, on_problem, NULL, NULL, NULL, &np), 0, "check");
	ok(np == 0, "clean: %s", problems);
	mms_close(env);
	mms_io_test_boot_id = NULL;

	/* A boot id that cannot be read fails closed: an unsynced meta is not
	 * trusted (every boot would have looked the same) */
	mms_io_test_boot_id = "";
	is_int(mms_open(path, NULL, &env), 0, "open");
	is_int(mms_mknod(env, MMS_ROOT_INO, "late2", 5, S_IFREG | 0644, 0, 0, &sst), 0, "create 'late2'");
	is_int(mms_commit(env), 0, "commit without sync");
	if (system(cmd))
		abort();
	mms_close(env);
	is_int(mms_open(other, NULL, &env), 0, "no boot id: opens");
	is_int(mms_lookup(env, MMS_ROOT_INO, "late2", 5, &sst), MMS_NOTFOUND,
	       "no boot id: the unsynced key is gone (only synced metas are trusted)");
	mms_close(env);
	mms_io_test_boot_id = NULL;

	/* A sync in steps (mms_sync_begin, _io, _end) with a commit between
	 * _io and _end: that commit lands in the slot _io just marked synced,
	 * so _end must refuse (MMS_BUSY) and move nothing; a machine crash
	 * then finds the older synced meta.  Synced again, it finds all. */
	is_int(mms_open(path, NULL, &env), 0, "steps: open");
	is_int(mms_mknod(env, MMS_ROOT_INO, "s1", 2, S_IFREG | 0644, 0, 0, &sst), 0, "steps: create 's1'");
	int needed = 0;
	is_int(mms_sync_begin(env, &needed), 0, "steps: begin");
	ok(needed, "steps: a sync is needed");
	is_int(mms_sync_io(env), 0, "steps: io");
	is_int(mms_mknod(env, MMS_ROOT_INO, "s2", 2, S_IFREG | 0644, 0, 0, &sst), 0, "steps: create 's2' in between");
	is_int(mms_commit(env), 0, "steps: commit it");
	is_int(mms_sync_end(env), MMS_BUSY, "steps: end says MMS_BUSY");
	if (system(cmd))
		abort();
	mms_io_test_boot_id = "yet-another-boot";
	mms_env *e2;
	is_int(mms_open(other, NULL, &e2), 0, "steps: after a reboot: opens");
	is_int(mms_lookup(e2, MMS_ROOT_INO, "s1", 2, &sst), MMS_NOTFOUND,
	       "steps: 's1' was never synced (its sync did not end)");
	is_int(mms_lookup(e2, MMS_ROOT_INO, "committed", 9, &sst), 0, "steps: the synced keys are there");
	np = 1;
	is_int(mms_check(e2, on_problem, NULL, NULL, NULL, &np), 0, "steps: check");
	ok(np == 0, "steps: clean");
	mms_close(e2);
	mms_io_test_boot_id = NULL;
	is_int(mms_sync_begin(env, &needed), 0, "steps: begin again");
	is_int(mms_sync_io(env), 0, "steps: io again");
	is_int(mms_sync_end(env), 0, "steps: end");
	is_int(mms_sync_begin(env, &needed), 0, "steps: begin once more");
	ok(!needed, "steps: nothing left to sync");
	if (system(cmd))
		abort();
	mms_io_test_boot_id = "a-fourth-boot";
	is_int(mms_open(other, NULL, &e2), 0, "steps: after a reboot: opens");
	ok(mms_lookup(e2, MMS_ROOT_INO, "s1", 2, &sst) == 0 &&
	   mms_lookup(e2, MMS_ROOT_INO, "s2", 2, &sst) == 0, "steps: 's1' and 's2' are there");
	mms_close(e2);
	mms_io_test_boot_id = NULL;
	mms_close(env);

	/* hard links and link counts: a lost LINK item, a wrong count */
	char lpath[600];
	snprintf(lpath, sizeof lpath, "%s/links.mms", dir);
	struct mms_stat lf, ld;
	is_int(mms_open(lpath, &(struct mms_options){ .flags = MMS_CREATE }, &env), 0, "links: create");
	is_int(mms_put(env, MMS_ROOT_INO, "f", 1, "x", 1, 0644, 0, 0, &lf), 0, "links: put f");
	is_int(mms_mkdir(env, MMS_ROOT_INO, "d", 1, 0755, 0, 0, &ld), 0, "links: mkdir d");
	is_int(mms_link(env, lf.ino, ld.ino, "g", 1, NULL), 0, "links: link f as d/g");
	is_int(mms_commit(env), 0, "links: commit");
	np = 1;
	ok(mms_check(env, on_problem, NULL, NULL, NULL, &np) == 0 && np == 0, "links: clean");
	uint8_t lkey[32];
	mms_put_be64(lkey, lf.ino);
	mms_put_be64(lkey + 8, ld.ino);
	lkey[16] = 'g';
	is_int(mms_txn_enter(env), 0, "links: begin a change by hand");
	is_int(mms_bt_del(env, MMS_TREE_LINK, lkey, 17), 0, "links: drop the LINK item of d/g");
	is_int(mms_commit(env), 0, "links: commit the damage");
	problems[0] = 0;
	np = 0;
	is_int(mms_check(env, on_problem, NULL, NULL, NULL, &np), 0, "links: check runs");
	ok(np >= 1 && strstr(problems, "in the link tree"), "links: a lost LINK item is named: %.300s",
	   problems);
	is_int(mms_txn_enter(env), 0, "links: put it back");
	is_int(mms_bt_put(env, MMS_TREE_LINK, lkey, 17, "", 0), 0, "links: LINK item again");
	struct mms_inode rin;
	is_int(mms_inode_get(env, ld.ino, &rin, NULL, NULL), 0, "links: read d's record");
	rin.nlink = 5;
	is_int(mms_inode_put(env, &rin, NULL, 0), 0, "links: give d a wrong link count");
	is_int(mms_commit(env), 0, "links: commit");
	problems[0] = 0;
	np = 0;
	is_int(mms_check(env, on_problem, NULL, NULL, NULL, &np), 0, "links: check runs");
	ok(np == 1 && strstr(problems, "link count 5, but 2 + 0 subdirectories"),
	   "links: the wrong count is named: %.300s", problems);
	is_int(mms_txn_enter(env), 0, "links: a LINK item for a name that is not there");
	lkey[16] = 'z';
	rin.nlink = 2;
	is_int(mms_inode_put(env, &rin, NULL, 0), 0, "links: d's count right again");
	is_int(mms_bt_put(env, MMS_TREE_LINK, lkey, 17, "", 0), 0, "links: LINK item d/z");
	is_int(mms_commit(env), 0, "links: commit");
	problems[0] = 0;
	np = 0;
	is_int(mms_check(env, on_problem, NULL, NULL, NULL, &np), 0, "links: check runs");
	ok(np >= 1 && strstr(problems, "no such name in the directory"),
	   "links: a stray LINK item is named: %.300s", problems);
	mms_close(env);
	test_inode_table(dir);
	test_prefetch(dir);
	return tap_done();
}
