/*
 * test_json.c - mms_dump() and mms_load(): exact round trips of every node
 * kind (binary xattrs, non-UTF-8 names, sparse and multi-chunk values,
 * times to the ns), loading over existing keys, and the errors on
 * malformed dumps ("line N: cause").
 */
#include "mms.h"
#define MMS_TEST_HOOKS 1 /* links tests/libmms_test.la */
#include "io.h"
#include "tap.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define GIB (1ull << 30)
#define MIB (1ull << 20)

static char *tmp;

/* A path in the temp directory (static buffer, one at a time per slot). */
static const char *tpath(int slot, const char *name)
{
	static char buf[4][4096];
	snprintf(buf[slot], sizeof buf[slot], "%s/%s", tmp, name);
	return buf[slot];
}

/* Create a fresh store in the temp directory. */
static mms_env *new_store(const char *name)
{
	mms_env *env = NULL;
	int rc = mms_open(tpath(0, name), &(struct mms_options){.flags = MMS_CREATE}, &env);
	if (!ok(rc == 0, "create store %s: %s", name, mms_strerror(rc)))
		return NULL;
	return env;
}

/* Whole contents of a file; *len gets its size.  NULL if unreadable. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[n] = '\0';
		*len = (size_t)n;
	}
	return buf;
}

struct progress {
	uint64_t calls, done, total;
	uint64_t stop_after; /* 0: never stop */
};

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	p->calls++;
	p->done = done;
	p->total = total;
	return p->stop_after && p->calls >= p->stop_after;
}

/* Dump env into the file `name`; returns the code of mms_dump. */
static int dump_to(mms_env *env, const char *name, struct progress *p)
{
	FILE *f = fopen(tpath(1, name), "wb");
	if (!f)
		return errno;
	int rc = mms_dump(env, f, p ? on_progress : NULL, p);
	if (fclose(f) != 0 && rc == 0)
		rc = errno;
	return rc;
}

/* Load the file `name` into env. */
static int load_from(mms_env *env, const char *name, struct progress *p)
{
	FILE *f = fopen(tpath(1, name), "rb");
	if (!f)
		return errno;
	int rc = mms_load(env, f, p ? on_progress : NULL, p);
	fclose(f);
	return rc;
}

/* Both files exist and hold the same bytes. */
static int same_file(const char *a, const char *b)
{
	size_t la = 0, lb = 0;
	char *x = slurp(tpath(2, a), &la), *y = slurp(tpath(3, b), &lb);
	int same = x && y && la == lb && memcmp(x, y, la) == 0;
	if (!same && x && y) {
		size_t i = 0;
		while (i < la && i < lb && x[i] == y[i])
			i++;
		size_t ls = i;
		while (ls > 0 && x[ls - 1] != '\n')
			ls--;
		tap_diag("%s and %s differ at byte %zu (sizes %zu, %zu); line of %s there: %.300s",
		         a, b, i, la, lb, a, x + ls);
		tap_diag("line of %s there: %.300s", b, y + ls);
	}
	free(x);
	free(y);
	return same;
}

static void set_times(mms_env *env, uint64_t ino, int64_t sec, long nsec)
{
	struct mms_setattr sa = {
		.atime = {.tv_sec = sec, .tv_nsec = nsec},
		.mtime = {.tv_sec = sec + 1, .tv_nsec = nsec + 1},
		.ctime = {.tv_sec = sec + 2, .tv_nsec = nsec + 2},
	};
	int rc = mms_setattr(env, ino, &sa, MMS_SET_ATIME | MMS_SET_MTIME | MMS_SET_CTIME, NULL);
	ok(rc == 0, "set times of inode %llu: %s", (unsigned long long)ino, mms_strerror(rc));
}

/* Create a regular file holding `len` bytes of buf (NULL: none written). */
static uint64_t mkfile(mms_env *env, uint64_t dir, const char *name, size_t nlen,
                       uint32_t perms, const void *buf, size_t len)
{
	struct mms_stat st;
	int rc = mms_mknod(env, dir, name, nlen, S_IFREG | perms, 1000, 100, &st);
	if (!ok(rc == 0, "mknod %.*s: %s", (int)nlen, name, mms_strerror(rc)))
		return 0;
	if (buf) {
		rc = mms_write(env, st.ino, buf, len, 0);
		ok(rc == 0, "write %zu bytes to %.*s: %s", len, (int)nlen, name, mms_strerror(rc));
	}
	return st.ino;
}

#define NAME(s) s, sizeof s - 1

