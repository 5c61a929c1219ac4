/*
 * pager.c - the store file seen as pages.
 *
 * Reading: the whole file is mapped read-only (MAP_SHARED) with room to
 * grow, so a tree page is a pointer into the map: no copy, no syscall.
 * Every page is verified (checksum, its own number, its type) the first
 * time it is used after open; a bitmap remembers verified pages.  Bytes the
 * engine itself writes are verified by construction.
 *
 * Writing: tree pages are copied on write into malloc'd buffers held in the
 * dirty table (page number -> buffer) of the open transaction; a commit
 * checksums them and writes them with pwrite, in page order, contiguous
 * runs at once.  Nothing is written through the map.
 *
 * Blobs (xattr values, the free list) are written with pwrite straight into
 * freshly allocated pages, which no committed state references.
 */
#include "mms_int.h"
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

struct mms_dirty {
	uint64_t pgno; /* 0: empty slot (page 0 is a meta page, never dirty) */
	uint8_t *buf;
};

struct mms_pager_state {
	uint8_t *map;
	size_t map_len;
	uint8_t **verified;     /* one bit per page, in chunks made on first use */
	size_t verified_len;    /* chunk pointers */
	struct mms_dirty *dirty;
	size_t dirty_cap;       /* power of two */
	size_t ndirty;
	uint8_t *spare[64];     /* page buffers kept for reuse */
	size_t nspare;
};

/* A page buffer: from the spare pool, else a new one.  NULL if out of memory. */
static uint8_t *mms_buf_get(struct mms_pager_state *pg)
{
	uint8_t *buf;
	if (pg->nspare)
		return pg->spare[--pg->nspare];
	if (posix_memalign((void **)&buf, MMS_PAGE_SIZE, MMS_PAGE_SIZE))
		return NULL;
	return buf;
}

static void mms_buf_put(struct mms_pager_state *pg, uint8_t *buf)
{
	if (!buf)
		return;
	if (pg->nspare < sizeof(pg->spare) / sizeof(pg->spare[0]))
		pg->spare[pg->nspare++] = buf;
	else
		free(buf);
}

/* The map reserves room to grow (twice the file, at least MMS_MAP_MIN) so
 * that growth rarely remaps; where the address space is limited (ulimit
 * -v) it falls back to the file's own size. */
#define MMS_MAP_MIN (1ull << 30)

static size_t mms_dirty_hash(uint64_t pgno, size_t cap)
{
	pgno *= 0x9E3779B97F4A7C15ull;
	return (size_t)(pgno >> 20) & (cap - 1);
}

static struct mms_dirty *mms_dirty_find(struct mms_pager_state *pg, uint64_t pgno)
{
	if (!pg->ndirty)
		return NULL;
	for (size_t i = mms_dirty_hash(pgno, pg->dirty_cap);; i = (i + 1) & (pg->dirty_cap - 1)) {
		if (pg->dirty[i].pgno == pgno)
			return &pg->dirty[i];
		if (!pg->dirty[i].pgno)
			return NULL;
	}
}

static int mms_dirty_insert(struct mms_pager_state *pg, uint64_t pgno, uint8_t *buf)
{
	if ((pg->ndirty + 1) * 2 > pg->dirty_cap) {
		size_t ncap = pg->dirty_cap ? pg->dirty_cap * 2 : 64;
		struct mms_dirty *nd = calloc(ncap, sizeof(*nd));
		if (!nd)
			return ENOMEM;
		for (size_t i = 0; i < pg->dirty_cap; i++) {
			if (!pg->dirty[i].pgno)
				continue;
			size_t j = mms_dirty_hash(pg->dirty[i].pgno, ncap);
			while (nd[j].pgno)
				j = (j + 1) & (ncap - 1);
			nd[j] = pg->dirty[i];
		}
		free(pg->dirty);
		pg->dirty = nd;
		pg->dirty_cap = ncap;
	}
	size_t i = mms_dirty_hash(pgno, pg->dirty_cap);
	while (pg->dirty[i].pgno)
		i = (i + 1) & (pg->dirty_cap - 1);
	pg->dirty[i].pgno = pgno;
	pg->dirty[i].buf = buf;
	pg->ndirty++;
	return 0;
}

/* Remove an entry, keeping linear-probe chains intact. */
static void mms_dirty_remove(struct mms_pager_state *pg, struct mms_dirty *d)
{
	size_t cap = pg->dirty_cap, i = (size_t)(d - pg->dirty), j = i;
	pg->dirty[i].pgno = 0;
	pg->dirty[i].buf = NULL;
	pg->ndirty--;
	for (;;) {
		j = (j + 1) & (cap - 1);
		if (!pg->dirty[j].pgno)
			return;
		size_t k = mms_dirty_hash(pg->dirty[j].pgno, cap);
		/* move j back to i if its home k is not in (i, j] */
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		pg->dirty[i] = pg->dirty[j];
		pg->dirty[j].pgno = 0;
		pg->dirty[j].buf = NULL;
		i = j;
	}
}

