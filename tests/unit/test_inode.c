/*
 * test_inode.c - inodes, names, directories, cursors, holds, orphans,
 * symlinks and xattrs of libmms (src/inode.c), through the public API.
 * Each test works on a fresh store in its own temporary directory.
 */
#define MMS_TEST_HOOKS 1 /* links tests/libmms_test.la: its I/O hook and clock */
#include "mms_int.h"
#include "io.h"
#include "tap.h"

#include <inttypes.h>
#include <stdint.h>
#include <sys/stat.h>

#define ROOT MMS_ROOT_INO

/* A fresh store: *pathp gets its path (owned by the test, free it). */
static mms_env *fresh(char **pathp)
{
	const char *dir = tap_tmpdir();
	size_t n = strlen(dir) + sizeof "/store";
	char *path = malloc(n);
	mms_env *env = NULL;
	int rc;

	snprintf(path, n, "%s/store", dir);
	rc = mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env);
	if (!ok(rc == 0, "create store %s: %s", path, mms_strerror(rc))) {
		printf("Bail out! cannot create a store (%s)\n", mms_open_detail());
		exit(1);
	}
	*pathp = path;
	return env;
}

static mms_env *reopen(mms_env *env, const char *path)
{
	int rc = mms_close(env);

	ok(rc == 0, "close %s: %s", path, mms_strerror(rc));
	env = NULL;
	rc = mms_open(path, NULL, &env);
	if (!ok(rc == 0, "reopen %s: %s", path, mms_strerror(rc))) {
		printf("Bail out! cannot reopen (%s)\n", mms_open_detail());
		exit(1);
	}
	return env;
}

/* mknod of a regular file named by a C string; returns the ino or 0. */
static uint64_t mkfile(mms_env *env, uint64_t dir, const char *name)
{
	struct mms_stat st;
	int rc = mms_mknod(env, dir, name, strlen(name), S_IFREG | 0644, 1, 2, &st);

	if (rc) {
		tap_diag("mknod '%s' in %llu: %s (%s)", name, (unsigned long long)dir,
		         mms_strerror(rc), mms_errdetail(env));
		return 0;
	}
	return st.ino;
}

static uint64_t mkd(mms_env *env, uint64_t dir, const char *name)
{
	struct mms_stat st;
	int rc = mms_mkdir(env, dir, name, strlen(name), 0755, 0, 0, &st);

	if (rc) {
		tap_diag("mkdir '%s' in %llu: %s (%s)", name, (unsigned long long)dir,
		         mms_strerror(rc), mms_errdetail(env));
		return 0;
	}
	return st.ino;
}

/* Look a C-string name up: its ino, or 0 when absent (rc in *rcp). */
static uint64_t look(mms_env *env, uint64_t dir, const char *name, int *rcp)
{
	struct mms_stat st;
	int rc = mms_lookup(env, dir, name, strlen(name), &st);

	if (rcp)
		*rcp = rc;
	return rc ? 0 : st.ino;
}

static void report_problem(void *ctx, const char *where, const char *what)
{
	(void)ctx;
	tap_diag("check: %s: %s", where, what);
}

/* mms_check() finds no problem in the store (counters, names, parents,
 * orphans, space accounting). */
static void check_store(mms_env *env, const char *label)
{
	uint64_t n = 0;
	int rc = mms_check(env, report_problem, NULL, NULL, NULL, &n);

	ok(rc == 0 && n == 0, "mms_check after %s: rc %d, %llu problems", label, rc,
	   (unsigned long long)n);
}

static struct mms_info info(mms_env *env)
{
	struct mms_info in;

	memset(&in, 0, sizeof in);
	int rc = mms_stats(env, &in);
	if (rc)
		tap_diag("mms_stats: %s", mms_strerror(rc));
	return in;
}

