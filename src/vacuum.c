/*
 * vacuum.c - online compaction.
 *
 * The target is a file just large enough for the live pages plus a small
 * margin.  Everything at or past the target moves into free space below
 * it: shared data pages first, once for all the extents that hold them
 * (mms_vac_shared); then data extents are copied (the new run is written
 * before the extent map points at it, the old run is freed, i.e. kept
 * until the next sync),
 * xattr blobs are rewritten, and tree pages are copied on write with the
 * allocator limited to pages below the target.  Each batch is committed
 * and synced, so a crash at any point finds a consistent store whose
 * extra space is bounded by one batch; the file never grows.  Tree pages
 * move in batches too: copying a page also copies the pages above it, and
 * the old copies only become reusable at the next sync.  A batch that runs
 * out of space below the target is rolled back and tried at half the size;
 * when not even one page fits, vacuum stops there: what moved stays moved,
 * the rest stays put.  At the end both meta slots are written with the
 * smaller size, then the file is truncated (a meta never records more
 * pages than the file has).
 *
 * Between batches the progress callback runs with everything committed: a
 * caller that guards the env with a lock may release it there, so other
 * calls can run during a long vacuum (they must commit their changes before
 * the callback returns).  Vacuum re-reads its position after.  If those
 * calls use the free space below the target, vacuum runs out of room: a
 * batch that finds none is rolled back, vacuum stops there and reports it
 * (res->incomplete) - it never fails for that, and an extent it was cutting
 * at the target keeps its unmoved tail where it was.
 */
#include "mms_int.h"
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define MMS_VAC_BATCH_PAGES 16384ull /* pages moved per batch: 64 MiB */
#ifdef MMS_TEST_HOOKS
uint64_t mms_vac_test_batch; /* tests: batches of this many pages */
#define MMS_VAC_BATCH (mms_vac_test_batch ? mms_vac_test_batch : MMS_VAC_BATCH_PAGES)
#else
#define MMS_VAC_BATCH MMS_VAC_BATCH_PAGES
#endif
#define MMS_VAC_COPY (1u << 20)
/* A move found no free space below the target for the bytes themselves:
 * nothing was changed for that part, so vacuum just stops there.  An
 * MMS_FULL from a tree update (a copied page found no room) instead
 * rolls the batch back (mms_vacuum), since the update may be half done. */
#define MMS_VAC_NOROOM 1

struct mms_vac {
	mms_env *env;
	mms_progress_fn progress;
	void *ctx;
	uint64_t target;   /* pages at or past this move */
	uint64_t total;    /* done + pages still at or past the target */
	uint64_t done;
	uint64_t batch;    /* moved in this batch */
	uint8_t *buf;
	int stopped;       /* the callback asked to stop, or no room is left */
	int no_room;       /* stopped because the space below the target ran out */
};

static int mms_vac_copy(mms_env *env, uint8_t *buf, uint64_t from, uint64_t to, uint64_t n)
{
	uint64_t bytes = n * MMS_PAGE_SIZE, off = 0;
	while (off < bytes) {
		size_t k = bytes - off > MMS_VAC_COPY ? MMS_VAC_COPY : (size_t)(bytes - off), got = 0;
		int rc = mms_io_pread(env->fd, buf, k, from * MMS_PAGE_SIZE + off, &got);
		if (!rc && got < k)
			rc = EIO;
		if (rc)
			return mms_fail(env, rc, "vacuum: cannot read page %llu: %s",
			                (unsigned long long)(from + off / MMS_PAGE_SIZE), strerror(rc));
		rc = mms_io_pwrite(env->fd, buf, k, to * MMS_PAGE_SIZE + off);
		if (rc)
			return mms_fail(env, rc, "vacuum: cannot write page %llu: %s",
			                (unsigned long long)(to + off / MMS_PAGE_SIZE), strerror(rc));
		off += k;
	}
	return 0;
}

/*
 * Commit and sync the batch.  The free list the commit writes may go
 * anywhere: it needs a contiguous run, which the holes below the target
 * rarely offer while vacuum is filling them, and the next commit replaces
 * it anyway.  Where the last one lands, mms_trim() sees to.
 */
