/*
 * fuzz_store.c - libFuzzer harness for the store reader (and a few writes).
 *
 * The input is one control byte followed by a store image.  Control bits:
 *   0x01  recompute the checksums (and self numbers) of the meta pages, of
 *         the free list behind them (base and log) and of every page that
 *         looks like a tree page, so that mutations get past the checksums
 *         and reach the code behind them;
 *   0x02  skip the read-write part;
 *   0x04  vacuum after the writes;
 *   0x08  the writes keep at most 2 free runs inline, so that their commits
 *         write a free-list base and log (format 4) even in a small store;
 *   0x10  and at most 2 changes in the log's tail in the meta (format 5),
 *         so that their commits move the tail to log pages.
 * The image is opened read-only: mms_check, a walk of every directory
 * (lookups, attributes, reads, mapping, seeking, symlinks, xattrs) and a
 * dump; then read-write: a put, a shared copy of a key's pages into it, an
 * overwrite, a truncate, an xattr, a hard link, an unlink, a rename over
 * the put, a commit, a vacuum (control bit 0x04) and a check.  Any result
 * is fine (a damaged store gives errors); a crash, a hang or a sanitizer
 * report is a bug.
 *
 * Built by scripts/fuzz with clang -fsanitize=fuzzer; tests/unit/
 * test_fuzz_corpus.c includes it to replay the committed corpus in make
 * check (FUZZ_NO_MAIN: no libFuzzer there).
 */
#define _GNU_SOURCE
#define MMS_TEST_HOOKS 1
#include "mms_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FZ_PAGE 4096u
#define FZ_MAX_ENTRIES 256
#define FZ_MAX_DEPTH 12
#define FZ_READ_MAX 65536u

static int fz_fd = -1;
static FILE *fz_null;

/* The free list past a meta page (format 4): the base's crc, then the log
 * from its oldest page, each page's crc into the link of the next and the
 * newest one's into the meta. */
static void fz_fix_free_list(uint8_t *img, size_t len, uint8_t *meta)
{
	uint64_t npages = len / FZ_PAGE, blob = mms_get_le64(meta + 192);
	uint64_t bytes = ((uint64_t)mms_get_le32(meta + 208) + mms_get_le32(meta + 212)) * 12;
	if (!blob)
		return;
	if (blob < npages && bytes <= (npages - blob) * FZ_PAGE)
		mms_put_le32(meta + 216, mms_crc32c(0, img + blob * FZ_PAGE, bytes));
	uint64_t chain[64], p = mms_get_le64(meta + 224);
	uint32_t want = mms_get_le32(meta + 232), crc = 0;
	size_t n = 0;
	while (p && p < npages && n < want && n < 64) {
		chain[n++] = p;
		p = mms_get_le64(img + p * FZ_PAGE + 24);
	}
	for (size_t i = n; i-- > 0;) {
		uint8_t *lp = img + chain[i] * FZ_PAGE;
		if (i + 1 < n)
			mms_put_le32(lp + 32, crc); /* the older page's */
		mms_put_le64(lp + 8, chain[i]);
		crc = mms_crc32c(0, lp + 4, FZ_PAGE - 4);
		mms_put_le32(lp, crc);
	}
	if (n)
		mms_put_le32(meta + 236, crc);
}

/* Make a mutated image's checksums right again. */
static void fz_fix_checksums(uint8_t *img, size_t len)
{
	for (size_t pg = 0; (pg + 1) * FZ_PAGE <= len; pg++) {
		uint8_t *p = img + pg * FZ_PAGE;
		if (pg < MMS_META_PAGES) {
			if (memcmp(p, "MMSTORE", 8) != 0)
				continue;
			fz_fix_free_list(img, len, p);
			mms_put_le32(p + 8, 0);
			mms_put_le32(p + 8, mms_crc32c(0, p, FZ_PAGE));
		} else if (p[4] == MMS_PG_LEAF || p[4] == MMS_PG_BRANCH) {
			mms_put_le64(p + 8, pg);
			mms_put_le32(p, mms_crc32c(0, p + 4, FZ_PAGE - 4));
		}
	}
}