static const char bad_name[] = "bad\xff\xfename";     /* not UTF-8 */
static const char bad_dir[] = "\xc3\x28" "dir";        /* an invalid 2-byte sequence */
static const char utf8_name[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93";
static const char odd_name[] = "quote\"back\\slash\nnewline\ttab";
static const uint8_t bin_value[] = {0, 1, 2, 0xff, 0xfe, '\n', 0, '"', '\\'};

/*
 * Build a store with every kind of node: directories, files (empty, 1 and
 * 2 bytes, inline, 3 MiB, sparse with data at 0 and 1 GiB), symlinks (one
 * with a non-UTF-8 target), a fifo, a socket, non-UTF-8 and odd names,
 * binary xattrs, explicit times (one before the epoch).  Returns the number
 * of nodes, the root included.
 */
static int build(mms_env *env)
{
	struct mms_stat d, sub, bd, st;
	int rc, nodes = 1;

	rc = mms_mkdir(env, MMS_ROOT_INO, NAME("d"), 0750, 1000, 100, &d);
	ok(rc == 0, "mkdir d: %s", mms_strerror(rc));
	rc = mms_mkdir(env, d.ino, NAME("sub"), 0700, 0, 0, &sub);
	ok(rc == 0, "mkdir d/sub: %s", mms_strerror(rc));
	rc = mms_mkdir(env, MMS_ROOT_INO, NAME(bad_dir), 0755, 5, 6, &bd);
	ok(rc == 0, "mkdir non-UTF-8 dir: %s", mms_strerror(rc));
	nodes += 3;

	uint64_t hello = mkfile(env, d.ino, NAME("hello.txt"), 0644, NAME("hello, world\n"));
	rc = mms_setxattr(env, hello, NAME("user.bin"), bin_value, sizeof bin_value, 0);
	ok(rc == 0, "setxattr user.bin: %s", mms_strerror(rc));
	rc = mms_setxattr(env, hello, NAME("user.empty"), "", 0, 0);
	ok(rc == 0, "setxattr user.empty (empty value): %s", mms_strerror(rc));
	rc = mms_setxattr(env, hello, NAME("trusted.\xff\x01name"), "x", 1, 0);
	ok(rc == 0, "setxattr with a non-UTF-8 name: %s", mms_strerror(rc));
	uint8_t big_x[5000];
	memset(big_x, 0xa5, sizeof big_x);
	rc = mms_setxattr(env, MMS_ROOT_INO, NAME("user.root"), big_x, sizeof big_x, 0);
	ok(rc == 0, "setxattr 5000 bytes on the root: %s", mms_strerror(rc));

	mkfile(env, MMS_ROOT_INO, NAME("empty"), 0600, NULL, 0);
	mkfile(env, MMS_ROOT_INO, NAME("one"), 0644, "1", 1);
	mkfile(env, MMS_ROOT_INO, NAME("two"), 0644, "22", 2);
	mkfile(env, MMS_ROOT_INO, NAME(bad_name), 0640, NAME("binary name\n"));
	mkfile(env, d.ino, NAME(utf8_name), 0644, NAME("unicode\n"));
	mkfile(env, d.ino, NAME(odd_name), 0644, NAME("odd\n"));
	uint8_t inner[5000];
	for (size_t i = 0; i < sizeof inner; i++)
		inner[i] = (uint8_t)(i * 7);
	uint64_t in_ino = mkfile(env, bd.ino, NAME("inner"), 0644, inner, sizeof inner);
	nodes += 8;

	/* 3 MiB + 17 bytes: four data chunks */
	size_t blen = 3 * MIB + 17;
	uint8_t *big = malloc(blen);
	for (size_t i = 0; i < blen; i++)
		big[i] = (uint8_t)((i * 2654435761u) >> 13);
	mkfile(env, MMS_ROOT_INO, NAME("big"), 0644, big, blen);
	free(big);

	/* sparse: 4 KiB at 0, 10000 bytes at 1 GiB, size 1 GiB + 1 MiB */
	uint8_t a[4096], b[10000];
	memset(a, 'A', sizeof a);
	memset(b, 'B', sizeof b);
	uint64_t sparse = mkfile(env, MMS_ROOT_INO, NAME("sparse"), 0644, a, sizeof a);
	rc = mms_write(env, sparse, b, sizeof b, GIB);
	ok(rc == 0, "write at 1 GiB: %s", mms_strerror(rc));
	rc = mms_truncate(env, sparse, GIB + MIB);
	ok(rc == 0, "truncate sparse to 1 GiB + 1 MiB: %s", mms_strerror(rc));
	nodes += 2;

	rc = mms_symlink(env, MMS_ROOT_INO, NAME("link"), NAME("d/hello.txt"), 0, 0, &st);
	ok(rc == 0, "symlink: %s", mms_strerror(rc));
	rc = mms_setxattr(env, st.ino, NAME("user.on_link"), "v", 1, 0);
	ok(rc == 0, "setxattr on a symlink: %s", mms_strerror(rc));
	rc = mms_symlink(env, d.ino, NAME("badlink"), NAME("\xff\xfe/target"), 3, 4, &st);
	ok(rc == 0, "symlink with a non-UTF-8 target: %s", mms_strerror(rc));
	rc = mms_mknod(env, MMS_ROOT_INO, NAME("fifo"), S_IFIFO | 0640, 1, 2, &st);
	ok(rc == 0, "mkfifo: %s", mms_strerror(rc));
	set_times(env, st.ino, -2, 5); /* before the epoch */
	rc = mms_mknod(env, sub.ino, NAME("sock"), S_IFSOCK | 0755, 0, 0, &st);
	ok(rc == 0, "mksock: %s", mms_strerror(rc));
	nodes += 4;

	/* explicit times, directories last (entries change their mtime) */
	set_times(env, hello, 1000000000, 123456789);
	set_times(env, in_ino, 1700000000, 999999997);
	set_times(env, sub.ino, 1600000000, 1);
	set_times(env, d.ino, 1500000000, 2);
	struct mms_setattr sa = {.mode = 0711, .uid = 7, .gid = 8};
	rc = mms_setattr(env, MMS_ROOT_INO, &sa, MMS_SET_MODE | MMS_SET_UID | MMS_SET_GID, NULL);
	ok(rc == 0, "chmod/chown the root: %s", mms_strerror(rc));
	set_times(env, MMS_ROOT_INO, 1400000000, 3);
	return nodes;
}

/* Compare the value of two inodes byte for byte, by mms_read. */
static int same_value(mms_env *ea, uint64_t ia, mms_env *eb, uint64_t ib, uint64_t size)
{
	size_t cap = 4 * MIB;
	uint8_t *x = malloc(cap), *y = malloc(cap);
	int same = x && y;
	for (uint64_t off = 0; same && off < size;) {
		size_t na = 0, nb = 0;
		int ra = mms_read(ea, ia, x, cap, off, &na);
		int rb = mms_read(eb, ib, y, cap, off, &nb);
		same = ra == 0 && rb == 0 && na == nb && na > 0 && memcmp(x, y, na) == 0;
		off += na;
	}
	free(x);
	free(y);
	return same;
}

/* Sorted list of xattr names and values of an inode, as one byte string. */
static char *xattr_blob(mms_env *env, uint64_t ino, size_t *len)
{
	size_t nlen = 0, o = 0;
	if (mms_listxattr(env, ino, NULL, 0, &nlen))
		return NULL;
	char *names = malloc(nlen + 1);
	char *out = malloc(nlen + (nlen + 1) * (8 + MMS_XATTR_VALUE_MAX));
	if (!names || !out || mms_listxattr(env, ino, names, nlen, &nlen)) {
		free(names);
		free(out);
		return NULL;
	}
	/* listxattr order is the engine's (deterministic); compare as given */
	for (size_t i = 0; i < nlen; i += strlen(names + i) + 1) {
		size_t vlen = 0, n = strlen(names + i);
		memcpy(out + o, names + i, n + 1);
		o += n + 1;
		if (mms_getxattr(env, ino, names + i, n, out + o + 8, MMS_XATTR_VALUE_MAX, &vlen)) {
			free(names);
			free(out);
			return NULL;
		}
		memcpy(out + o, &vlen, sizeof vlen);
		o += 8 + vlen;
	}
	free(names);
	*len = o;
	return out;
}

/*
 * Walk directory da of store a and check that directory db of store b has
 * the same entries with equal attributes, targets, xattrs and values.
 * Returns the number of differences.
 */
static int compare_dirs(mms_env *a, uint64_t da, mms_env *b, uint64_t db, const char *path,
                        int *count)
{
	mms_cursor *cur;
	struct mms_dirent ent;
	int diffs = 0, na = 0, nb = 0, rc;

	if (mms_dir_open(a, da, 0, &cur))
		return 1;
	while ((rc = mms_dir_next(cur, &ent)) == 0) {
		struct mms_stat sa, sb;
		char sub[8192];
		snprintf(sub, sizeof sub, "%s/%.*s", path, (int)ent.namelen, ent.name);
		na++;
		(*count)++;
		if (mms_getattr(a, ent.ino, &sa) ||
		    mms_lookup(b, db, ent.name, ent.namelen, &sb)) {
			tap_diag("%s: missing in the loaded store", sub);
			diffs++;
			continue;
		}
		if (sa.mode != sb.mode || sa.uid != sb.uid || sa.gid != sb.gid ||
		    sa.size != sb.size || sa.blocks != sb.blocks ||
		    sa.atime.tv_sec != sb.atime.tv_sec || sa.atime.tv_nsec != sb.atime.tv_nsec ||
		    sa.mtime.tv_sec != sb.mtime.tv_sec || sa.mtime.tv_nsec != sb.mtime.tv_nsec ||
		    sa.ctime.tv_sec != sb.ctime.tv_sec || sa.ctime.tv_nsec != sb.ctime.tv_nsec) {
			tap_diag("%s: attributes differ (mode %o/%o size %llu/%llu blocks %llu/%llu"
			         " mtime %lld.%09ld/%lld.%09ld)", sub, sa.mode, sb.mode,
			         (unsigned long long)sa.size, (unsigned long long)sb.size,
			         (unsigned long long)sa.blocks, (unsigned long long)sb.blocks,
			         (long long)sa.mtime.tv_sec, sa.mtime.tv_nsec,
			         (long long)sb.mtime.tv_sec, sb.mtime.tv_nsec);
			diffs++;
		}
		size_t xa = 0, xb = 0;
		char *bxa = xattr_blob(a, sa.ino, &xa), *bxb = xattr_blob(b, sb.ino, &xb);
		if (!bxa || !bxb || xa != xb || memcmp(bxa, bxb, xa) != 0) {
			tap_diag("%s: xattrs differ", sub);
			diffs++;
		}
		free(bxa);
		free(bxb);
		if (S_ISLNK(sa.mode)) {
			char ta[MMS_SYMLINK_MAX], tb[MMS_SYMLINK_MAX];
			size_t la = 0, lb = 0;
			if (mms_readlink(a, sa.ino, ta, sizeof ta, &la) ||
			    mms_readlink(b, sb.ino, tb, sizeof tb, &lb) || la != lb ||
			    memcmp(ta, tb, la) != 0) {
				tap_diag("%s: symlink targets differ", sub);
				diffs++;
			}
		}
		if (S_ISREG(sa.mode) && sa.size == sb.size &&
		    !same_value(a, sa.ino, b, sb.ino, sa.size)) {
			tap_diag("%s: values differ", sub);
			diffs++;
		}
		if (S_ISDIR(sa.mode) && S_ISDIR(sb.mode))
			diffs += compare_dirs(a, sa.ino, b, sb.ino, sub, count);
	}
	mms_dir_close(cur);
	if (rc != MMS_NOTFOUND)
		diffs++;
	if (mms_dir_open(b, db, 0, &cur))
		return diffs + 1;
	while (mms_dir_next(cur, &ent) == 0)
		nb++;
	mms_dir_close(cur);
	if (na != nb) {
		tap_diag("%s: %d entries, %d in the loaded store", path[0] ? path : "/", na, nb);
		diffs++;
	}
	return diffs;
}

static void test_round_trip(void)
{
	mms_env *a = new_store("a.mms"), *b = new_store("b.mms");
	struct progress pd = {0}, pl = {0};
	struct mms_stat st;
	size_t len;
	int rc;

	if (!a || !b)
		goto out;
	int nodes = build(a);
	rc = mms_commit(a);
	ok(rc == 0, "commit the source store: %s", mms_strerror(rc));

	rc = dump_to(a, "a.dump", &pd);
	if (!ok(rc == 0, "dump: %s (%s)", mms_strerror(rc), mms_errdetail(a)))
		goto out;
	is_int(pd.done, nodes, "dump progress ends at the node count");
	is_int(pd.total, nodes, "dump progress total is keys + dirs");
	is_int(pd.calls, nodes, "dump progress called once per node");

	char *text = slurp(tpath(0, "a.dump"), &len);
	if (ok(text != NULL, "read the dump back")) {
		char end[64];
		snprintf(end, sizeof end, "{\"nodes\":%d,\"type\":\"end\"}\n", nodes);
		const char *header = "{\"format\":\"mmstore-dump\",\"version\":2}\n";
		ok(strncmp(text, header, strlen(header)) == 0, "the first line is the header");
		ok(len > strlen(end) && strcmp(text + len - strlen(end), end) == 0,
		   "the last line is %.*s", (int)strlen(end) - 1, end);
		/* 3 MiB of base64 plus small lines: the 1 GiB hole costs nothing */
		ok(len < 3 * MIB * 4 / 3 + 256 * 1024, "dump is small (%zu bytes)", len);
		ok(strstr(text, "\"path\":\"\",") != NULL, "the root is a node with path \"\"");
		ok(strstr(text, "\"path_base64\":") != NULL, "non-UTF-8 paths are base64");
		ok(strstr(text, "\"name_base64\":") != NULL, "non-UTF-8 xattr names are base64");
		ok(strstr(text, "\"target_base64\":") != NULL, "non-UTF-8 targets are base64");
		ok(strstr(text, "\"offset\":1073741824,") != NULL, "the sparse data at 1 GiB is dumped");
		ok(strstr(text, "\"offset\":3145728,") != NULL, "the 3 MiB file has a 4th chunk");
		size_t lines = 0;
		for (size_t i = 0; i < len; i++)
			lines += text[i] == '\n';
		/* header, nodes, data: big 4, sparse 2, 7 small non-empty files, end */
		is_int(lines, 1 + nodes + 4 + 2 + 7 + 1, "one line per node and data chunk");
		free(text);
	}

	rc = load_from(b, "a.dump", &pl);
	if (!ok(rc == 0, "load into an empty store: %s (%s)", mms_strerror(rc), mms_errdetail(b)))
		goto out;
	is_int(pl.done, len, "load progress ends at the input size");
	is_int(pl.total, len, "load progress total is the input size");
	rc = mms_commit(b);
	ok(rc == 0, "commit the loaded store: %s", mms_strerror(rc));

	rc = dump_to(b, "b.dump", NULL);
	ok(rc == 0, "dump the loaded store: %s (%s)", mms_strerror(rc), mms_errdetail(b));
	ok(same_file("a.dump", "b.dump"), "dump -> load -> dump is byte-identical");

	int count = 0;
	is_int(compare_dirs(a, MMS_ROOT_INO, b, MMS_ROOT_INO, "", &count), 0,
	       "every node has the same attributes, xattrs, target and value");
	is_int(count, nodes - 1, "compared every node below the root");
	struct mms_stat ra, rb;
	if (mms_getattr(a, MMS_ROOT_INO, &ra) == 0 && mms_getattr(b, MMS_ROOT_INO, &rb) == 0) {
		ok(ra.mode == rb.mode && ra.uid == rb.uid && ra.gid == rb.gid &&
		   ra.mtime.tv_sec == rb.mtime.tv_sec && ra.mtime.tv_nsec == rb.mtime.tv_nsec &&
		   ra.ctime.tv_sec == rb.ctime.tv_sec && ra.ctime.tv_nsec == rb.ctime.tv_nsec,
		   "root mode, owner and times restored");
		size_t xa = 0, xb = 0;
		char *bxa = xattr_blob(a, MMS_ROOT_INO, &xa), *bxb = xattr_blob(b, MMS_ROOT_INO, &xb);
		ok(bxa && bxb && xa == xb && memcmp(bxa, bxb, xa) == 0, "root xattrs restored");
		free(bxa);
		free(bxb);
	}

	/* holes stay holes */
	rc = mms_resolve(b, NAME("sparse"), &st);
	if (ok(rc == 0, "resolve sparse: %s", mms_strerror(rc))) {
		uint64_t pos = 0;
		ok(st.blocks < MIB, "sparse value occupies %llu bytes", (unsigned long long)st.blocks);
		rc = mms_seek(b, st.ino, 4096, MMS_SEEK_DATA, &pos);
		ok(rc == 0 && pos == GIB, "next data after the first page is at 1 GiB (%llu)",
		   (unsigned long long)pos);
	}
	rc = mms_resolve(b, NAME("empty"), &st);
	ok(rc == 0 && S_ISREG(st.mode) && st.size == 0 && (st.mode & 07777) == 0600,
	   "the empty file is loaded");

	/*
	 * Load again over changed keys: a file turned into a directory, a
	 * symlink turned into a file, a changed value, an extra xattr on a
	 * directory.  Everything is replaced; the dump is the same again.
	 */
	rc = mms_unlink(b, MMS_ROOT_INO, NAME("empty"));
	if (!rc)
		rc = mms_mkdir(b, MMS_ROOT_INO, NAME("empty"), 0755, 0, 0, NULL);
	if (!rc)
		rc = mms_unlink(b, MMS_ROOT_INO, NAME("link"));
	if (!rc)
		rc = mms_mknod(b, MMS_ROOT_INO, NAME("link"), S_IFREG | 0644, 0, 0, NULL);
	if (!rc)
		rc = mms_resolve(b, NAME("d/hello.txt"), &st);
	if (!rc)
		rc = mms_write(b, st.ino, "HELLO", 5, 0);
	if (!rc)
		rc = mms_resolve(b, NAME("d"), &st);
	if (!rc)
		rc = mms_setxattr(b, st.ino, NAME("user.extra"), "e", 1, 0);
	if (ok(rc == 0, "change the loaded store: %s", mms_strerror(rc))) {
		rc = load_from(b, "a.dump", NULL);
		ok(rc == 0, "load over existing keys: %s (%s)", mms_strerror(rc), mms_errdetail(b));
		rc = dump_to(b, "c.dump", NULL);
		ok(rc == 0, "dump after the reload: %s", mms_strerror(rc));
		ok(same_file("a.dump", "c.dump"), "existing keys were replaced: same dump");
	}

	/* a failed write is reported (here: no space left on /dev/full) */
	FILE *full = fopen("/dev/full", "w");
	if (full) {
		rc = mms_dump(a, full, NULL, NULL);
		ok(rc == ENOSPC && strstr(mms_errdetail(a), "writing the dump") != NULL,
		   "dump to a full disk fails with ENOSPC (%s: %s)", mms_strerror(rc),
		   mms_errdetail(a));
		fclose(full);
	}

	/* a progress callback that returns nonzero stops the dump */
	struct progress stop = {.stop_after = 2};
	rc = dump_to(a, "stopped.dump", &stop);
	ok(rc != 0 && stop.calls == 2, "a nonzero progress return stops the dump (%s)",
	   mms_strerror(rc));
out:
	if (a)
		mms_close(a);
	if (b)
		mms_close(b);
}

#define HDR  "{\"format\":\"mmstore-dump\",\"version\":1}\n"
#define ROOT "{\"type\":\"dir\",\"path\":\"\",\"mode\":493,\"uid\":0,\"gid\":0," \
             "\"atime\":0,\"mtime\":0,\"ctime\":0}\n"
#define FILE3 "{\"type\":\"file\",\"path\":\"f\",\"mode\":420,\"uid\":0,\"gid\":0,\"size\":3," \
              "\"atime\":1,\"mtime\":2,\"ctime\":3}\n"
#define END(n) "{\"type\":\"end\",\"nodes\":" #n "}\n"

/* Load `text`; the code and the detail of the failure. */
static int load_text(mms_env *env, const char *text)
{
	FILE *f = *text ? fmemopen((void *)text, strlen(text), "r") : fopen("/dev/null", "r");
	if (!f)
		return errno;
	int rc = mms_load(env, f, NULL, NULL);
	fclose(f);
	return rc;
}

/* `text` fails to load with MMS_INVAL and a detail starting "line N:". */
static void bad_input(mms_env *env, const char *what, const char *text, int line)
{
	char want[32];
	snprintf(want, sizeof want, "line %d:", line);
	int rc = load_text(env, text);
	const char *detail = mms_errdetail(env);
	ok(rc == MMS_INVAL && strncmp(detail, want, strlen(want)) == 0,
	   "%s: MMS_INVAL at %s (got %s: %s)", what, want, mms_strerror(rc), detail);
	mms_rollback(env);
}

static void test_malformed(void)
{
	mms_env *env = new_store("bad.mms");
	if (!env)
		return;

	bad_input(env, "empty input", "", 1);
	bad_input(env, "not a dump", "{\"format\":\"other\",\"version\":1}\n" ROOT END(1), 1);
	bad_input(env, "unknown version", "{\"format\":\"mmstore-dump\",\"version\":3}\n", 1);
	bad_input(env, "invalid JSON", HDR "{\"type\":\"dir\",\n" END(1), 2);
	bad_input(env, "not an object", HDR "[1,2]\n" END(0), 2);
	bad_input(env, "empty line", HDR ROOT "\n" END(1), 3);
	bad_input(env, "unknown type", HDR ROOT
	          "{\"type\":\"blockdev\",\"path\":\"x\",\"mode\":420,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "unknown field", HDR ROOT
	          "{\"type\":\"fifo\",\"path\":\"x\",\"mode\":420,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0,\"colour\":1}\n" END(2), 3);
	bad_input(env, "missing mode", HDR ROOT
	          "{\"type\":\"fifo\",\"path\":\"x\",\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "mode out of range", HDR ROOT
	          "{\"type\":\"fifo\",\"path\":\"x\",\"mode\":65535,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "uid not an integer", HDR ROOT
	          "{\"type\":\"fifo\",\"path\":\"x\",\"mode\":420,\"uid\":\"0\",\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "file without size", HDR ROOT
	          "{\"type\":\"file\",\"path\":\"x\",\"mode\":420,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "'..' in a path", HDR ROOT
	          "{\"type\":\"fifo\",\"path\":\"a/../b\",\"mode\":420,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "leading slash", HDR ROOT
	          "{\"type\":\"fifo\",\"path\":\"/b\",\"mode\":420,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "missing parent", HDR ROOT
	          "{\"type\":\"fifo\",\"path\":\"nodir/b\",\"mode\":420,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "bad base64 path", HDR ROOT
	          "{\"type\":\"fifo\",\"path_base64\":\"@@@@\",\"mode\":420,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "root not a dir", HDR
	          "{\"type\":\"fifo\",\"path\":\"\",\"mode\":420,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(1), 2);
	bad_input(env, "bad base64 data", HDR ROOT FILE3
	          "{\"type\":\"data\",\"path\":\"f\",\"offset\":0,\"base64\":\"YW*j\"}\n" END(2), 4);
	bad_input(env, "base64 with nonzero pad bits", HDR ROOT FILE3
	          "{\"type\":\"data\",\"path\":\"f\",\"offset\":0,\"base64\":\"YWJ=\"}\n" END(2), 4);
	bad_input(env, "base64 of a bad length", HDR ROOT FILE3
	          "{\"type\":\"data\",\"path\":\"f\",\"offset\":0,\"base64\":\"YWJjZ\"}\n" END(2), 4);
	bad_input(env, "offset + length overflow", HDR ROOT FILE3
	          "{\"type\":\"data\",\"path\":\"f\",\"offset\":9223372036854775807,"
	          "\"base64\":\"YWJj\"}\n" END(2), 4);
	bad_input(env, "data beyond the size", HDR ROOT FILE3
	          "{\"type\":\"data\",\"path\":\"f\",\"offset\":1,\"base64\":\"YWJj\"}\n" END(2), 4);
	bad_input(env, "data for a directory", HDR ROOT
	          "{\"type\":\"dir\",\"path\":\"d\",\"mode\":493,\"uid\":0,\"gid\":0,"
	          "\"atime\":0,\"mtime\":0,\"ctime\":0}\n"
	          "{\"type\":\"data\",\"path\":\"d\",\"offset\":0,\"base64\":\"YWJj\"}\n" END(2), 4);
	bad_input(env, "data for another file", HDR ROOT FILE3
	          "{\"type\":\"data\",\"path\":\"g\",\"offset\":0,\"base64\":\"YWJj\"}\n" END(2), 4);
	bad_input(env, "duplicate key", HDR ROOT
	          "{\"type\":\"fifo\",\"type\":\"fifo\",\"path\":\"x\",\"mode\":420,\"uid\":0,"
	          "\"gid\":0,\"atime\":0,\"mtime\":0,\"ctime\":0}\n" END(2), 3);
	bad_input(env, "wrong node count", HDR ROOT FILE3 END(7), 4);
	bad_input(env, "truncated (no end line)", HDR ROOT FILE3, 4);
	bad_input(env, "truncated in a line", HDR ROOT "{\"type\":\"file\",\"pa", 3);
	bad_input(env, "text after the end line", HDR ROOT END(1) ROOT, 4);

	/* a real dump cut in half */
	size_t len = 0;
	char *text = slurp(tpath(0, "a.dump"), &len);
	if (text) {
		text[len / 2] = '\0';
		int rc = load_text(env, text);
		ok(rc == MMS_INVAL && strncmp(mms_errdetail(env), "line ", 5) == 0,
		   "a dump cut in half: MMS_INVAL (%s)", mms_errdetail(env));
		mms_rollback(env);
		free(text);
	}

	/* the smallest valid dumps load */
	int rc = load_text(env, HDR ROOT FILE3
	                   "{\"type\":\"data\",\"path\":\"f\",\"offset\":0,\"base64\":\"YWJj\"}\n"
	                   END(2));
	ok(rc == 0, "a hand-written dump loads: %s (%s)", mms_strerror(rc), mms_errdetail(env));
	struct mms_stat st;
	char buf[8] = {0};
	size_t n = 0;
	rc = mms_resolve(env, NAME("f"), &st);
	if (ok(rc == 0, "f exists: %s", mms_strerror(rc))) {
		rc = mms_read(env, st.ino, buf, sizeof buf, 0, &n);
		ok(rc == 0 && n == 3 && memcmp(buf, "abc", 3) == 0, "f holds \"abc\"");
		ok(st.mode == (S_IFREG | 0644) && st.atime.tv_sec == 0 && st.atime.tv_nsec == 1 &&
		   st.mtime.tv_nsec == 2 && st.ctime.tv_nsec == 3, "f has its mode and times");
	}
	rc = mms_getattr(env, MMS_ROOT_INO, &st);
	ok(rc == 0 && st.mode == (S_IFDIR | 0755) && st.mtime.tv_sec == 0 && st.mtime.tv_nsec == 0,
	   "the root's mode and times are set after its entries");
	mms_close(env);
}

/* Hard links and device nodes survive a dump and a load, and a dump of the
 * loaded store is the same text. */
static void test_links_devices(void)
{
	mms_env *a = new_store("la.mms"), *b = new_store("lb.mms");
	struct mms_stat f, d, st, g, h, dev;
	size_t len;
	int rc;

	if (!a || !b)
		goto out;
	rc = mms_put(a, MMS_ROOT_INO, "f", 1, "linked bytes", 12, 0640, 7, 8, &f);
	rc |= mms_setxattr(a, f.ino, "user.x", 6, "v", 1, 0);
	rc |= mms_mkdir(a, MMS_ROOT_INO, "d", 1, 0755, 0, 0, &d);
	rc |= mms_link(a, f.ino, MMS_ROOT_INO, "g", 1, NULL);
	rc |= mms_link(a, f.ino, d.ino, "h", 1, NULL);
	rc |= mms_mkdev(a, d.ino, "null", 4, S_IFCHR | 0666, makedev(1, 3), 0, 0, NULL);
	rc |= mms_mkdev(a, MMS_ROOT_INO, "sda", 3, S_IFBLK | 0660, makedev(8, 0), 0, 6, NULL);
	set_times(a, f.ino, 1000, 5);
	rc |= mms_getattr(a, f.ino, &f);
	rc |= mms_commit(a);
	if (!ok(rc == 0 && f.nlink == 3, "a key with three names and two devices (nlink %u)",
	        f.nlink))
		goto out;
	rc = dump_to(a, "links.dump", NULL);
	if (!ok(rc == 0, "dump: %s (%s)", mms_strerror(rc), mms_errdetail(a)))
		goto out;
	char *text = slurp(tpath(0, "links.dump"), &len);
	if (ok(text != NULL, "read the dump")) {
		int hl = 0;
		for (const char *p = text; (p = strstr(p, "\"type\":\"hardlink\"")); p++)
			hl++;
		is_int(hl, 2, "two names become hardlink lines");
		ok(strstr(text, "\"major\":1,") && strstr(text, "\"minor\":3,") &&
		   strstr(text, "\"type\":\"chardev\"") && strstr(text, "\"type\":\"blockdev\""),
		   "devices are dumped with their numbers");
		ok(strstr(text, "\"to\":\"d/h\"") || strstr(text, "\"to\":\"f\"") ||
		   strstr(text, "\"to\":\"g\""), "a hardlink line names the first path");
	}
	free(text);
	rc = load_from(b, "links.dump", NULL);
	if (!ok(rc == 0, "load: %s (%s)", mms_strerror(rc), mms_errdetail(b)))
		goto out;
	rc = mms_resolve(b, "f", 1, &st);
	rc |= mms_resolve(b, "g", 1, &g);
	rc |= mms_resolve(b, "d/h", 3, &h);
	ok(rc == 0 && st.ino == g.ino && st.ino == h.ino && st.nlink == 3,
	   "the three names are one inode again (nlink %u)", st.nlink);
	ok(st.ctime.tv_sec == f.ctime.tv_sec && st.ctime.tv_nsec == f.ctime.tv_nsec &&
	   st.mtime.tv_sec == f.mtime.tv_sec && st.uid == 7 && st.gid == 8 &&
	   (st.mode & 07777) == 0640, "its attributes are as dumped, ctime included");
	rc = mms_resolve(b, "d/null", 6, &dev);
	ok(rc == 0 && S_ISCHR(dev.mode) && dev.rdev == makedev(1, 3), "d/null is char 1,3");
	rc = mms_resolve(b, "sda", 3, &dev);
	ok(rc == 0 && S_ISBLK(dev.mode) && dev.rdev == makedev(8, 0) && dev.gid == 6,
	   "sda is block 8,0");
	rc = mms_commit(b);
	rc |= dump_to(b, "links2.dump", NULL);
	ok(rc == 0 && same_file("links.dump", "links2.dump"), "a dump of the loaded store is the same");
	uint64_t np = 1;
	rc = mms_check(b, NULL, NULL, NULL, NULL, &np);
	ok(rc == 0 && np == 0, "the loaded store checks clean");
	/* loaded again over itself: the keys are replaced, the names still
	 * share one inode, and the old one is freed */
	rc = load_from(b, "links.dump", NULL);
	rc |= mms_resolve(b, "f", 1, &f);
	rc |= mms_resolve(b, "g", 1, &g);
	rc |= mms_resolve(b, "d/h", 3, &h);
	ok(rc == 0 && g.ino == f.ino && h.ino == f.ino && g.nlink == 3 &&
	   mms_getattr(b, st.ino, &st) == MMS_NOTFOUND,
	   "loaded again: one inode with 3 names, the replaced one freed");
	/* a hardlink line before its target, or to a directory, is refused */
	bad_input(b, "hard link to a path not there", "{\"format\":\"mmstore-dump\",\"version\":2}\n"
	          ROOT "{\"path\":\"x\",\"to\":\"nope\",\"type\":\"hardlink\"}\n", 3);
	bad_input(b, "hard link to a directory", "{\"format\":\"mmstore-dump\",\"version\":2}\n"
	          ROOT "{\"path\":\"x\",\"to\":\"d\",\"type\":\"hardlink\"}\n", 3);
out:
	if (a)
		mms_close(a);
	if (b)
		mms_close(b);
}

/*
 * A dump of a store the page cache does not hold asks for the whole file
 * first (it reads every page, in an order of its own: one random read at a
 * time otherwise); a dump of a cached store asks for nothing.
 */
static void test_dump_warm(void)
{
	mms_env *env = new_store("warm.mms");
	char name[32];
	uint8_t v[300];
	memset(v, 5, sizeof v);
	for (int i = 0; env && i < 5000; i++) {
		int l = snprintf(name, sizeof name, "k%05d", i);
		if (mms_put(env, MMS_ROOT_INO, name, (size_t)l, v, sizeof v, 0644, 0, 0, NULL))
			abort();
	}
	if (!env || mms_sync(env) || mms_close(env))
		abort();
	if (!tap_uncache(tpath(0, "warm.mms"))) {
		tap_skip("TMPDIR's file system keeps the store's pages in memory (tmpfs?): "
		         "a store out of the page cache cannot be made there");
		return;
	}
	if (mms_open(tpath(0, "warm.mms"), &(struct mms_options){.flags = MMS_RDONLY}, &env))
		abort();
	unsigned long before = mms_io_test_prefetches;
	int rc = dump_to(env, "warm.dump", NULL);
	unsigned long cold = mms_io_test_prefetches - before;
	ok(rc == 0 && cold > 0, "a dump of a store out of the cache asks for it first (%lu calls)", cold);
	before = mms_io_test_prefetches;
	rc = dump_to(env, "warm2.dump", NULL);
	unsigned long warm = mms_io_test_prefetches - before;
	ok(rc == 0 && warm == 0, "a dump of the cached store asks for nothing (%lu calls)", warm);
	mms_close(env);
}

int main(void)
{
	tap_plan_none();
	tmp = tap_tmpdir();
	test_round_trip();
	test_malformed();
	test_links_devices();
	test_dump_warm();
	return tap_done();
}
