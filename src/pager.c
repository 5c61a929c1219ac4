/*
 * pager.c - tree pages for the tree: read, copied on write, written.
 *
 * Above file.c (the map, growth, the verified bitmap) and the allocator
 * (which hands out the pages copies go to); below the tree.
 *
 * Reading: a tree page is a pointer into file.c's read-only map of the
 * store: no copy, no syscall.  Every page is verified (checksum, its own
 * number, its type, its layout: node.c) the first time it is used after
 * open; file.c remembers verified pages.  Bytes the engine itself writes
 * are verified by construction.
 *
 * Writing: tree pages are copied on write into malloc'd buffers held in the
 * dirty table (page number -> buffer) of the open transaction; a commit
 * checksums them and writes them with pwrite, in page order, contiguous
 * runs at once.  Nothing is written through the map.
 *
 * Spilling: a transaction's dirty pages are pages it allocated, which no
 * meta reaches, so they may be written to the file before the commit.
 * When more than spill_max of them are in memory, mms_pager_spill() (at
 * the start of a modifying call, where no caller holds a pointer into a
 * dirty page) writes them all, checksummed as a commit would, and frees
 * their buffers; the table keeps them with a NULL buffer.  A spilled page
 * that is used again is read back into a buffer with pread (same page
 * number: still the transaction's own), not through the map, whose faults
 * would map the cached pages around it too.  So a transaction of any size
 * (mmstore load of millions of keys) holds at most spill_max pages in
 * memory, plus one call's (reads alone: twice that); a rollback only
 * forgets them (the allocator frees their pages).  Past that until the
 * next spill, a read goes through the map, whose resident pages are then
 * dropped now and then (MADV_DONTNEED: a shared file mapping keeps its
 * bytes in the page cache), which bounds the resident set as well as the
 * heap.
 *
 * Blobs (xattr values, the free list) are written with pwrite straight into
 * freshly allocated pages, which no committed state references.
 */
#include "mms_int.h"
#include "io.h"
#include "node.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

struct mms_dirty {
	uint64_t pgno; /* 0: empty slot (page 0 is a meta page, never dirty) */
	uint8_t *buf;
};

struct mms_pager_state {
	struct mms_dirty *dirty;
	size_t dirty_cap;       /* power of two */
	size_t ndirty;          /* entries, spilled ones included */
	size_t nmem;            /* entries with a buffer */
	size_t spill_max;       /* spill past this many (MMS_SPILL_MAX) */
	uint64_t spills;        /* spills since open */
	uint64_t back;          /* spilled pages read through the map since its last drop */
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

/* Slots of the dirty table kept after a commit (more were made for a big
 * transaction: the table is freed, so that later commits stay cheap). */
#define MMS_DIRTY_KEEP 4096u
#define MMS_DIRTY_FIRST 64u /* slots of a new table */

/* Spilled pages read through the map between two drops of its pages. */
#define MMS_SPILL_DROP 256u

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
		size_t ncap = pg->dirty_cap ? pg->dirty_cap * 2 : MMS_DIRTY_FIRST;
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
	pg->nmem++;
	return 0;
}