static int64_t ts_ns(struct timespec ts)
{
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts_ns(ts);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_create_lookup(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st, st2;
	struct mms_info in0 = info(env), in1;
	int64_t t0 = now_ns() - 1000000000;
	int rc;

	rc = mms_getattr(env, ROOT, &st);
	ok(rc == 0 && S_ISDIR(st.mode) && st.nlink == 2 && st.ino == ROOT,
	   "root is a directory with nlink 2 (no subdirectory yet)");
	is_int(in0.dirs, 1, "a new store counts one directory (the root)");
	is_int(in0.keys, 0, "a new store has no keys");

	rc = mms_mknod(env, ROOT, "file", 4, S_IFREG | 0640, 1000, 100, &st);
	is_int(rc, 0, "mknod regular file");
	ok(S_ISREG(st.mode) && (st.mode & 07777) == 0640, "mode kept (%o)", st.mode);
	ok(st.uid == 1000 && st.gid == 100, "uid and gid kept");
	ok(st.nlink == 1 && st.size == 0 && st.blocks == 0, "nlink 1, empty");
	ok(st.ino > ROOT, "new ino %llu above the root", (unsigned long long)st.ino);
	ok(ts_ns(st.mtime) >= t0 && ts_ns(st.ctime) >= t0 && ts_ns(st.atime) >= t0,
	   "times are now");

	rc = mms_lookup(env, ROOT, "file", 4, &st2);
	ok(rc == 0 && st2.ino == st.ino && st2.mode == st.mode && st2.gen == st.gen,
	   "lookup finds the same inode");
	rc = mms_getattr(env, st.ino, &st2);
	ok(rc == 0 && st2.ino == st.ino && st2.uid == 1000, "getattr by ino");

	uint64_t d = mkd(env, ROOT, "dir");
	ok(d != 0, "mkdir");
	rc = mms_getattr(env, d, &st2);
	ok(rc == 0 && S_ISDIR(st2.mode) && (st2.mode & 07777) == 0755 && st2.nlink == 2,
	   "directory attributes");
	rc = mms_mknod(env, d, "fifo", 4, S_IFIFO | 0600, 0, 0, &st2);
	ok(rc == 0 && S_ISFIFO(st2.mode), "mknod fifo in a subdirectory");
	rc = mms_mknod(env, d, "sock", 4, S_IFSOCK | 0600, 0, 0, &st2);
	ok(rc == 0 && S_ISSOCK(st2.mode), "mknod socket");
	rc = mms_mknod(env, d, "sub", 3, S_IFDIR | 0700, 0, 0, &st2);
	ok(rc == 0 && S_ISDIR(st2.mode), "mknod with S_IFDIR makes a directory");

	in1 = info(env);
	is_int(in1.keys, 3, "keys counts the file, fifo and socket");
	is_int(in1.dirs, 3, "dirs counts root, dir and sub");

	rc = mms_resolve(env, "dir/sub", 7, &st2);
	ok(rc == 0 && S_ISDIR(st2.mode), "resolve dir/sub");
	rc = mms_resolve(env, "//dir//fifo/", 12, &st2);
	ok(rc == 0 && S_ISFIFO(st2.mode), "resolve ignores extra slashes");
	rc = mms_resolve(env, "", 0, &st2);
	ok(rc == 0 && st2.ino == ROOT, "resolve \"\" is the root");
	rc = mms_resolve(env, "file/x", 6, &st2);
	is_int(rc, MMS_NOTDIR, "resolve through a file: MMS_NOTDIR");
	rc = mms_resolve(env, "dir/nope", 8, &st2);
	is_int(rc, MMS_NOTFOUND, "resolve of a missing name: MMS_NOTFOUND");
	rc = mms_resolve(env, "dir/../file", 11, &st2);
	is_int(rc, MMS_BADNAME, "resolve with '..': MMS_BADNAME");

	/* The parent's mtime moves on create. */
	struct mms_stat before, after;
	mms_getattr(env, d, &before);
	struct mms_setattr sa = { .mtime = { 1000, 0 }, .ctime = { 1000, 0 } };
	rc = mms_setattr(env, d, &sa, MMS_SET_MTIME | MMS_SET_CTIME, &before);
	ok(rc == 0 && before.mtime.tv_sec == 1000, "set an old mtime on the directory");
	mkfile(env, d, "newer");
	mms_getattr(env, d, &after);
	ok(after.mtime.tv_sec > 1000 && after.ctime.tv_sec > 1000,
	   "create sets the parent's mtime and ctime");
	check_store(env, "create lookup");
	mms_close(env);
	free(path);
}

static void test_names(void)
{
	char *path;
	mms_env *env = fresh(&path);
	char n255[256], n256[257];
	struct mms_stat st;
	int rc;

	memset(n255, 'a', 255);
	n255[255] = 0;
	memset(n256, 'b', 256);
	n256[256] = 0;
	rc = mms_mknod(env, ROOT, n255, 255, S_IFREG | 0644, 0, 0, &st);
	is_int(rc, 0, "a 255-byte name is accepted");
	rc = mms_lookup(env, ROOT, n255, 255, &st);
	is_int(rc, 0, "and found");
	rc = mms_mknod(env, ROOT, n256, 256, S_IFREG | 0644, 0, 0, &st);
	is_int(rc, MMS_NAMETOOLONG, "a 256-byte name: MMS_NAMETOOLONG");
	rc = mms_lookup(env, ROOT, n256, 256, &st);
	is_int(rc, MMS_NAMETOOLONG, "lookup of a 256-byte name: MMS_NAMETOOLONG");
	rc = mms_mkdir(env, ROOT, n256, 256, 0755, 0, 0, &st);
	is_int(rc, MMS_NAMETOOLONG, "mkdir of a 256-byte name: MMS_NAMETOOLONG");

	static const struct { const char *s; size_t len; } bad[] = {
		{ "", 0 }, { ".", 1 }, { "..", 2 }, { "a/b", 3 }, { "a\0b", 3 }, { "/", 1 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		rc = mms_mknod(env, ROOT, bad[i].s, bad[i].len, S_IFREG | 0644, 0, 0, &st);
		is_int(rc, MMS_BADNAME, "bad name rejected by mknod");
		rc = mms_lookup(env, ROOT, bad[i].s, bad[i].len, &st);
		is_int(rc, MMS_BADNAME, "bad name rejected by lookup");
	}
	/* Names are byte strings: "..." and ".a" are fine, and names differing
	 * in one byte are distinct. */
	ok(mkfile(env, ROOT, "...") != 0, "'...' is a valid name");
	ok(mkfile(env, ROOT, ".a") != 0, "'.a' is a valid name");
	ok(mkfile(env, ROOT, "x1") != 0 && mkfile(env, ROOT, "x2") != 0, "x1 and x2");
	ok(look(env, ROOT, "x1", NULL) != look(env, ROOT, "x2", NULL), "distinct inodes");
	struct mms_info in = info(env);
	is_int(in.keys, 5, "keys counts only successful creates");
	check_store(env, "names");
	mms_close(env);
	free(path);
}

static void test_errors(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st;
	mms_cursor *cur;
	int rc;

	uint64_t f = mkfile(env, ROOT, "f");
	uint64_t d = mkd(env, ROOT, "d");
	ok(f && d, "setup");
	uint64_t g = mkfile(env, d, "g");
	ok(g != 0, "file inside d");

	look(env, ROOT, "missing", &rc);
	is_int(rc, MMS_NOTFOUND, "lookup of a missing name: MMS_NOTFOUND");
	look(env, f, "x", &rc);
	is_int(rc, MMS_NOTDIR, "lookup in a file: MMS_NOTDIR");
	look(env, 999999, "x", &rc);
	is_int(rc, MMS_NOTFOUND, "lookup in a missing directory: MMS_NOTFOUND");
	rc = mms_getattr(env, 999999, &st);
	is_int(rc, MMS_NOTFOUND, "getattr of a missing ino: MMS_NOTFOUND");

	rc = mms_mknod(env, ROOT, "f", 1, S_IFREG | 0644, 0, 0, &st);
	is_int(rc, MMS_EXISTS, "mknod of a taken name: MMS_EXISTS");
	rc = mms_mkdir(env, ROOT, "d", 1, 0755, 0, 0, &st);
	is_int(rc, MMS_EXISTS, "mkdir of a taken name: MMS_EXISTS");
	rc = mms_mknod(env, ROOT, "c", 1, S_IFCHR | 0644, 0, 0, &st);
	is_int(rc, MMS_INVAL, "mknod of a character device: MMS_INVAL");
	rc = mms_mknod(env, ROOT, "l", 1, S_IFLNK | 0644, 0, 0, &st);
	is_int(rc, MMS_INVAL, "mknod of a symlink type: MMS_INVAL");
	rc = mms_mknod(env, f, "x", 1, S_IFREG | 0644, 0, 0, &st);
	is_int(rc, MMS_NOTDIR, "mknod in a file: MMS_NOTDIR");
	rc = mms_mknod(env, 999999, "x", 1, S_IFREG | 0644, 0, 0, &st);
	is_int(rc, MMS_NOTFOUND, "mknod in a missing directory: MMS_NOTFOUND");

	rc = mms_unlink(env, ROOT, "d", 1);
	is_int(rc, MMS_ISDIR, "unlink of a directory: MMS_ISDIR");
	rc = mms_rmdir(env, ROOT, "f", 1);
	is_int(rc, MMS_NOTDIR, "rmdir of a file: MMS_NOTDIR");
	rc = mms_rmdir(env, ROOT, "d", 1);
	is_int(rc, MMS_NOTEMPTY, "rmdir of a non-empty directory: MMS_NOTEMPTY");
	rc = mms_unlink(env, ROOT, "zz", 2);
	is_int(rc, MMS_NOTFOUND, "unlink of a missing name: MMS_NOTFOUND");
	rc = mms_rmdir(env, ROOT, "zz", 2);
	is_int(rc, MMS_NOTFOUND, "rmdir of a missing name: MMS_NOTFOUND");
	rc = mms_unlink(env, f, "x", 1);
	is_int(rc, MMS_NOTDIR, "unlink in a file: MMS_NOTDIR");
	rc = mms_unlink(env, ROOT, "..", 2);
	is_int(rc, MMS_BADNAME, "unlink of '..': MMS_BADNAME");

	char buf[16];
	size_t len;
	rc = mms_readlink(env, f, buf, sizeof buf, &len);
	is_int(rc, MMS_NOTLINK, "readlink of a file: MMS_NOTLINK");
	rc = mms_release(env, f);
	is_int(rc, MMS_INVAL, "release without a hold: MMS_INVAL");
	rc = mms_hold(env, 999999);
	is_int(rc, MMS_NOTFOUND, "hold of a missing ino: MMS_NOTFOUND");
	rc = mms_dir_open(env, f, 0, &cur);
	is_int(rc, MMS_NOTDIR, "dir_open of a file: MMS_NOTDIR");
	rc = mms_dir_open(env, 999999, 0, &cur);
	is_int(rc, MMS_NOTFOUND, "dir_open of a missing ino: MMS_NOTFOUND");

	struct mms_setattr sa = { .size = 10 };
	rc = mms_setattr(env, d, &sa, MMS_SET_SIZE, &st);
	is_int(rc, MMS_ISDIR, "setattr size of a directory: MMS_ISDIR");
	sa.size = MMS_SIZE_MAX + 1;
	rc = mms_setattr(env, f, &sa, MMS_SET_SIZE, &st);
	is_int(rc, MMS_TOOBIG, "setattr size past MMS_SIZE_MAX: MMS_TOOBIG");
	rc = mms_setattr(env, 999999, &sa, MMS_SET_MODE, &st);
	is_int(rc, MMS_NOTFOUND, "setattr of a missing ino: MMS_NOTFOUND");

	/* Nothing above changed the counters. */
	struct mms_info in = info(env);
	ok(in.keys == 2 && in.dirs == 2 && in.orphans == 0, "counters unchanged by failures");

	check_store(env, "errors");
	/* Read-only: every modifying call fails with MMS_READONLY. */
	rc = mms_close(env);
	is_int(rc, 0, "close");
	rc = mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env);
	if (ok(rc == 0, "open read-only")) {
		rc = mms_mknod(env, ROOT, "n", 1, S_IFREG | 0644, 0, 0, &st);
		is_int(rc, MMS_READONLY, "mknod on a read-only store: MMS_READONLY");
		rc = mms_unlink(env, ROOT, "f", 1);
		is_int(rc, MMS_READONLY, "unlink on a read-only store");
		rc = mms_rename(env, ROOT, "f", 1, ROOT, "h", 1, 0);
		is_int(rc, MMS_READONLY, "rename on a read-only store");
		rc = mms_setxattr(env, f, "user.a", 6, "v", 1, 0);
		is_int(rc, MMS_READONLY, "setxattr on a read-only store");
		ok(look(env, d, "g", NULL) == g, "lookups work read-only");
		rc = mms_hold(env, f);
		ok(rc == 0 && mms_release(env, f) == 0, "hold and release work read-only");
		mms_close(env);
	}
	free(path);
}

static void test_rename(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st;
	struct mms_info in;
	int rc;

	uint64_t a = mkd(env, ROOT, "a");
	uint64_t b = mkd(env, a, "b");
	uint64_t c = mkd(env, b, "c");
	uint64_t e = mkd(env, ROOT, "e");
	uint64_t f1 = mkfile(env, ROOT, "f1");
	uint64_t f2 = mkfile(env, ROOT, "f2");
	uint64_t f3 = mkfile(env, a, "f3");
	ok(a && b && c && e && f1 && f2 && f3, "setup");

	/* Plain move within and across directories. */
	rc = mms_rename(env, ROOT, "f1", 2, ROOT, "g1", 2, 0);
	ok(rc == 0 && look(env, ROOT, "g1", NULL) == f1 && look(env, ROOT, "f1", NULL) == 0,
	   "rename within a directory");
	rc = mms_rename(env, ROOT, "g1", 2, e, "f1", 2, 0);
	ok(rc == 0 && look(env, e, "f1", NULL) == f1 && look(env, ROOT, "g1", NULL) == 0,
	   "rename across directories");
	rc = mms_getattr(env, f1, &st);
	ok(rc == 0 && st.nlink == 1, "moved file still linked");

	/* Onto itself: success, no change. */
	rc = mms_rename(env, e, "f1", 2, e, "f1", 2, 0);
	ok(rc == 0 && look(env, e, "f1", NULL) == f1, "rename onto itself is a no-op");
	rc = mms_rename(env, e, "f1", 2, e, "f1", 2, MMS_RENAME_EXCHANGE);
	ok(rc == 0 && look(env, e, "f1", NULL) == f1, "exchange with itself is a no-op");

	/* Replace a file by a file: the old target is freed. */
	in = info(env);
	uint64_t keys = in.keys;
	rc = mms_rename(env, e, "f1", 2, ROOT, "f2", 2, 0);
	ok(rc == 0 && look(env, ROOT, "f2", NULL) == f1, "rename replaces a file");
	is_int(mms_getattr(env, f2, &st), MMS_NOTFOUND, "the replaced inode is gone");
	in = info(env);
	is_int(in.keys, keys - 1, "keys drops by one on replace");

	/* NOREPLACE. */
	rc = mms_rename(env, ROOT, "f2", 2, a, "f3", 2, MMS_RENAME_NOREPLACE);
	is_int(rc, MMS_EXISTS, "NOREPLACE onto an existing name: MMS_EXISTS");
	ok(look(env, ROOT, "f2", NULL) == f1 && look(env, a, "f3", NULL) == f3, "nothing moved");
	rc = mms_rename(env, ROOT, "f2", 2, ROOT, "f4", 2, MMS_RENAME_NOREPLACE);
	ok(rc == 0 && look(env, ROOT, "f4", NULL) == f1, "NOREPLACE onto a free name works");

	/* Type rules. */
	rc = mms_rename(env, ROOT, "f4", 2, ROOT, "e", 1, 0);
	is_int(rc, MMS_ISDIR, "file over directory: MMS_ISDIR");
	rc = mms_rename(env, ROOT, "e", 1, ROOT, "f4", 2, 0);
	is_int(rc, MMS_NOTDIR, "directory over file: MMS_NOTDIR");
	rc = mms_rename(env, ROOT, "e", 1, ROOT, "a", 1, 0);
	is_int(rc, MMS_NOTEMPTY, "directory over non-empty directory: MMS_NOTEMPTY");
	uint64_t empty = mkd(env, ROOT, "empty");
	in = info(env);
	uint64_t dirs = in.dirs;
	rc = mms_rename(env, a, "b", 1, ROOT, "empty", 5, 0);
	ok(rc == 0 && look(env, ROOT, "empty", NULL) == b && look(env, a, "b", NULL) == 0,
	   "directory over empty directory");
	is_int(mms_getattr(env, empty, &st), MMS_NOTFOUND, "the replaced directory is gone");
	in = info(env);
	is_int(in.dirs, dirs - 1, "dirs drops by one");
	rc = mms_resolve(env, "empty/c", 7, &st);
	ok(rc == 0 && st.ino == c, "the moved directory keeps its entries");
	rc = mms_rename(env, ROOT, "nope", 4, ROOT, "x", 1, 0);
	is_int(rc, MMS_NOTFOUND, "rename of a missing name: MMS_NOTFOUND");
	rc = mms_rename(env, ROOT, "f4", 2, ROOT, "x/y", 3, 0);
	is_int(rc, MMS_BADNAME, "rename to a bad name: MMS_BADNAME");
	rc = mms_rename(env, ROOT, "f4", 2, ROOT, "x", 1, 3);
	is_int(rc, MMS_INVAL, "NOREPLACE|EXCHANGE: MMS_INVAL");
	rc = mms_rename(env, ROOT, "f4", 2, f3, "x", 1, 0);
	is_int(rc, MMS_NOTDIR, "rename into a file: MMS_NOTDIR");

	/* Loops: now ROOT/empty (= b) holds c. */
	rc = mms_rename(env, ROOT, "empty", 5, c, "x", 1, 0);
	is_int(rc, MMS_LOOP, "directory into its child: MMS_LOOP");
	rc = mms_rename(env, ROOT, "empty", 5, b, "x", 1, 0);
	is_int(rc, MMS_LOOP, "directory into itself: MMS_LOOP");
	uint64_t deep = mkd(env, c, "deep");
	rc = mms_rename(env, ROOT, "empty", 5, deep, "x", 1, 0);
	is_int(rc, MMS_LOOP, "directory into a grandchild: MMS_LOOP");
	rc = mms_rename(env, ROOT, "empty", 5, c, "deep", 4, MMS_RENAME_EXCHANGE);
	is_int(rc, MMS_LOOP, "exchange of a directory with its descendant: MMS_LOOP");
	rc = mms_rename(env, c, "deep", 4, ROOT, "empty", 5, MMS_RENAME_EXCHANGE);
	is_int(rc, MMS_LOOP, "exchange of a descendant with its ancestor: MMS_LOOP");
	ok(look(env, ROOT, "empty", NULL) == b && look(env, c, "deep", NULL) == deep,
	   "loops changed nothing");

	/* Moving a directory updates its parent: after moving c to the root,
	 * b can go below c. */
	rc = mms_rename(env, b, "c", 1, ROOT, "c", 1, 0);
	is_int(rc, 0, "move c up to the root");
	rc = mms_rename(env, ROOT, "empty", 5, c, "b", 1, 0);
	is_int(rc, 0, "now b can move below c");
	rc = mms_rename(env, ROOT, "c", 1, deep, "c", 1, 0);
	is_int(rc, MMS_LOOP, "but c cannot move below its own child");

	/* EXCHANGE of a file and a directory across directories. */
	rc = mms_rename(env, ROOT, "f4", 2, c, "deep", 4, MMS_RENAME_EXCHANGE);
	ok(rc == 0 && look(env, ROOT, "f4", NULL) == deep && look(env, c, "deep", NULL) == f1,
	   "exchange of a file and a directory");
	rc = mms_getattr(env, deep, &st);
	ok(rc == 0 && S_ISDIR(st.mode), "the directory kept its type");
	struct mms_dirent de;
	mms_cursor *cur;
	int found = 0;
	if (mms_dir_open(env, c, 0, &cur) == 0) {
		for (int n = 0; n < 100 && mms_dir_next(cur, &de) == 0; n++)
			if (de.namelen == 4 && memcmp(de.name, "deep", 4) == 0)
				found = de.ino == f1 && S_ISREG(de.mode);
		mms_dir_close(cur);
	}
	ok(found, "the listing shows the exchanged entry with its new type");
	/* The exchanged directory's parent is now the root: c can move below it. */
	rc = mms_rename(env, ROOT, "c", 1, deep, "c", 1, 0);
	is_int(rc, 0, "the exchanged directory's parent was updated");
	rc = mms_rename(env, ROOT, "f4", 2, ROOT, "nope", 4, MMS_RENAME_EXCHANGE);
	is_int(rc, MMS_NOTFOUND, "exchange with a missing target: MMS_NOTFOUND");

	/* Parent times. */
	struct mms_setattr sa = { .mtime = { 1000, 0 }, .ctime = { 1000, 0 } };
	mms_setattr(env, a, &sa, MMS_SET_MTIME | MMS_SET_CTIME, NULL);
	mms_setattr(env, e, &sa, MMS_SET_MTIME | MMS_SET_CTIME, NULL);
	mms_setattr(env, f3, &sa, MMS_SET_MTIME | MMS_SET_CTIME, NULL);
	rc = mms_rename(env, a, "f3", 2, e, "f3", 2, 0);
	is_int(rc, 0, "move f3 from a to e");
	struct mms_stat sa1, se1, sf;
	mms_getattr(env, a, &sa1);
	mms_getattr(env, e, &se1);
	mms_getattr(env, f3, &sf);
	ok(sa1.mtime.tv_sec > 1000 && sa1.ctime.tv_sec > 1000, "old parent mtime/ctime updated");
	ok(se1.mtime.tv_sec > 1000 && se1.ctime.tv_sec > 1000, "new parent mtime/ctime updated");
	ok(sf.ctime.tv_sec > 1000 && sf.mtime.tv_sec == 1000, "moved inode: ctime now, mtime kept");

	/* Everything survives a reopen. */
	env = reopen(env, path);
	rc = mms_resolve(env, "f4/c/b", 6, &st);
	ok(rc == 0 && st.ino == b, "f4/c/b after reopen");
	rc = mms_resolve(env, "e/f3", 4, &st);
	ok(rc == 0 && st.ino == f3, "e/f3 after reopen");
	check_store(env, "rename");
	mms_close(env);
	free(path);
}

static void test_rmdir(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st;
	int rc;

	uint64_t d = mkd(env, ROOT, "d");
	uint64_t f = mkfile(env, d, "f");
	ok(d && f, "setup");
	rc = mms_rmdir(env, ROOT, "d", 1);
	is_int(rc, MMS_NOTEMPTY, "rmdir with one file: MMS_NOTEMPTY");
	rc = mms_unlink(env, d, "f", 1);
	is_int(rc, 0, "unlink the file");
	is_int(mms_getattr(env, f, &st), MMS_NOTFOUND, "the unheld file is freed at once");
	uint64_t s = mkd(env, d, "s");
	rc = mms_rmdir(env, ROOT, "d", 1);
	is_int(rc, MMS_NOTEMPTY, "rmdir with a subdirectory: MMS_NOTEMPTY");
	rc = mms_rmdir(env, d, "s", 1);
	is_int(rc, 0, "rmdir the subdirectory");
	is_int(mms_getattr(env, s, &st), MMS_NOTFOUND, "subdirectory gone");
	/* A directory whose ino sorts next to d's but is a different parent must
	 * not make d look non-empty. */
	uint64_t d2 = mkd(env, ROOT, "d2");
	mkfile(env, d2, "x");
	rc = mms_rmdir(env, ROOT, "d", 1);
	is_int(rc, 0, "rmdir of the now-empty directory");
	is_int(mms_getattr(env, d, &st), MMS_NOTFOUND, "directory gone");
	struct mms_info in = info(env);
	ok(in.dirs == 2 && in.keys == 1, "counters: dirs %llu keys %llu",
	   (unsigned long long)in.dirs, (unsigned long long)in.keys);
	check_store(env, "rmdir");
	mms_close(env);
	free(path);
}

/* Index of name "e%05d" in a listing, or -1. */
static int entry_index(const struct mms_dirent *de, char prefix)
{
	if (de->namelen != 6 || de->name[0] != prefix)
		return -1;
	int v = 0;
	for (int i = 1; i < 6; i++) {
		if (de->name[i] < '0' || de->name[i] > '9')
			return -1;
		v = v * 10 + (de->name[i] - '0');
	}
	return v;
}

static void test_cursor_stable(void)
{
	char *path;
	mms_env *env = fresh(&path);
	enum { NA = 300, NB = 300, NC = 300 };
	char name[16];
	int seenA[NA] = { 0 }, seenB[NB] = { 0 }, seenC[NC] = { 0 };
	struct mms_dirent de;
	mms_cursor *cur;
	int rc, bad = 0, n = 0, other = 0;

	uint64_t d = mkd(env, ROOT, "d");
	for (int i = 0; i < NA; i++) {
		snprintf(name, sizeof name, "a%05d", i);
		if (!mkfile(env, d, name))
			bad++;
	}
	for (int i = 0; i < NB; i++) {
		snprintf(name, sizeof name, "b%05d", i);
		if (!mkfile(env, d, name))
			bad++;
	}
	is_int(bad, 0, "created 600 entries");

	rc = mms_dir_open(env, d, 0, &cur);
	is_int(rc, 0, "dir_open");
	uint64_t lastcookie = 0;
	int monotonic = 1;
	while ((rc = mms_dir_next(cur, &de)) == 0 && n < 10 * (NA + NB + NC)) {
		int ia = entry_index(&de, 'a'), ib = entry_index(&de, 'b'),
		    ic = entry_index(&de, 'c');
		if (de.cookie < MMS_COOKIE_MIN || de.cookie < lastcookie)
			monotonic = 0;
		lastcookie = de.cookie;
		if (ia >= 0)
			seenA[ia]++;
		else if (ib >= 0)
			seenB[ib]++;
		else if (ic >= 0)
			seenC[ic]++;
		else
			other++;
		n++;
		/* Every 7 entries, remove 10 B entries and add 10 C entries. */
		if (n % 7 == 0) {
			for (int k = 0; k < 10; k++) {
				static int nb, nc;
				if (nb < NB) {
					snprintf(name, sizeof name, "b%05d", nb++);
					if (mms_unlink(env, d, name, 6))
						bad++;
				}
				if (nc < NC) {
					snprintf(name, sizeof name, "c%05d", nc++);
					if (!mkfile(env, d, name))
						bad++;
				}
			}
		}
	}
	is_int(rc, MMS_NOTFOUND, "listing ends with MMS_NOTFOUND");
	rc = mms_dir_next(cur, &de);
	is_int(rc, MMS_NOTFOUND, "and stays at the end");
	mms_dir_close(cur);
	is_int(bad, 0, "changes during the listing succeeded");
	int onceA = 1, dupB = 0, dupC = 0;
	for (int i = 0; i < NA; i++)
		if (seenA[i] != 1)
			onceA = 0;
	for (int i = 0; i < NB; i++)
		if (seenB[i] > 1)
			dupB = 1;
	for (int i = 0; i < NC; i++)
		if (seenC[i] > 1)
			dupC = 1;
	ok(onceA, "each entry present throughout was returned exactly once");
	ok(!dupB && !dupC, "no entry was returned twice");
	is_int(other, 0, "no unknown names");
	ok(monotonic, "cookies are >= MMS_COOKIE_MIN and never decrease");

	/* Resuming from a cookie continues after that entry. */
	uint64_t cookies[1000];
	char names[1000][8];
	int total = 0;
	rc = mms_dir_open(env, d, 0, &cur);
	while (rc == 0 && total < 1000 && mms_dir_next(cur, &de) == 0) {
		cookies[total] = de.cookie;
		memcpy(names[total], de.name, 6);
		total++;
	}
	if (rc == 0)
		mms_dir_close(cur);
	is_int(total, NA + NC, "a fresh listing has the A and C entries");
	int resume_ok = total > 0;
	for (int k = 0; k < total && resume_ok; k += total / 7 + 1) {
		if (mms_dir_open(env, d, cookies[k], &cur) != 0) {
			resume_ok = 0;
			break;
		}
		int j = k + 1;
		while (mms_dir_next(cur, &de) == 0 && j <= total) {
			if (j >= total || memcmp(de.name, names[j], 6) != 0) {
				resume_ok = 0;
				break;
			}
			j++;
		}
		if (j != total)
			resume_ok = 0;
		mms_dir_close(cur);
	}
	ok(resume_ok, "dir_open(cookie) resumes right after the entry");
	rc = mms_dir_open(env, d, UINT64_MAX, &cur);
	if (rc == 0) {
		rc = mms_dir_next(cur, &de);
		mms_dir_close(cur);
	}
	is_int(rc, MMS_NOTFOUND, "a cookie past the end lists nothing");
	check_store(env, "cursor stable");
	mms_close(env);
	free(path);
}

static void test_big_dir(void)
{
	char *path;
	mms_env *env = fresh(&path);
	enum { N = 1500 };
	static int seen[N];
	char name[16];
	struct mms_dirent de;
	mms_cursor *cur;
	int rc, bad = 0, n = 0, other = 0;

	memset(seen, 0, sizeof seen);
	uint64_t d = mkd(env, ROOT, "big");
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "e%05d", i);
		if (!mkfile(env, d, name))
			bad++;
	}
	is_int(bad, 0, "created 1500 entries");
	uint64_t e0 = look(env, d, "e00000", NULL);
	/* Neighbours: entries of other directories must not leak in. */
	mkfile(env, ROOT, "rootfile");
	uint64_t d2 = mkd(env, ROOT, "zz");
	mkfile(env, d2, "e00001");

	for (int pass = 0; pass < 2; pass++) {
		memset(seen, 0, sizeof seen);
		n = other = 0;
		rc = mms_dir_open(env, d, 0, &cur);
		is_int(rc, 0, "dir_open of the big directory");
		while ((rc = mms_dir_next(cur, &de)) == 0 && n < 10 * N) {
			int i = entry_index(&de, 'e');
			if (i >= 0 && i < N)
				seen[i]++;
			else
				other++;
			if (i == 0 && de.ino != e0)
				other++; /* the entry's ino must be the name's */
			n++;
		}
		mms_dir_close(cur);
		int once = 1;
		for (int i = 0; i < N; i++)
			if (seen[i] != 1)
				once = 0;
		is_int(rc, MMS_NOTFOUND, "listing ends");
		is_int(n, N, "1500 entries listed");
		ok(once && other == 0, "each exactly once, nothing else (pass %d)", pass);
		if (pass == 0)
			env = reopen(env, path);
	}
	struct mms_info in = info(env);
	is_int(in.keys, N + 2, "keys counts every file");
	check_store(env, "big dir");
	mms_close(env);
	free(path);
}

