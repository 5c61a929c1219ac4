/*
 * test_fuzz_corpus.c - replay the fuzzer's corpus (tests/fuzz/corpus/)
 * through the harness, in make check (and so under ASan+UBSan in the
 * sanitizer build).  Every input must run to its end; the seeds (named
 * seed-*) are real stores that must also open and check clean.  Crashes the
 * fuzzer found are committed there as inputs (named crash-*) and replay
 * here: they must not crash again.
 *
 * `test_fuzz_corpus --make-seeds DIR` writes the seed stores (how the
 * committed ones were made).
 */
#define FUZZ_NO_MAIN 1
#include "../fuzz/fuzz_store.c"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <sys/sysmacros.h>

/* The input of the fuzz harness for a store: control byte `ctl` (see
 * fuzz_store.c; 0x01: it recomputes checksums after mutating), then the
 * store's bytes. */
static int write_seed_as(const char *dir, const char *name, const char *store, uint8_t ctl)
{
	char out[1024];
	uint8_t *buf = NULL;
	struct stat st;
	int fd = open(store, O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		return -1;
	buf = malloc((size_t)st.st_size + 1);
	buf[0] = ctl;
	if (pread(fd, buf + 1, (size_t)st.st_size, 0) != st.st_size)
		return -1;
	close(fd);
	snprintf(out, sizeof out, "%s/%s", dir, name);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, (size_t)st.st_size + 1) != st.st_size + 1)
		return -1;
	close(fd);
	free(buf);
	return 0;
}

static int write_seed(const char *dir, const char *name, const char *store)
{
	return write_seed_as(dir, name, store, 0x01);
}

static int copy_file(const char *from, const char *to)
{
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
	return system(cmd);
}

static int make_seeds(const char *dir)
{
	char tmp[1024], crash[1024];
	mms_env *env;
	struct mms_stat st, d, f;
	uint8_t val[9000];
	int rc = 0;
	memset(val, 'v', sizeof val);
	snprintf(tmp, sizeof tmp, "%s/tmp.mms", dir);
	snprintf(crash, sizeof crash, "%s/crash.mms", dir);

	unlink(tmp);
	rc |= mms_open(tmp, &(struct mms_options){ .flags = MMS_CREATE }, &env);
	rc |= mms_close(env);
	rc |= write_seed(dir, "seed-empty", tmp);

	rc |= mms_open(tmp, NULL, &env);
	rc |= mms_put(env, MMS_ROOT_INO, "inline", 6, val, 100, 0644, 0, 0, &st);
	rc |= mms_setxattr(env, st.ino, "user.dtype", 10, "float32", 7, 0);
	rc |= mms_put(env, MMS_ROOT_INO, "pages", 5, val, sizeof val, 0644, 0, 0, &st);
	rc |= mms_setxattr(env, st.ino, "user.blob", 9, val, 3000, 0);
	rc |= mms_mknod(env, MMS_ROOT_INO, "sparse", 6, S_IFREG | 0644, 0, 0, &st);
	rc |= mms_truncate(env, st.ino, 1 << 30);
	rc |= mms_write(env, st.ino, val, 5000, 40960);
	rc |= mms_mkdir(env, MMS_ROOT_INO, "dir", 3, 0755, 0, 0, &d);
	rc |= mms_put(env, d.ino, "x", 1, val, 2000, 0600, 1000, 1000, &f);
	rc |= mms_symlink(env, d.ino, "link", 4, "../pages", 8, 0, 0, &f);
	rc |= mms_mknod(env, d.ino, "fifo", 4, S_IFIFO | 0644, 0, 0, &f);
	rc |= mms_mkdev(env, d.ino, "null", 4, S_IFCHR | 0666, makedev(1, 3), 0, 0, &f);
	rc |= mms_mkdev(env, d.ino, "sda", 3, S_IFBLK | 0660, makedev(8, 0), 0, 6, &f);
	rc |= mms_mkdir(env, d.ino, "sub", 3, 0755, 0, 0, &f);
	/* hard links: two more names of "pages", one in another directory */
	rc |= mms_lookup(env, MMS_ROOT_INO, "pages", 5, &st);
	rc |= mms_link(env, st.ino, d.ino, "pages-too", 9, NULL);
	rc |= mms_link(env, st.ino, f.ino, "pages-3", 7, NULL);
	rc |= mms_close(env);
	rc |= write_seed(dir, "seed-keys", tmp);

	/* a process crash: an unsynced commit and a held, unlinked key (a cap
	 * keeps the file small: growth would add a 1 MiB segment) */
	rc |= mms_open(tmp, NULL, &env);
	rc |= mms_set_max_size(env, 256 << 10);
	rc |= mms_put(env, MMS_ROOT_INO, "late", 4, val, 7000, 0644, 0, 0, &st);
	rc |= mms_hold(env, st.ino);
	rc |= mms_unlink(env, MMS_ROOT_INO, "late", 4);
	rc |= mms_put(env, MMS_ROOT_INO, "after", 5, val, 50, 0644, 0, 0, &st);
	rc |= mms_commit(env);
	rc |= copy_file(tmp, crash);
	rc |= mms_close(env);
	rc |= write_seed(dir, "seed-unsynced-orphan", crash);

	/* fragmented free space and a deeper name tree */
	unlink(tmp);
	rc |= mms_open(tmp, &(struct mms_options){ .flags = MMS_CREATE }, &env);
	for (int i = 0; i < 24 && !rc; i++) {
		char name[32];
		int l = snprintf(name, sizeof name, "key-with-a-long-name-%04d", i);
		rc |= mms_put(env, MMS_ROOT_INO, name, (size_t)l, val, 4096, 0644, 0, 0, NULL);
	}
	for (int i = 0; i < 200 && !rc; i++) {
		char name[32];
		int l = snprintf(name, sizeof name, "small-%04d", i);
		rc |= mms_put(env, MMS_ROOT_INO, name, (size_t)l, val, 16, 0644, 0, 0, NULL);
	}
	rc |= mms_sync(env);
	for (int i = 0; i < 24 && !rc; i += 2) {
		char name[32];
		int l = snprintf(name, sizeof name, "key-with-a-long-name-%04d", i);
		rc |= mms_unlink(env, MMS_ROOT_INO, name, (size_t)l);
	}
	rc |= mms_close(env);
	rc |= write_seed(dir, "seed-fragmented", tmp);

	/* shared pages (format 3): copies of whole pages, three holders of
	 * some, one copy written over in the middle */
	unlink(tmp);
	rc |= mms_open(tmp, &(struct mms_options){ .flags = MMS_CREATE }, &env);
	uint64_t copied, ino[3];
	const char *names[3] = { "orig", "copy", "copy2" };
	for (int i = 0; i < 3; i++) {
		rc |= mms_mknod(env, MMS_ROOT_INO, names[i], strlen(names[i]), S_IFREG | 0644, 0, 0, &st);
		ino[i] = st.ino;
	}
	rc |= mms_write(env, ino[0], val, sizeof val, 0);
	rc |= mms_copy_range(env, ino[0], 0, ino[1], 0, sizeof val, &copied);
	rc |= mms_copy_range(env, ino[1], 4096, ino[2], 0, 4096, &copied);
	rc |= mms_write(env, ino[1], "x", 1, 4100);
	rc |= mms_close(env);
	rc |= write_seed(dir, "seed-shared", tmp);

	/* the free list in a base and a log (format 4): few runs inline; the
	 * first commits write log pages, the last ones keep their changes in
	 * the log's tail in the meta (format 5) */
	unlink(tmp);
	mms_alloc_test_inline_max = 2;
	mms_alloc_test_tail_max = 2;
	rc |= mms_open(tmp, &(struct mms_options){ .flags = MMS_CREATE }, &env);
	for (int i = 0; i < 12 && !rc; i++) {
		char name[32];
		int l = snprintf(name, sizeof name, "log-%02d", i);
		rc |= mms_put(env, MMS_ROOT_INO, name, (size_t)l, val, 4096 + 100 * (size_t)i, 0644, 0, 0, NULL);
		rc |= mms_commit(env);
	}
	rc |= mms_sync(env);
	mms_alloc_test_tail_max = 0;
	for (int i = 0; i < 12 && !rc; i += 3) {
		char name[32];
		int l = snprintf(name, sizeof name, "log-%02d", i);
		rc |= mms_unlink(env, MMS_ROOT_INO, name, (size_t)l);
		rc |= mms_commit(env);
	}
	rc |= mms_close(env);
	mms_alloc_test_inline_max = 0;
	/* and the harness's writes to it keep few runs inline and few
	 * changes in the tail too (0x18) */
	rc |= write_seed_as(dir, "seed-log", tmp, 0x19);
	unlink(tmp);
	unlink(crash);
	return rc;
}