/*
 * The verified bitmap is cut in chunks of MMS_VCHUNK_PAGES pages, made when
 * a page of theirs is first verified: opening costs the same for a store of
 * 1 GiB and of 8 TiB (a sparse store must not pay for its size in RAM).
 * Chunks are made by readers too (concurrently, under the env's read lock):
 * the pointer is set with a compare-and-swap.  The pointer array only grows
 * under the write lock (growth, remap).
 */
#define MMS_VCHUNK_SHIFT 15 /* 32768 pages (128 MiB of store) per 4 KiB chunk */
#define MMS_VCHUNK_PAGES (1ull << MMS_VCHUNK_SHIFT)

static int mms_verified_ensure(struct mms_pager_state *pg, uint64_t pages)
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
static uint8_t *mms_vchunk(struct mms_pager_state *pg, uint64_t pgno, int make)
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

static void mms_mark_verified(struct mms_pager_state *pg, uint64_t pgno)
{
	uint8_t *chunk = mms_vchunk(pg, pgno, 1);
	uint64_t b = pgno & (MMS_VCHUNK_PAGES - 1);
	if (chunk)
		__atomic_fetch_or(&chunk[b / 8], (uint8_t)(1u << (b % 8)), __ATOMIC_RELAXED);
}

static void mms_unmark_verified(struct mms_pager_state *pg, uint64_t pgno)
{
	uint8_t *chunk = mms_vchunk(pg, pgno, 0);
	uint64_t b = pgno & (MMS_VCHUNK_PAGES - 1);
	if (chunk)
		__atomic_fetch_and(&chunk[b / 8], (uint8_t)~(1u << (b % 8)), __ATOMIC_RELAXED);
}

static int mms_is_verified(struct mms_pager_state *pg, uint64_t pgno)
{
	uint8_t *chunk = mms_vchunk(pg, pgno, 0);
	uint64_t b = pgno & (MMS_VCHUNK_PAGES - 1);
	return chunk && (__atomic_load_n(&chunk[b / 8], __ATOMIC_RELAXED) & (1u << (b % 8)));
}

static int mms_map_file(mms_env *env, uint64_t pages)
{
	struct mms_pager_state *pg = env->pager;
	size_t want = (size_t)pages * MMS_PAGE_SIZE * 2;
	if (want < MMS_MAP_MIN)
		want = MMS_MAP_MIN;
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

int mms_pager_open(mms_env *env)
{
	struct mms_pager_state *pg = calloc(1, sizeof(*pg));
	if (!pg)
		return ENOMEM;
	env->pager = pg;
	int rc = mms_verified_ensure(pg, env->meta.file_pages);
	if (!rc)
		rc = mms_map_file(env, env->meta.file_pages);
	return rc;
}

void mms_pager_close(mms_env *env)
{
	struct mms_pager_state *pg = env->pager;
	if (!pg)
		return;
	mms_pager_discard(env);
	while (pg->nspare)
		free(pg->spare[--pg->nspare]);
	free(pg->dirty);
	if (pg->map)
		munmap(pg->map, pg->map_len);
	for (size_t i = 0; i < pg->verified_len; i++)
		free(pg->verified[i]);
	free(pg->verified);
	free(pg);
	env->pager = NULL;
}

int mms_pager_remap(mms_env *env)
{
	struct mms_pager_state *pg = env->pager;
	int rc = mms_verified_ensure(pg, env->meta.file_pages);
	if (rc)
		return rc;
	if ((uint64_t)env->meta.file_pages * MMS_PAGE_SIZE <= pg->map_len)
		return 0;
	return mms_map_file(env, env->meta.file_pages);
}

int mms_pager_grow(mms_env *env, uint64_t pages)
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
	return mms_pager_remap(env);
}

int mms_pager_shrink(mms_env *env, uint64_t pages)
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

void mms_pager_drop(mms_env *env, uint64_t pgno, uint64_t n)
{
	struct mms_pager_state *pg = env->pager;
	uint64_t off = pgno * MMS_PAGE_SIZE, len = n * MMS_PAGE_SIZE;
	if (pg && pg->map && off < pg->map_len)
		(void)madvise(pg->map + off, len < pg->map_len - off ? len : pg->map_len - off,
		              MADV_DONTNEED);
	(void)mms_io_drop_cache(env->fd, off, len);
}