static void test_holds(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st;
	struct mms_info in0, in;
	char buf[20000], rbuf[20000];
	size_t nread;
	int rc;

	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)(i * 7 + 3);
	uint64_t f = mkfile(env, ROOT, "held");
	rc = mms_write(env, f, buf, sizeof buf, 0);
	is_int(rc, 0, "write 20000 bytes");
	rc = mms_setxattr(env, f, "user.big", 8, buf, 5000, 0);
	is_int(rc, 0, "a blob xattr on it");
	mms_commit(env);
	in0 = info(env);

	rc = mms_hold(env, f);
	is_int(rc, 0, "hold");
	rc = mms_hold(env, f);
	is_int(rc, 0, "hold again (counted)");
	rc = mms_unlink(env, ROOT, "held", 4);
	is_int(rc, 0, "unlink while held");
	look(env, ROOT, "held", &rc);
	is_int(rc, MMS_NOTFOUND, "the name is gone");
	rc = mms_getattr(env, f, &st);
	ok(rc == 0 && st.nlink == 0 && st.size == sizeof buf, "the inode lives on with nlink 0");
	rc = mms_read(env, f, rbuf, sizeof rbuf, 0, &nread);
	ok(rc == 0 && nread == sizeof buf && memcmp(buf, rbuf, sizeof buf) == 0,
	   "its bytes are still readable");
	in = info(env);
	ok(in.orphans == 1 && in.keys == in0.keys - 1, "orphans 1, keys %llu -> %llu",
	   (unsigned long long)in0.keys, (unsigned long long)in.keys);
	check_store(env, "unlink of a held file");

	rc = mms_release(env, f);
	is_int(rc, 0, "first release");
	rc = mms_getattr(env, f, &st);
	is_int(rc, 0, "still there after the first release");
	rc = mms_release(env, f);
	is_int(rc, 0, "last release");
	rc = mms_getattr(env, f, &st);
	is_int(rc, MMS_NOTFOUND, "freed by the last release");
	in = info(env);
	is_int(in.orphans, 0, "orphans back to 0");
	rc = mms_release(env, f);
	is_int(rc, MMS_INVAL, "one release too many: MMS_INVAL");
	mms_commit(env);
	in = info(env);
	ok(in.data_bytes < in0.data_bytes, "data space freed (%llu -> %llu)",
	   (unsigned long long)in0.data_bytes, (unsigned long long)in.data_bytes);

	/* Holding a linked inode changes nothing; an unheld unlink frees at once. */
	uint64_t g = mkfile(env, ROOT, "g");
	mms_hold(env, g);
	rc = mms_release(env, g);
	ok(rc == 0 && mms_getattr(env, g, &st) == 0 && st.nlink == 1,
	   "release of a linked inode keeps it");

	/* Rename over a held inode makes it an orphan too. */
	uint64_t h = mkfile(env, ROOT, "h");
	mms_hold(env, h);
	rc = mms_rename(env, ROOT, "g", 1, ROOT, "h", 1, 0);
	is_int(rc, 0, "rename over a held file");
	rc = mms_getattr(env, h, &st);
	ok(rc == 0 && st.nlink == 0, "the replaced held inode is an orphan");
	in = info(env);
	is_int(in.orphans, 1, "orphans 1");
	rc = mms_release(env, h);
	ok(rc == 0 && mms_getattr(env, h, &st) == MMS_NOTFOUND, "release frees it");

	/* A held directory removed by rmdir. */
	uint64_t d = mkd(env, ROOT, "d");
	mms_hold(env, d);
	rc = mms_rmdir(env, ROOT, "d", 1);
	is_int(rc, 0, "rmdir of a held directory");
	rc = mms_mknod(env, d, "x", 1, S_IFREG | 0644, 0, 0, &st);
	is_int(rc, MMS_NOTFOUND, "nothing can be created in a removed directory");
	rc = mms_getattr(env, d, &st);
	ok(rc == 0 && st.nlink == 0, "the held directory lives on");
	rc = mms_release(env, d);
	ok(rc == 0 && mms_getattr(env, d, &st) == MMS_NOTFOUND, "and is freed by release");
	in = info(env);
	ok(in.orphans == 0 && in.dirs == 1 && in.keys == 1, "counters exact");
	check_store(env, "holds");
	mms_close(env);
	free(path);
}