static void on_problem(void *ctx, const char *where, const char *what)
{
	tap_diag("%s: %s: %s", (const char *)ctx, where, what);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--make-seeds"))
		return make_seeds(argv[2]) ? 1 : 0;
	const char *src = getenv("SRCDIR");
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus", src && *src ? src : ".");
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, by_name);
	if (n < 0) {
		printf("Bail out! cannot read %s: %s\n", dir, strerror(errno));
		return 1;
	}
	char *tmp = tap_tmpdir();
	int seeds = 0;
	for (int i = 0; i < n; i++) {
		char path[2048];
		const char *name = ents[i]->d_name;
		if (name[0] == '.') {
			free(ents[i]);
			continue;
		}
		snprintf(path, sizeof path, "%s/%s", dir, name);
		int fd = open(path, O_RDONLY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st)) {
			ok(0, "%s: cannot read: %s", name, strerror(errno));
			free(ents[i]);
			continue;
		}
		uint8_t *buf = malloc((size_t)st.st_size + 1);
		ssize_t got = pread(fd, buf, (size_t)st.st_size, 0);
		close(fd);
		if (!strncmp(name, "seed-", 5)) {
			/* a real store: it opens and checks clean */
			char store[2048];
			mms_env *env;
			uint64_t np = 1;
			snprintf(store, sizeof store, "%s/%s.mms", tmp, name);
			fd = open(store, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			ssize_t w = got > 1 ? write(fd, buf + 1, (size_t)got - 1) : -1;
			close(fd);
			int rc = w == got - 1 ? mms_open(store, &(struct mms_options){ .flags = MMS_RDONLY }, &env) : -1;
			if (rc == 0) {
				rc = mms_check(env, on_problem, (void *)name, NULL, NULL, &np);
				mms_close(env);
			}
			ok(rc == 0 && np == 0, "%s: a real store that opens and checks clean (%s)", name,
			   rc ? mms_open_detail() : "ok");
			seeds++;
		}
		/* a crash, a hang or a sanitizer report ends the program here */
		is_int(LLVMFuzzerTestOneInput(buf, got > 0 ? (size_t)got : 0), 0, name);
		free(buf);
		free(ents[i]);
	}
	free(ents);
	ok(seeds >= 6, "the corpus has its %d seed stores", seeds);
	if (fz_null)
		fclose(fz_null);
	if (fz_fd >= 0)
		close(fz_fd);
	return tap_done();
}