static int mms_vac_sync(struct mms_vac *v)
{
	mms_alloc_set_limit(v->env, 0);
	return mms_sync(v->env);
}

/* End a batch: commit, sync (old copies become free), report progress.
 * The caller sets the limit again before the next batch. */
static int mms_vac_checkpoint(struct mms_vac *v)
{
	int rc = mms_vac_sync(v);
	if (rc)
		return rc;
	v->batch = 0;
	/* other calls may run inside the callback: they allocate anywhere,
	 * past the target too, so what is left to move is counted again */
	if (v->progress && v->progress(v->ctx, v->done, v->total))
		v->stopped = 1;
	v->total = v->done + mms_alloc_used_from(v->env, v->target);
	return 0;
}

/*
 * Move the tree pages at or past the target, a batch at a time, each batch
 * checkpointed.  A batch also copies the pages above the ones it moves, and
 * their old copies are only reusable after the checkpoint, so a batch can
 * need more room below the target than is left: it is then rolled back and
 * tried at half the size.  The data moved so far is checkpointed first, so
 * that no rollback here undoes it.
 */
static int mms_vac_trees(struct mms_vac *v)
{
	mms_env *env = v->env;
	uint64_t cap = MMS_VAC_BATCH;
	int rc = 0;
	if (v->batch && ((rc = mms_vac_checkpoint(v)) || v->stopped))
		return rc;
	for (int t = 0; t < MMS_NTREES && !v->stopped; t++) {
		int more = 1;
		while (more && !v->stopped) {
			uint64_t moved = 0;
			mms_alloc_set_limit(env, v->target);
			rc = mms_txn_enter(env);
			if (!rc)
				rc = mms_bt_relocate(env, t, v->target, cap, &moved, &more);
			if (rc == MMS_FULL) {
				mms_alloc_set_limit(env, 0);
				rc = mms_rollback(env);
				if (rc)
					return rc;
				if (cap == 1) {
					/* no room for even one page: stop here */
					v->stopped = v->no_room = 1;
					return 0;
				}
				cap /= 2;
				more = 1;
				continue;
			}
			if (rc)
				return rc;
			v->done += moved;
			v->batch += moved;
			rc = mms_vac_checkpoint(v);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Move one data extent below the target, in pieces if need be.  `cut`: the
 * caller already shortened the extent's item to the head it keeps below the
 * target, so the unmoved rest must get an item of its own even when nothing
 * moved. */
static int mms_vac_extent(struct mms_vac *v, const uint8_t *key, uint64_t phys, uint64_t n,
                          int cut)
{
	mms_env *env = v->env;
	uint64_t ino = mms_get_be64(key), lp = mms_get_be64(key + 8), moved = 0;
	int rc = mms_check_run(env, phys, n, "vacuum: extent");
	if (rc)
		return rc;
	while (moved < n) {
		uint64_t np, got;
		rc = mms_alloc_some(env, n - moved, MMS_ALLOC_DATA, &np, &got);
		if (rc == MMS_FULL)
			break; /* no room below the target: leave the rest (nothing changed) */
		if (rc)
			return rc;
		rc = mms_vac_copy(env, v->buf, phys + moved, np, got);
		if (rc) {
			mms_free(env, np, got, MMS_ALLOC_DATA);
			return rc;
		}
		uint8_t k[16], val[16];
		mms_put_be64(k, ino);
		mms_put_be64(k + 8, lp + moved);
		mms_put_le64(val, np);
		mms_put_le64(val + 8, got);
		rc = mms_bt_put(env, MMS_TREE_EXTENT, k, 16, val, 16);
		if (rc) {
			mms_txn_poison(env);
			return rc;
		}
		moved += got;
	}
	if (moved < n) {
		/* the unmoved tail stays an extent of its own */
		uint8_t k[16], val[16];
		mms_put_be64(k, ino);
		mms_put_be64(k + 8, lp + moved);
		mms_put_le64(val, phys + moved);
		mms_put_le64(val + 8, n - moved);
		if ((moved || cut) && (rc = mms_bt_put(env, MMS_TREE_EXTENT, k, 16, val, 16))) {
			mms_txn_poison(env);
			return rc;
		}
	}
	if (moved) {
		/* the new runs counted the pages in; this counts out the old ones
		 * that no other extent shares (those it would: only its share of
		 * them goes) */
		rc = mms_share_drop(env, phys, moved, NULL);
		if (rc) {
			mms_txn_poison(env);
			return rc;
		}
	}
	v->done += moved;
	v->batch += moved;
	return moved < n ? MMS_VAC_NOROOM : 0;
}

/* The first EXTENT item at or after key pos whose run [phys, phys+n) `want`
 * accepts: its key into key, its run into *phys, *n.  *found = 0 when
 * there is none. */
static int mms_vac_find_extent(mms_env *env, const uint8_t pos[16],
                               bool (*want)(const void *ctx, uint64_t phys, uint64_t n),
                               const void *ctx, uint8_t key[16], uint64_t *phys, uint64_t *n,
                               int *found)
{
	struct mms_bt_cursor c;
	int rc = mms_bt_seek(&c, env, MMS_TREE_EXTENT, pos, 16, MMS_BT_GE);
	*found = 0;
	while (rc == 0) {
		const void *k, *val;
		size_t kl, vl;
		mms_bt_item(&c, &k, &kl, &val, &vl);
		if (kl != 16 || vl != 16)
			return mms_fail(env, MMS_CORRUPT, "vacuum: malformed extent item");
		*phys = mms_get_le64(val);
		*n = mms_get_le64((const uint8_t *)val + 8);
		if (want(ctx, *phys, *n)) {
			memcpy(key, k, 16);
			*found = 1;
			return 0;
		}
		rc = mms_bt_next(&c);
	}
	return rc == MMS_NOTFOUND ? 0 : rc;
}

/* ---- Shared pages ----------------------------------------------------------
 *
 * Pages several extents share (share.c) move once for all their holders: a
 * batch copies up to MMS_VAC_MOVES runs of them below the target, points
 * every extent that holds part of a run at its copy (one walk of the EXTENT
 * tree per batch: no index leads from a page to its holders), moves each
 * run's SHARE item with it, and frees the old pages.  Moving them per
 * holder instead would copy them once per holder and need that much more
 * room below the target.
 */
#define MMS_VAC_MOVES 256

struct mms_vac_move {
	uint64_t from, to, n;
	uint32_t refs;
	uint64_t seen; /* page references the extent walk pointed at the copy */
};

/* The first move whose run ends after page pg (nm: none). */
static size_t mms_vac_move_at(const struct mms_vac_move *mv, size_t nm, uint64_t pg)
{
	size_t lo = 0, hi = nm;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mv[mid].from + mv[mid].n <= pg)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Point extent (ino, lp) -> [phys, phys+n) at the copies of the moved runs
 * it overlaps: one item per piece, the first under the extent's own key. */
static int mms_vac_repoint(mms_env *env, uint64_t ino, uint64_t lp, uint64_t phys, uint64_t n,
                           struct mms_vac_move *mv, size_t nm)
{
	uint64_t off = 0;
	size_t i = mms_vac_move_at(mv, nm, phys);
	while (off < n) {
		uint64_t pg = phys + off, len = n - off, to = pg;
		if (i < nm && mv[i].from <= pg) {
			uint64_t end = mv[i].from + mv[i].n;
			len = end - pg < len ? end - pg : len;
			to = mv[i].to + (pg - mv[i].from);
			mv[i].seen += len;
			i++;
		} else if (i < nm && mv[i].from < pg + len) {
			len = mv[i].from - pg;
		}
		uint8_t k[16], val[16];
		mms_put_be64(k, ino);
		mms_put_be64(k + 8, lp + off);
		mms_put_le64(val, to);
		mms_put_le64(val + 8, len);
		int rc = mms_bt_put(env, MMS_TREE_EXTENT, k, 16, val, 16);
		if (rc)
			return rc;
		off += len;
	}
	return 0;
}

struct mms_vac_moves {
	struct mms_vac_move *mv;
	size_t nm;
};

/* Whether run [phys, phys+n) holds pages of the moves. */
static bool mms_vac_moved(const void *ctx, uint64_t phys, uint64_t n)
{
	const struct mms_vac_moves *m = ctx;
	size_t i = mms_vac_move_at(m->mv, m->nm, phys);
	return i < m->nm && m->mv[i].from < phys + n;
}

/* Walk the EXTENT tree once and repoint every extent that holds pages of
 * the moves. */
static int mms_vac_remap(mms_env *env, struct mms_vac_move *mv, size_t nm)
{
	struct mms_vac_moves m = { mv, nm };
	uint8_t pos[16] = { 0 }, key[16];
	for (;;) {
		uint64_t phys = 0, n = 0;
		int found = 0;
		int rc = mms_vac_find_extent(env, pos, mms_vac_moved, &m, key, &phys, &n, &found);
		if (rc || !found)
			return rc;
		uint64_t ino = mms_get_be64(key), lp = mms_get_be64(key + 8);
		rc = mms_vac_repoint(env, ino, lp, phys, n, mv, nm);
		if (rc)
			return rc;
		mms_put_be64(pos, ino);
		mms_put_be64(pos + 8, lp + n);
	}
}

/* Apply a batch of moves whose bytes are copied: repoint the holders, move
 * the SHARE items, free the old pages. */
static int mms_vac_moves_apply(struct mms_vac *v, struct mms_vac_move *mv, size_t nm)
{
	mms_env *env = v->env;
	int rc = mms_vac_remap(env, mv, nm);
	for (size_t i = 0; i < nm && !rc; i++) {
		uint32_t refs = 0;
		rc = mms_share_move(env, mv[i].from, mv[i].n, mv[i].to, &refs);
		if (!rc && mv[i].seen != mv[i].n * refs)
			rc = mms_fail(env, MMS_CORRUPT, "vacuum: pages %llu+%llu have %u references, but "
			              "extents hold them %llu times", (unsigned long long)mv[i].from,
			              (unsigned long long)mv[i].n, refs,
			              (unsigned long long)(mv[i].seen / mv[i].n));
		if (!rc) {
			mms_free(env, mv[i].from, mv[i].n, MMS_ALLOC_DATA);
			v->done += mv[i].n;
			v->batch += mv[i].n;
		}
	}
	if (rc)
		mms_txn_poison(env);
	return rc;
}

static int mms_vac_shared(struct mms_vac *v)
{
	mms_env *env = v->env;
	struct mms_vac_move *mv = malloc(MMS_VAC_MOVES * sizeof(*mv));
	int rc = mv ? 0 : ENOMEM;
	while (!rc && !v->stopped) {
		size_t nm = 0;
		uint64_t pos = v->target, pages = 0;
		while (nm < MMS_VAC_MOVES && pages < MMS_VAC_BATCH) {
			uint64_t first, n, to, got;
			uint32_t refs;
			rc = mms_share_next(env, pos, &first, &n, &refs);
			if (rc == MMS_NOTFOUND) {
				rc = 0;
				break;
			}
			if (!rc)
				rc = mms_check_run(env, first, n, "vacuum: shared pages");
			if (rc)
				break;
			if (n > MMS_VAC_BATCH - pages)
				n = MMS_VAC_BATCH - pages;
			rc = mms_alloc_some(env, n, MMS_ALLOC_DATA, &to, &got);
			if (rc == MMS_FULL) {
				/* no room below the target: move what is copied, then stop */
				rc = 0;
				v->stopped = v->no_room = 1;
				break;
			}
			if (!rc && (rc = mms_vac_copy(env, v->buf, first, to, got)))
				mms_free(env, to, got, MMS_ALLOC_DATA);
			if (rc)
				break;
			mv[nm++] = (struct mms_vac_move){ first, to, got, refs, 0 };
			pages += got;
			pos = first + got;
		}
		if (!rc && nm)
			rc = mms_vac_moves_apply(v, mv, nm);
		if (rc || !nm)
			break;
		if ((rc = mms_vac_checkpoint(v)) || v->stopped)
			break;
		mms_txn_enter(env);
		mms_alloc_set_limit(env, v->target);
	}
	free(mv);
	return rc;
}

/* Whether run [phys, phys+n) reaches the target (ctx: the target). */
static bool mms_vac_past(const void *ctx, uint64_t phys, uint64_t n)
{
	return phys + n > *(const uint64_t *)ctx;
}

static int mms_vac_data(struct mms_vac *v)
{
	mms_env *env = v->env;
	uint8_t pos[16] = { 0 };
	for (;;) {
		uint8_t key[16];
		uint64_t phys = 0, n = 0;
		int found = 0;
		int rc = mms_vac_find_extent(env, pos, mms_vac_past, &v->target, key, &phys, &n, &found);
		if (rc || !found)
			return rc;
		/* the part below the target stays; move the rest */
		uint64_t keep = phys < v->target ? v->target - phys : 0;
		if (keep) {
			uint8_t k2[16], val[16];
			mms_put_be64(k2, mms_get_be64(key));
			mms_put_be64(k2 + 8, mms_get_be64(key + 8));
			mms_put_le64(val, phys);
			mms_put_le64(val + 8, keep);
			rc = mms_bt_put(env, MMS_TREE_EXTENT, k2, 16, val, 16);
			if (rc) {
				mms_txn_poison(env);
				return rc;
			}
			mms_put_be64(key + 8, mms_get_be64(key + 8) + keep);
		}
		rc = mms_vac_extent(v, key, phys + keep, n - keep, keep != 0);
		if (rc == MMS_VAC_NOROOM) {
			v->stopped = v->no_room = 1;
			return 0;
		}
		if (rc)
			return rc;
		/* continue after this extent */
		memcpy(pos, key, 16);
		mms_put_be64(pos + 8, mms_get_be64(key + 8) + (n - keep));
		if (v->batch >= MMS_VAC_BATCH) {
			if ((rc = mms_vac_checkpoint(v)) || v->stopped)
				return rc;
			mms_txn_enter(env);
			mms_alloc_set_limit(env, v->target);
		}
	}
}

static int mms_vac_xattrs(struct mms_vac *v)
{
	mms_env *env = v->env;
	uint8_t pos[MMS_BT_KEY_MAX];
	size_t poslen = 1;
	pos[0] = 0;
	for (;;) {
		struct mms_bt_cursor c;
		int rc = mms_bt_seek(&c, env, MMS_TREE_XATTR, pos, poslen, MMS_BT_GE);
		uint8_t key[MMS_BT_KEY_MAX];
		size_t keylen = 0;
		uint64_t pg = 0, np = 0; /* the value's pages (at least one) */
		uint32_t len = 0, crc = 0;
		int found = 0;
		while (rc == 0) {
			const void *k, *val;
			size_t kl, vl;
			mms_bt_item(&c, &k, &kl, &val, &vl);
			const uint8_t *b = val;
			if (vl == 17 && b[0] == 1) {
				pg = mms_get_le64(b + 1);
				len = mms_get_le32(b + 9);
				crc = mms_get_le32(b + 13);
				np = (len + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
				if (np == 0)
					np = 1;
				if (pg + np > v->target) {
					memcpy(key, k, kl);
					keylen = kl;
					found = 1;
					break;
				}
			}
			rc = mms_bt_next(&c);
		}
		if (rc && rc != MMS_NOTFOUND)
			return rc;
		if (!found)
			return 0;
		uint8_t *data = malloc(len ? len : 1);
		if (!data)
			return ENOMEM;
		uint64_t npg;
		rc = mms_blob_read(env, pg, data, len);
		if (!rc && mms_crc32c(0, data, len) != crc)
			rc = mms_fail(env, MMS_CORRUPT, "vacuum: xattr value at page %llu: checksum mismatch",
			              (unsigned long long)pg);
		if (!rc)
			rc = mms_blob_write(env, data, len, &npg);
		free(data);
		if (rc == MMS_FULL) {
			v->stopped = v->no_room = 1;
			return 0;
		}
		if (rc)
			return rc;
		uint8_t val[17];
		val[0] = 1;
		mms_put_le64(val + 1, npg);
		mms_put_le32(val + 9, len);
		mms_put_le32(val + 13, crc);
		rc = mms_bt_put(env, MMS_TREE_XATTR, key, keylen, val, 17);
		if (rc) {
			mms_txn_poison(env);
			return rc;
		}
		mms_blob_free(env, pg, len);
		/* progress counts the pages that were at or past the target */
		v->done += pg + np - (pg > v->target ? pg : v->target);
		/* continue after this key: append a zero byte */
		if (keylen >= MMS_BT_KEY_MAX)
			return 0;
		memcpy(pos, key, keylen);
		pos[keylen] = 0;
		poslen = keylen + 1;
	}
}

int mms_trim(mms_env *env)
{
	uint64_t before = env->meta.file_pages, newpages;
	/* the smaller size goes into both metas before the file shrinks: a
	 * meta never records more pages than the file has */
	int rc = mms_txn_enter(env);
	if (!rc)
		rc = mms_alloc_trim_tail(env, &newpages);
	if (rc || newpages >= before)
		return rc ? rc : mms_sync(env);
	rc = mms_sync(env);
	if (!rc) {
		mms_txn_enter(env);
		rc = mms_sync(env);
	}
	/* that commit may have grown the file again for its free list */
	if (!rc)
		rc = mms_file_shrink(env, env->meta.file_pages);
	return rc;
}

int mms_vacuum(mms_env *env, mms_progress_fn progress, void *ctx, struct mms_vacuum_result *res)
{
	struct mms_vac v = { .env = env, .progress = progress, .ctx = ctx };
	int rc = mms_txn_enter(env);
	if (rc)
		return rc;
	uint64_t before = env->meta.file_pages;
	/* everything freed so far becomes free */
	rc = mms_sync(env);
	if (rc)
		return rc;
	v.buf = malloc(MMS_VAC_COPY);
	if (!v.buf)
		return ENOMEM;
	uint64_t live = MMS_META_PAGES + env->meta.tree_pages + env->meta.data_pages + env->meta.blob_pages;
	uint64_t margin = live / 64 + 64;
	v.target = live + margin;
	v.total = mms_alloc_used_from(env, v.target);
	if (v.total) {
		/* everything past the target is read to be moved, in an order of
		 * the trees' own: ask for it first (a cold store) */
		if (env->meta.file_pages > v.target)
			mms_file_warm(env, v.target, env->meta.file_pages - v.target);
		mms_txn_enter(env);
		mms_alloc_set_limit(env, v.target);
		rc = mms_vac_shared(&v);
		if (!rc && !v.stopped)
			rc = mms_vac_data(&v);
		if (!rc && !v.stopped)
			rc = mms_vac_xattrs(&v);
		if (!rc && !v.stopped)
			rc = mms_vac_trees(&v);
		if (rc == MMS_FULL) {
			/* other calls, between batches, used the room below the
			 * target that this batch's tree copies needed: undo the
			 * batch (the ones before it are synced) and stop early.
			 * The moves of this batch are undone too; their new
			 * pages were never reachable from a synced meta. */
			mms_alloc_set_limit(env, 0);
			rc = mms_rollback(env);
			v.no_room = 1;
			v.done -= v.batch < v.done ? v.batch : v.done;
		}
		if (rc) {
			mms_alloc_set_limit(env, 0);
			mms_rollback(env);
			goto out;
		}
		rc = mms_vac_sync(&v);
		if (rc)
			goto out;
	}
	rc = mms_trim(env);
	if (!rc && progress)
		progress(ctx, v.total, v.total);
	if (!rc && res) {
		res->size_before = before * MMS_PAGE_SIZE;
		res->size_after = env->meta.file_pages * MMS_PAGE_SIZE;
		res->moved_bytes = v.done * MMS_PAGE_SIZE;
		res->incomplete = v.no_room;
	}
out:
	free(v.buf);
	return rc;
}
