/*
 * file.c - the store file as the engine sees it: one read-only map of it
 * (MAP_SHARED, with room to grow), its growth and shrinking, and which of
 * its pages were verified since open.
 *
 * Below the allocator (which grows the file and reads the free list's
 * blob) and the pager (which reads tree pages through the map and verifies
 * each on first use, recording it here).  Nothing here writes a page: all
 * writes go through io.c, where the crash simulator records them.
 */
#define _GNU_SOURCE
#include "mms_int.h"
#include "io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The map reserves room to grow (twice the file, at least MMS_MAP_MIN) so
 * that growth rarely remaps; where the address space is limited (ulimit
 * -v) it falls back to the file's own size. */
#define MMS_MAP_MIN (1ull << 30)

/*
 * The verified bitmap is cut in chunks of MMS_VCHUNK_PAGES pages, made when
 * a page of theirs is first verified: opening costs the same for a store of
 * 1 GiB and of 8 TiB (a sparse store must not pay for its size in RAM).
 * Chunks are made by readers too (concurrently, under the env's read lock):
 * the pointer is set with a compare-and-swap.  The pointer array only grows
 * under the write lock (growth, remap).
 */

static int mms_verified_ensure(struct mms_file_state *pg, uint64_t pages)
{
	size_t need = (size_t)((pages + MMS_VCHUNK_PAGES - 1) >> MMS_VCHUNK_SHIFT);
	if (need <= pg->verified_len)
		return 0;
	size_t ncap = pg->verified_len ? pg->verified_len : 16;
	while (ncap < need)
		ncap *= 2;
	uint8_t **nv = realloc(pg->verified, ncap * sizeof *nv);
	if (!nv)
		return ENOMEM;
	memset(nv + pg->verified_len, 0, (ncap - pg->verified_len) * sizeof *nv);
	pg->verified = nv;
	pg->verified_len = ncap;
	return 0;
}

/* The chunk holding pgno's bit; made if `make` (NULL if out of memory or
 * past the array). */
static uint8_t *mms_vchunk(struct mms_file_state *pg, uint64_t pgno, int make)
{
	size_t c = (size_t)(pgno >> MMS_VCHUNK_SHIFT);
	if (c >= pg->verified_len)
		return NULL;
	uint8_t *chunk = __atomic_load_n(&pg->verified[c], __ATOMIC_ACQUIRE);
	if (chunk || !make)
		return chunk;
	uint8_t *fresh = calloc(1, MMS_VCHUNK_PAGES / 8), *expected = NULL;
	if (!fresh)
		return NULL;
	if (__atomic_compare_exchange_n(&pg->verified[c], &expected, fresh, 0, __ATOMIC_ACQ_REL,
	                                __ATOMIC_ACQUIRE))
		return fresh;
	free(fresh);
	return expected;
}

static void mms_mark_verified(struct mms_file_state *pg, uint64_t pgno)
{
	uint8_t *chunk = mms_vchunk(pg, pgno, 1);
	uint64_t b = pgno & (MMS_VCHUNK_PAGES - 1);
	if (chunk)
		__atomic_fetch_or(&chunk[b / 8], (uint8_t)(1u << (b % 8)), __ATOMIC_RELAXED);
}

static void mms_unmark_verified(struct mms_file_state *pg, uint64_t pgno)
{
	uint8_t *chunk = mms_vchunk(pg, pgno, 0);
	uint64_t b = pgno & (MMS_VCHUNK_PAGES - 1);
	if (chunk)
		__atomic_fetch_and(&chunk[b / 8], (uint8_t)~(1u << (b % 8)), __ATOMIC_RELAXED);
}

/* Tests map exactly the file (mms_file_test_tight_map), so that every
 * growth moves the map and unmaps the old one: a pointer into the map kept
 * across an allocation (which may grow the file) then faults at once. */
#ifdef MMS_TEST_HOOKS
int mms_file_test_tight_map;
#define MMS_MAP_TIGHT mms_file_test_tight_map
#else
#define MMS_MAP_TIGHT 0
#endif

