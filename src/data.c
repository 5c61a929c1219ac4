/*
 * data.c - value bytes: inline values, extents, read/write/truncate,
 * fallocate, SEEK_DATA/SEEK_HOLE and mapping.
 *
 * A value is stored in one of three ways:
 *   - empty-or-hole-only: no inline bytes and no extents (size may be > 0:
 *     then it is all hole);
 *   - inline (MMS_INO_INLINE): the bytes follow the inode record in the
 *     INODE item, size <= MMS_INLINE_MAX, and inline length == size;
 *   - extents: EXTENT items be64 ino + be64 first logical page ->
 *     le64 physical page + le64 npages.  Logical pages not covered by an
 *     extent are holes and read as zeros.
 *
 * Invariants kept here:
 *   - Extents of one inode never overlap; every extent has npages > 0 and
 *     lies inside the file (checked on every read from the tree).
 *   - Bytes of an allocated page that lie past `size` are zero, so growing a
 *     value never exposes old bytes (truncate down zeroes the tail of the
 *     last kept page; new pages are zero wherever the write does not cover).
 *     A crash can break this: bytes written in place past the committed
 *     size stay in the file while the size rolls back.  So every call that
 *     grows a value also zeroes the allocated bytes between the old size and
 *     the new bytes (a short write, or mms_zero_pages for whole pages).
 *   - Copy-on-write: a data page the last synced meta may reach is never
 *     written; a change of its bytes goes to a new page (see "Writing
 *     bytes" below).  Pages allocated since the last sync are written in
 *     place, unless an extent shared them (mms_copy_range): sharing takes
 *     them out of the allocator's fresh set for good (share.c), so neither
 *     holder, nor a later rollback or crash that brings a holder back,
 *     sees the other's writes.
 *   - inode.pages is exactly the number of pages the extents hold.
 *   - New pages are written before the extent items that reference them
 *     are committed: by mms_write itself, or for the big copies of a
 *     deferred write (mms_write_deferred) by mms_deferred_run, which the
 *     caller runs before any commit; space is reserved (mms_reserve)
 *     before the first change, so MMS_FULL leaves the store as it was.
 */
#define _GNU_SOURCE
#include "mms_int.h"
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MMS_DATA_PAGE ((uint64_t)MMS_PAGE_SIZE)
/* Logical pages a value may span: MMS_SIZE_MAX / page size. */
#define MMS_DATA_MAX_LPAGES (MMS_SIZE_MAX >> MMS_PAGE_SHIFT)
/* Assumed depth of the INODE tree when reserving space for its path. */
#define MMS_DATA_INODE_PATH 6u

/* One decoded extent: logical pages [lpage, lpage+npages) at ppage. */
struct mms_data_ext {
	uint64_t lpage, ppage, npages;
};

/* ---- Small helpers ------------------------------------------------------- */