static void test_orphans_reopen(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st;
	struct mms_info in;
	char buf[9000];
	int rc;

	memset(buf, 'z', sizeof buf);
	uint64_t f = mkfile(env, ROOT, "f");
	uint64_t g = mkfile(env, ROOT, "g");
	mms_write(env, f, buf, sizeof buf, 0);
	mms_setxattr(env, f, "user.x", 6, buf, 4000, 0);
	rc = mms_hold(env, f);
	rc |= mms_hold(env, g);
	is_int(rc, 0, "hold two files");
	rc = mms_unlink(env, ROOT, "f", 1);
	rc |= mms_unlink(env, ROOT, "g", 1);
	is_int(rc, 0, "unlink both");
	in = info(env);
	is_int(in.orphans, 2, "two orphans");
	env = reopen(env, path); /* closed without releasing */
	in = info(env);
	is_int(in.orphans, 0, "orphans reclaimed at the read-write open");
	is_int(in.keys, 0, "no keys left");
	is_int(mms_getattr(env, f, &st), MMS_NOTFOUND, "orphan f freed");
	is_int(mms_getattr(env, g, &st), MMS_NOTFOUND, "orphan g freed");
	env = reopen(env, path);
	in = info(env);
	is_int(in.orphans, 0, "and the reclaim was kept");
	check_store(env, "orphans reopen");
	mms_close(env);
	free(path);
}

static void test_inos_not_reused(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st;

	uint64_t a = mkfile(env, ROOT, "a");
	uint64_t b = mkd(env, ROOT, "b");
	ok(a && b && b > a, "inode numbers increase");
	mms_unlink(env, ROOT, "a", 1);
	mms_rmdir(env, ROOT, "b", 1);
	uint64_t c = mkfile(env, ROOT, "a");
	ok(c > b, "no reuse after delete (%llu > %llu)", (unsigned long long)c,
	   (unsigned long long)b);
	mms_unlink(env, ROOT, "a", 1);
	mms_commit(env);
	env = reopen(env, path);
	uint64_t d = mkfile(env, ROOT, "a");
	ok(d > c, "no reuse after reopen (%llu > %llu)", (unsigned long long)d,
	   (unsigned long long)c);
	mms_getattr(env, d, &st);
	struct mms_info in = info(env);
	ok(in.next_ino > d, "next_ino %llu is past the last ino", (unsigned long long)in.next_ino);
	/* Abandoned creates are rolled back and their numbers may come back,
	 * but committed ones never do. */
	check_store(env, "inos not reused");
	mms_close(env);
	free(path);
}