static int mms_map_file(mms_env *env, uint64_t pages)
{
	struct mms_file_state *pg = env->file;
	size_t want = (size_t)pages * MMS_PAGE_SIZE * 2;
	if (want < MMS_MAP_MIN)
		want = MMS_MAP_MIN;
	if (MMS_MAP_TIGHT)
		want = (size_t)pages * MMS_PAGE_SIZE;
	void *m = mmap(NULL, want, PROT_READ, MAP_SHARED, env->fd, 0);
	if (m == MAP_FAILED && errno == ENOMEM) {
		want = (size_t)pages * MMS_PAGE_SIZE;
		m = mmap(NULL, want, PROT_READ, MAP_SHARED, env->fd, 0);
	}
	if (m == MAP_FAILED)
		return mms_fail(env, errno, "cannot map %llu bytes of the store: %s",
		                (unsigned long long)want, strerror(errno));
	/* Tree pages are read one at a time, wherever they are: no read-around
	 * (a fault would otherwise bring in the data pages around the tree
	 * page, which the caller may not want cached). */
	(void)madvise(m, want, MADV_RANDOM);
	if (pg->map)
		munmap(pg->map, pg->map_len);
	pg->map = m;
	pg->map_len = want;
	return 0;
}


int mms_file_open(mms_env *env)
{
	struct mms_file_state *pg = calloc(1, sizeof(*pg));
	if (!pg)
		return ENOMEM;
	env->file = pg;
	int rc = mms_verified_ensure(pg, env->meta.file_pages);
	if (!rc)
		rc = mms_map_file(env, env->meta.file_pages);
	return rc;
}

void mms_file_close(mms_env *env)
{
	struct mms_file_state *pg = env->file;
	if (!pg)
		return;
	if (pg->map)
		munmap(pg->map, pg->map_len);
	for (size_t i = 0; i < pg->verified_len; i++)
		free(pg->verified[i]);
	free(pg->verified);
	free(pg);
	env->file = NULL;
}

void mms_file_mark(mms_env *env, uint64_t pgno)
{
	mms_mark_verified(env->file, pgno);
}

void mms_file_unmark(mms_env *env, uint64_t pgno)
{
	mms_unmark_verified(env->file, pgno);
}

void mms_file_release(mms_env *env)
{
	struct mms_file_state *pg = env->file;
	if (pg && pg->map)
		(void)madvise(pg->map, pg->map_len, MADV_DONTNEED);
}

int mms_file_remap(mms_env *env)
{
	struct mms_file_state *pg = env->file;
	int rc = mms_verified_ensure(pg, env->meta.file_pages);
	if (rc)
		return rc;
	if ((uint64_t)env->meta.file_pages * MMS_PAGE_SIZE <= pg->map_len)
		return 0;
	return mms_map_file(env, env->meta.file_pages);
}

int mms_file_grow(mms_env *env, uint64_t pages)
{
	/* The file may be longer than meta.file_pages (a trim not yet
	 * synced): growing never shortens it, or the older synced meta would
	 * record pages the file no longer has. */
	if (pages > env->file_pages) {
		int rc = mms_io_truncate(env->fd, pages * MMS_PAGE_SIZE);
		if (rc)
			return mms_fail(env, rc, "cannot grow the store file to %llu bytes: %s",
			                (unsigned long long)(pages * MMS_PAGE_SIZE), strerror(rc));
		env->file_pages = pages;
	}
	env->meta.file_pages = pages;
	return mms_file_remap(env);
}

int mms_file_shrink(mms_env *env, uint64_t pages)
{
	/* never below what the current or the last synced meta records */
	if (pages < env->meta.file_pages)
		pages = env->meta.file_pages;
	if (pages < env->synced_pages)
		pages = env->synced_pages;
	if (pages >= env->file_pages)
		return 0;
	int rc = mms_io_truncate(env->fd, pages * MMS_PAGE_SIZE);
	if (rc)
		return mms_fail(env, rc, "cannot truncate the store file to %llu bytes: %s",
		                (unsigned long long)(pages * MMS_PAGE_SIZE), strerror(rc));
	env->file_pages = pages;
	return 0;
}