/* Remove an entry, keeping linear-probe chains intact. */
static void mms_dirty_remove(struct mms_pager_state *pg, struct mms_dirty *d)
{
	size_t cap = pg->dirty_cap, i = (size_t)(d - pg->dirty), j = i;
	if (d->buf)
		pg->nmem--;
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

int mms_pager_open(mms_env *env)
{
	struct mms_pager_state *pg = calloc(1, sizeof(*pg));
	if (!pg)
		return ENOMEM;
	env->pager = pg;
	pg->spill_max = MMS_SPILL_MAX;
	return 0;
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
	free(pg);
	env->pager = NULL;
}

/*
 * A spilled page back into a buffer (same page number: still the
 * transaction's own), read with pread rather than through the map: a fault
 * on the map would also map the cached pages around it, and a transaction
 * that brings back thousands of pages would grow the resident set by
 * sixteen pages for each (until the map's next drop: mms_pager_spill).
 *
 * Read-only calls may run concurrently (mms.h), and mms_page_get calls this
 * too: the buffer comes from malloc, not the spare pool, and is published
 * with a compare-and-swap; a reader that loses the race frees its copy and
 * takes the winner's.  (Nothing else changes a dirty entry while readers
 * run: the calls that do are exclusive.)
 */
static uint8_t *mms_unspill(mms_env *env, struct mms_dirty *d, int *rc)
{
	struct mms_pager_state *pg = env->pager;
	uint8_t *buf, *none = NULL;
	size_t got = 0;
	if (posix_memalign((void **)&buf, MMS_PAGE_SIZE, MMS_PAGE_SIZE)) {
		*rc = ENOMEM;
		return NULL;
	}
	int err = mms_io_pread(env->fd, buf, MMS_PAGE_SIZE, d->pgno * MMS_PAGE_SIZE, &got);
	if (err || got != MMS_PAGE_SIZE) {
		free(buf);
		*rc = mms_fail(env, err ? err : EIO, "cannot read back tree page %llu of the open "
		               "transaction: %s", (unsigned long long)d->pgno,
		               err ? strerror(err) : "the store file is shorter");
		return NULL;
	}
	if (!__atomic_compare_exchange_n(&d->buf, &none, buf, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE)) {
		free(buf);
		return none;
	}
	__atomic_add_fetch(&pg->nmem, 1, __ATOMIC_RELAXED);
	return buf;
}

const uint8_t *mms_page_get(mms_env *env, uint64_t pgno, int *rc)
{
	struct mms_pager_state *pg = env->pager;
	struct mms_dirty *d = mms_dirty_find(pg, pgno);
	if (d) {
		uint8_t *buf = __atomic_load_n(&d->buf, __ATOMIC_ACQUIRE);
		if (buf)
			return buf;
		/* spilled: the transaction wrote it itself.  Reads bring it back
		 * up to twice the budget (a call that reads past the budget
		 * spills only when the next modifying call starts); past that,
		 * until the next spill, through the map */
		if (__atomic_load_n(&pg->nmem, __ATOMIC_RELAXED) < 2 * pg->spill_max)
			return mms_unspill(env, d, rc);
		__atomic_add_fetch(&pg->back, 1, __ATOMIC_RELAXED);
		return mms_file_page(env, pgno);
	}
	if (pgno < MMS_META_PAGES || pgno >= env->meta.file_pages) {
		*rc = mms_fail(env, MMS_CORRUPT, "page %llu: tree pointer out of bounds (file has %llu pages)",
		               (unsigned long long)pgno, (unsigned long long)env->meta.file_pages);
		return NULL;
	}
	const uint8_t *p = mms_file_page(env, pgno);
	if (mms_file_verified(env, pgno))
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
	if (!mms_node_valid(p, why, sizeof(why))) {
		*rc = mms_fail(env, MMS_CORRUPT, "page %llu (%s tree): %s", (unsigned long long)pgno,
		               mms_tree_name(p[5]), why);
		return NULL;
	}
	mms_file_mark(env, pgno);
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
	if (mms_file_verified(env, pgno)) {
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
	struct mms_pager_state *pg = env->pager;
	struct mms_dirty *d = mms_dirty_find(pg, pgno);
	if (d && !d->buf && !mms_unspill(env, d, rc)) /* spilled: back into a buffer, same page */
		return NULL;
	if (d) {
		*newpgno = pgno;
		return d->buf;
	}
	if (!mms_page_get(env, pgno, rc)) /* verified, if it was not yet */
		return NULL;
	uint64_t np;
	uint8_t *buf = mms_page_alloc(env, &np, 0, rc);
	if (!buf)
		return NULL;
	/* the allocation may have grown the file and moved the map: the
	 * page's address is taken after it */
	memcpy(buf, mms_file_page(env, pgno), MMS_PAGE_SIZE);
	mms_put_le64(buf + 8, np);
	mms_file_unmark(env, pgno);
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
	mms_file_unmark(env, pgno);
	mms_free(env, pgno, 1, MMS_ALLOC_TREE);
}

/* Empty the dirty table (its buffers already given back).  A table a big
 * transaction grew is freed: every later commit would scan all of it.  So
 * is one eight times larger than this transaction needed: a transaction of
 * 1,500 puts left 4,096 slots, which every later commit of one put scanned
 * twice and cleared (a put with its own commit, 100,000 keys: 27-28 us
 * after it, 18-20 us without); the next transaction grows it again. */
static void mms_dirty_clear(struct mms_pager_state *pg)
{
	if (pg->dirty_cap > MMS_DIRTY_KEEP ||
	    (pg->dirty_cap > MMS_DIRTY_FIRST && pg->ndirty * 8 < pg->dirty_cap)) {
		free(pg->dirty);
		pg->dirty = NULL;
		pg->dirty_cap = 0;
	} else if (pg->dirty) {
		memset(pg->dirty, 0, pg->dirty_cap * sizeof(*pg->dirty));
	}
	pg->ndirty = 0;
	pg->nmem = 0;
}

#define MMS_FEW_DIRTY 32u

static int mms_cmp_dirty(const void *a, const void *b)
{
	const struct mms_dirty *x = a, *y = b;
	return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

/*
 * Checksum and write the dirty pages that have a buffer, in page order,
 * contiguous runs in one call.  keep = 0 (commit): every entry is then
 * dropped and its page verified; keep = 1 (spill): the entries stay, with
 * their buffers freed.
 */
static int mms_pager_write(mms_env *env, int keep)
{
	struct mms_pager_state *pg = env->pager;
	/* a commit of a few pages (a put) sorts them on the stack */
	struct mms_dirty few[MMS_FEW_DIRTY];
	struct mms_dirty *list = pg->nmem <= MMS_FEW_DIRTY ? few
	                                                   : malloc(pg->nmem * sizeof(*list));
	if (!list)
		return ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < pg->dirty_cap; i++)
		if (pg->dirty[i].pgno && pg->dirty[i].buf)
			list[n++] = pg->dirty[i];
	if (n > MMS_FEW_DIRTY) {
		qsort(list, n, sizeof(*list), mms_cmp_dirty);
	} else {
		for (size_t i = 1; i < n; i++) { /* insertion sort */
			struct mms_dirty d = list[i];
			size_t j = i;
			for (; j > 0 && list[j - 1].pgno > d.pgno; j--)
				list[j] = list[j - 1];
			list[j] = d;
		}
	}
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
	if (list != few)
		free(list);
	if (rc)
		return rc;
	for (size_t i = 0; i < pg->dirty_cap; i++) {
		struct mms_dirty *d = &pg->dirty[i];
		if (!d->pgno)
			continue;
		mms_buf_put(pg, d->buf);
		d->buf = NULL;
		if (!keep)
			mms_file_mark(env, d->pgno);
	}
	pg->nmem = 0;
	if (!keep)
		mms_dirty_clear(pg);
	return 0;
}

int mms_pager_flush(mms_env *env)
{
	if (!env->pager->ndirty)
		return 0;
	return mms_pager_write(env, 0);
}

int mms_pager_spill(mms_env *env)
{
	struct mms_pager_state *pg = env->pager;
	/* Spilled pages read through the map (past the budget: mms_page_get)
	 * map the cached pages around them too: let go of the map's pages
	 * (they stay in the page cache; a later use maps them again) every
	 * MMS_SPILL_DROP of them, so that the process's resident set stays
	 * bounded, not only its heap. */
	if (pg->back >= MMS_SPILL_DROP) {
		mms_file_release(env);
		pg->back = 0;
	}
	if (pg->nmem <= pg->spill_max)
		return 0;
	pg->spills++;
	return mms_pager_write(env, 1);
}

void mms_pager_set_spill(mms_env *env, size_t pages)
{
	env->pager->spill_max = pages ? pages : MMS_SPILL_MAX;
}

uint64_t mms_pager_spills(mms_env *env)
{
	return env->pager->spills;
}

void mms_pager_counts(mms_env *env, size_t *in_memory, size_t *slots)
{
	*in_memory = env->pager->nmem;
	*slots = env->pager->dirty_cap;
}

void mms_pager_discard(mms_env *env)
{
	struct mms_pager_state *pg = env->pager;
	if (!pg || !pg->dirty)
		return;
	for (size_t i = 0; i < pg->dirty_cap; i++)
		mms_buf_put(pg, pg->dirty[i].buf);
	mms_dirty_clear(pg);
}

int mms_pager_not_tree(mms_env *env, uint64_t pgno, uint64_t n, const char *what)
{
	struct mms_pager_state *pg = env->pager;
	for (uint64_t i = 0; i < n; i++)
		if (mms_file_verified(env, pgno + i) || mms_dirty_find(pg, pgno + i))
			return mms_fail(env, MMS_CORRUPT, "%s: page %llu is a tree page (the store is damaged)",
			                what, (unsigned long long)(pgno + i));
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

void mms_blob_free(mms_env *env, uint64_t pgno, size_t len)
{
	uint64_t n = (len + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
	mms_free(env, pgno, n ? n : 1, MMS_ALLOC_BLOB);
}