static void test_symlink_setattr(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st;
	char buf[5000], big[4097];
	size_t len;
	int rc;

	rc = mms_symlink(env, ROOT, "l", 1, "target/path", 11, 5, 6, &st);
	is_int(rc, 0, "symlink");
	ok(S_ISLNK(st.mode) && st.size == 11 && st.uid == 5 && st.gid == 6,
	   "symlink attributes (size = target length)");
	uint64_t l = st.ino;
	rc = mms_readlink(env, l, buf, sizeof buf, &len);
	ok(rc == 0 && len == 11 && memcmp(buf, "target/path", 11) == 0, "readlink");
	rc = mms_readlink(env, l, buf, 5, &len);
	is_int(rc, MMS_RANGE, "readlink into a small buffer: MMS_RANGE");
	memset(big, 'x', sizeof big);
	rc = mms_symlink(env, ROOT, "long", 4, big, 4095, 0, 0, &st);
	is_int(rc, 0, "a 4095-byte target");
	rc = mms_readlink(env, st.ino, buf, sizeof buf, &len);
	ok(rc == 0 && len == 4095 && memcmp(buf, big, 4095) == 0, "read back");
	rc = mms_symlink(env, ROOT, "toolong", 7, big, 4096, 0, 0, &st);
	is_int(rc, MMS_NAMETOOLONG, "a 4096-byte target: MMS_NAMETOOLONG");
	rc = mms_symlink(env, ROOT, "empty", 5, "", 0, 0, 0, &st);
	is_int(rc, MMS_INVAL, "an empty target: MMS_INVAL");
	rc = mms_symlink(env, ROOT, "l", 1, "x", 1, 0, 0, &st);
	is_int(rc, MMS_EXISTS, "symlink over a taken name: MMS_EXISTS");
	struct mms_info in = info(env);
	is_int(in.keys, 2, "symlinks count as keys");

	uint64_t f = mkfile(env, ROOT, "f");
	struct mms_setattr sa = { .mode = S_IFDIR | 0600, .uid = 77, .gid = 88 };
	rc = mms_setattr(env, f, &sa, MMS_SET_MODE | MMS_SET_UID | MMS_SET_GID, &st);
	ok(rc == 0 && st.mode == (S_IFREG | 0600) && st.uid == 77 && st.gid == 88,
	   "setattr mode keeps the type bits; uid, gid");
	sa.atime = (struct timespec){ 12345, 678 };
	sa.mtime = (struct timespec){ -5, 999999999 };
	rc = mms_setattr(env, f, &sa, MMS_SET_ATIME | MMS_SET_MTIME, &st);
	ok(rc == 0 && st.atime.tv_sec == 12345 && st.atime.tv_nsec == 678 &&
	   st.mtime.tv_sec == -5 && st.mtime.tv_nsec == 999999999,
	   "explicit atime and mtime, also before 1970");
	ok(st.ctime.tv_sec > 1000000000, "ctime became now");
	sa.ctime = (struct timespec){ 42, 1 };
	rc = mms_setattr(env, f, &sa, MMS_SET_CTIME, &st);
	ok(rc == 0 && st.ctime.tv_sec == 42 && st.ctime.tv_nsec == 1, "explicit ctime");
	int64_t t0 = now_ns() - 1000000000;
	rc = mms_setattr(env, f, &sa, MMS_SET_ATIME_NOW | MMS_SET_MTIME_NOW | MMS_SET_ATIME |
	                 MMS_SET_MTIME, &st);
	ok(rc == 0 && ts_ns(st.atime) >= t0 && ts_ns(st.mtime) >= t0, "*_NOW sets now");
	sa.size = 100000;
	rc = mms_setattr(env, f, &sa, MMS_SET_SIZE, &st);
	ok(rc == 0 && st.size == 100000 && st.mode == (S_IFREG | 0600) && st.uid == 77,
	   "setattr size extends; other attributes kept");
	sa.size = 10;
	rc = mms_setattr(env, f, &sa, MMS_SET_SIZE | MMS_SET_MODE, &st);
	ok(rc == 0 && st.size == 10, "setattr size shrinks");
	rc = mms_write(env, f, "hello", 5, 0);
	sa.mode = 0644;
	rc |= mms_setattr(env, f, &sa, MMS_SET_MODE, &st);
	rc |= mms_read(env, f, buf, sizeof buf, 0, &len);
	ok(rc == 0 && len == 10 && memcmp(buf, "hello\0\0\0\0\0", 10) == 0,
	   "setattr keeps inline bytes");
	sa.atime = (struct timespec){ 0, 1000000000 };
	rc = mms_setattr(env, f, &sa, MMS_SET_ATIME, &st);
	is_int(rc, MMS_INVAL, "tv_nsec out of range: MMS_INVAL");

	env = reopen(env, path);
	rc = mms_readlink(env, l, buf, sizeof buf, &len);
	ok(rc == 0 && len == 11 && memcmp(buf, "target/path", 11) == 0, "readlink after reopen");
	rc = mms_getattr(env, f, &st);
	ok(rc == 0 && st.mode == (S_IFREG | 0644) && st.uid == 77 && st.size == 10 &&
	   st.mtime.tv_sec != -5, "attributes after reopen");
	check_store(env, "symlink setattr");
	mms_close(env);
	free(path);
}

static void test_xattrs(void)
{
	char *path;
	mms_env *env = fresh(&path);
	static char big[65537], rbuf[65537];
	char list[1024], n255[256], n256[257];
	size_t len;
	int rc;

	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 31 + (i >> 8));
	uint64_t f = mkfile(env, ROOT, "f");

	rc = mms_getxattr(env, f, "user.a", 6, rbuf, sizeof rbuf, &len);
	is_int(rc, MMS_NODATA, "get of a missing xattr: MMS_NODATA");
	rc = mms_listxattr(env, f, list, sizeof list, &len);
	ok(rc == 0 && len == 0, "empty list");

	rc = mms_setxattr(env, f, "user.b", 6, "hello", 5, 0);
	is_int(rc, 0, "set inline");
	rc = mms_getxattr(env, f, "user.b", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 5 && memcmp(rbuf, "hello", 5) == 0, "get inline");
	rc = mms_getxattr(env, f, "user.b", 6, NULL, 0, &len);
	ok(rc == 0 && len == 5, "size query");
	rc = mms_getxattr(env, f, "user.b", 6, rbuf, 4, &len);
	is_int(rc, MMS_RANGE, "small buffer: MMS_RANGE");
	rc = mms_setxattr(env, f, "user.e", 6, "", 0, 0);
	is_int(rc, 0, "set an empty value");
	rc = mms_getxattr(env, f, "user.e", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 0, "get an empty value");

	rc = mms_setxattr(env, f, "user.b", 6, "x", 1, MMS_XATTR_CREATE);
	is_int(rc, MMS_EXISTS, "CREATE on an existing xattr: MMS_EXISTS");
	rc = mms_setxattr(env, f, "user.z", 6, "x", 1, MMS_XATTR_REPLACE);
	is_int(rc, MMS_NODATA, "REPLACE on a missing xattr: MMS_NODATA");
	rc = mms_setxattr(env, f, "user.b", 6, "world!", 6, MMS_XATTR_REPLACE);
	is_int(rc, 0, "REPLACE an existing xattr");
	rc = mms_getxattr(env, f, "user.b", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 6 && memcmp(rbuf, "world!", 6) == 0, "replaced value");
	rc = mms_setxattr(env, f, "user.c", 6, "c", 1, MMS_XATTR_CREATE);
	is_int(rc, 0, "CREATE a new xattr");

	struct mms_info i0 = info(env);
	uint64_t other0 = i0.used_bytes - i0.tree_bytes - i0.data_bytes;
	rc = mms_setxattr(env, f, "user.a", 6, big, 65536, 0);
	is_int(rc, 0, "set a 64 KiB value (blob)");
	memset(rbuf, 0, sizeof rbuf);
	rc = mms_getxattr(env, f, "user.a", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 65536 && memcmp(rbuf, big, 65536) == 0, "get the 64 KiB value");
	rc = mms_getxattr(env, f, "user.a", 6, NULL, 0, &len);
	ok(rc == 0 && len == 65536, "size of the blob value");
	rc = mms_getxattr(env, f, "user.a", 6, rbuf, 65535, &len);
	is_int(rc, MMS_RANGE, "blob into a small buffer: MMS_RANGE");
	rc = mms_setxattr(env, f, "user.a", 6, big, 65537, 0);
	is_int(rc, MMS_TOOBIG, "a 65537-byte value: MMS_TOOBIG");
	rc = mms_setxattr(env, f, "user.a", 6, big + 1, 2000, 0);
	is_int(rc, 0, "replace a blob by a smaller blob");
	rc = mms_getxattr(env, f, "user.a", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 2000 && memcmp(rbuf, big + 1, 2000) == 0, "smaller blob read back");
	rc = mms_setxattr(env, f, "user.a", 6, "tiny", 4, 0);
	is_int(rc, 0, "replace a blob by an inline value");
	rc = mms_getxattr(env, f, "user.a", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 4 && memcmp(rbuf, "tiny", 4) == 0, "inline read back");
	rc = mms_setxattr(env, f, "user.a", 6, big, 1024, 0);
	rc |= mms_getxattr(env, f, "user.a", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 1024 && memcmp(rbuf, big, 1024) == 0, "1024 bytes (inline limit)");
	rc = mms_setxattr(env, f, "user.a", 6, big, 1025, 0);
	rc |= mms_getxattr(env, f, "user.a", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 1025 && memcmp(rbuf, big, 1025) == 0, "1025 bytes (blob)");

	memset(n255, 'n', 255);
	memset(n256, 'n', 256);
	rc = mms_setxattr(env, f, n255, 255, "v", 1, 0);
	is_int(rc, 0, "a 255-byte xattr name");
	rc = mms_setxattr(env, f, n256, 256, "v", 1, 0);
	is_int(rc, MMS_NAMETOOLONG, "a 256-byte xattr name: MMS_NAMETOOLONG");
	rc = mms_setxattr(env, f, "", 0, "v", 1, 0);
	is_int(rc, MMS_INVAL, "an empty xattr name: MMS_INVAL");
	rc = mms_setxattr(env, f, "a\0b", 3, "v", 1, 0);
	is_int(rc, MMS_INVAL, "a NUL in an xattr name: MMS_INVAL");
	rc = mms_setxattr(env, 999999, "user.a", 6, "v", 1, 0);
	is_int(rc, MMS_NOTFOUND, "setxattr on a missing ino: MMS_NOTFOUND");
	rc = mms_removexattr(env, f, n255, 255);
	is_int(rc, 0, "remove the long-named xattr");

	/* List: tree order = byte order of the names. */
	const char want[] = "user.a\0user.b\0user.c\0user.e\0";
	rc = mms_listxattr(env, f, NULL, 0, &len);
	ok(rc == 0 && len == sizeof want - 1, "list size %zu", len);
	rc = mms_listxattr(env, f, list, sizeof list, &len);
	ok(rc == 0 && len == sizeof want - 1 && memcmp(list, want, len) == 0,
	   "list in name order");
	rc = mms_listxattr(env, f, list, 5, &len);
	is_int(rc, MMS_RANGE, "list into a small buffer: MMS_RANGE");
	/* A neighbour inode's xattrs do not leak into the list. */
	uint64_t g = mkfile(env, ROOT, "g");
	mms_setxattr(env, g, "user.g", 6, "g", 1, 0);
	rc = mms_listxattr(env, f, list, sizeof list, &len);
	ok(rc == 0 && len == sizeof want - 1, "list unaffected by another inode");

	/* ctime changes with xattrs. */
	struct mms_setattr sa = { .ctime = { 1000, 0 } };
	struct mms_stat st;
	mms_setattr(env, f, &sa, MMS_SET_CTIME, NULL);
	mms_setxattr(env, f, "user.c", 6, "cc", 2, 0);
	mms_getattr(env, f, &st);
	ok(st.ctime.tv_sec > 1000, "setxattr sets ctime");

	/* Persistence. */
	env = reopen(env, path);
	rc = mms_getxattr(env, f, "user.a", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 1025 && memcmp(rbuf, big, 1025) == 0, "blob xattr after reopen");
	rc = mms_getxattr(env, f, "user.b", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 6 && memcmp(rbuf, "world!", 6) == 0, "inline xattr after reopen");
	rc = mms_listxattr(env, f, list, sizeof list, &len);
	ok(rc == 0 && len == sizeof want - 1 && memcmp(list, want, len) == 0, "list after reopen");

	rc = mms_removexattr(env, f, "user.a", 6);
	is_int(rc, 0, "remove the blob xattr");
	rc = mms_getxattr(env, f, "user.a", 6, rbuf, sizeof rbuf, &len);
	is_int(rc, MMS_NODATA, "gone");
	rc = mms_removexattr(env, f, "user.a", 6);
	is_int(rc, MMS_NODATA, "remove again: MMS_NODATA");
	rc = mms_removexattr(env, f, "user.b", 6);
	is_int(rc, 0, "remove an inline xattr");
	/* Deleting the inode frees its blob values. */
	rc = mms_setxattr(env, f, "user.big", 8, big, 65536, 0);
	is_int(rc, 0, "another 64 KiB blob");
	struct mms_info i1 = info(env);
	uint64_t other1 = i1.used_bytes - i1.tree_bytes - i1.data_bytes;
	ok(other1 >= other0 + 65536, "blob space counted (%llu -> %llu)",
	   (unsigned long long)other0, (unsigned long long)other1);
	rc = mms_unlink(env, ROOT, "f", 1);
	is_int(rc, 0, "unlink the inode with xattrs");
	i1 = info(env);
	other1 = i1.used_bytes - i1.tree_bytes - i1.data_bytes;
	ok(other1 == other0, "blob space freed with the inode (%llu, was %llu)",
	   (unsigned long long)other1, (unsigned long long)other0);
	rc = mms_listxattr(env, f, list, sizeof list, &len);
	is_int(rc, MMS_NOTFOUND, "listxattr of a deleted inode: MMS_NOTFOUND");
	rc = mms_getxattr(env, g, "user.g", 6, rbuf, sizeof rbuf, &len);
	ok(rc == 0 && len == 1 && rbuf[0] == 'g', "the other inode's xattr is intact");
	check_store(env, "xattrs");
	mms_close(env);
	free(path);
}