static const char *const mms_tree_names[MMS_NTREES] = {
	"inode", "name", "extent", "xattr", "orphan", "link"
};

const uint8_t *mms_page_get(mms_env *env, uint64_t pgno, int *rc)
{
	struct mms_pager_state *pg = env->pager;
	struct mms_dirty *d = mms_dirty_find(pg, pgno);
	if (d)
		return d->buf;
	if (pgno < MMS_META_PAGES || pgno >= env->meta.file_pages) {
		*rc = mms_fail(env, MMS_CORRUPT, "page %llu: tree pointer out of bounds (file has %llu pages)",
		               (unsigned long long)pgno, (unsigned long long)env->meta.file_pages);
		return NULL;
	}
	const uint8_t *p = pg->map + pgno * MMS_PAGE_SIZE;
	if (mms_is_verified(pg, pgno))
		return p;
	uint32_t want = mms_get_le32(p);
	uint32_t got = mms_crc32c(0, p + 4, MMS_PAGE_SIZE - 4);
	if (want != got) {
		*rc = mms_fail(env, MMS_CORRUPT, "page %llu: checksum mismatch (stored %08x, computed %08x)",
		               (unsigned long long)pgno, want, got);
		return NULL;
	}
	if (mms_get_le64(p + 8) != pgno || (p[4] != MMS_PG_LEAF && p[4] != MMS_PG_BRANCH) ||
	    p[5] >= MMS_NTREES) {
		*rc = mms_fail(env, MMS_CORRUPT, "page %llu: not the tree page expected (records page %llu, type %u)",
		               (unsigned long long)pgno, (unsigned long long)mms_get_le64(p + 8), p[4]);
		return NULL;
	}
	char why[128];
	if (!mms_bt_page_valid(p, why, sizeof(why))) {
		*rc = mms_fail(env, MMS_CORRUPT, "page %llu (%s tree): %s", (unsigned long long)pgno,
		               mms_tree_name(p[5]), why);
		return NULL;
	}
	mms_mark_verified(pg, pgno);
	return p;
}

int mms_page_is_dirty(mms_env *env, uint64_t pgno)
{
	return mms_dirty_find(env->pager, pgno) != NULL;
}

/* A new dirty page; zeroed if `zero` (a copy overwrites all of it). */
static uint8_t *mms_page_alloc(mms_env *env, uint64_t *pgnop, int zero, int *rc)
{
	uint64_t pgno;
	uint8_t *buf = NULL;
	int err = mms_alloc(env, 1, MMS_ALLOC_TREE, &pgno);
	if (err)
		goto fail;
	/* A verified page is a live tree page (freeing one clears its bit):
	 * a free list that hands it out is damaged, and writing there would
	 * destroy a tree.  Nothing is written; the transaction is done for. */
	if (mms_is_verified(env->pager, pgno)) {
		err = mms_damaged(env, "page %llu: the free list hands out a live tree page "
		                  "(the free list is damaged)", (unsigned long long)pgno);
		goto fail;
	}
	buf = mms_buf_get(env->pager);
	if (!buf) {
		err = ENOMEM;
		goto fail_free;
	}
	if (zero)
		memset(buf, 0, MMS_PAGE_SIZE);
	err = mms_dirty_insert(env->pager, pgno, buf);
	if (err)
		goto fail_buf;
	/* tree pages changed place: page numbers cached by btree.c are stale */
	__atomic_add_fetch(&env->epoch, 1, __ATOMIC_RELEASE);
	*pgnop = pgno;
	return buf;
fail_buf:
	mms_buf_put(env->pager, buf);
fail_free:
	mms_free(env, pgno, 1, MMS_ALLOC_TREE);
fail:
	*rc = err;
	return NULL;
}

uint8_t *mms_page_new(mms_env *env, uint64_t *pgnop, int *rc)
{
	return mms_page_alloc(env, pgnop, 1, rc);
}

uint8_t *mms_page_cow(mms_env *env, uint64_t pgno, uint64_t *newpgno, int *rc)
{
	struct mms_dirty *d = mms_dirty_find(env->pager, pgno);
	if (d) {
		*newpgno = pgno;
		return d->buf;
	}
	const uint8_t *old = mms_page_get(env, pgno, rc);
	if (!old)
		return NULL;
	uint64_t np;
	uint8_t *buf = mms_page_alloc(env, &np, 0, rc);
	if (!buf)
		return NULL;
	memcpy(buf, old, MMS_PAGE_SIZE);
	mms_put_le64(buf + 8, np);
	mms_unmark_verified(env->pager, pgno);
	mms_free(env, pgno, 1, MMS_ALLOC_TREE);
	*newpgno = np;
	return buf;
}