static uint64_t mms_data_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t mms_data_max(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Pages needed to hold `bytes` bytes (bytes <= MMS_SIZE_MAX: no overflow). */
static uint64_t mms_data_pages_for(uint64_t bytes)
{
	return (bytes + MMS_DATA_PAGE - 1) >> MMS_PAGE_SHIFT;
}

static void mms_data_key(uint8_t key[16], uint64_t ino, uint64_t lpage)
{
	mms_put_be64(key, ino);
	mms_put_be64(key + 8, lpage);
}

/* A damaged extent may point at tree pages: never read them as data
 * (MMS_CORRUPT) nor, when `freeing`, give them to the free list (that
 * makes the env take no more changes, mms_damaged). */
static int mms_data_not_tree(mms_env *env, uint64_t ino, uint64_t ppage, uint64_t n, bool freeing)
{
	char what[64];
	if (!mms_pager_not_tree(env, ppage, n, "extent"))
		return 0;
	snprintf(what, sizeof what, "ino %llu: an extent", (unsigned long long)ino);
	int rc = mms_pager_not_tree(env, ppage, n, what);
	if (freeing)
		rc = mms_damaged(env, "%s (it is not freed)", mms_errdetail(env));
	return rc;
}

static bool mms_data_isdir(const struct mms_inode *in)
{
	return S_ISDIR(in->mode);
}

/*
 * Tree pages a call may need beyond the data pages: a copy of the INODE
 * tree's path and, when `items` EXTENT items are inserted, changed or
 * deleted, copies of that tree's path (depth levels), a split at each level
 * and a leaf per 16 items.  A pure overwrite needs only the first part.
 */
static uint64_t mms_data_overhead(mms_env *env, int depth, uint64_t items)
{
	uint64_t d = depth > 0 ? (uint64_t)depth : 1;
	if (items == 0)
		return MMS_DATA_INODE_PATH;
	/* an extent changed may let go of shared pages: SHARE items change */
	return MMS_DATA_INODE_PATH + 2 * (d + 1) + items / 16 + 1 + mms_share_cost(env, items, false);
}

/* Time stamps of a change of the bytes. */
static void mms_data_touch(struct mms_inode *in)
{
	int64_t now = mms_now_ns();
	in->mtime = now;
	in->ctime = now;
}

/* ---- File I/O ------------------------------------------------------------ */

/* Pieces of a read up to this size are copied from the map. */
#define MMS_MAP_READ_MAX (64u * 1024)

static int mms_data_pread(mms_env *env, uint64_t ino, void *buf, size_t n, uint64_t pos)
{
	size_t got = 0;
	int rc = mms_io_pread(env->fd, buf, n, pos, &got);
	if (rc)
		return mms_fail(env, rc, "ino %llu: reading %zu bytes at byte %llu of the store: %s",
		                (unsigned long long)ino, n, (unsigned long long)pos, strerror(rc));
	if (got < n)
		return mms_fail(env, MMS_CORRUPT,
		                "ino %llu: the store file ends before byte %llu of an extent",
		                (unsigned long long)ino, (unsigned long long)(pos + got));
	return 0;
}

/* Write n bytes at file byte pos; buf NULL writes zeros. */
static int mms_data_pwrite(mms_env *env, uint64_t ino, const void *buf, uint64_t n, uint64_t pos)
{
	int rc = mms_io_pwrite(env->fd, buf, (size_t)n, pos);
	if (rc)
		return mms_fail(env, rc, "ino %llu: writing %llu bytes at byte %llu of the store: %s",
		                (unsigned long long)ino, (unsigned long long)n,
		                (unsigned long long)pos, strerror(rc));
	return 0;
}

/*
 * Write n bytes of the caller's buffer at file byte pos: left for
 * mms_deferred_run when a deferred write is under way and the copy is big
 * enough (and there is room to note it), else at once.
 */
static int mms_data_put_src(mms_env *env, uint64_t ino, const void *src, uint64_t n, uint64_t pos)
{
	struct mms_deferred *d = env->defer;
	if (d && n >= MMS_DEFER_MIN && d->n < MMS_DEFER_MAX) {
		d->w[d->n].buf = src;
		d->w[d->n].len = n;
		d->w[d->n].pos = pos;
		d->w[d->n].ino = ino;
		d->n++;
		return 0;
	}
	return mms_data_pwrite(env, ino, src, n, pos);
}

/* ---- Extent items -------------------------------------------------------- */

/*
 * Decode the item under a cursor.  *mine = false (and 0) when the item
 * belongs to another inode; a malformed or out-of-bounds extent of this
 * inode is MMS_CORRUPT.
 */
static int mms_data_decode(mms_env *env, uint64_t ino, const struct mms_bt_cursor *c,
                           struct mms_data_ext *ext, bool *mine)
{
	const void *key, *val;
	size_t klen, vlen;
	mms_bt_item(c, &key, &klen, &val, &vlen);
	if (klen != 16)
		return mms_fail(env, MMS_CORRUPT, "extent tree: item with a %zu-byte key near ino %llu",
		                klen, (unsigned long long)ino);
	if (mms_get_be64(key) != ino) {
		*mine = false;
		return 0;
	}
	uint64_t lpage = mms_get_be64((const uint8_t *)key + 8);
	if (vlen != 16)
		return mms_fail(env, MMS_CORRUPT, "ino %llu: extent at logical page %llu: value of %zu bytes, not 16",
		                (unsigned long long)ino, (unsigned long long)lpage, vlen);
	uint64_t ppage = mms_get_le64(val);
	uint64_t npages = mms_get_le64((const uint8_t *)val + 8);
	if (npages == 0)
		return mms_fail(env, MMS_CORRUPT, "ino %llu: extent at logical page %llu: no pages",
		                (unsigned long long)ino, (unsigned long long)lpage);
	if (lpage > MMS_DATA_MAX_LPAGES || npages > MMS_DATA_MAX_LPAGES - lpage)
		return mms_fail(env, MMS_CORRUPT,
		                "ino %llu: extent at logical page %llu: %llu pages pass the size limit",
		                (unsigned long long)ino, (unsigned long long)lpage,
		                (unsigned long long)npages);
	if (ppage < MMS_META_PAGES || ppage > UINT64_MAX - npages ||
	    ppage + npages > env->meta.file_pages)
		return mms_fail(env, MMS_CORRUPT,
		                "ino %llu: extent at logical page %llu: pages %llu..%llu outside the file (%llu pages)",
		                (unsigned long long)ino, (unsigned long long)lpage,
		                (unsigned long long)ppage, (unsigned long long)(ppage + npages - 1),
		                (unsigned long long)env->meta.file_pages);
	/* (the bounds above are mms_check_run's: no label to format on the
	 * way of every read) */
	ext->lpage = lpage;
	ext->ppage = ppage;
	ext->npages = npages;
	*mine = true;
	return 0;
}

/*
 * Position c on the first extent of `ino` that ends after logical page
 * `lpage` (it covers lpage, or starts after it).  *found = false when there
 * is none.
 */
static int mms_data_find(mms_env *env, uint64_t ino, uint64_t lpage,
                         struct mms_bt_cursor *c, struct mms_data_ext *ext, bool *found)
{
	uint8_t key[16];
	bool mine = false;
	int rc;

	*found = false;
	mms_data_key(key, ino, lpage);
	rc = mms_bt_seek(c, env, MMS_TREE_EXTENT, key, sizeof key, MMS_BT_LE);
	if (rc == 0) {
		rc = mms_data_decode(env, ino, c, ext, &mine);
		if (rc)
			return rc;
		if (mine && ext->lpage + ext->npages > lpage) {
			*found = true;
			return 0;
		}
		rc = mms_bt_next(c);
	} else if (rc == MMS_NOTFOUND) {
		rc = mms_bt_seek(c, env, MMS_TREE_EXTENT, key, sizeof key, MMS_BT_GE);
	}
	if (rc == MMS_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	rc = mms_data_decode(env, ino, c, ext, &mine);
	if (rc)
		return rc;
	*found = mine;
	return 0;
}

/*
 * Move c to the next extent of `ino`; `prev` is the current one (its end
 * must not pass the next one's start).  *found = false at the end.
 */
static int mms_data_next(mms_env *env, uint64_t ino, struct mms_bt_cursor *c,
                         struct mms_data_ext *ext, bool *found)
{
	uint64_t prev_end = ext->lpage + ext->npages;
	struct mms_data_ext next;
	bool mine = false;
	int rc;

	*found = false;
	rc = mms_bt_next(c);
	if (rc == MMS_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	rc = mms_data_decode(env, ino, c, &next, &mine);
	if (rc || !mine)
		return rc;
	if (next.lpage < prev_end)
		return mms_fail(env, MMS_CORRUPT,
		                "ino %llu: extent at logical page %llu: overlaps the extent before it (ending at page %llu)",
		                (unsigned long long)ino, (unsigned long long)next.lpage,
		                (unsigned long long)prev_end);
	*ext = next;
	*found = true;
	return 0;
}

static int mms_data_put_ext(mms_env *env, uint64_t ino, const struct mms_data_ext *ext)
{
	uint8_t key[16], val[16];
	mms_data_key(key, ino, ext->lpage);
	mms_put_le64(val, ext->ppage);
	mms_put_le64(val + 8, ext->npages);
	return mms_bt_put(env, MMS_TREE_EXTENT, key, sizeof key, val, sizeof val);
}

static int mms_data_del_ext(mms_env *env, uint64_t ino, uint64_t lpage)
{
	uint8_t key[16];
	mms_data_key(key, ino, lpage);
	return mms_bt_del(env, MMS_TREE_EXTENT, key, sizeof key);
}

/*
 * Survey logical pages [p0, p1): how many are holes, how many separate
 * holes, how many extents overlap, and the EXTENT tree's depth (for
 * mms_data_overhead).
 */
struct mms_data_survey {
	uint64_t hole_pages, holes, extents;
	int depth;
};

static int mms_data_scan(mms_env *env, uint64_t ino, uint64_t p0, uint64_t p1,
                         struct mms_data_survey *sv)
{
	struct mms_bt_cursor c;
	struct mms_data_ext ext;
	bool found;
	uint64_t page = p0;
	int rc;

	memset(sv, 0, sizeof *sv);
	memset(&c, 0, sizeof c);
	rc = mms_data_find(env, ino, p0, &c, &ext, &found);
	if (rc)
		return rc;
	sv->depth = c.depth;
	while (page < p1) {
		if (!found || ext.lpage >= p1) {
			sv->hole_pages += p1 - page;
			sv->holes++;
			break;
		}
		if (ext.lpage > page) {
			sv->hole_pages += ext.lpage - page;
			sv->holes++;
		}
		sv->extents++;
		page = mms_data_max(page, ext.lpage + ext.npages);
		if (page >= p1)
			break;
		rc = mms_data_next(env, ino, &c, &ext, &found);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- Inodes ------------------------------------------------------------- */

/*
 * Read inode `ino` for a data call.  Inline bytes are checked against the
 * size and, when `copy` is given, copied there (MMS_INLINE_MAX bytes), since
 * the pointer into page memory dies with the first change.
 */
/* What a record read with mms_inode_get() must say of its value: inline
 * bytes as many as its size, a size within the limit. */
static int mms_data_inline_ok(mms_env *env, const struct mms_inode *in, const void *inl,
                              size_t inl_len)
{
	if ((in->flags & MMS_INO_INLINE) &&
	    (inl_len != in->size || inl_len > MMS_INLINE_MAX || (inl_len > 0 && !inl)))
		return mms_fail(env, MMS_CORRUPT, "ino %llu: %zu inline bytes for a size of %llu",
		                (unsigned long long)in->ino, inl_len, (unsigned long long)in->size);
	if (in->size > MMS_SIZE_MAX)
		return mms_fail(env, MMS_CORRUPT, "ino %llu: size %llu beyond the limit",
		                (unsigned long long)in->ino, (unsigned long long)in->size);
	return 0;
}

static int mms_data_inode(mms_env *env, uint64_t ino, struct mms_inode *in,
                          const uint8_t **inl, uint8_t *copy)
{
	const void *p = NULL;
	size_t len = 0;
	int rc = mms_inode_get(env, ino, in, &p, &len);
	if (rc)
		return rc;
	rc = mms_data_inline_ok(env, in, p, len);
	if (rc)
		return rc;
	if (!(in->flags & MMS_INO_INLINE)) {
		len = 0;
		p = NULL;
	}
	if (copy && len)
		memcpy(copy, p, len);
	if (inl)
		*inl = copy && len ? copy : p;
	return 0;
}

/*
 * Move an inline value to a fresh one-page extent at logical page 0.  The
 * caller reserved the page and writes the inode afterwards.
 */
static int mms_data_uninline(mms_env *env, struct mms_inode *in, const uint8_t *bytes)
{
	uint8_t page[MMS_PAGE_SIZE];
	struct mms_data_ext ext = { 0, 0, 1 };
	int rc;

	memset(page, 0, sizeof page);
	memcpy(page, bytes, (size_t)in->size);
	rc = mms_alloc(env, 1, MMS_ALLOC_DATA, &ext.ppage);
	if (rc)
		return rc;
	rc = mms_data_pwrite(env, in->ino, page, sizeof page, ext.ppage << MMS_PAGE_SHIFT);
	if (rc == 0)
		rc = mms_data_put_ext(env, in->ino, &ext);
	if (rc) {
		mms_free(env, ext.ppage, 1, MMS_ALLOC_DATA);
		return rc;
	}
	in->flags &= ~MMS_INO_INLINE;
	in->pages = 1;
	return 0;
}

/* ---- Writing bytes: in place or copied on write --------------------------
 *
 * The rule (doc/FORMAT.md, "Copy-on-write of data"): a data page the last
 * synced meta may reach is never written.  Pages allocated since the last
 * sync (mms_alloc_writable) are written in place; any other page that a
 * write, a truncation or a punch changes is first copied to a new page
 * holding the old bytes with the change applied, the extent map is pointed
 * at it, and the old page is freed (reusable after the next sync).  So a
 * machine crash finds every value exactly as of the last sync.
 */

/* Count the pages of value bytes [from, to) that lie in extents and may not
 * be written in place, and the runs they form: the copies a change of those
 * bytes needs. */
static int mms_data_cow_need(mms_env *env, uint64_t ino, uint64_t from, uint64_t to,
                             uint64_t *pages, uint64_t *runs)
{
	struct mms_bt_cursor c;
	struct mms_data_ext ext;
	bool found;
	int rc;

	*pages = *runs = 0;
	if (from >= to)
		return 0;
	uint64_t p0 = from >> MMS_PAGE_SHIFT, p1 = mms_data_pages_for(to);
	memset(&c, 0, sizeof c);
	rc = mms_data_find(env, ino, p0, &c, &ext, &found);
	while (rc == 0 && found && ext.lpage < p1) {
		uint64_t a = mms_data_max(p0, ext.lpage), b = mms_data_min(p1, ext.lpage + ext.npages);
		while (a < b) {
			uint64_t run;
			if (!mms_alloc_writable(env, ext.ppage + (a - ext.lpage), b - a, &run)) {
				*pages += run;
				(*runs)++;
			}
			a += run;
		}
		if (ext.lpage + ext.npages >= p1)
			break;
		rc = mms_data_next(env, ino, &c, &ext, &found);
	}
	return rc;
}

/* Extent items a change of value bytes [from, to) may add: the holes it
 * fills plus, for the copies, a split on each side of each run and, where
 * free space is scattered, a piece every 16 pages. */
static uint64_t mms_data_cow_items(uint64_t cow_pages, uint64_t cow_runs)
{
	return 2 * cow_runs + cow_pages / 16;
}

/*
 * Bytes of new page ppage (logical page lpage) from value bytes [from, to)
 * of src (src points at byte `from`; NULL: zeros), the rest of the page
 * from the old page at `old` (0: zeros).
 */
static int mms_data_merge_page(mms_env *env, uint64_t ino, uint64_t ppage, uint64_t lpage,
                               uint64_t old, const uint8_t *src, uint64_t from, uint64_t to)
{
	uint8_t page[MMS_PAGE_SIZE];
	uint64_t ps = lpage << MMS_PAGE_SHIFT;
	uint64_t a = mms_data_max(from, ps), b = mms_data_min(to, ps + MMS_DATA_PAGE);
	int rc;
	if (old)
		rc = mms_data_pread(env, ino, page, sizeof page, old << MMS_PAGE_SHIFT);
	else
		rc = (memset(page, 0, sizeof page), 0);
	if (rc)
		return rc;
	if (b > a) {
		if (src)
			memcpy(page + (a - ps), src + (a - from), (size_t)(b - a));
		else
			memset(page + (a - ps), 0, (size_t)(b - a));
	}
	return mms_data_pwrite(env, ino, page, sizeof page, ppage << MMS_PAGE_SHIFT);
}

/*
 * Fill new pages [ppage, ppage+n) for logical pages [lpage, lpage+n): value
 * bytes [from, to) from src (NULL: zeros), every other byte from the old
 * pages at `old` (0: there were none, zeros).
 */
static int mms_data_fill_pages(mms_env *env, uint64_t ino, uint64_t ppage, uint64_t lpage,
                               uint64_t n, uint64_t old, const uint8_t *src,
                               uint64_t from, uint64_t to)
{
	uint64_t rs = lpage << MMS_PAGE_SHIFT, re = (lpage + n) << MMS_PAGE_SHIFT;
	uint64_t a = mms_data_max(from, rs), b = mms_data_min(to, re);
	int rc = 0;
	if (b <= a) {
		/* nothing of the change here: a plain copy (or zeros) */
		if (!old)
			return mms_zero_pages(env, ppage, n);
		for (uint64_t i = 0; i < n && !rc; i++)
			rc = mms_data_merge_page(env, ino, ppage + i, lpage + i, old + i, NULL, 0, 0);
		return rc;
	}
	/* whole pages the change covers, between partial first and last ones */
	uint64_t fa = mms_data_pages_for(a), fb = b >> MMS_PAGE_SHIFT;
	uint64_t first = a >> MMS_PAGE_SHIFT, last = (b - 1) >> MMS_PAGE_SHIFT;
	for (uint64_t lp = lpage; lp < lpage + n && !rc; lp++) {
		if (lp >= fa && lp < fb) {
			/* a run of covered pages at once */
			uint64_t k = fb - lp;
			uint64_t at = ppage + (lp - lpage);
			if (src)
				rc = mms_data_put_src(env, ino, src + ((lp << MMS_PAGE_SHIFT) - from),
				                      k << MMS_PAGE_SHIFT, at << MMS_PAGE_SHIFT);
			else
				rc = mms_zero_pages(env, at, k);
			lp += k - 1;
			continue;
		}
		uint64_t o = old ? old + (lp - lpage) : 0;
		if (lp < first || lp > last) {
			rc = o ? mms_data_merge_page(env, ino, ppage + (lp - lpage), lp, o, NULL, 0, 0)
			       : mms_zero_pages(env, ppage + (lp - lpage), 1);
		} else {
			rc = mms_data_merge_page(env, ino, ppage + (lp - lpage), lp, o, src, from, to);
		}
	}
	return rc;
}

/*
 * Copy logical pages [lp, lp+n) of extent `ext` (which covers them) to new
 * pages with value bytes [from, to) of src applied, and point the extent
 * map there; the old pages are freed.  The new pages extend the extent
 * ending just before lp where they can.  *done gets the pages moved (fewer
 * than n when free space is scattered).
 */
static int mms_data_cow(mms_env *env, uint64_t ino, const struct mms_data_ext *ext,
                        uint64_t lp, uint64_t n, const uint8_t *src, uint64_t from,
                        uint64_t to, uint64_t *done, bool *changed)
{
	struct mms_data_ext prev = { 0, 0, 0 };
	uint64_t newp = 0, got = 0, old = ext->ppage + (lp - ext->lpage);
	bool merge = false;
	int rc;

	if (lp == ext->lpage && lp > 0) {
		struct mms_bt_cursor c;
		bool found;
		memset(&c, 0, sizeof c);
		rc = mms_data_find(env, ino, lp - 1, &c, &prev, &found);
		if (rc)
			return rc;
		if (found && prev.lpage + prev.npages == lp) {
			rc = mms_alloc_at(env, prev.ppage + prev.npages, n, MMS_ALLOC_DATA, &got);
			if (rc)
				return rc;
			if (got > n)
				return mms_fail(env, MMS_CORRUPT, "ino %llu: allocator returned %llu pages for %llu",
				                (unsigned long long)ino, (unsigned long long)got,
				                (unsigned long long)n);
			if (got) {
				merge = true;
				newp = prev.ppage + prev.npages;
			}
		}
	}
	if (!got) {
		rc = mms_alloc_some(env, n, MMS_ALLOC_DATA, &newp, &got);
		if (rc)
			return rc;
		if (got == 0 || got > n)
			return mms_fail(env, MMS_CORRUPT, "ino %llu: allocator returned %llu pages for %llu",
			                (unsigned long long)ino, (unsigned long long)got,
			                (unsigned long long)n);
	}
	*changed = true;
	rc = mms_data_fill_pages(env, ino, newp, lp, got, old, src, from, to);
	if (rc)
		return rc;
	/* the bytes are in place: now reference them */
	uint64_t e0 = ext->lpage, e1 = ext->lpage + ext->npages;
	if (lp > e0) {
		struct mms_data_ext head = { e0, ext->ppage, lp - e0 };
		rc = mms_data_put_ext(env, ino, &head);
	} else if (merge) {
		rc = mms_data_del_ext(env, ino, e0);
	}
	if (rc == 0) {
		struct mms_data_ext mid = { lp, newp, got };
		if (merge) {
			mid = prev;
			mid.npages += got;
		}
		rc = mms_data_put_ext(env, ino, &mid);
	}
	if (rc == 0 && lp + got < e1) {
		struct mms_data_ext tail = { lp + got, ext->ppage + (lp + got - e0), e1 - (lp + got) };
		rc = mms_data_put_ext(env, ino, &tail);
	}
	if (rc == 0)
		rc = mms_data_not_tree(env, ino, old, got, true);
	if (rc == 0)
		rc = mms_share_drop(env, old, got, NULL);
	if (rc)
		return rc;
	*done = got;
	return 0;
}

/*
 * Write value bytes [from, to) (src points at byte `from`; NULL: zeros)
 * over the parts of that range that extents cover; holes are left alone.
 * In place where the pages allow it, else copied on write.
 */
static int mms_data_put_bytes(mms_env *env, uint64_t ino, const uint8_t *src,
                              uint64_t from, uint64_t to, bool *changed)
{
	uint64_t pos = from;
	while (pos < to) {
		struct mms_bt_cursor c;
		struct mms_data_ext ext;
		bool found;
		memset(&c, 0, sizeof c);
		int rc = mms_data_find(env, ino, pos >> MMS_PAGE_SHIFT, &c, &ext, &found);
		if (rc)
			return rc;
		uint64_t es = ext.lpage << MMS_PAGE_SHIFT;
		if (!found || es >= to)
			return 0;
		uint64_t stop = mms_data_min(to, (ext.lpage + ext.npages) << MMS_PAGE_SHIFT);
		if (es > pos)
			pos = es;
		uint64_t lp = pos >> MMS_PAGE_SHIFT, lend = mms_data_pages_for(stop), run;
		uint64_t phys = ext.ppage + (lp - ext.lpage);
		if (mms_alloc_writable(env, phys, lend - lp, &run)) {
			uint64_t e = mms_data_min(stop, (lp + run) << MMS_PAGE_SHIFT);
			uint64_t at = (phys << MMS_PAGE_SHIFT) + (pos - (lp << MMS_PAGE_SHIFT));
			if (src) {
				rc = mms_data_put_src(env, ino, src + (pos - from), e - pos, at);
			} else {
				/* whole pages as zero ranges, partial ones written */
				uint64_t a = (pos + MMS_DATA_PAGE - 1) & ~(MMS_DATA_PAGE - 1);
				uint64_t b = e & ~(MMS_DATA_PAGE - 1);
				if (a >= b) {
					rc = mms_data_pwrite(env, ino, NULL, e - pos, at);
				} else {
					rc = mms_data_pwrite(env, ino, NULL, a - pos, at);
					if (rc == 0)
						rc = mms_zero_pages(env, phys + ((a - (lp << MMS_PAGE_SHIFT)) >> MMS_PAGE_SHIFT),
						                    (b - a) >> MMS_PAGE_SHIFT);
					if (rc == 0)
						rc = mms_data_pwrite(env, ino, NULL, e - b, at + (b - pos));
				}
			}
			if (rc)
				return rc;
			pos = e;
			continue;
		}
		uint64_t done = 0;
		rc = mms_data_cow(env, ino, &ext, lp, run, src, from, to, &done, changed);
		if (rc)
			return rc;
		pos = mms_data_min(stop, (lp + done) << MMS_PAGE_SHIFT);
	}
	return 0;
}

/*
 * Write what belongs in the new pages [lpage, lpage+n) at ppage: the bytes
 * of buf (value bytes [off, off+len)) where it covers them, zeros elsewhere.
 * buf NULL: the pages are zeroed.
 */
static int mms_data_write_new(mms_env *env, uint64_t ino, uint64_t ppage, uint64_t lpage,
                              uint64_t n, const uint8_t *buf, uint64_t off, uint64_t len)
{
	if (!buf)
		return mms_zero_pages(env, ppage, n);
	return mms_data_fill_pages(env, ino, ppage, lpage, n, 0, buf, off, off + len);
}

/*
 * Make logical pages [p0, p1) allocated, writing buf (value bytes
 * [off, off+len)) into them: over existing bytes as mms_data_put_bytes
 * does, into new pages for holes.  buf NULL: allocate only (new pages
 * zeroed, existing bytes kept).  A hole right after an extent is first
 * grown in place (mms_alloc_at), so sequential writes make few extents.
 * *added gets the pages allocated; *changed becomes true at the first
 * change of state.
 */
static int mms_data_fill(mms_env *env, uint64_t ino, uint64_t p0, uint64_t p1,
                         const uint8_t *buf, uint64_t off, uint64_t len,
                         uint64_t *added, bool *changed)
{
	struct mms_bt_cursor c;
	struct mms_data_ext ext, prev = { 0, 0, 0 };
	bool found, have_prev;
	uint64_t page = p0;
	int rc;

	while (page < p1) {
		memset(&c, 0, sizeof c);
		rc = mms_data_find(env, ino, page, &c, &ext, &found);
		if (rc)
			return rc;
		if (found && ext.lpage <= page) {
			/* Inside an extent: over the bytes there. */
			uint64_t stop = mms_data_min(ext.lpage + ext.npages, p1);
			if (buf) {
				uint64_t bs = mms_data_max(off, page << MMS_PAGE_SHIFT);
				uint64_t be = mms_data_min(off + len, stop << MMS_PAGE_SHIFT);
				if (be > bs) {
					rc = mms_data_put_bytes(env, ino, buf + (bs - off), bs, be, changed);
					if (rc)
						return rc;
				}
			}
			page = stop;
			continue;
		}
		/* A hole [page, hole_end): allocate it piece by piece. */
		uint64_t hole_end = found ? mms_data_min(ext.lpage, p1) : p1;
		have_prev = false;
		if (page > 0) {
			memset(&c, 0, sizeof c);
			rc = mms_data_find(env, ino, page - 1, &c, &prev, &have_prev);
			if (rc)
				return rc;
			have_prev = have_prev && prev.lpage + prev.npages == page;
		}
		while (page < hole_end) {
			uint64_t want = hole_end - page, got = 0, ppage = 0;
			if (have_prev) {
				ppage = prev.ppage + prev.npages;
				rc = mms_alloc_at(env, ppage, want, MMS_ALLOC_DATA, &got);
				if (rc)
					return rc;
				if (got > want)
					return mms_fail(env, MMS_CORRUPT, "ino %llu: allocator returned %llu pages for %llu",
					                (unsigned long long)ino, (unsigned long long)got,
					                (unsigned long long)want);
				if (got)
					*changed = true;
			}
			if (got) {
				rc = mms_data_write_new(env, ino, ppage, page, got, buf, off, len);
				if (rc)
					return rc;
				prev.npages += got;
			} else {
				rc = mms_alloc_some(env, want, MMS_ALLOC_DATA, &ppage, &got);
				if (rc)
					return rc;
				*changed = true;
				if (got == 0 || got > want)
					return mms_fail(env, MMS_CORRUPT, "ino %llu: allocator returned %llu pages for %llu",
					                (unsigned long long)ino, (unsigned long long)got,
					                (unsigned long long)want);
				rc = mms_data_write_new(env, ino, ppage, page, got, buf, off, len);
				if (rc)
					return rc;
				prev.lpage = page;
				prev.ppage = ppage;
				prev.npages = got;
				have_prev = true;
			}
			/* The bytes are in place: now reference them. */
			rc = mms_data_put_ext(env, ino, &prev);
			if (rc)
				return rc;
			*added += got;
			page += got;
		}
	}
	return 0;
}

/*
 * Free logical pages [a, b): delete, shorten or split the extents there.
 * *freed gets the pages freed.
 */
static int mms_data_remove(mms_env *env, uint64_t ino, uint64_t a, uint64_t b,
                           uint64_t *freed, bool *changed)
{
	struct mms_bt_cursor c;
	struct mms_data_ext ext;
	bool found;
	int rc;

	memset(&c, 0, sizeof c);
	while (a < b) {
		rc = mms_data_find(env, ino, a, &c, &ext, &found);
		if (rc)
			return rc;
		if (!found || ext.lpage >= b)
			break;
		uint64_t s = ext.lpage, e = ext.lpage + ext.npages;
		uint64_t cs = mms_data_max(s, a), ce = mms_data_min(e, b);
		*changed = true;
		if (s < cs) {
			struct mms_data_ext head = { s, ext.ppage, cs - s };
			rc = mms_data_put_ext(env, ino, &head);
		} else {
			rc = mms_data_del_ext(env, ino, s);
		}
		if (rc == 0 && ce < e) {
			struct mms_data_ext tail = { ce, ext.ppage + (ce - s), e - ce };
			rc = mms_data_put_ext(env, ino, &tail);
		}
		if (rc == 0)
			rc = mms_data_not_tree(env, ino, ext.ppage + (cs - s), ce - cs, true);
		if (rc == 0)
			rc = mms_share_drop(env, ext.ppage + (cs - s), ce - cs, NULL);
		if (rc)
			return rc;
		*freed += ce - cs;
		a = ce;
	}
	return 0;
}

/* ---- Walking a range (read, map) ---------------------------------------- */

/* Called for each piece in order; nonzero stops (a value > 0: done). */
typedef int (*mms_data_piece_fn)(void *ctx, const struct mms_extent *piece);

/*
 * Describe value bytes [off, end) (end <= size) of an extent-based value as
 * holes and extent pieces.  Adjacent extents give separate pieces.
 */
static int mms_data_walk(mms_env *env, uint64_t ino, uint64_t off, uint64_t end,
                         mms_data_piece_fn fn, void *ctx)
{
	struct mms_bt_cursor c;
	struct mms_data_ext ext;
	struct mms_extent piece;
	bool found;
	uint64_t pos = off;
	int rc;

	if (off >= end)
		return 0;
	memset(&c, 0, sizeof c);
	rc = mms_data_find(env, ino, off >> MMS_PAGE_SHIFT, &c, &ext, &found);
	if (rc)
		return rc;
	while (pos < end) {
		memset(&piece, 0, sizeof piece);
		piece.logical = pos;
		uint64_t es = found ? ext.lpage << MMS_PAGE_SHIFT : end;
		if (es > pos) {
			piece.length = mms_data_min(es, end) - pos;
			piece.flags = MMS_MAP_HOLE;
		} else {
			uint64_t ee = (ext.lpage + ext.npages) << MMS_PAGE_SHIFT;
			piece.length = mms_data_min(ee, end) - pos;
			piece.physical = (ext.ppage << MMS_PAGE_SHIFT) + (pos - es);
		}
		rc = fn(ctx, &piece);
		if (rc)
			return rc > 0 ? 0 : rc;
		pos += piece.length;
		if (!(piece.flags & MMS_MAP_HOLE) && pos < end) {
			rc = mms_data_next(env, ino, &c, &ext, &found);
			if (rc)
				return rc;
		}
	}
	return 0;
}

struct mms_data_read_ctx {
	mms_env *env;
	uint64_t ino, off;
	uint8_t *buf;
};

static int mms_data_read_piece(void *ctx, const struct mms_extent *piece)
{
	struct mms_data_read_ctx *r = ctx;
	uint8_t *dst = r->buf + (piece->logical - r->off);
	if (piece->flags & MMS_MAP_HOLE) {
		memset(dst, 0, (size_t)piece->length);
		return 0;
	}
	int rc = mms_data_not_tree(r->env, r->ino, piece->physical >> MMS_PAGE_SHIFT,
	                           mms_data_pages_for((piece->physical & (MMS_DATA_PAGE - 1)) + piece->length),
	                           false);
	if (rc)
		return rc;
	/* A small piece is copied from the map (no syscall); a big one is
	 * pread, which reads ahead where the map (MADV_RANDOM, for tree pages)
	 * would fault a page at a time. */
	const uint8_t *src = piece->length <= MMS_MAP_READ_MAX
	                             ? mms_file_data(r->env, piece->physical, piece->length)
	                             : NULL;
	if (src) {
		memcpy(dst, src, (size_t)piece->length);
		return 0;
	}
	return mms_data_pread(r->env, r->ino, dst, (size_t)piece->length, piece->physical);
}

struct mms_data_map_ctx {
	mms_env *env;
	uint64_t ino;
	struct mms_extent *ext;
	size_t max, count;
};

static int mms_data_map_piece(void *ctx, const struct mms_extent *piece)
{
	struct mms_data_map_ctx *m = ctx;
	if (!(piece->flags & MMS_MAP_HOLE)) {
		int rc = mms_data_not_tree(m->env, m->ino, piece->physical >> MMS_PAGE_SHIFT,
		                           mms_data_pages_for((piece->physical & (MMS_DATA_PAGE - 1)) +
		                                              piece->length), false);
		if (rc)
			return rc;
	}
	m->ext[m->count] = *piece;
	if (!(piece->flags & MMS_MAP_HOLE) &&
	    mms_alloc_stable(m->env, piece->physical >> MMS_PAGE_SHIFT,
	                     mms_data_pages_for((piece->physical & (MMS_DATA_PAGE - 1)) + piece->length)))
		m->ext[m->count].flags |= MMS_MAP_STABLE;
	m->count++;
	return m->count == m->max ? 1 : 0;
}

/* ---- Public calls ------------------------------------------------------- */

int mms_read(mms_env *env, uint64_t ino, void *buf, size_t len, uint64_t off, size_t *nread)
{
	struct mms_inode in;
	const uint8_t *inl = NULL;
	int rc = mms_data_inode(env, ino, &in, &inl, NULL);
	if (rc)
		return rc;
	if (mms_data_isdir(&in))
		return mms_fail(env, MMS_ISDIR, "ino %llu: is a directory", (unsigned long long)ino);
	if (off >= in.size || len == 0) {
		*nread = 0;
		return 0;
	}
	size_t n = (size_t)mms_data_min(len, in.size - off);
	if (in.flags & MMS_INO_INLINE) {
		memcpy(buf, inl + off, n);
	} else {
		struct mms_data_read_ctx r = { env, ino, off, buf };
		rc = mms_data_walk(env, ino, off, off + n, mms_data_read_piece, &r);
		if (rc)
			return rc;
	}
	*nread = n;
	return 0;
}

int mms_data_get(mms_env *env, const struct mms_inode *in, const void *inl, size_t inl_len,
                 void *buf, size_t len, size_t *nread)
{
	int rc = mms_data_inline_ok(env, in, inl, inl_len);
	if (rc)
		return rc;
	size_t n = (size_t)mms_data_min(len, in->size);
	if (n == 0) {
		*nread = 0;
		return 0;
	}
	if (in->flags & MMS_INO_INLINE) {
		memcpy(buf, inl, n);
	} else {
		struct mms_data_read_ctx r = { env, in->ino, 0, buf };
		rc = mms_data_walk(env, in->ino, 0, n, mms_data_read_piece, &r);
		if (rc)
			return rc;
	}
	*nread = n;
	return 0;
}

/* mms_data_ref's walk: the one piece of the value, if it is one. */
struct mms_data_ref_ctx {
	mms_env *env;
	uint64_t ino;
	struct mms_extent piece;
	int pieces;
};

static int mms_data_ref_piece(void *ctx, const struct mms_extent *piece)
{
	struct mms_data_ref_ctx *r = ctx;
	if (++r->pieces > 1 || (piece->flags & MMS_MAP_HOLE))
		return MMS_RANGE;
	r->piece = *piece;
	return mms_data_not_tree(r->env, r->ino, piece->physical >> MMS_PAGE_SHIFT,
	                         mms_data_pages_for((piece->physical & (MMS_DATA_PAGE - 1)) +
	                                            piece->length), false);
}

int mms_data_ref(mms_env *env, const struct mms_inode *in, const void *inl, size_t inl_len,
                 const void **data)
{
	static const uint8_t empty[1];
	int rc = mms_data_inline_ok(env, in, inl, inl_len);
	if (rc)
		return rc;
	if (in->size == 0) {
		*data = empty;
		return 0;
	}
	if (in->flags & MMS_INO_INLINE) {
		*data = inl;
		return 0;
	}
	struct mms_data_ref_ctx r = { env, in->ino, { 0 }, 0 };
	rc = mms_data_walk(env, in->ino, 0, in->size, mms_data_ref_piece, &r);
	if (rc)
		return rc;
	const uint8_t *p = r.pieces == 1 ? mms_file_data(env, r.piece.physical, r.piece.length) : NULL;
	if (!p)
		return MMS_RANGE;
	*data = p;
	return 0;
}

int mms_map(mms_env *env, uint64_t ino, uint64_t off, uint64_t len,
            struct mms_extent *ext, size_t max, size_t *count)
{
	struct mms_inode in;
	const uint8_t *inl = NULL;
	int rc = mms_data_inode(env, ino, &in, &inl, NULL);
	if (rc)
		return rc;
	if (mms_data_isdir(&in))
		return mms_fail(env, MMS_ISDIR, "ino %llu: is a directory", (unsigned long long)ino);
	if (off >= in.size || len == 0 || max == 0) {
		*count = 0;
		return 0;
	}
	uint64_t end = off + mms_data_min(len, in.size - off);
	if (in.flags & MMS_INO_INLINE) {
		memset(&ext[0], 0, sizeof ext[0]);
		ext[0].logical = off;
		ext[0].length = end - off;
		ext[0].data = inl + off;
		ext[0].flags = MMS_MAP_INLINE;
		*count = 1;
		return 0;
	}
	struct mms_data_map_ctx m = { env, ino, ext, max, 0 };
	rc = mms_data_walk(env, ino, off, end, mms_data_map_piece, &m);
	if (rc)
		return rc;
	*count = m.count;
	return 0;
}

int mms_seek(mms_env *env, uint64_t ino, uint64_t off, int whence, uint64_t *result)
{
	struct mms_inode in;
	struct mms_bt_cursor c;
	struct mms_data_ext ext;
	bool found;
	int rc;

	if (whence != MMS_SEEK_DATA && whence != MMS_SEEK_HOLE)
		return mms_fail(env, MMS_INVAL, "ino %llu: seek mode %d is neither SEEK_DATA nor SEEK_HOLE",
		                (unsigned long long)ino, whence);
	rc = mms_data_inode(env, ino, &in, NULL, NULL);
	if (rc)
		return rc;
	if (mms_data_isdir(&in))
		return mms_fail(env, MMS_ISDIR, "ino %llu: is a directory", (unsigned long long)ino);
	if (off >= in.size)
		return mms_fail(env, MMS_NXIO, "ino %llu: offset %llu is at or past the size %llu",
		                (unsigned long long)ino, (unsigned long long)off,
		                (unsigned long long)in.size);
	if (in.flags & MMS_INO_INLINE) {
		*result = whence == MMS_SEEK_DATA ? off : in.size;
		return 0;
	}
	memset(&c, 0, sizeof c);
	rc = mms_data_find(env, ino, off >> MMS_PAGE_SHIFT, &c, &ext, &found);
	if (rc)
		return rc;
	if (whence == MMS_SEEK_DATA) {
		if (!found || (ext.lpage << MMS_PAGE_SHIFT) >= in.size)
			return mms_fail(env, MMS_NXIO, "ino %llu: no data after offset %llu",
			                (unsigned long long)ino, (unsigned long long)off);
		*result = mms_data_max(off, ext.lpage << MMS_PAGE_SHIFT);
		return 0;
	}
	/* SEEK_HOLE: the first page at or after off that no extent covers. */
	uint64_t page = off >> MMS_PAGE_SHIFT;
	while (found && ext.lpage <= page && (page << MMS_PAGE_SHIFT) < in.size) {
		page = ext.lpage + ext.npages;
		rc = mms_data_next(env, ino, &c, &ext, &found);
		if (rc)
			return rc;
	}
	*result = mms_data_min(mms_data_max(off, page << MMS_PAGE_SHIFT), in.size);
	return 0;
}

int mms_write(mms_env *env, uint64_t ino, const void *buf, size_t len, uint64_t off)
{
	uint8_t inl[MMS_INLINE_MAX];
	const uint8_t *old = NULL;
	struct mms_inode in;
	struct mms_data_survey sv;
	bool changed = false;
	uint64_t added = 0;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	rc = mms_pager_spill(env);
	if (rc)
		return rc;
	rc = mms_data_inode(env, ino, &in, &old, inl);
	if (rc)
		return rc;
	if (mms_data_isdir(&in))
		return mms_fail(env, MMS_ISDIR, "ino %llu: is a directory", (unsigned long long)ino);
	if (off > MMS_SIZE_MAX || len > MMS_SIZE_MAX - off)
		return mms_fail(env, MMS_TOOBIG, "ino %llu: writing %zu bytes at %llu passes the size limit %llu",
		                (unsigned long long)ino, len, (unsigned long long)off,
		                (unsigned long long)MMS_SIZE_MAX);
	if (len == 0)
		return 0;
	uint64_t end = off + len;
	uint64_t newsize = mms_data_max(in.size, end);
	bool is_inline = (in.flags & MMS_INO_INLINE) != 0;

	if (newsize <= MMS_INLINE_MAX && (is_inline || in.pages == 0)) {
		/* Stays (or becomes) inline.  A value without pages is all hole. */
		uint8_t val[MMS_INLINE_MAX];
		memset(val, 0, sizeof val);
		if (is_inline)
			memcpy(val, old, (size_t)in.size);
		memcpy(val + off, buf, len);
		rc = mms_reserve(env, mms_data_overhead(env, 0, 0));
		if (rc)
			return rc;
		in.size = newsize;
		mms_data_touch(&in);
		rc = mms_inode_put(env, &in, val, (size_t)newsize);
		goto out;
	}

	uint64_t p0 = off >> MMS_PAGE_SHIFT, p1 = mms_data_pages_for(end);
	uint64_t cow = 0, cow_runs = 0;
	rc = mms_data_scan(env, ino, p0, p1, &sv);
	if (rc == 0 && !is_inline)
		rc = mms_data_cow_need(env, ino, mms_data_min(in.size, off), end, &cow, &cow_runs);
	if (rc)
		return rc;
	rc = mms_reserve(env, sv.hole_pages + cow + (is_inline ? 1 : 0) +
	                 mms_data_overhead(env, sv.depth, sv.holes + (is_inline ? 1 : 0) +
	                                   mms_data_cow_items(cow, cow_runs)));
	if (rc)
		return rc;
	if (is_inline) {
		if (in.size > 0) {
			rc = mms_data_uninline(env, &in, old);
			changed = true;
			if (rc)
				goto out;
		} else {
			in.flags &= ~MMS_INO_INLINE;
		}
	} else if (off > in.size) {
		/* bytes past the size may be left by a crash: zero them */
		rc = mms_data_put_bytes(env, ino, NULL, in.size, off, &changed);
		if (rc)
			goto out;
	}
	rc = mms_data_fill(env, ino, p0, p1, buf, off, len, &added, &changed);
	if (rc)
		goto out;
	changed = true;
	in.size = newsize;
	in.pages += added;
	mms_data_touch(&in);
	rc = mms_inode_put(env, &in, NULL, 0);
out:
	if (rc && changed)
		mms_txn_poison(env);
	return rc;
}

int mms_write_deferred(mms_env *env, uint64_t ino, const void *buf, size_t len, uint64_t off,
                       struct mms_deferred *d)
{
	d->n = 0;
	env->defer = d;
	int rc = mms_write(env, ino, buf, len, off);
	env->defer = NULL;
	if (rc)
		d->n = 0; /* the change failed: nothing of it is to be written */
	return rc;
}

int mms_deferred_run(mms_env *env, struct mms_deferred *d)
{
	int rc = 0;
	for (unsigned i = 0; i < d->n && !rc; i++)
		rc = mms_data_pwrite(env, d->w[i].ino, d->w[i].buf, d->w[i].len, d->w[i].pos);
	d->n = 0;
	return rc;
}

int mms_truncate(mms_env *env, uint64_t ino, uint64_t size)
{
	uint8_t inl[MMS_INLINE_MAX];
	const uint8_t *old = NULL;
	struct mms_inode in;
	struct mms_data_survey sv;
	bool changed = false;
	uint64_t freed = 0;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	rc = mms_data_inode(env, ino, &in, &old, inl);
	if (rc)
		return rc;
	if (mms_data_isdir(&in))
		return mms_fail(env, MMS_ISDIR, "ino %llu: is a directory", (unsigned long long)ino);
	if (size > MMS_SIZE_MAX)
		return mms_fail(env, MMS_TOOBIG, "ino %llu: size %llu passes the limit %llu",
		                (unsigned long long)ino, (unsigned long long)size,
		                (unsigned long long)MMS_SIZE_MAX);

	if (in.flags & MMS_INO_INLINE) {
		if (size <= MMS_INLINE_MAX) {
			uint8_t val[MMS_INLINE_MAX];
			memset(val, 0, sizeof val);
			memcpy(val, old, (size_t)mms_data_min(in.size, size));
			rc = size <= in.size ? mms_reserve_free(env, mms_data_overhead(env, 0, 0))
			                      : mms_reserve(env, mms_data_overhead(env, 0, 0));
			if (rc)
				return rc;
			in.size = size;
			if (size == 0)
				in.flags &= ~MMS_INO_INLINE;
			mms_data_touch(&in);
			rc = mms_inode_put(env, &in, size ? val : NULL, (size_t)size);
			goto out;
		}
		/* Grows past inline: the bytes move to page 0, the rest is hole. */
		rc = mms_reserve(env, 1 + mms_data_overhead(env, 0, 1));
		if (rc)
			return rc;
		changed = true;
		rc = mms_data_uninline(env, &in, old);
		if (rc)
			goto out;
	} else {
		/* Free every page past the new end, and zero the tail of the last. */
		uint64_t keep = mms_data_pages_for(size);
		uint64_t zfrom = 0, zto = 0, cow = 0, cow_runs = 0;
		if (size < in.size && (size & (MMS_DATA_PAGE - 1))) {
			zfrom = size;
			zto = mms_data_min(keep << MMS_PAGE_SHIFT, in.size);
		} else if (size > in.size) {
			zfrom = in.size;
			zto = size;
		}
		rc = mms_data_scan(env, ino, keep, MMS_DATA_MAX_LPAGES, &sv);
		if (rc == 0)
			rc = mms_data_cow_need(env, ino, zfrom, zto, &cow, &cow_runs);
		if (rc)
			return rc;
		uint64_t need = mms_data_overhead(env, sv.depth, sv.extents + mms_data_cow_items(cow, cow_runs));
		/* zeroing bytes of a synced page copies it: that adds space */
		rc = cow ? mms_reserve(env, cow + need) : mms_reserve_free(env, need);
		if (rc)
			return rc;
		if (zto > zfrom) {
			rc = mms_data_put_bytes(env, ino, NULL, zfrom, zto, &changed);
			if (rc)
				goto out;
		}
		if (sv.extents) {
			rc = mms_data_remove(env, ino, keep, MMS_DATA_MAX_LPAGES, &freed, &changed);
			if (rc)
				goto out;
		}
		if (freed > in.pages) {
			rc = mms_fail(env, MMS_CORRUPT, "ino %llu: freed %llu pages but the inode counts %llu",
			              (unsigned long long)ino, (unsigned long long)freed,
			              (unsigned long long)in.pages);
			goto out;
		}
		in.pages -= freed;
	}
	changed = true;
	in.size = size;
	mms_data_touch(&in);
	rc = mms_inode_put(env, &in, NULL, 0);
out:
	if (rc && changed)
		mms_txn_poison(env);
	return rc;
}

/* fallocate(PUNCH_HOLE|KEEP_SIZE): whole pages freed, partial ones zeroed. */
static int mms_data_punch(mms_env *env, struct mms_inode *in, const uint8_t *old,
                          uint64_t off, uint64_t end)
{
	struct mms_data_survey sv;
	bool changed = false;
	uint64_t freed = 0;
	int rc;

	if (in->flags & MMS_INO_INLINE) {
		uint8_t val[MMS_INLINE_MAX];
		memcpy(val, old, (size_t)in->size);
		if (off < in->size)
			memset(val + off, 0, (size_t)(mms_data_min(end, in->size) - off));
		rc = mms_reserve(env, mms_data_overhead(env, 0, 0));
		if (rc)
			return rc;
		mms_data_touch(in);
		rc = mms_inode_put(env, in, val, (size_t)in->size);
		if (rc)
			mms_txn_poison(env);
		return rc;
	}

	uint64_t a = mms_data_pages_for(off), b = end >> MMS_PAGE_SHIFT;
	uint64_t cow = 0, cow_runs = 0, c2 = 0, r2 = 0;
	rc = mms_data_scan(env, in->ino, off >> MMS_PAGE_SHIFT, mms_data_pages_for(end), &sv);
	if (rc)
		return rc;
	/* the partial pages at each end are zeroed: copied if synced */
	if (a > b) {
		rc = mms_data_cow_need(env, in->ino, off, end, &cow, &cow_runs);
	} else {
		rc = mms_data_cow_need(env, in->ino, off, a << MMS_PAGE_SHIFT, &cow, &cow_runs);
		if (rc == 0)
			rc = mms_data_cow_need(env, in->ino, b << MMS_PAGE_SHIFT, end, &c2, &r2);
		cow += c2;
		cow_runs += r2;
	}
	if (rc)
		return rc;
	uint64_t need = mms_data_overhead(env, sv.depth, sv.extents + 2 + mms_data_cow_items(cow, cow_runs));
	rc = cow ? mms_reserve(env, cow + need) : mms_reserve_free(env, need);
	if (rc)
		return rc;
	/* Zero the covered bytes of partial pages (bytes past size are zero). */
	if (a > b) {
		rc = mms_data_put_bytes(env, in->ino, NULL, off, end, &changed);
	} else {
		rc = mms_data_put_bytes(env, in->ino, NULL, off, a << MMS_PAGE_SHIFT, &changed);
		if (rc == 0)
			rc = mms_data_put_bytes(env, in->ino, NULL, b << MMS_PAGE_SHIFT, end, &changed);
		if (rc == 0 && a < b)
			rc = mms_data_remove(env, in->ino, a, b, &freed, &changed);
	}
	if (rc)
		goto out;
	if (freed > in->pages) {
		rc = mms_fail(env, MMS_CORRUPT, "ino %llu: freed %llu pages but the inode counts %llu",
		              (unsigned long long)in->ino, (unsigned long long)freed,
		              (unsigned long long)in->pages);
		goto out;
	}
	changed = true;
	in->pages -= freed;
	mms_data_touch(in);
	rc = mms_inode_put(env, in, NULL, 0);
out:
	if (rc && changed)
		mms_txn_poison(env);
	return rc;
}

int mms_fallocate(mms_env *env, uint64_t ino, unsigned mode, uint64_t off, uint64_t len)
{
	uint8_t inl[MMS_INLINE_MAX];
	const uint8_t *old = NULL;
	struct mms_inode in;
	struct mms_data_survey sv;
	bool changed = false;
	uint64_t added = 0;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	if (mode & ~(MMS_FALLOC_KEEP_SIZE | MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_ZERO_RANGE) ||
	    (mode & (MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_ZERO_RANGE)) ==
	            (MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_ZERO_RANGE))
		return mms_fail(env, MMS_INVAL, "ino %llu: unknown fallocate mode 0x%x",
		                (unsigned long long)ino, mode);
	if ((mode & MMS_FALLOC_PUNCH_HOLE) && !(mode & MMS_FALLOC_KEEP_SIZE))
		return mms_fail(env, MMS_INVAL, "ino %llu: PUNCH_HOLE needs KEEP_SIZE",
		                (unsigned long long)ino);
	if (len == 0)
		return mms_fail(env, MMS_INVAL, "ino %llu: fallocate of 0 bytes", (unsigned long long)ino);
	rc = mms_data_inode(env, ino, &in, &old, inl);
	if (rc)
		return rc;
	if (mms_data_isdir(&in))
		return mms_fail(env, MMS_ISDIR, "ino %llu: is a directory", (unsigned long long)ino);
	if (off > MMS_SIZE_MAX || len > MMS_SIZE_MAX - off)
		return mms_fail(env, MMS_TOOBIG, "ino %llu: range of %llu bytes at %llu passes the size limit %llu",
		                (unsigned long long)ino, (unsigned long long)len,
		                (unsigned long long)off, (unsigned long long)MMS_SIZE_MAX);
	uint64_t end = off + len;
	if (mode & MMS_FALLOC_PUNCH_HOLE)
		return mms_data_punch(env, &in, old, off, end);
	if (mode & MMS_FALLOC_ZERO_RANGE) {
		/* the bytes there go (a hole), then the range is allocated */
		bool punched = off < in.size;
		if (punched) {
			rc = mms_data_punch(env, &in, old, off, mms_data_min(end, in.size));
			if (rc)
				return rc;
		}
		rc = mms_fallocate(env, ino, mode & MMS_FALLOC_KEEP_SIZE, off, len);
		if (rc && punched)
			mms_txn_poison(env);
		return rc;
	}

	uint64_t newsize = (mode & MMS_FALLOC_KEEP_SIZE) ? in.size : mms_data_max(in.size, end);
	bool is_inline = (in.flags & MMS_INO_INLINE) != 0;
	if (is_inline && end <= MMS_INLINE_MAX) {
		/* Inline bytes need no pages: only the size may grow. */
		if (newsize == in.size)
			return 0;
		uint8_t val[MMS_INLINE_MAX];
		memset(val, 0, sizeof val);
		memcpy(val, old, (size_t)in.size);
		rc = mms_reserve(env, mms_data_overhead(env, 0, 0));
		if (rc)
			return rc;
		in.size = newsize;
		mms_data_touch(&in);
		rc = mms_inode_put(env, &in, val, (size_t)newsize);
		goto out;
	}

	uint64_t p0 = off >> MMS_PAGE_SHIFT, p1 = mms_data_pages_for(end);
	uint64_t cow = 0, cow_runs = 0;
	rc = mms_data_scan(env, ino, p0, p1, &sv);
	if (rc == 0 && !is_inline && newsize > in.size)
		rc = mms_data_cow_need(env, ino, in.size, newsize, &cow, &cow_runs);
	if (rc)
		return rc;
	rc = mms_reserve(env, sv.hole_pages + cow + (is_inline ? 1 : 0) +
	                 mms_data_overhead(env, sv.depth, sv.holes + 1 + mms_data_cow_items(cow, cow_runs)));
	if (rc)
		return rc;
	if (is_inline) {
		changed = true;
		rc = mms_data_uninline(env, &in, old);
		if (rc)
			goto out;
	} else if (newsize > in.size) {
		rc = mms_data_put_bytes(env, ino, NULL, in.size, newsize, &changed);
		if (rc)
			goto out;
	}
	rc = mms_data_fill(env, ino, p0, p1, NULL, off, len, &added, &changed);
	if (rc)
		goto out;
	if (added == 0 && newsize == in.size && !changed)
		return 0;
	changed = true;
	in.pages += added;
	if (newsize != in.size) {
		in.size = newsize;
		mms_data_touch(&in);
	} else {
		in.ctime = mms_now_ns();
	}
	rc = mms_inode_put(env, &in, NULL, 0);
out:
	if (rc && changed)
		mms_txn_poison(env);
	return rc;
}

int mms_data_free_all(mms_env *env, struct mms_inode *in)
{
	struct mms_bt_cursor c;
	struct mms_data_ext ext;
	bool found;
	int rc;

	memset(&c, 0, sizeof c);
	for (;;) {
		rc = mms_data_find(env, in->ino, 0, &c, &ext, &found);
		if (rc)
			return rc;
		if (!found)
			break;
		rc = mms_data_not_tree(env, in->ino, ext.ppage, ext.npages, true);
		if (rc == 0)
			rc = mms_data_del_ext(env, in->ino, ext.lpage);
		if (rc == 0)
			rc = mms_share_drop(env, ext.ppage, ext.npages, NULL);
		if (rc)
			return rc;
	}
	in->pages = 0;
	in->flags &= ~MMS_INO_INLINE;
	return 0;
}

#define MMS_COPY_CHUNK (1u << 20)

/* Copy bytes [off, off+len) of src, where it has bytes (no hole), to doff
 * of dst through buf (MMS_COPY_CHUNK bytes), a chunk per write.  *done
 * counts the bytes copied. */
static int mms_copy_bytes(mms_env *env, uint64_t src, uint64_t off, uint64_t len, uint64_t dst,
                          uint64_t doff, uint8_t *buf, uint64_t *done)
{
	int rc = 0;
	while (!rc && *done < len) {
		size_t k = len - *done < MMS_COPY_CHUNK ? (size_t)(len - *done) : MMS_COPY_CHUNK, got = 0;
		rc = mms_read(env, src, buf, k, off + *done, &got);
		if (!rc && got != k)
			rc = mms_fail(env, MMS_CORRUPT, "inode %llu: short read at %llu while copying",
			              (unsigned long long)src, (unsigned long long)(off + *done));
		if (!rc)
			rc = mms_write(env, dst, buf, got, doff + *done);
		if (!rc)
			*done += got;
	}
	return rc;
}

/*
 * Share logical pages [sp, sp+n) of src as pages [dp, dp+n) of dst: what
 * dst held there is let go of, src's extents are referenced from dst too
 * (share.c counts the references), src's holes become holes of dst.  dst's
 * size grows to at least `end`.  The caller checked that both are regular
 * files, src's value is in extents, and the ranges do not overlap.  One
 * change: MMS_FULL leaves the store as it was.
 */
static int mms_data_share(mms_env *env, uint64_t src, uint64_t sp, uint64_t dst, uint64_t dp,
                          uint64_t n, uint64_t end)
{
	uint8_t inl[MMS_INLINE_MAX];
	const uint8_t *old = NULL;
	struct mms_data_survey ss, ds;
	struct mms_inode in;
	bool changed = false;
	uint64_t freed = 0;
	int rc;

	rc = mms_txn_enter(env);
	if (!rc)
		rc = mms_pager_spill(env);
	if (!rc)
		rc = mms_data_inode(env, dst, &in, &old, inl);
	if (!rc)
		rc = mms_data_scan(env, src, sp, sp + n, &ss);
	if (!rc)
		rc = mms_data_scan(env, dst, dp, dp + n, &ds);
	if (rc)
		return rc;
	bool is_inline = (in.flags & MMS_INO_INLINE) && in.size > 0;
	/* bytes past dst's size may be left by a crash: zeroed up to the copy */
	uint64_t zfrom = in.size, zto = dp << MMS_PAGE_SHIFT, cow = 0, cow_runs = 0;
	if (zto > zfrom && !is_inline)
		rc = mms_data_cow_need(env, dst, zfrom, zto, &cow, &cow_runs);
	if (rc)
		return rc;
	uint64_t items = ss.extents + ds.extents + 2 + mms_data_cow_items(cow, cow_runs);
	rc = mms_reserve(env, (is_inline ? 1 : 0) + cow +
	                 mms_data_overhead(env, ss.depth > ds.depth ? ss.depth : ds.depth, items) +
	                 mms_share_cost(env, ss.extents + ds.extents, true));
	if (rc)
		return rc;
	changed = true;
	if (is_inline)
		rc = mms_data_uninline(env, &in, old);
	else
		in.flags &= ~MMS_INO_INLINE;
	if (!rc && zto > zfrom && !is_inline)
		rc = mms_data_put_bytes(env, dst, NULL, zfrom, zto, &changed);
	if (!rc)
		rc = mms_data_remove(env, dst, dp, dp + n, &freed, &changed);
	if (!rc && freed > in.pages)
		rc = mms_fail(env, MMS_CORRUPT, "ino %llu: freed %llu pages but the inode counts %llu",
		              (unsigned long long)dst, (unsigned long long)freed,
		              (unsigned long long)in.pages);
	if (rc)
		goto out;
	in.pages -= freed;
	for (uint64_t pos = sp; pos < sp + n;) {
		struct mms_bt_cursor c;
		struct mms_data_ext ext;
		bool found;
		memset(&c, 0, sizeof c);
		rc = mms_data_find(env, src, pos, &c, &ext, &found);
		if (rc || !found || ext.lpage >= sp + n)
			break;
		uint64_t a = mms_data_max(pos, ext.lpage), b = mms_data_min(sp + n, ext.lpage + ext.npages);
		struct mms_data_ext de = { dp + (a - sp), ext.ppage + (a - ext.lpage), b - a };
		rc = mms_data_not_tree(env, src, de.ppage, de.npages, false);
		if (!rc)
			rc = mms_share_add(env, de.ppage, de.npages);
		if (!rc)
			rc = mms_data_put_ext(env, dst, &de);
		if (rc)
			goto out;
		in.pages += de.npages;
		pos = b;
	}
	if (rc)
		goto out;
	in.size = mms_data_max(in.size, end);
	mms_data_touch(&in);
	rc = mms_inode_put(env, &in, NULL, 0);
out:
	if (rc && changed)
		mms_txn_poison(env);
	return rc;
}

int mms_copy_range(mms_env *env, uint64_t src, uint64_t soff, uint64_t dst, uint64_t doff,
                   uint64_t len, uint64_t *copied)
{
	struct mms_inode ss, ds;
	struct mms_extent ext[16];
	uint64_t done = 0;
	uint8_t *buf;
	int rc;

	*copied = 0;
	rc = mms_inode_get(env, src, &ss, NULL, NULL);
	if (!rc)
		rc = mms_inode_get(env, dst, &ds, NULL, NULL);
	if (rc)
		return rc;
	if (S_ISDIR(ss.mode) || S_ISDIR(ds.mode))
		return MMS_ISDIR;
	if (!S_ISREG(ss.mode) || !S_ISREG(ds.mode))
		return MMS_INVAL;
	if (soff >= ss.size || len == 0)
		return 0;
	if (len > ss.size - soff)
		len = ss.size - soff;
	if (src == dst && soff < doff + len && doff < soff + len)
		return MMS_INVAL;
	if (doff > MMS_SIZE_MAX || len > MMS_SIZE_MAX - doff)
		return MMS_TOOBIG;
	if (!(ss.flags & MMS_INO_INLINE) && ((soff | doff) & (MMS_DATA_PAGE - 1)) == 0) {
		/* whole pages are shared, not copied; so is a last partial page
		 * when the copy ends both values (its bytes past the end are 0) */
		uint64_t n = len >> MMS_PAGE_SHIFT;
		if ((len & (MMS_DATA_PAGE - 1)) && soff + len == ss.size && doff + len >= ds.size)
			n++;
		if (n) {
			done = mms_data_min(n << MMS_PAGE_SHIFT, len);
			rc = mms_data_share(env, src, soff >> MMS_PAGE_SHIFT, dst, doff >> MMS_PAGE_SHIFT, n,
			                    doff + done);
			if (rc)
				return rc;
		}
	}
	buf = malloc(MMS_COPY_CHUNK);
	if (!buf)
		return ENOMEM;
	/* the rest byte by byte: pieces of data copied, holes punched (a
	 * piece of hole may be any length: one call) */
	while (!rc && done < len) {
		size_t n = 0;
		rc = mms_map(env, src, soff + done, len - done, ext, sizeof ext / sizeof ext[0], &n);
		if (!rc && n == 0)
			break;
		for (size_t i = 0; !rc && i < n; i++) {
			const struct mms_extent *e = &ext[i];
			uint64_t at = doff + (e->logical - soff), got = 0;
			if (e->flags & MMS_MAP_HOLE)
				rc = mms_fallocate(env, dst, MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE, at,
				                   e->length);
			else
				rc = mms_copy_bytes(env, src, e->logical, e->length, dst, at, buf, &got);
			if (!rc)
				done = e->logical + e->length - soff;
			else if (got)
				done = e->logical + got - soff;
		}
	}
	free(buf);
	/* a hole at the end: the size still grows to cover it */
	if (done && doff + done > ds.size) {
		struct mms_inode now;
		int trc = mms_inode_get(env, dst, &now, NULL, NULL);
		if (!trc && now.size < doff + done)
			trc = mms_truncate(env, dst, doff + done);
		if (trc)
			return trc;
	}
	*copied = done;
	return done ? 0 : rc;
}