static void test_persistence(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st, st0;
	int rc;

	uint64_t d = mkd(env, ROOT, "dir");
	uint64_t f = mkfile(env, d, "file");
	mms_getattr(env, f, &st0);
	rc = mms_symlink(env, d, "link", 4, "file", 4, 0, 0, &st);
	is_int(rc, 0, "symlink");
	mms_setxattr(env, f, "user.k", 6, "v", 1, 0);
	struct mms_info in0 = info(env);
	env = reopen(env, path);
	rc = mms_resolve(env, "dir/file", 8, &st);
	ok(rc == 0 && st.ino == f && st.gen == st0.gen && st.mode == st0.mode &&
	   st.uid == st0.uid && ts_ns(st.mtime) == ts_ns(st0.mtime),
	   "file and its attributes persist");
	rc = mms_resolve(env, "dir/link", 8, &st);
	ok(rc == 0 && S_ISLNK(st.mode), "symlink persists");
	struct mms_info in1 = info(env);
	ok(in1.keys == in0.keys && in1.dirs == in0.dirs && in1.next_ino == in0.next_ino,
	   "counters persist");
	/* Rollback drops a create. */
	mkfile(env, d, "temp");
	rc = mms_rollback(env);
	is_int(rc, 0, "rollback");
	look(env, d, "temp", &rc);
	is_int(rc, MMS_NOTFOUND, "rolled-back create is gone");
	in1 = info(env);
	ok(in1.keys == in0.keys, "rollback restores the counters");
	check_store(env, "persistence");
	mms_close(env);
	free(path);
}

/* A damaged xattr blob is MMS_CORRUPT naming the inode and the attribute. */
static void test_xattr_corrupt(void)
{
	char *path;
	mms_env *env = fresh(&path);
	static char val[8000], rbuf[8000];
	uint8_t key[8 + 9];
	const void *v;
	size_t vlen, len;
	uint64_t pg = 0;
	int rc;

	memset(val, 'q', sizeof val);
	uint64_t f = mkfile(env, ROOT, "f");
	rc = mms_setxattr(env, f, "user.blob", 9, val, sizeof val, 0);
	is_int(rc, 0, "set an 8000-byte xattr");
	mms_put_be64(key, f);
	memcpy(key + 8, "user.blob", 9);
	rc = mms_bt_get(env, MMS_TREE_XATTR, key, sizeof key, &v, &vlen);
	ok(rc == 0 && vlen == 17 && ((const uint8_t *)v)[0] == 1, "stored as a blob item");
	if (rc == 0 && vlen == 17)
		pg = mms_get_le64((const uint8_t *)v + 1);
	rc = mms_close(env);
	is_int(rc, 0, "close");

	int fd = open(path, O_WRONLY);
	ok(fd >= 0 && pg > 1 && pwrite(fd, "XYZ", 3, (off_t)(pg * MMS_PAGE_SIZE + 100)) == 3,
	   "damage the blob at page %llu", (unsigned long long)pg);
	if (fd >= 0)
		close(fd);
	rc = mms_open(path, NULL, &env);
	is_int(rc, 0, "reopen");
	if (rc == 0) {
		char want[64];
		memset(rbuf, 0, sizeof rbuf);
		rc = mms_getxattr(env, f, "user.blob", 9, rbuf, sizeof rbuf, &len);
		is_int(rc, MMS_CORRUPT, "get of the damaged value: MMS_CORRUPT");
		snprintf(want, sizeof want, "inode %llu", (unsigned long long)f);
		const char *det = mms_errdetail(env);
		ok(strstr(det, want) && strstr(det, "user.blob"), "detail names both: %s", det);
		ok(rbuf[0] == 0, "the caller's buffer was not written");
		rc = mms_getxattr(env, f, "user.blob", 9, NULL, 0, &len);
		ok(rc == 0 && len == sizeof val, "the length is still known");
		uint64_t n = 0;
		rc = mms_check(env, NULL, NULL, NULL, NULL, &n);
		ok(rc == 0 && n >= 1, "mms_check reports the damage (%llu problems)",
		   (unsigned long long)n);
		rc = mms_removexattr(env, f, "user.blob", 9);
		is_int(rc, 0, "a damaged value can be removed");
		check_store(env, "removing the damaged xattr");
		mms_close(env);
	}
	free(path);
}

/* Names can be removed and renamed in a store that is full: a user must be
 * able to free space. */
static void test_full_store(void)
{
	const char *dir = tap_tmpdir();
	char path[4096], name[32];
	static char buf[65536];
	struct mms_stat st;
	mms_env *env = NULL;
	int rc, i, full = 0;

	snprintf(path, sizeof path, "%s/full", dir);
	rc = mms_open(path, &(struct mms_options){ .flags = MMS_CREATE, .max_size = 2u << 20 }, &env);
	if (!ok(rc == 0, "create a 2 MiB store: %s", mms_strerror(rc)))
		return;
	memset(buf, 'f', sizeof buf);
	for (i = 0; i < 200 && !full; i++) {
		snprintf(name, sizeof name, "f%03d", i);
		rc = mms_mknod(env, ROOT, name, strlen(name), S_IFREG | 0644, 0, 0, &st);
		if (rc == 0)
			rc = mms_write(env, st.ino, buf, sizeof buf, 0);
		if (rc == 0)
			rc = mms_commit(env);
		if (rc == MMS_FULL)
			full = 1;
		else if (rc)
			break;
	}
	ok(full, "the store filled up (%d files): %s", i, mms_strerror(rc));
	rc = mms_sync(env);
	is_int(rc, 0, "sync the full store");
	rc = mms_rename(env, ROOT, "f001", 4, ROOT, "renamed", 7, 0);
	is_int(rc, 0, "rename in a full store");
	rc = mms_unlink(env, ROOT, "f000", 4);
	is_int(rc, 0, "unlink in a full store");
	rc = mms_unlink(env, ROOT, "renamed", 7);
	is_int(rc, 0, "another unlink");
	rc = mms_sync(env);
	is_int(rc, 0, "sync makes the space reusable");
	rc = mms_mknod(env, ROOT, "again", 5, S_IFREG | 0644, 0, 0, &st);
	if (rc == 0)
		rc = mms_write(env, st.ino, buf, sizeof buf, 0);
	is_int(rc, 0, "a new 64 KiB file fits again");
	check_store(env, "a full store");
	mms_close(env);
}

/* mms_put: create with bytes, replace, refuse directories and other types,
 * and a full store that changes nothing. */
static void test_put(void)
{
	char *path;
	mms_env *env = fresh(&path);
	static char big[200000], got[200000];
	struct mms_stat st, st2;
	size_t n;
	int rc;

	memset(big, 'b', sizeof big);
	is_int(mms_put(env, ROOT, "small", 5, "hello", 5, 0640, 7, 8, &st), 0, "put a small key");
	ok(S_ISREG(st.mode) && (st.mode & 07777) == 0640 && st.uid == 7 && st.gid == 8 && st.size == 5,
	   "mode %o uid %u gid %u size %llu", st.mode, st.uid, st.gid, (unsigned long long)st.size);
	is_int(mms_read(env, st.ino, got, sizeof got, 0, &n), 0, "read it");
	ok(n == 5 && !memcmp(got, "hello", 5), "the bytes are there");
	is_int(mms_put(env, ROOT, "small", 5, big, sizeof big, 0600, 0, 0, &st2), 0, "replace with 200 KB");
	ok(st2.ino == st.ino && st2.size == sizeof big && (st2.mode & 07777) == 0640,
	   "same inode, new size, mode kept");
	is_int(mms_read(env, st.ino, got, sizeof got, 0, &n), 0, "read it");
	ok(n == sizeof big && !memcmp(got, big, n), "the new bytes are there");
	is_int(mms_put(env, ROOT, "small", 5, "x", 1, 0600, 0, 0, &st2), 0, "replace with 1 byte");
	ok(st2.size == 1 && st2.blocks == 1, "the extents are gone (blocks %llu)", (unsigned long long)st2.blocks);
	is_int(mms_put(env, ROOT, "big", 3, big, sizeof big, 0644, 0, 0, &st), 0, "put a large new key");
	is_int(mms_read(env, st.ino, got, sizeof got, 0, &n), 0, "read it");
	ok(n == sizeof big && !memcmp(got, big, n), "its bytes are there");
	is_int(mms_put(env, ROOT, "empty", 5, NULL, 0, 0644, 0, 0, &st), 0, "put an empty key");
	is_int(st.size, 0, "size 0");
	is_int(mms_mkdir(env, ROOT, "d", 1, 0755, 0, 0, NULL), 0, "mkdir d");
	is_int(mms_put(env, ROOT, "d", 1, "x", 1, 0644, 0, 0, NULL), MMS_ISDIR, "put over a directory: MMS_ISDIR");
	is_int(mms_symlink(env, ROOT, "l", 1, "small", 5, 0, 0, NULL), 0, "symlink l");
	is_int(mms_put(env, ROOT, "l", 1, "x", 1, 0644, 0, 0, NULL), MMS_INVAL, "put over a symlink: MMS_INVAL");
	is_int(mms_put(env, 999999, "k", 1, "x", 1, 0644, 0, 0, NULL), MMS_NOTFOUND, "missing parent: MMS_NOTFOUND");
	is_int(mms_put(env, st.ino, "k", 1, "x", 1, 0644, 0, 0, NULL), MMS_NOTDIR, "file as parent: MMS_NOTDIR");
	is_int(mms_commit(env), 0, "commit");
	env = reopen(env, path);
	is_int(mms_lookup(env, ROOT, "big", 3, &st), 0, "after reopen");
	is_int(mms_read(env, st.ino, got, sizeof got, 0, &n), 0, "read it");
	ok(n == sizeof big && !memcmp(got, big, n), "the bytes persisted");
	check_store(env, "mms_put");
	mms_close(env);

	/* a full store: a replacement that does not fit changes nothing */
	char full[4096];
	snprintf(full, sizeof full, "%s.full", path);
	rc = mms_open(full, &(struct mms_options){ .flags = MMS_CREATE, .max_size = 1u << 20 }, &env);
	if (!ok(rc == 0, "create a 1 MiB store")) {
		free(path);
		return;
	}
	is_int(mms_put(env, ROOT, "k", 1, big, 100000, 0644, 0, 0, &st), 0, "put 100 KB");
	is_int(mms_commit(env), 0, "commit");
	static char huge[2u << 20];
	is_int(mms_put(env, ROOT, "k", 1, huge, sizeof huge, 0644, 0, 0, NULL), MMS_FULL, "a 2 MiB replacement: MMS_FULL");
	is_int(mms_read(env, st.ino, got, sizeof got, 0, &n), 0, "the transaction is still usable");
	ok(n == 100000 && !memcmp(got, big, n), "the old bytes are intact");
	is_int(mms_put(env, ROOT, "k2", 2, huge, sizeof huge, 0644, 0, 0, NULL), MMS_FULL, "a 2 MiB new key: MMS_FULL");
	is_int(mms_lookup(env, ROOT, "k2", 2, &st2), MMS_NOTFOUND, "and it was not created");
	check_store(env, "a full store after mms_put");
	mms_close(env);
	free(path);
}