static void fz_walk(mms_env *env, uint64_t dir, int depth, int *budget)
{
	mms_cursor *cur;
	struct mms_dirent ent;
	static uint8_t buf[FZ_READ_MAX];
	if (depth > FZ_MAX_DEPTH || mms_dir_open(env, dir, 0, &cur))
		return;
	while (*budget > 0 && mms_dir_next(cur, &ent) == 0) {
		struct mms_stat st, st2;
		char name[256];
		size_t n = ent.namelen < sizeof name ? ent.namelen : sizeof name - 1;
		(*budget)--;
		memcpy(name, ent.name, n);
		if (mms_lookup(env, dir, name, n, &st))
			continue;
		(void)mms_getattr(env, ent.ino, &st2);
		size_t len = 0;
		char xl[1024];
		if (mms_listxattr(env, st.ino, xl, sizeof xl, &len) == 0) {
			for (size_t i = 0; i < len && i < sizeof xl;) {
				size_t l = strnlen(xl + i, len - i), vl;
				(void)mms_getxattr(env, st.ino, xl + i, l, buf, sizeof buf, &vl);
				i += l + 1;
			}
		}
		if (S_ISDIR(st.mode)) {
			fz_walk(env, st.ino, depth + 1, budget);
		} else if (S_ISLNK(st.mode)) {
			(void)mms_readlink(env, st.ino, (char *)buf, sizeof buf, &len);
		} else if (S_ISREG(st.mode)) {
			struct mms_extent ext[16];
			size_t cnt;
			uint64_t r;
			(void)mms_read(env, st.ino, buf, sizeof buf, 0, &len);
			if (st.size > 8192)
				(void)mms_read(env, st.ino, buf, 4096, st.size - 5000, &len);
			(void)mms_map(env, st.ino, 0, st.size, ext, 16, &cnt);
			(void)mms_seek(env, st.ino, 0, MMS_SEEK_DATA, &r);
			(void)mms_seek(env, st.ino, 0, MMS_SEEK_HOLE, &r);
		}
	}
	mms_dir_close(cur);
}

static void fz_write(mms_env *env, int vacuum)
{
	static uint8_t val[9000];
	struct mms_stat st;
	mms_cursor *cur;
	struct mms_dirent ent;
	uint64_t victim = 0;
	char vname[256];
	size_t vlen = 0;
	memset(val, 'w', sizeof val);
	if (mms_dir_open(env, MMS_ROOT_INO, 0, &cur) == 0) {
		while (mms_dir_next(cur, &ent) == 0) {
			if (S_ISREG(ent.mode) && ent.namelen < sizeof vname) {
				victim = ent.ino;
				vlen = ent.namelen;
				memcpy(vname, ent.name, vlen);
				break;
			}
		}
		mms_dir_close(cur);
	}
	uint64_t fresh = 0, copied;
	if (mms_put(env, MMS_ROOT_INO, "fuzz-new", 8, val, sizeof val, 0644, 0, 0, &st) == 0)
		fresh = st.ino;
	if (victim) {
		/* the victim's pages shared into the new key, then written */
		if (fresh)
			(void)mms_copy_range(env, victim, 0, fresh, 8192, 1 << 20, &copied);
		(void)mms_write(env, victim, val, 5000, 100);
		(void)mms_truncate(env, victim, 3000);
		(void)mms_setxattr(env, victim, "user.fz", 7, val, 2000, 0);
		/* a second name, then the first goes: the link is promoted */
		(void)mms_link(env, victim, MMS_ROOT_INO, "fuzz-link", 9, &st);
		(void)mms_unlink(env, MMS_ROOT_INO, vname, vlen);
		(void)mms_rename(env, MMS_ROOT_INO, "fuzz-link", 9, MMS_ROOT_INO, "fuzz-new", 8, 0);
	}
	if (mms_commit(env))
		(void)mms_rollback(env);
	if (vacuum) {
		struct mms_vacuum_result res;
		if (mms_vacuum(env, NULL, NULL, &res))
			(void)mms_rollback(env);
	}
	uint64_t np;
	(void)mms_check(env, NULL, NULL, NULL, NULL, &np);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	mms_env *env;
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	size_t len = size - 1;
	if (fz_fd < 0) {
		fz_fd = memfd_create("mms-fuzz", 0);
		fz_null = fopen("/dev/null", "w");
		if (fz_fd < 0 || !fz_null)
			abort();
	}
	uint8_t *img = malloc(len ? len : 1);
	if (!img)
		return 0;
	memcpy(img, data + 1, len);
	if (ctl & 1)
		fz_fix_checksums(img, len);
	const char *save = getenv("FUZZ_SAVE_IMAGE"); /* to look at an input with mmstore */
	if (save) {
		FILE *f = fopen(save, "w");
		if (f) {
			fwrite(img, 1, len, f);
			fclose(f);
		}
	}
	if (ftruncate(fz_fd, 0) || (len && pwrite(fz_fd, img, len, 0) != (ssize_t)len)) {
		free(img);
		return 0;
	}
	free(img);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fz_fd);

	struct mms_options ro = { .flags = MMS_RDONLY };
	if (mms_open(path, &ro, &env) == 0) {
		uint64_t np;
		int budget = FZ_MAX_ENTRIES;
		struct mms_info info;
		struct mms_stat st;
		(void)mms_stats(env, &info);
		(void)mms_check(env, NULL, NULL, NULL, NULL, &np);
		fz_walk(env, MMS_ROOT_INO, 0, &budget);
		(void)mms_resolve(env, "a/b/c", 5, &st);
		(void)mms_dump(env, fz_null, NULL, NULL);
		mms_close(env);
	}
	mms_alloc_test_inline_max = (ctl & 8) ? 2 : 0;
	mms_alloc_test_tail_max = (ctl & 16) ? 2 : 0;
	if (!(ctl & 2) && mms_open(path, NULL, &env) == 0) {
		fz_write(env, (ctl & 4) != 0);
		mms_close(env);
	}
	mms_alloc_test_inline_max = 0;
	mms_alloc_test_tail_max = 0;
	return 0;
}