void mms_file_drop(mms_env *env, uint64_t pgno, uint64_t n)
{
	struct mms_file_state *pg = env->file;
	uint64_t off = pgno * MMS_PAGE_SIZE, len = n * MMS_PAGE_SIZE;
	if (pg && pg->map && off < pg->map_len)
		(void)madvise(pg->map + off, len < pg->map_len - off ? len : pg->map_len - off,
		              MADV_DONTNEED);
	(void)mms_io_drop_cache(env->fd, off, len);
}

uint8_t *mms_file_resident(mms_env *env, uint64_t *npages)
{
	struct mms_file_state *pg = env->file;
	uint64_t n = env->meta.file_pages;
	if (!pg || !pg->map || n * MMS_PAGE_SIZE > pg->map_len)
		return NULL;
	uint8_t *vec = malloc(n ? n : 1);
	if (vec && mincore(pg->map, n * MMS_PAGE_SIZE, vec) != 0) {
		free(vec);
		vec = NULL;
	}
	*npages = vec ? n : 0;
	return vec;
}

void mms_file_prefetch(mms_env *env, uint64_t pgno, uint64_t n)
{
	mms_io_prefetch(env->fd, pgno * MMS_PAGE_SIZE, n * MMS_PAGE_SIZE);
}

/* Runs asked for at once by mms_file_warm: 8 MiB. */
#define MMS_WARM_RUN 2048u

void mms_file_warm(mms_env *env, uint64_t first, uint64_t n)
{
	long phys = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t held = 0;
	if (phys <= 0 || psize <= 0 || n > (uint64_t)phys * (uint64_t)psize / 2 / MMS_PAGE_SIZE)
		return; /* it would push out what it read before it is used */
	uint8_t *vec = mms_file_resident(env, &held);
	if (!vec)
		return;
	uint64_t end = first + n < held ? first + n : held;
	for (uint64_t i = first; i < end;) {
		if (vec[i] & 1) {
			i++;
			continue;
		}
		uint64_t j = i;
		while (j < end && !(vec[j] & 1) && j - i < MMS_WARM_RUN)
			j++;
		mms_file_prefetch(env, i, j - i);
		i = j;
	}
	free(vec);
}

int mms_check_run(mms_env *env, uint64_t pgno, uint64_t n, const char *what)
{
	if (n == 0 || pgno < MMS_META_PAGES || pgno > env->meta.file_pages ||
	    n > env->meta.file_pages - pgno)
		return mms_fail(env, MMS_CORRUPT, "%s: pages %llu+%llu outside the file (%llu pages)", what,
		                (unsigned long long)pgno, (unsigned long long)n,
		                (unsigned long long)env->meta.file_pages);
	return 0;
}

int mms_blob_read(mms_env *env, uint64_t pgno, void *buf, size_t len)
{
	uint64_t n = (len + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
	int rc = mms_check_run(env, pgno, n ? n : 1, "blob");
	if (rc)
		return rc;
	size_t got = 0;
	rc = mms_io_pread(env->fd, buf, len, pgno * MMS_PAGE_SIZE, &got);
	if (rc)
		return mms_fail(env, rc, "cannot read page %llu: %s", (unsigned long long)pgno, strerror(rc));
	if (got < len)
		return mms_fail(env, MMS_CORRUPT, "page %llu: blob past the end of the file",
		                (unsigned long long)pgno);
	return 0;
}

const uint8_t *mms_file_data(mms_env *env, uint64_t off, uint64_t len)
{
	struct mms_file_state *pg = env->file;
	uint64_t file = env->meta.file_pages * MMS_PAGE_SIZE;

	if (!pg || !pg->map || off > file || len > file - off || off + len > pg->map_len)
		return NULL;
	return pg->map + off;
}