static uint32_t nlink_of(mms_env *env, uint64_t ino)
{
	struct mms_stat st;

	return mms_getattr(env, ino, &st) ? 0xffffffffu : st.nlink;
}

static uint64_t check_problems(mms_env *env)
{
	uint64_t np = 999;

	if (mms_check(env, NULL, NULL, NULL, NULL, &np))
		return 999;
	return np;
}

/* Hard links: names of one inode, unlink of the primary name, rename
 * between names of one inode, directories' link counts, device nodes. */
static void test_links(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat st;
	int rc;

	uint64_t d1 = mkd(env, ROOT, "d1"), d2 = mkd(env, ROOT, "d2");
	uint64_t f = mkfile(env, d1, "f");
	is_int(mms_write(env, f, "shared", 6, 0), 0, "write f");
	is_int(nlink_of(env, ROOT), 4, "the root: 2 + 2 subdirectories");
	rc = mms_link(env, f, d2, "g", 1, &st);
	ok(rc == 0 && st.ino == f && st.nlink == 2, "link d1/f as d2/g (nlink %u)", st.nlink);
	rc = mms_link(env, f, d1, "f2", 2, NULL);
	is_int(rc, 0, "link as d1/f2 too");
	is_int(nlink_of(env, f), 3, "three names");
	is_int(look(env, d2, "g", NULL), f, "d2/g names the inode");
	is_int(mms_link(env, f, d2, "g", 1, NULL), MMS_EXISTS, "a taken name: MMS_EXISTS");
	is_int(mms_link(env, d1, d2, "dl", 2, NULL), MMS_XDEV, "a directory: MMS_XDEV");
	is_int(mms_link(env, f, f, "x", 1, NULL), MMS_NOTDIR, "into a file: MMS_NOTDIR");
	is_int(mms_link(env, f, d2, "..", 2, NULL), MMS_BADNAME, "bad name: MMS_BADNAME");
	is_int(check_problems(env), 0, "check: clean with three names");

	/* rename between two names of one inode: nothing happens */
	is_int(mms_rename(env, d1, "f", 1, d2, "g", 1, 0), 0, "rename d1/f over d2/g: success");
	ok(look(env, d1, "f", NULL) == f && look(env, d2, "g", NULL) == f && nlink_of(env, f) == 3,
	   "and both names stay");
	is_int(mms_rename(env, d1, "f", 1, d2, "g", 1, MMS_RENAME_NOREPLACE), MMS_EXISTS,
	       "with NOREPLACE: MMS_EXISTS");
	/* the primary name goes: a link becomes the primary one */
	is_int(mms_unlink(env, d1, "f", 1), 0, "unlink d1/f (the first name)");
	ok(nlink_of(env, f) == 2 && look(env, d2, "g", NULL) == f, "two names left");
	rc = mms_getattr(env, f, &st);
	ok(rc == 0 && (st.parent == d1 || st.parent == d2), "its parent is a directory naming it");
	is_int(check_problems(env), 0, "check: clean after the primary name went");
	/* rename a link's name to another directory */
	is_int(mms_rename(env, d2, "g", 1, ROOT, "top", 3, 0), 0, "rename d2/g to top");
	ok(look(env, ROOT, "top", NULL) == f && look(env, d1, "f2", NULL) == f, "names: top, d1/f2");
	is_int(check_problems(env), 0, "check: clean after renames");
	/* rename over a name of a linked inode: that inode keeps its others */
	uint64_t o = mkfile(env, ROOT, "other");
	is_int(mms_rename(env, ROOT, "other", 5, d1, "f2", 2, 0), 0, "rename other over d1/f2");
	ok(nlink_of(env, f) == 1 && look(env, ROOT, "top", NULL) == f &&
	   look(env, d1, "f2", NULL) == o, "f keeps 'top', d1/f2 is the other file");
	/* exchange of a linked name */
	is_int(mms_link(env, f, d2, "l", 1, NULL), 0, "link top as d2/l");
	is_int(mms_rename(env, d2, "l", 1, d1, "f2", 2, MMS_RENAME_EXCHANGE), 0,
	       "exchange d2/l and d1/f2");
	ok(look(env, d1, "f2", NULL) == f && look(env, d2, "l", NULL) == o && nlink_of(env, f) == 2,
	   "the names swapped inodes");
	is_int(check_problems(env), 0, "check: clean after an exchange");
	/* a held inode with names left is not an orphan; at its last name it is */
	is_int(mms_hold(env, f), 0, "hold f");
	is_int(mms_unlink(env, ROOT, "top", 3), 0, "unlink top");
	is_int(nlink_of(env, f), 1, "one name left");
	is_int(mms_unlink(env, d1, "f2", 2), 0, "unlink the last name");
	rc = mms_getattr(env, f, &st);
	ok(rc == 0 && st.nlink == 0, "held: it lives on with nlink 0");
	is_int(mms_link(env, f, ROOT, "back", 4, NULL), MMS_NOTFOUND, "no link to an unlinked inode");
	is_int(mms_release(env, f), 0, "release");
	is_int(mms_getattr(env, f, &st), MMS_NOTFOUND, "freed at the release");

	/* directories count their subdirectories, through renames */
	uint64_t s = mkd(env, d1, "s");
	ok(nlink_of(env, d1) == 3 && nlink_of(env, d2) == 2, "d1 has a subdirectory");
	is_int(mms_rename(env, d1, "s", 1, d2, "s", 1, 0), 0, "move it to d2");
	ok(nlink_of(env, d1) == 2 && nlink_of(env, d2) == 3, "d2 has it now");
	uint64_t e = mkd(env, d1, "e");
	is_int(mms_rename(env, d1, "e", 1, d2, "s", 1, 0), 0, "move d1/e over the empty d2/s");
	ok(nlink_of(env, d1) == 2 && nlink_of(env, d2) == 3 && look(env, d2, "s", NULL) == e,
	   "d2 still has one");
	(void)s;
	is_int(mms_rmdir(env, d2, "s", 1), 0, "rmdir d2/s");
	ok(nlink_of(env, d2) == 2 && nlink_of(env, ROOT) == 4, "counts back to 2; the root 4");

	/* devices keep their numbers */
	rc = mms_mkdev(env, ROOT, "tty", 3, S_IFCHR | 0620, 0x0504, 0, 5, &st);
	ok(rc == 0 && S_ISCHR(st.mode) && st.rdev == 0x0504, "a character device");
	is_int(mms_mknod(env, ROOT, "blk", 3, S_IFBLK | 0600, 0, 0, NULL), MMS_INVAL,
	       "mms_mknod of a device (no number): MMS_INVAL");
	rc = mms_mkdev(env, ROOT, "fifo", 4, S_IFIFO | 0600, 77, 0, 0, &st);
	ok(rc == 0 && st.rdev == 0, "a fifo has no device number");
	/* inline bytes count in blocks */
	uint64_t sm = mkfile(env, ROOT, "small");
	is_int(mms_write(env, sm, "abc", 3, 0), 0, "write 3 bytes");
	rc = mms_getattr(env, sm, &st);
	ok(rc == 0 && st.blocks == 3, "a 3-byte value reports 3 bytes of space (blocks %llu)",
	   (unsigned long long)st.blocks);
	is_int(mms_commit(env), 0, "commit");
	env = reopen(env, path);
	rc = mms_resolve(env, "tty", 3, &st);
	ok(rc == 0 && st.rdev == 0x0504 && st.gid == 5, "after a reopen the device is there");
	ok(nlink_of(env, f) == 0xffffffffu && nlink_of(env, d2) == 2, "and the counts");
	is_int(check_problems(env), 0, "check: clean");
	/* MMS_NLINK_MAX names at most */
	uint64_t many = mkfile(env, ROOT, "many");
	char nm[16];
	rc = 0;
	for (unsigned i = 1; i < MMS_NLINK_MAX && !rc; i++) {
		int l = snprintf(nm, sizeof nm, "n%u", i);
		rc = mms_link(env, many, d2, nm, (size_t)l, NULL);
		if (!rc && i % 4096 == 0)
			rc = mms_commit(env);
	}
	ok(rc == 0 && nlink_of(env, many) == MMS_NLINK_MAX, "%u names", MMS_NLINK_MAX);
	is_int(mms_link(env, many, d2, "one-more", 8, NULL), MMS_MLINK, "one more: MMS_MLINK");
	ok(check_problems(env) == 0, "check: clean with %u names", MMS_NLINK_MAX);
	mms_close(env);
	free(path);
}

/*
 * A run of creates in one directory writes its record once, at the commit
 * (mms_inode_defer): until then every read of it sees the newest times and
 * link count, a rollback drops them, and a change of another kind (a
 * removal, a rename, a create elsewhere) comes after them.
 */
