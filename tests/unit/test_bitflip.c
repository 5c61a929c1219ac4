/*
 * test_bitflip.c - every flipped bit of a store's metadata is detected or
 * harmless.
 *
 * A small store with every kind of key (inline and extent values, a sparse
 * file, a directory, a symlink, a fifo, inline and blob xattrs) is made and
 * dumped.  Then, one at a time, a bit of its metadata is flipped: every bit
 * of the used part of both meta pages, every bit of the first tree pages,
 * and a random sample of the bits of the other tree pages (MMS_BITFLIP_BITS
 * in all, default 20,000).  For each flip the store is opened read-only;
 * when it opens, mms_check runs and the store is dumped.  The flip must be
 * detected (the open fails with a clear code, or check reports a problem,
 * or a call reports MMS_CORRUPT) or harmless (the dump is byte for byte the
 * original one).  Nothing may crash: the sanitizer build runs this too.
 */
#define _GNU_SOURCE
#define MMS_TEST_HOOKS 1
#include "mms_int.h"
#include "tap.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng;
static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int make_store(const char *path)
{
	mms_env *env;
	struct mms_stat st, d, f;
	uint8_t val[9000];
	int rc;
	for (size_t i = 0; i < sizeof val; i++)
		val[i] = (uint8_t)(i * 7);
	rc = mms_open(path, &(struct mms_options){ .flags = MMS_CREATE | MMS_EXCL }, &env);
	if (rc)
		return rc;
	rc |= mms_put(env, MMS_ROOT_INO, "inline", 6, val, 100, 0644, 0, 0, &st);
	rc |= mms_setxattr(env, st.ino, "user.dtype", 10, "float32", 7, 0);
	rc |= mms_put(env, MMS_ROOT_INO, "pages", 5, val, sizeof val, 0644, 0, 0, &st);
	rc |= mms_setxattr(env, st.ino, "user.blob", 9, val, 3000, 0);
	rc |= mms_mknod(env, MMS_ROOT_INO, "sparse", 6, S_IFREG | 0644, 0, 0, &st);
	rc |= mms_truncate(env, st.ino, 1 << 24);
	rc |= mms_write(env, st.ino, val, 5000, 40960);
	rc |= mms_mkdir(env, MMS_ROOT_INO, "dir", 3, 0755, 0, 0, &d);
	rc |= mms_put(env, d.ino, "x", 1, val, 2000, 0600, 1000, 1000, &f);
	rc |= mms_symlink(env, d.ino, "link", 4, "../pages", 8, 0, 0, &f);
	rc |= mms_mknod(env, d.ino, "fifo", 4, S_IFIFO | 0644, 0, 0, &f);
	for (int i = 0; i < 120 && !rc; i++) {
		char name[32];
		int l = snprintf(name, sizeof name, "k%03d", i);
		rc |= mms_put(env, d.ino, name, (size_t)l, val + i, (size_t)i * 9, 0644, 0, 0, NULL);
	}
	rc |= mms_close(env);
	return rc;
}

/* The dump of the store at path, or NULL (and *rc) if it cannot be made. */
static char *dump_of(const char *path, int *rc, uint64_t *problems, size_t *len)
{
	mms_env *env;
	char *buf = NULL;
	*problems = 0;
	*rc = mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env);
	if (*rc)
		return NULL;
	*rc = mms_check(env, NULL, NULL, NULL, NULL, problems);
	FILE *m = open_memstream(&buf, len);
	int drc = mms_dump(env, m, NULL, NULL);
	fclose(m);
	mms_close(env);
	if (!*rc)
		*rc = drc;
	if (*rc) {
		free(buf);
		return NULL;
	}
	return buf;
}

struct pages {
	uint64_t *p;
	size_t n;
};

static int note_page(void *ctx, uint64_t pgno, int level, const uint8_t *page)
{
	(void)level;
	(void)page;
	struct pages *ps = ctx;
	ps->p = realloc(ps->p, (ps->n + 1) * sizeof *ps->p);
	ps->p[ps->n++] = pgno;
	return 0;
}