void mms_page_free(mms_env *env, uint64_t pgno)
{
	__atomic_add_fetch(&env->epoch, 1, __ATOMIC_RELEASE);
	struct mms_dirty *d = mms_dirty_find(env->pager, pgno);
	if (d) {
		mms_buf_put(env->pager, d->buf);
		mms_dirty_remove(env->pager, d);
	}
	mms_unmark_verified(env->pager, pgno);
	mms_free(env, pgno, 1, MMS_ALLOC_TREE);
}

static int mms_cmp_dirty(const void *a, const void *b)
{
	const struct mms_dirty *x = a, *y = b;
	return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

int mms_pager_flush(mms_env *env)
{
	struct mms_pager_state *pg = env->pager;
	if (!pg->ndirty)
		return 0;
	struct mms_dirty *list = malloc(pg->ndirty * sizeof(*list));
	if (!list)
		return ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < pg->dirty_cap; i++)
		if (pg->dirty[i].pgno)
			list[n++] = pg->dirty[i];
	qsort(list, n, sizeof(*list), mms_cmp_dirty);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *b = list[i].buf;
		mms_put_le64(b + 16, env->meta.generation + 1);
		mms_put_le32(b, mms_crc32c(0, b + 4, MMS_PAGE_SIZE - 4));
	}
	for (size_t i = 0; i < n && !rc;) {
		struct iovec iov[64];
		size_t k = 0;
		while (i + k < n && k < 64 && list[i + k].pgno == list[i].pgno + k) {
			iov[k].iov_base = list[i + k].buf;
			iov[k].iov_len = MMS_PAGE_SIZE;
			k++;
		}
		rc = mms_io_pwritev(env->fd, iov, (int)k, list[i].pgno * MMS_PAGE_SIZE);
		if (rc)
			rc = mms_fail(env, rc, "cannot write tree pages at page %llu: %s",
			              (unsigned long long)list[i].pgno, strerror(rc));
		i += k;
	}
	if (!rc) {
		for (size_t i = 0; i < n; i++) {
			mms_mark_verified(pg, list[i].pgno);
			mms_buf_put(pg, list[i].buf);
		}
		memset(pg->dirty, 0, pg->dirty_cap * sizeof(*pg->dirty));
		pg->ndirty = 0;
	}
	free(list);
	return rc;
}

void mms_pager_discard(mms_env *env)
{
	struct mms_pager_state *pg = env->pager;
	if (!pg || !pg->dirty)
		return;
	for (size_t i = 0; i < pg->dirty_cap; i++)
		mms_buf_put(pg, pg->dirty[i].buf);
	memset(pg->dirty, 0, pg->dirty_cap * sizeof(*pg->dirty));
	pg->ndirty = 0;
}

int mms_pager_not_tree(mms_env *env, uint64_t pgno, uint64_t n, const char *what)
{
	struct mms_pager_state *pg = env->pager;
	for (uint64_t i = 0; i < n; i++)
		if (mms_is_verified(pg, pgno + i) || mms_dirty_find(pg, pgno + i))
			return mms_fail(env, MMS_CORRUPT, "%s: page %llu is a tree page (the store is damaged)",
			                what, (unsigned long long)(pgno + i));
	return 0;
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

int mms_blob_write(mms_env *env, const void *data, size_t len, uint64_t *pgnop)
{
	uint64_t n = (len + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE, pgno;
	if (n == 0)
		n = 1;
	int rc = mms_alloc(env, n, MMS_ALLOC_BLOB, &pgno);
	if (rc)
		return rc;
	rc = mms_io_pwrite(env->fd, data, len, pgno * MMS_PAGE_SIZE);
	if (rc) {
		mms_free(env, pgno, n, MMS_ALLOC_BLOB);
		return mms_fail(env, rc, "cannot write %zu bytes at page %llu", len, (unsigned long long)pgno);
	}
	*pgnop = pgno;
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

void mms_blob_free(mms_env *env, uint64_t pgno, size_t len)
{
	uint64_t n = (len + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
	mms_free(env, pgno, n ? n : 1, MMS_ALLOC_BLOB);
}

const uint8_t *mms_pager_data(mms_env *env, uint64_t off, uint64_t len)
{
	struct mms_pager_state *pg = env->pager;
	uint64_t file = env->meta.file_pages * MMS_PAGE_SIZE;

	if (!pg || !pg->map || off > file || len > file - off || off + len > pg->map_len)
		return NULL;
	return pg->map + off;
}

const char *mms_tree_name(int tree)
{
	return (tree >= 0 && tree < MMS_NTREES) ? mms_tree_names[tree] : "?";
}