static int ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static void test_dir_times(void)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_stat d, f, r0, st;
	is_int(mms_mkdir(env, ROOT, "d", 1, 0755, 0, 0, &d), 0, "dir times: mkdir d");
	is_int(mms_commit(env), 0, "dir times: commit");
	int same = 1;
	for (int i = 0; i < 50; i++) {
		char name[16];
		snprintf(name, sizeof name, "f%d", i);
		mms_put(env, d.ino, name, strlen(name), "x", 1, 0644, 0, 0, &f);
		if (i % 10 == 9)
			mms_mkdir(env, d.ino, name + 1, strlen(name + 1), 0755, 0, 0, &f);
		mms_getattr(env, d.ino, &st);
		if (!ts_eq(st.mtime, f.mtime) || !ts_eq(st.ctime, f.ctime) || st.nlink != 2 + (uint32_t)(i + 1) / 10)
			same = 0;
	}
	ok(same, "dir times: after each of 50 creates in one transaction, d has the newest times and "
	   "link count");
	is_int(mms_getattr(env, ROOT, &r0), 0, "dir times: the root");
	/* a create elsewhere: d's record goes to the tree first */
	is_int(mms_mkdir(env, ROOT, "e", 1, 0755, 0, 0, &f), 0, "dir times: mkdir e in the root");
	is_int(mms_getattr(env, d.ino, &st), 0, "dir times: d after it");
	is_int(st.nlink, 7, "dir times: d keeps its 5 subdirectories' links");
	is_int(mms_getattr(env, ROOT, &st), 0, "dir times: the root after it");
	ok(ts_eq(st.mtime, f.mtime) && st.nlink == r0.nlink + 1, "dir times: the root has e's time and link");
	/* a removal in the deferred directory */
	is_int(mms_rmdir(env, ROOT, "e", 1), 0, "dir times: rmdir e");
	is_int(mms_getattr(env, ROOT, &st), 0, "dir times: the root after the rmdir");
	is_int(st.nlink, r0.nlink, "dir times: the root lost e's link");
	is_int(mms_commit(env), 0, "dir times: commit");
	struct mms_stat committed;
	mms_getattr(env, d.ino, &committed);
	/* a rollback drops the deferred record */
	mms_put(env, d.ino, "late", 4, "x", 1, 0644, 0, 0, &f);
	mms_mkdir(env, d.ino, "latedir", 7, 0755, 0, 0, &f);
	is_int(mms_rollback(env), 0, "dir times: rollback");
	is_int(mms_getattr(env, d.ino, &st), 0, "dir times: d after the rollback");
	ok(ts_eq(st.mtime, committed.mtime) && st.nlink == committed.nlink,
	   "dir times: the rollback dropped the creates' times and link");
	/* rmdir of a directory whose record waits */
	mms_mkdir(env, d.ino, "gone", 4, 0755, 0, 0, &f);
	uint64_t gone = f.ino;
	mms_put(env, gone, "x", 1, "x", 1, 0644, 0, 0, &f);
	is_int(mms_unlink(env, gone, "x", 1), 0, "dir times: unlink gone/x");
	is_int(mms_rmdir(env, d.ino, "gone", 4), 0, "dir times: rmdir gone (its record waited)");
	is_int(mms_getattr(env, gone, &st), MMS_NOTFOUND, "dir times: gone is gone");
	is_int(mms_commit(env), 0, "dir times: commit");
	is_int(mms_getattr(env, gone, &st), MMS_NOTFOUND, "dir times: the commit did not bring it back");
	mms_getattr(env, d.ino, &committed);
	env = reopen(env, path);
	is_int(mms_getattr(env, d.ino, &st), 0, "dir times: d after a reopen");
	ok(ts_eq(st.mtime, committed.mtime) && st.nlink == committed.nlink && st.nlink == 7,
	   "dir times: the commit wrote d's record (nlink %u)", st.nlink);
	uint64_t probs = 1;
	is_int(mms_check(env, NULL, NULL, NULL, NULL, &probs), 0, "dir times: check");
	is_int(probs, 0, "dir times: no problem");
	mms_close(env);
	free(path);
}

/*
 * Times are clock ticks (mms_now_ns): creates with a commit each, all in
 * one tick, leave the directory's record as it was, so no commit rewrites
 * the leaf holding it, but for the commits whose new inode went into that
 * same leaf or split it.  With the clock moving on at every reading, every commit
 * rewrites it.  (Pages written, from the test build's I/O hook, are shown.)
 */
static uint64_t tick_bytes;

static void tick_count(void *ctx, int fd, enum mms_io_op op, const void *buf, uint64_t len,
                       uint64_t off)
{
	(void)ctx, (void)fd, (void)buf, (void)off;
	if (op == MMS_IO_WRITE)
		tick_bytes += len;
}

/* The page number of the inode tree's leaf holding inode ino. */
static uint64_t tick_leaf(mms_env *env, uint64_t ino)
{
	struct mms_bt_cursor c;
	uint8_t key[8];
	mms_put_be64(key, ino);
	if (mms_bt_seek(&c, env, MMS_TREE_INODE, key, sizeof key, MMS_BT_GE) || c.depth < 1)
		return 0;
	return c.pgno[c.depth - 1];
}

/* n puts with a commit each in a fresh store's root: *apart gets the
 * commits whose new inode went to another leaf than the root's (and whose
 * last inode before was in another), *moved those of them that moved the
 * root's leaf all the same. */
static void tick_run(int64_t step, unsigned n, unsigned *moved, unsigned *apart, int64_t *root_mtime)
{
	char *path;
	mms_env *env = fresh(&path);
	struct mms_io_hooks hooks = { tick_count, NULL };
	struct mms_stat st;
	int rc = 0;

	mms_test_clock_ns = 1700000000000000000ll;
	mms_test_clock_step_ns = step;
	tick_bytes = 0;
	*moved = *apart = 0;
	mms_io_hooks = &hooks;
	uint64_t root_leaf = tick_leaf(env, ROOT), last = ROOT;
	for (unsigned i = 0; i < n && !rc; i++) {
		char name[16];
		int l = snprintf(name, sizeof name, "k%05u", i);
		/* inodes are numbered in order: the new one goes after the last */
		uint64_t last_leaf = tick_leaf(env, last);
		rc = mms_put(env, ROOT, name, (size_t)l, "value", 5, 0644, 0, 0, &st);
		if (!rc)
			rc = mms_commit(env);
		last = st.ino;
		uint64_t now_leaf = tick_leaf(env, ROOT), new_leaf = tick_leaf(env, st.ino);
		if (last_leaf != root_leaf && new_leaf != now_leaf) {
			(*apart)++;
			*moved += now_leaf != root_leaf;
		}
		root_leaf = now_leaf;
	}
	mms_io_hooks = NULL;
	ok(rc == 0, "ticks (step %lld ns): %u puts with a commit each: %s", (long long)step, n,
	   mms_strerror(rc));
	tap_diag("ticks (step %lld ns): %.2f pages written per commit", (long long)step,
	         (double)tick_bytes / MMS_PAGE_SIZE / n);
	mms_getattr(env, ROOT, &st);
	*root_mtime = ts_ns(st.mtime);
	mms_test_clock_ns = 0;
	mms_test_clock_step_ns = 1000;
	mms_close(env);
	free(path);
}

static void test_dir_times_tick(void)
{
	const unsigned n = 400; /* the inode tree grows past one leaf */
	unsigned moved, apart;
	int64_t t;
	tick_run(1000, n, &moved, &apart, &t);
	ok(apart > n / 2 && moved == apart,
	   "clock moving: each of the %u commits whose inode went elsewhere rewrote the root's "
	   "leaf (%u did)", apart, moved);
	ok(t > 1700000000000000000ll + 1000ll * (n - 1), "and the root has the last create's mtime");
	tick_run(0, n, &moved, &apart, &t);
	ok(apart > n / 2 && moved == 0,
	   "within one tick: none of the %u commits whose inode went elsewhere rewrote the root's "
	   "leaf (%u did)", apart, moved);
	ok(t == 1700000000000000000ll, "and the root's mtime is that tick's");
}

/*
 * Inode records (record.c): fields of every varint length, 1 to 10 bytes,
 * come back from mms_inode_decode as mms_inode_encode wrote them, with the
 * record's length, in a buffer that ends right after the record or goes
 * on; every truncation of a record is refused.
 */
static uint64_t rec_rand(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

static void test_records(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int same = 1, cut = 1;
	unsigned n = 0;
	for (unsigned i = 0; i < 20000; i++) {
		/* a random number of bits, so that each varint length comes up */
#define RB(max) ((max) & (rec_rand(&x) >> (rec_rand(&x) % 64)))
		struct mms_inode in = {
			.ino = 7,
			.mode = (uint32_t)RB(0xffffffffull),
			.uid = (uint32_t)RB(0xffffffffull),
			.gid = (uint32_t)RB(0xffffffffull),
			.gen = (uint32_t)RB(0xffffffffull),
			.size = RB(MMS_SIZE_MAX),
			.mtime = (int64_t)RB(UINT64_MAX),
			.atime = (int64_t)RB(UINT64_MAX),
			.ctime = (int64_t)RB(UINT64_MAX),
			.parent = RB(UINT64_MAX),
			.pages = RB(MMS_SIZE_MAX >> MMS_PAGE_SHIFT),
			.flags = (uint32_t)RB(0xfffffffeull),
			.nlink = (uint32_t)RB(0xffffffffull),
			.rdev = RB(UINT64_MAX),
		};
#undef RB
		if (!S_ISDIR(in.mode))
			in.nlink = in.nlink % (MMS_NLINK_MAX + 1);
		uint8_t rec[MMS_INODE_REC + 16];
		memset(rec, 0xff, sizeof rec);
		size_t len = mms_inode_encode(&in, rec), got = 0;
		struct mms_inode out;
		memset(&out, 0, sizeof out);
		/* exactly the record, then the record with bytes after it */
		for (int tail = 0; tail < 2; tail++) {
			int rc = mms_inode_decode(7, rec, len + (tail ? 16 : 0), &out, &got);
			if (rc || got != len || out.mode != in.mode || out.uid != in.uid || out.gid != in.gid ||
			    out.gen != in.gen || out.size != in.size || out.mtime != in.mtime ||
			    out.atime != in.atime || out.ctime != in.ctime || out.parent != in.parent ||
			    out.pages != in.pages || out.flags != in.flags || out.nlink != in.nlink ||
			    out.rdev != in.rdev) {
				if (same)
					tap_diag("record %u (%zu bytes): decode %d, length %zu", i, len, rc, got);
				same = 0;
			}
		}
		for (size_t k = 0; k < len; k++)
			if (mms_inode_decode(7, rec, k, &out, &got) == 0)
				cut = 0;
		n++;
	}
	ok(same, "records: %u random inodes come back as they were encoded", n);
	ok(cut, "records: every truncated record is refused");
}

int main(void)
{
	tap_plan_none();
	test_records();
	test_dir_times();
	test_dir_times_tick();
	test_create_lookup();
	test_names();
	test_errors();
	test_rename();
	test_rmdir();
	test_cursor_stable();
	test_big_dir();
	test_holds();
	test_orphans_reopen();
	test_inos_not_reused();
	test_symlink_setattr();
	test_xattrs();
	test_xattr_corrupt();
	test_persistence();
	test_full_store();
	test_put();
	test_links();
	return tap_done();
}