int main(void)
{
	char *dir = tap_tmpdir();
	char path[512], img[512];
	snprintf(path, sizeof path, "%s/orig.mms", dir);
	snprintf(img, sizeof img, "%s/flip.mms", dir);
	const char *s = getenv("MMS_BITFLIP_BITS");
	long budget = s && *s ? strtol(s, NULL, 10) : 20000;
	s = getenv("MMS_SEED");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
	rng = seed;
	tap_diag("seed %" PRIu64 " (replay with MMS_SEED=%" PRIu64 ")", seed, seed);

	if (!is_int(make_store(path), 0, "make a store with every kind of key"))
		return tap_done();
	int rc;
	uint64_t np;
	size_t olen;
	char *orig = dump_of(path, &rc, &np, &olen);
	if (!ok(orig && np == 0, "the store dumps and checks clean"))
		return tap_done();

	/* the metadata pages: both metas and every tree page */
	struct pages ps = { NULL, 0 };
	mms_env *env;
	is_int(mms_open(path, &(struct mms_options){ .flags = MMS_RDONLY }, &env), 0, "open");
	for (int t = 0; t < MMS_NTREES; t++)
		mms_bt_walk(env, t, note_page, &ps);
	uint64_t file_pages = env->meta.file_pages;
	mms_close(env);
	ok(ps.n >= 5, "%zu tree pages", ps.n);

	int fd = open(path, O_RDONLY);
	uint8_t *image = malloc(file_pages * 4096);
	ssize_t got = pread(fd, image, file_pages * 4096, 0);
	close(fd);
	is_int(got, (long long)(file_pages * 4096), "read the store");
	int out = open(img, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (pwrite(out, image, (size_t)got, 0) != got)
		abort();

	long flips = 0, refused = 0, reported = 0, harmless = 0, bad = 0;
	char first_bad[512] = "";
	for (long i = 0; i < budget; i++) {
		uint64_t pg, bit;
		if (i < 2 * 256 * 8) {
			/* the used part of both meta pages, every bit */
			pg = (uint64_t)(i / (256 * 8));
			bit = (uint64_t)(i % (256 * 8));
		} else if (i < 2 * 256 * 8 + 4096 * 8) {
			/* every bit of the first tree page (the root of the inode tree) */
			pg = ps.p[0];
			bit = (uint64_t)(i - 2 * 256 * 8);
		} else {
			pg = ps.p[rnd() % ps.n];
			bit = rnd() % (4096 * 8);
		}
		uint64_t byte = pg * 4096 + bit / 8;
		uint8_t old = image[byte], nw = (uint8_t)(old ^ (1u << (bit % 8)));
		if (pwrite(out, &nw, 1, (off_t)byte) != 1)
			abort();
		size_t len = 0;
		char *d = dump_of(img, &rc, &np, &len);
		flips++;
		if (!d && rc != 0 && np == 0 && rc != MMS_CORRUPT && rc != MMS_NOTSTORE &&
		    rc != MMS_VERSION && rc != MMS_TRUNCATED) {
			bad++;
			if (!first_bad[0])
				snprintf(first_bad, sizeof first_bad,
				         "page %" PRIu64 " bit %" PRIu64 ": failed with %s, not a damage code", pg,
				         bit, mms_strerror(rc));
		} else if (!d && np == 0 && rc == 0) {
			bad++;
		} else if (np > 0) {
			reported++;
		} else if (!d) {
			refused++;
		} else if (len == olen && !memcmp(d, orig, len)) {
			harmless++;
		} else {
			bad++;
			if (!first_bad[0])
				snprintf(first_bad, sizeof first_bad,
				         "page %" PRIu64 " bit %" PRIu64 ": opens, checks clean, dumps differently",
				         pg, bit);
		}
		free(d);
		if (pwrite(out, &old, 1, (off_t)byte) != 1)
			abort();
	}
	close(out);
	tap_diag("%ld flips: %ld refused at open or by a call, %ld reported by check, %ld harmless",
	         flips, refused, reported, harmless);
	ok(bad == 0, "every flip of %ld was detected or harmless%s%s", flips, bad ? ": " : "", first_bad);
	free(image);
	free(ps.p);
	free(orig);
	return tap_done();
}
