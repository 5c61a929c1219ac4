/*
 * alloc.c - free space of the store file.
 *
 * Space is handed out in runs of pages, first fit by address, so live data
 * gathers at the front and vacuum has little to move.  Sets of runs
 * (runset.h: sorted, coalesced, in chunks, so that a change costs the same
 * however many runs a set holds) track where every non-live page stands:
 *
 *   free     reusable now
 *   pending  freed, but the last synced meta may still reach it: reusable
 *            after the next sync (a machine crash rolls back to that meta)
 *   fresh    allocated since the last sync: when such a run is freed, only
 *            the last committed meta can reach it, so it is reusable as soon
 *            as the next commit lands
 *   txn_free freed by the open transaction: applied at its commit
 *   txn_alloc allocated by the open transaction
 *   punch    freed data/blob runs, punched out of the file (FALLOC_FL_PUNCH_
 *            HOLE) when they become free so the disk space comes back
 *   written  (MMS_CACHE_ONCE) data runs allocated since the last sync: their
 *            cached pages are dropped once the sync has made them clean
 *   held     free runs the caller punches after a sync without its lock
 *            (mms_sync_end_keep): kept in pending, so not reusable, until
 *            they are punched; a rollback or another sync keeps them there
 *
 * A run freed in the same transaction that allocated it is free at once.
 *
 * Persistence.  The free and pending sets are persisted at every commit:
 * inline in the meta page when they fit (at most 321 runs).  Past that
 * (format 4), as a *base* and a *log*:
 *
 *   base  both sets as they stood at one commit, in a blob (meta.free_blob)
 *         whose crc is in the meta;
 *   log   pages of changes (add or remove a run of either set; "every
 *         pending run is free", a sync) made since the base, one run of
 *         pages per commit, each page naming the one before it.
 *
 * Every change to either set between two commits is noted in a journal
 * (fl_free_add ... below: nothing else may touch the two sets), and a
 * commit writes the journal to the log, so its cost follows what it
 * changed, not the store's fragmentation.  From format 5 the log's newest
 * changes, up to 319, stay in the meta page itself (its *tail*, after the
 * log pages in replay order): a commit whose changes still fit there writes
 * no log page at all, and one that overflows it writes the tail and its
 * own changes to log pages and leaves the tail empty.  A commit of a few
 * changes (a put: a dozen) so writes a log page about once in twenty.  Replaying the log over the base
 * gives the sets exactly, since the same operations run on the same state.
 * The base is rewritten (and the log dropped) when the log would outgrow
 * the pages the whole list takes now (at least MMS_LOG_MIN_PAGES), when one
 * commit changed more than the journal holds, and during a vacuum: a
 * commit writes on average about two pages of free list, and an open reads
 * at most about twice the list.
 *
 * Growth: when no free run fits, the file grows by a segment of
 * max(needed, min(max(file/4, 1 MiB), 64 MiB)) pages, capped at max_size;
 * past it, MMS_FULL.
 */
#define _GNU_SOURCE
#include "mms_int.h"
#include "io.h"
#include "runset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* One change to the free or pending set (see the top: persistence). */
enum {
	FL_FREE_ADD = 1, /* [start, start+n) joins free */
	FL_FREE_DEL,     /* what free holds of [start, start+n) leaves it */
	FL_PEND_ADD,
	FL_PEND_DEL,
	FL_PEND_FREED,   /* a sync: every pending run joins free */
};

struct mms_jop {
	uint64_t start;
	uint32_t n;
	uint8_t op;
};

struct mms_journal {
	struct mms_jop *e;
	size_t n, cap;
	int over; /* more changes than a log commit takes: rewrite the base */
};

/* The log's tail in the meta page (format 5, with a base): le32 number of
 * changes at 240, then the changes as in a log page, up to the SHARE root. */
#define MMS_META_TAIL 240u
#define MMS_META_TAIL_MAX ((MMS_META_SHARE_ROOT - MMS_META_TAIL - 4u) / 12u)

struct mms_alloc_state {
	struct mms_runset free, pending, fresh, txn_free, txn_alloc, punch;
	struct mms_runset punch_now; /* became free: punch once the meta is written */
	struct mms_runset written;   /* MMS_CACHE_ONCE: see the top */
	/* runs a sync made free, kept in pending while the caller punches
	 * them without its lock (mms_sync_end_keep): no meta a crash recovers
	 * reaches them, and nothing may take them until mms_alloc_release_held */
	struct mms_runset held;
	struct mms_runset drop_later; /* written runs a keep-sync left to drop */
	/* changes to free and pending since the last commit (see the top) */
	struct mms_journal jr;
	int journal_on;        /* a base exists: the next commit may log */
	/* the persisted base (blob mode): its entries and crc, repeated in the
	 * meta of every commit that only adds log pages */
	uint32_t base_nfree, base_npend, base_crc;
	uint64_t *log;         /* log pages, oldest first */
	size_t nlog, caplog;
	uint32_t log_crc;      /* crc of the newest log page */
	/* the log's tail (format 5): changes after the newest log page, kept
	 * in the meta page, oldest first */
	struct mms_jop tail[MMS_META_TAIL_MAX];
	size_t ntail;
	uint64_t limit;        /* vacuum: allocate below this page only */
	int punch_ok;          /* the host filesystem punches holes */
	/* Free runs that may still hold bytes on disk, for the punching at
	 * close (mms_alloc_punch_free): every free run when punch_all (the
	 * meta loaded did not say MMS_META_HOLES, or too many were noted),
	 * else the runs noted in unp since (appended unsorted: a note costs
	 * a store, on the path of every commit). */
	int punch_all;
	struct mms_run *unp;
	size_t nunp, capunp;
	size_t load_pending;   /* pending runs the meta loaded listed (a synced one: now free) */
	/* The free list is read on first use, not at open: open stays two page
	 * reads however fragmented the store is. */
	int loaded, load_synced, load_rc;
	pthread_mutex_t load_lock;
};

static int mms_alloc_load(mms_env *env, const uint8_t *metapg, int synced);

/* Load the free list of the meta chosen at open, once. */
static int mms_alloc_ready(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	if (__atomic_load_n(&a->loaded, __ATOMIC_ACQUIRE))
		return a->load_rc;
	pthread_mutex_lock(&a->load_lock);
	if (!a->loaded) {
		a->load_rc = mms_alloc_load(env, env->meta_page, a->load_synced);
		__atomic_store_n(&a->loaded, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&a->load_lock);
	return a->load_rc;
}

#define MMS_GROW_MIN 256ull     /* 1 MiB */
#define MMS_GROW_MAX 16384ull   /* 64 MiB */
#define MMS_META_INLINE_OFF 224u
/* The inline free list ends where the roots at the end of the meta page
 * start: the LINK root, and from format 3 the SHARE root before it. */
static unsigned mms_meta_inline_end(uint32_t version)
{
	return version >= MMS_FORMAT_V3 ? MMS_META_SHARE_ROOT : MMS_META_LINK_ROOT;
}

/* Free-list entries a meta page of the env's version holds inline. */
static unsigned mms_meta_inline_max(const mms_env *env)
{
	return (mms_meta_inline_end(env->meta.version) - MMS_META_INLINE_OFF) / 12u;
}
#define MMS_RUN_MAXN 0xffffffffull /* a serialized run holds at most this many pages */

/* Test builds keep at most this many entries inline (0: as many as fit), so
 * that small stores write a base and a log.  Only the writer obeys it: a
 * reader takes what the meta holds. */
#ifdef MMS_TEST_HOOKS
unsigned mms_alloc_test_inline_max;
#define MMS_TEST_INLINE_MAX mms_alloc_test_inline_max
#else
#define MMS_TEST_INLINE_MAX 0u
#endif

#ifdef MMS_TEST_HOOKS
unsigned mms_alloc_test_tail_max;
#define MMS_TEST_TAIL_MAX mms_alloc_test_tail_max
#else
#define MMS_TEST_TAIL_MAX 0u
#endif

/* Entries a commit keeps inline at most. */
static unsigned mms_meta_inline_keep(const mms_env *env)
{
	unsigned max = mms_meta_inline_max(env);
	return MMS_TEST_INLINE_MAX && MMS_TEST_INLINE_MAX < max ? MMS_TEST_INLINE_MAX : max;
}

/* ---- the journal: every change to free and pending ------------------------- */

/* A log page: crc32c of bytes 4.., "MMFL", its own number, the generation
 * of the commit that wrote it, the log page before it (0: the base is
 * next) and that page's crc, the number of entries, then the entries: le64
 * (op << 56 | first page), le32 pages. */
#define MMS_LOG_HDR 40u
#define MMS_LOG_PER_PAGE ((MMS_PAGE_SIZE - MMS_LOG_HDR) / 12u)
#define MMS_LOG_MIN_PAGES 4u /* log pages allowed over a base of fewer pages */
#define MMS_JOURNAL_MAX (8u * MMS_LOG_PER_PAGE) /* one log commit's most changes */
static const uint8_t mms_log_magic[4] = { 'M', 'M', 'F', 'L' };

/* Changes a commit leaves in the meta's tail at most (0: it keeps none). */
static unsigned mms_meta_tail_keep(const mms_env *env)
{
	if (env->meta.version < MMS_FORMAT_V5)
		return 0;
	return MMS_TEST_TAIL_MAX && MMS_TEST_TAIL_MAX < MMS_META_TAIL_MAX ? MMS_TEST_TAIL_MAX
	                                                                  : MMS_META_TAIL_MAX;
}

/* Encode one change (a journal entry) where a log page or the tail keeps
 * it, and decode it back. */
static void mms_jop_put(uint8_t *p, const struct mms_jop *o)
{
	mms_put_le64(p, (uint64_t)o->op << 56 | o->start);
	mms_put_le32(p + 8, o->n);
}

static struct mms_jop mms_jop_get(const uint8_t *p)
{
	uint64_t v = mms_get_le64(p);
	return (struct mms_jop){ .start = v & ((1ull << 56) - 1), .n = mms_get_le32(p + 8),
	                         .op = (uint8_t)(v >> 56) };
}

static void jr_note(struct mms_alloc_state *a, unsigned op, uint64_t start, uint64_t n)
{
	struct mms_journal *j = &a->jr;
	size_t parts = n ? (size_t)((n + MMS_RUN_MAXN - 1) / MMS_RUN_MAXN) : 1;
	if (!a->journal_on || j->over)
		return; /* (no base: the next commit writes the whole list) */
	if (j->n + parts > MMS_JOURNAL_MAX) {
		j->over = 1; /* the commit rewrites the base instead */
		return;
	}
	if (j->n + parts > j->cap) {
		size_t ncap = j->cap ? j->cap * 2 : 64;
		while (ncap < j->n + parts)
			ncap *= 2;
		struct mms_jop *ne = realloc(j->e, ncap * sizeof(*ne));
		if (!ne) {
			j->over = 1; /* no memory to note it: the base says it all */
			return;
		}
		j->e = ne;
		j->cap = ncap;
	}
	do {
		uint64_t k = n > MMS_RUN_MAXN ? MMS_RUN_MAXN : n;
		j->e[j->n++] = (struct mms_jop){ .start = start, .n = (uint32_t)k, .op = (uint8_t)op };
		start += k;
		n -= k;
	} while (n);
}

static void jr_clear(struct mms_alloc_state *a)
{
	a->jr.n = 0;
	a->jr.over = 0;
}

/* Past this many noted runs, the close punches every free run instead. */
#define MMS_UNP_MAX 65536u

/* [start, start+n) became free and may hold bytes on disk. */
static void unp_note(struct mms_alloc_state *a, uint64_t start, uint64_t n)
{
	if (a->punch_all || !n)
		return;
	if (a->nunp == a->capunp) {
		size_t ncap = a->capunp ? a->capunp * 2 : 256;
		struct mms_run *nu = ncap <= MMS_UNP_MAX ? realloc(a->unp, ncap * sizeof(*nu)) : NULL;
		if (!nu) {
			a->punch_all = 1; /* (no memory, or many runs: punch them all) */
			a->nunp = 0;
			return;
		}
		a->unp = nu;
		a->capunp = ncap;
	}
	a->unp[a->nunp++] = (struct mms_run){ start, n };
}

/* The only changes made to the persisted sets: each is journaled. */
static int fl_free_add(struct mms_alloc_state *a, uint64_t start, uint64_t n)
{
	int rc = mms_rs_add(&a->free, start, n);
	if (!rc && n) {
		jr_note(a, FL_FREE_ADD, start, n);
		unp_note(a, start, n);
	}
	return rc;
}

static int fl_free_del(struct mms_alloc_state *a, uint64_t start, uint64_t n)
{
	int rc = mms_rs_remove(&a->free, start, n);
	if (!rc && n)
		jr_note(a, FL_FREE_DEL, start, n);
	return rc;
}

static int fl_pend_add(struct mms_alloc_state *a, uint64_t start, uint64_t n)
{
	int rc = mms_rs_add(&a->pending, start, n);
	if (!rc && n)
		jr_note(a, FL_PEND_ADD, start, n);
	return rc;
}

static int fl_pend_del(struct mms_alloc_state *a, uint64_t start, uint64_t n)
{
	int rc = mms_rs_remove(&a->pending, start, n);
	if (!rc && n)
		jr_note(a, FL_PEND_DEL, start, n);
	return rc;
}

/* ---- accounting ------------------------------------------------------------- */

static void mms_count(mms_env *env, unsigned kind, int64_t delta)
{
	if (kind & MMS_ALLOC_TREE)
		env->meta.tree_pages += (uint64_t)delta;
	else if (kind & MMS_ALLOC_DATA)
		env->meta.data_pages += (uint64_t)delta;
	else
		env->meta.blob_pages += (uint64_t)delta;
}

static void mms_punch(mms_env *env, uint64_t start, uint64_t n)
{
	struct mms_alloc_state *a = env->alloc;
	if (!__atomic_load_n(&a->punch_ok, __ATOMIC_RELAXED) || (env->flags & MMS_RDONLY))
		return;
	int rc = mms_io_punch(env->fd, start * MMS_PAGE_SIZE, n * MMS_PAGE_SIZE);
	if (rc == EOPNOTSUPP || rc == ENOSYS)
		__atomic_store_n(&a->punch_ok, 0, __ATOMIC_RELAXED);
}

/* [start, start+n) becomes free: the parts that held data are punched
 * once the meta that stops reaching them is written (mms_alloc_punch). */
static int mms_punch_later(mms_env *env, uint64_t start, uint64_t n)
{
	struct mms_alloc_state *a = env->alloc;
	uint64_t end = start + n;
	for (struct mms_rs_it it = mms_rs_seek(&a->punch, start); it.r && it.r->start < end;
	     mms_rs_next(&it)) {
		uint64_t lo = it.r->start > start ? it.r->start : start;
		uint64_t hi = it.r->start + it.r->n;
		if (hi > end)
			hi = end;
		/* not yet: the meta that stops reaching these pages may not be
		 * written; mms_alloc_punch() runs after it is */
		if (mms_rs_add(&a->punch_now, lo, hi - lo))
			break;
	}
	return mms_rs_remove(&a->punch, start, n);
}

/* Make [start, start+n) free, punching the parts that held data. */
static int mms_make_free(mms_env *env, uint64_t start, uint64_t n)
{
	int rc = mms_punch_later(env, start, n);
	return rc ? rc : fl_free_add(env->alloc, start, n);
}

/* ---- allocation ------------------------------------------------------------- */

static int mms_take(mms_env *env, uint64_t start, uint64_t n, unsigned kind)
{
	struct mms_alloc_state *a = env->alloc;
	int rc = fl_free_del(a, start, n);
	if (!rc)
		rc = mms_rs_remove(&a->punch_now, start, n);
	if (!rc)
		rc = mms_rs_reserve(&a->fresh);
	if (!rc)
		rc = mms_rs_reserve(&a->txn_alloc);
	if (rc)
		return rc;
	mms_rs_add(&a->fresh, start, n);
	mms_rs_add(&a->txn_alloc, start, n);
	mms_count(env, kind, (int64_t)n);
	/* only a cache to drop: not recorded if there is no memory for it */
	if ((env->flags & MMS_CACHE_ONCE) && kind != MMS_ALLOC_TREE &&
	    mms_rs_reserve(&a->written) == 0)
		mms_rs_add(&a->written, start, n);
	return 0;
}

/* The free run that ends where the file does, or NULL. */
static const struct mms_run *mms_free_tail(mms_env *env)
{
	const struct mms_run *last = mms_rs_last(&env->alloc->free);
	return last && last->start + last->n == env->meta.file_pages ? last : NULL;
}

/* Grow the file so that a run of n pages is free at its end. */
static int mms_grow(mms_env *env, uint64_t n)
{
	struct mms_alloc_state *a = env->alloc;
	uint64_t end = env->meta.file_pages;
	const struct mms_run *tail = mms_free_tail(env);
	uint64_t have = tail ? tail->n : 0;
	if (a->limit)
		return mms_fail(env, MMS_FULL, "no free run of %llu pages below page %llu",
		                (unsigned long long)n, (unsigned long long)a->limit);
	uint64_t need = n - have;
	uint64_t step = end / 4;
	if (step < MMS_GROW_MIN)
		step = MMS_GROW_MIN;
	if (step > MMS_GROW_MAX)
		step = MMS_GROW_MAX;
	if (step < need)
		step = need;
	uint64_t max = env->meta.max_pages;
	if (max && end + need > max)
		return mms_fail(env, MMS_FULL, "the store would grow past its max_size of %llu bytes",
		                (unsigned long long)(max * MMS_PAGE_SIZE));
	if (max && end + step > max)
		step = max - end;
	if (end + step > MMS_FILE_PAGES_MAX)
		return mms_fail(env, MMS_FULL, "the store file would exceed the largest supported size");
	int rc = mms_rs_reserve(&a->free);
	if (!rc)
		rc = mms_file_grow(env, end + step);
	if (rc)
		return rc;
	return fl_free_add(a, end, step);
}

static int mms_first_fit(mms_env *env, uint64_t n, uint64_t *pgno)
{
	struct mms_alloc_state *a = env->alloc;
	struct mms_rs_it it = mms_rs_fit(&a->free, n);
	/* (runs are in address order: if this one ends past the limit, any
	 * before it that fits would too) */
	if (!it.r || (a->limit && it.r->start + n > a->limit))
		return MMS_NOTFOUND;
	*pgno = it.r->start;
	return 0;
}

int mms_alloc(mms_env *env, uint64_t n, unsigned kind, uint64_t *pgno)
{
	int lrc = mms_alloc_ready(env);
	if (lrc)
		return lrc;
	uint64_t p;
	if (n == 0)
		return MMS_INVAL;
	if (mms_first_fit(env, n, &p)) {
		int rc = mms_grow(env, n);
		if (rc)
			return rc;
		if (mms_first_fit(env, n, &p))
			return mms_fail(env, MMS_FULL, "no run of %llu pages after growth", (unsigned long long)n);
	}
	int rc = mms_take(env, p, n, kind);
	if (!rc)
		*pgno = p;
	return rc;
}

int mms_alloc_at(mms_env *env, uint64_t at, uint64_t n, unsigned kind, uint64_t *got)
{
	int lrc = mms_alloc_ready(env);
	if (lrc)
		return lrc;
	struct mms_alloc_state *a = env->alloc;
	if (n == 0)
		return MMS_INVAL;
	if (a->limit && at >= a->limit) {
		*got = 0;
		return 0;
	}
	if (at == env->meta.file_pages) {
		int rc = mms_grow(env, 1);
		if (rc == MMS_FULL) {
			*got = 0;
			return 0;
		}
		if (rc)
			return rc;
	}
	struct mms_rs_it it = mms_rs_seek(&a->free, at);
	if (!it.r || it.r->start > at) {
		*got = 0;
		return 0;
	}
	uint64_t avail = it.r->start + it.r->n - at;
	if (a->limit && at + avail > a->limit)
		avail = a->limit - at;
	uint64_t take = n < avail ? n : avail;
	int rc = mms_take(env, at, take, kind);
	if (!rc)
		*got = take;
	return rc;
}

int mms_alloc_some(mms_env *env, uint64_t n, unsigned kind, uint64_t *pgno, uint64_t *got)
{
	int lrc = mms_alloc_ready(env);
	if (lrc)
		return lrc;
	struct mms_alloc_state *a = env->alloc;
	uint64_t p;
	if (n == 0)
		return MMS_INVAL;
	if (!mms_first_fit(env, n, &p)) {
		int rc = mms_take(env, p, n, kind);
		if (!rc) {
			*pgno = p;
			*got = n;
		}
		return rc;
	}
	int rc = mms_grow(env, n);
	if (!rc)
		return mms_alloc_some(env, n, kind, pgno, got);
	if (rc != MMS_FULL)
		return rc;
	/* No room for all of it: take the largest run there is. */
	const struct mms_run *best = NULL;
	for (struct mms_rs_it it = mms_rs_begin(&a->free); it.r; mms_rs_next(&it)) {
		uint64_t len = it.r->n;
		if (a->limit) {
			if (it.r->start >= a->limit)
				break;
			if (it.r->start + len > a->limit)
				len = a->limit - it.r->start;
		}
		if (!best || len > best->n)
			best = it.r;
	}
	if (!best)
		return rc;
	p = best->start;
	uint64_t len = best->n;
	if (a->limit && p + len > a->limit)
		len = a->limit - p;
	if (len > n)
		len = n;
	rc = mms_take(env, p, len, kind);
	if (!rc) {
		*pgno = p;
		*got = len;
	}
	return rc;
}

struct mms_free_ctx {
	mms_env *env;
	int rc;
};

static int mms_free_part(void *vctx, uint64_t start, uint64_t n, int in_txn)
{
	struct mms_free_ctx *ctx = vctx;
	struct mms_alloc_state *a = ctx->env->alloc;
	int rc;
	if (in_txn) {
		/* allocated by this transaction: no meta reaches it */
		rc = mms_rs_remove(&a->txn_alloc, start, n);
		if (!rc)
			rc = mms_rs_remove(&a->fresh, start, n);
		if (!rc)
			rc = mms_make_free(ctx->env, start, n);
	} else {
		rc = mms_rs_add(&a->txn_free, start, n);
	}
	if (rc && !ctx->rc)
		ctx->rc = rc;
	return 0;
}

void mms_free(mms_env *env, uint64_t pgno, uint64_t n, unsigned kind)
{
	if (mms_alloc_ready(env)) {
		mms_txn_poison(env);
		return;
	}
	struct mms_alloc_state *a = env->alloc;
	struct mms_free_ctx ctx = { env, 0 };
	if (!n)
		return;
	/* Freeing what is already free means the structure that pointed at it
	 * is damaged: stop this transaction before the free list is. */
	const struct mms_runset *sets[] = { &a->free, &a->pending, &a->txn_free };
	for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
		if (mms_rs_overlaps(sets[k], pgno, n)) {
			mms_damaged(env, "pages %llu+%llu are freed twice (a damaged %s or free list)",
			            (unsigned long long)pgno, (unsigned long long)n,
			            (kind & MMS_ALLOC_TREE) ? "tree" : (kind & MMS_ALLOC_DATA) ? "extent" : "blob");
			return;
		}
	}
	mms_count(env, kind, -(int64_t)n);
	if (kind & (MMS_ALLOC_DATA | MMS_ALLOC_BLOB))
		mms_rs_add(&a->punch, pgno, n);  /* cannot overlap: the pages were live */
	mms_rs_split(&a->txn_alloc, pgno, n, mms_free_part, &ctx);
	if (ctx.rc)
		mms_txn_poison(env); /* out of memory: the free state is unknown */
}

int mms_zero_pages(mms_env *env, uint64_t pgno, uint64_t n)
{
	int rc = mms_io_zero_alloc(env->fd, pgno * MMS_PAGE_SIZE, n * MMS_PAGE_SIZE);
	if (rc)
		return mms_fail(env, rc, "cannot zero pages %llu+%llu: %s", (unsigned long long)pgno,
		                (unsigned long long)n, strerror(rc));
	return 0;
}

int mms_alloc_writable(mms_env *env, uint64_t pgno, uint64_t n, uint64_t *run)
{
	struct mms_rs_it it = mms_rs_seek(&env->alloc->fresh, pgno);
	if (it.r && it.r->start <= pgno) {
		uint64_t end = it.r->start + it.r->n;
		*run = end - pgno < n ? end - pgno : n;
		return 1;
	}
	uint64_t next = it.r ? it.r->start : UINT64_MAX;
	*run = next - pgno < n ? next - pgno : n;
	return 0;
}

int mms_alloc_settle(mms_env *env, uint64_t pgno, uint64_t n)
{
	if (mms_rs_remove(&env->alloc->fresh, pgno, n))
		return mms_fail(env, ENOMEM, "out of memory for the allocator's sets");
	return 0;
}

bool mms_alloc_stable(mms_env *env, uint64_t pgno, uint64_t n)
{
	uint64_t run;
	return n == 0 || (!mms_alloc_writable(env, pgno, n, &run) && run == n);
}

/* Entries [start, start+n) adds to the free list when split by `fresh`
 * (each part goes to free or to pending) - an exact bound, not a guess. */
static int mms_count_part(void *vctx, uint64_t start, uint64_t n, int fresh)
{
	(void)start;
	(void)fresh;
	*(uint64_t *)vctx += (n + MMS_RUN_MAXN - 1) / MMS_RUN_MAXN;
	return 0;
}

/* Entries (or changes) the frees of the open transaction add at its commit. */
static uint64_t mms_txn_free_parts(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	uint64_t e = 0;
	for (struct mms_rs_it it = mms_rs_begin(&a->txn_free); it.r; mms_rs_next(&it))
		mms_rs_split(&a->fresh, it.r->start, it.r->n, mms_count_part, &e);
	return e;
}

/* The most entries the free list can have once this transaction's frees
 * apply: every part of a freed run can be a run of its own, and the free
 * list blob's own allocation can split one more.  exact: with the parts
 * of the freed runs (`parts`, mms_txn_free_parts: a pass over them, once
 * per commit) and of the old blob and log; else an O(1) bound (a
 * freed run splits at most at both ends of each fresh run: every call's
 * reservation asks, and must not cost a pass). */
static uint64_t mms_commit_entries(mms_env *env, int exact, uint64_t parts)
{
	struct mms_alloc_state *a = env->alloc;
	/* a run of n pages takes ceil(n / MMS_RUN_MAXN) entries: at most
	 * runs + pages / MMS_RUN_MAXN in all, a bound that costs O(1) */
	uint64_t e = a->free.n + a->free.total / MMS_RUN_MAXN + a->pending.n +
	             a->pending.total / MMS_RUN_MAXN + 8;
	if (!exact)
		return e + a->txn_free.n + a->txn_free.total / MMS_RUN_MAXN + 1 +
		       env->meta.free_blob_pages / MMS_RUN_MAXN + 4 * a->fresh.n + a->nlog;
	e += parts;
	if (env->meta.free_blob)
		mms_rs_split(&a->fresh, env->meta.free_blob, env->meta.free_blob_pages, mms_count_part, &e);
	for (size_t i = 0; i < a->nlog; i++)
		mms_rs_split(&a->fresh, a->log[i], 1, mms_count_part, &e);
	return e;
}

/* Pages one commit may need for the free list blob beyond what is free now. */
static uint64_t mms_commit_need(mms_env *env)
{
	uint64_t entries = mms_commit_entries(env, 0, 0);
	if (entries <= mms_meta_inline_keep(env))
		return 0;
	return (entries * 12 + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE + 1;
}

/*
 * Calls that add data keep a floor of pages unused, so that calls that give
 * space back (unlink, truncate, punch, rename, chmod...) still find the few
 * pages their copy-on-write needs when the store is full: a full store can
 * always be emptied.
 */
int mms_alloc_room(mms_env *env, uint64_t n, bool keep_floor, bool *sync_helps)
{
	int lrc = mms_alloc_ready(env);
	if (lrc)
		return lrc;
	struct mms_alloc_state *a = env->alloc;
	uint64_t floor = 0;
	if (keep_floor) {
		floor = env->meta.max_pages / 16;
		if (floor > 64)
			floor = 64;
	}
	uint64_t need = n + mms_commit_need(env) + 8 + floor;
	*sync_helps = false;
	if (!env->meta.max_pages || a->limit)
		return 0; /* unlimited: the host disk decides */
	if (a->free.total + (env->meta.max_pages - env->meta.file_pages) >= need)
		return 0;
	/* pending runs become free at the next sync; the open transaction's
	 * frees at its commit */
	*sync_helps = a->pending.total || a->txn_free.total;
	return mms_fail(env, MMS_FULL, "the store is full: %llu more pages needed, max_size is %llu bytes",
	                (unsigned long long)n, (unsigned long long)(env->meta.max_pages * MMS_PAGE_SIZE));
}

/* ---- persistence ---------------------------------------------------------- */

static uint64_t rs_entries(const struct mms_runset *s)
{
	uint64_t e = 0;
	for (struct mms_rs_it it = mms_rs_begin(s); it.r; mms_rs_next(&it))
		e += (it.r->n + MMS_RUN_MAXN - 1) / MMS_RUN_MAXN;
	return e;
}

static uint8_t *rs_write(const struct mms_runset *s, uint8_t *p)
{
	for (struct mms_rs_it it = mms_rs_begin(s); it.r; mms_rs_next(&it)) {
		uint64_t st = it.r->start, left = it.r->n;
		while (left) {
			uint64_t k = left > MMS_RUN_MAXN ? MMS_RUN_MAXN : left;
			mms_put_le64(p, st);
			mms_put_le32(p + 8, (uint32_t)k);
			p += 12;
			st += k;
			left -= k;
		}
	}
	return p;
}

struct mms_commit_ctx {
	mms_env *env;
	int rc;
};

static int mms_commit_part(void *vctx, uint64_t start, uint64_t n, int fresh)
{
	struct mms_commit_ctx *ctx = vctx;
	struct mms_alloc_state *a = ctx->env->alloc;
	int rc;
	if (fresh) {
		/* only the meta this commit replaces reaches it */
		rc = mms_rs_remove(&a->fresh, start, n);
		if (!rc)
			rc = mms_make_free(ctx->env, start, n);
	} else {
		rc = fl_pend_add(a, start, n);
	}
	if (rc && !ctx->rc)
		ctx->rc = rc;
	return 0;
}

/* The meta's free-list fields when the list is not inline: the base's
 * entries and crc at 208, the newest log page, the log's pages and that
 * page's crc at 224. */
#define MMS_META_LOG 224u
static void mms_meta_put_list(const struct mms_alloc_state *a, uint8_t *metapg)
{
	mms_put_le32(metapg + 208, a->base_nfree);
	mms_put_le32(metapg + 212, a->base_npend);
	mms_put_le32(metapg + 216, a->base_crc);
	mms_put_le64(metapg + MMS_META_LOG, a->nlog ? a->log[a->nlog - 1] : 0);
	mms_put_le32(metapg + MMS_META_LOG + 8, (uint32_t)a->nlog);
	mms_put_le32(metapg + MMS_META_LOG + 12, a->log_crc);
	/* (a meta of format 4 has no tail: mms_log_plan kept it empty) */
	mms_put_le32(metapg + MMS_META_TAIL, (uint32_t)a->ntail);
	for (size_t i = 0; i < a->ntail; i++)
		mms_jop_put(metapg + MMS_META_TAIL + 4 + i * 12, &a->tail[i]);
}

/* Log pages this commit adds (0: its changes fit in the meta's tail, or
 * there are none), or -1: it rewrites the base instead (see the top).
 * parts: mms_txn_free_parts(). */
static int64_t mms_log_plan(mms_env *env, uint64_t parts)
{
	struct mms_alloc_state *a = env->alloc;
	if (env->meta.version < MMS_FORMAT_V4 || !env->meta.free_blob || !a->journal_on ||
	    a->jr.over || a->limit)
		return -1;
	uint64_t changes = a->jr.n + parts;
	if (!changes)
		return 0;
	if (changes + 2 > MMS_JOURNAL_MAX)
		return -1; /* the journal could not note them all */
	/* without log pages to allocate, the changes are the journal's and
	 * the parts of the frees, exactly */
	if (a->ntail + changes <= mms_meta_tail_keep(env))
		return 0;
	/* the tail moves to the new pages with the changes, + the log pages'
	 * own allocation and a growth of the file for it */
	uint64_t k = (a->ntail + changes + 2 + MMS_LOG_PER_PAGE - 1) / MMS_LOG_PER_PAGE;
	/* the log stays within what a new base would take */
	uint64_t max = ((uint64_t)(a->free.n + a->pending.n) * 12 + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
	if (max < MMS_LOG_MIN_PAGES)
		max = MMS_LOG_MIN_PAGES;
	return a->nlog + k > max ? -1 : (int64_t)k;
}

/* The open transaction's frees take effect (a commit, once its free-list
 * pages are allocated): each part to free (only the replaced meta reached
 * it) or to pending. */
static int mms_apply_txn_frees(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	struct mms_commit_ctx ctx = { env, 0 };
	for (struct mms_rs_it it = mms_rs_begin(&a->txn_free); it.r; mms_rs_next(&it))
		mms_rs_split(&a->fresh, it.r->start, it.r->n, mms_commit_part, &ctx);
	mms_rs_clear(&a->txn_free);
	return ctx.rc;
}

/* Keep the journal in the tail (a log commit of no pages). */
static int mms_tail_append(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	if (a->ntail + a->jr.n > MMS_META_TAIL_MAX || (a->jr.n && env->meta.version < MMS_FORMAT_V5))
		return mms_fail(env, EOVERFLOW, "free-list log outgrew its bound");
	if (a->jr.n) /* (a commit of no changes may have no journal yet) */
		memcpy(a->tail + a->ntail, a->jr.e, a->jr.n * sizeof(*a->tail));
	a->ntail += a->jr.n;
	return 0;
}

/* A commit that appends k log pages to the persisted free list, holding
 * the tail and this commit's changes (k = 0: the changes join the tail). */
static int mms_log_commit(mms_env *env, uint8_t *metapg, uint64_t k)
{
	struct mms_alloc_state *a = env->alloc;
	uint64_t pg = 0;
	uint8_t *buf = NULL;
	int rc = 0;

	if (a->nlog + k > a->caplog) {
		size_t ncap = a->caplog ? a->caplog * 2 : 16;
		while (ncap < a->nlog + k)
			ncap *= 2;
		uint64_t *nl = realloc(a->log, ncap * sizeof(*nl));
		if (!nl)
			return ENOMEM;
		a->log = nl;
		a->caplog = ncap;
	}
	/* the pages first: the runs this commit frees are still reachable
	 * from the meta it replaces */
	if (k && (rc = mms_alloc(env, k, MMS_ALLOC_BLOB, &pg)))
		return rc;
	if ((rc = mms_apply_txn_frees(env)))
		return rc;
	if (a->jr.over || (k && a->ntail + a->jr.n > k * MMS_LOG_PER_PAGE))
		return mms_fail(env, EOVERFLOW, "free-list log outgrew its bound");
	if (!k && (rc = mms_tail_append(env)))
		return rc;
	if (k) {
		if (posix_memalign((void **)&buf, MMS_PAGE_SIZE, k * MMS_PAGE_SIZE))
			return ENOMEM;
		memset(buf, 0, k * MMS_PAGE_SIZE);
		uint64_t prev = a->nlog ? a->log[a->nlog - 1] : 0;
		uint32_t prev_crc = a->log_crc;
		/* the tail's changes first: they are older */
		size_t at = 0, all = a->ntail + a->jr.n;
		for (uint64_t j = 0; j < k; j++) {
			uint8_t *p = buf + j * MMS_PAGE_SIZE;
			size_t cnt = all - at < MMS_LOG_PER_PAGE ? all - at : MMS_LOG_PER_PAGE;
			memcpy(p + 4, mms_log_magic, 4);
			mms_put_le64(p + 8, pg + j);
			mms_put_le64(p + 16, env->meta.generation + 1);
			mms_put_le64(p + 24, prev);
			mms_put_le32(p + 32, prev_crc);
			mms_put_le32(p + 36, (uint32_t)cnt);
			for (size_t i = 0; i < cnt; i++, at++)
				mms_jop_put(p + MMS_LOG_HDR + i * 12,
				            at < a->ntail ? &a->tail[at] : &a->jr.e[at - a->ntail]);
			prev_crc = mms_crc32c(0, p + 4, MMS_PAGE_SIZE - 4);
			mms_put_le32(p, prev_crc);
			prev = pg + j;
		}
		rc = mms_io_pwrite(env->fd, buf, k * MMS_PAGE_SIZE, pg * MMS_PAGE_SIZE);
		free(buf);
		if (rc)
			return mms_fail(env, rc, "cannot write the free list: %s", strerror(rc));
		for (uint64_t j = 0; j < k; j++)
			a->log[a->nlog++] = pg + j;
		a->log_crc = prev_crc;
		a->ntail = 0;
	}
	jr_clear(a);
	mms_meta_put_list(a, metapg);
	mms_rs_clear(&a->txn_alloc);
	return 0;
}

/* A commit that writes the whole free list: inline, or as a new base
 * (which drops the log).  bound: mms_commit_entries(env, 1, parts). */
static int mms_base_commit(mms_env *env, uint8_t *metapg, uint64_t bound)
{
	struct mms_alloc_state *a = env->alloc;
	struct mms_commit_ctx ctx = { env, 0 };
	uint8_t *blob = NULL;
	uint64_t blob_pg = 0, blob_pages = 0;
	int rc;

	/*
	 * The blob for the new free list is allocated first: the runs this
	 * commit frees are still reachable from the meta it replaces, so
	 * nothing may be written over them before that meta is gone.  Its size
	 * comes from an upper bound of the entries after the frees apply.
	 */
	if (bound > mms_meta_inline_keep(env)) {
		blob_pages = (bound * 12 + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
		rc = mms_alloc(env, blob_pages, MMS_ALLOC_BLOB, &blob_pg);
		if (rc)
			return rc;
	}

	ctx.rc = mms_apply_txn_frees(env);
	/* the previous free-list blob and log are replaced by this commit */
	if (env->meta.free_blob) {
		mms_count(env, MMS_ALLOC_BLOB, -(int64_t)env->meta.free_blob_pages);
		mms_rs_split(&a->fresh, env->meta.free_blob, env->meta.free_blob_pages, mms_commit_part, &ctx);
	}
	for (size_t i = 0; i < a->nlog; i++) {
		mms_count(env, MMS_ALLOC_BLOB, -1);
		mms_rs_split(&a->fresh, a->log[i], 1, mms_commit_part, &ctx);
	}
	a->nlog = 0;
	a->log_crc = 0;
	a->ntail = 0;
	if (ctx.rc)
		return ctx.rc;
	env->meta.free_blob = blob_pg;
	env->meta.free_blob_pages = blob_pages;

	uint64_t nfree = rs_entries(&a->free), npend = rs_entries(&a->pending);
	if (blob_pages) {
		if ((nfree + npend) * 12 > blob_pages * MMS_PAGE_SIZE)
			return mms_fail(env, EOVERFLOW, "free list outgrew its bound");
		blob = calloc(blob_pages, MMS_PAGE_SIZE);
		if (!blob)
			return ENOMEM;
		uint8_t *end = rs_write(&a->pending, rs_write(&a->free, blob));
		size_t len = (size_t)(end - blob);
		rc = mms_io_pwrite(env->fd, blob, blob_pages * MMS_PAGE_SIZE, blob_pg * MMS_PAGE_SIZE);
		if (rc)
			rc = mms_fail(env, rc, "cannot write the free list: %s", strerror(rc));
		a->base_crc = rc ? 0 : mms_crc32c(0, blob, len);
		free(blob);
		if (rc)
			return rc;
		a->base_nfree = (uint32_t)nfree;
		a->base_npend = (uint32_t)npend;
		a->journal_on = 1;
		mms_meta_put_list(a, metapg);
	} else {
		if (nfree + npend > mms_meta_inline_max(env))
			return mms_fail(env, EOVERFLOW, "free list outgrew its bound");
		/* (metapg is all zero: the rest of the inline area stays so) */
		rs_write(&a->pending, rs_write(&a->free, metapg + MMS_META_INLINE_OFF));
		mms_put_le32(metapg + 208, (uint32_t)nfree);
		mms_put_le32(metapg + 212, (uint32_t)npend);
		mms_put_le32(metapg + 216, 0);
		a->base_nfree = a->base_npend = a->base_crc = 0;
		a->journal_on = 0;
	}
	jr_clear(a);
	mms_rs_clear(&a->txn_alloc);
	return 0;
}

int mms_alloc_commit(mms_env *env, uint8_t *metapg)
{
	int lrc = mms_alloc_ready(env);
	if (lrc)
		return lrc;
	/* entries (or changes) the transaction's frees add, counted once */
	uint64_t parts = mms_txn_free_parts(env);
	uint64_t bound = mms_commit_entries(env, 1, parts);
	if (bound > mms_meta_inline_keep(env)) {
		int64_t k = mms_log_plan(env, parts);
		if (k >= 0)
			return mms_log_commit(env, metapg, (uint64_t)k);
	}
	return mms_base_commit(env, metapg, bound);
}

/* Runs this long are punched at the commit that frees them; shorter ones
 * wait for the next sync, where neighbours have often joined them (one
 * syscall for many small files deleted). */
#define MMS_PUNCH_NOW 16u

/* mms_rs_filter callback: punch a long run, which then leaves the set. */
static bool mms_punch_long(void *vctx, const struct mms_run *r)
{
	if (r->n < MMS_PUNCH_NOW)
		return false;
	mms_punch(vctx, r->start, r->n);
	return true;
}

void mms_alloc_punch(mms_env *env)
{
	if (mms_alloc_ready(env))
		return;
	mms_rs_filter(&env->alloc->punch_now, mms_punch_long, env);
}

static int mms_run_cmp(const void *x, const void *y)
{
	const struct mms_run *a = x, *b = y;
	return a->start < b->start ? -1 : a->start > b->start;
}

/* mms_rs_split callback: punch the parts of a noted run that are free. */
static int mms_punch_part(void *vctx, uint64_t start, uint64_t n, int in)
{
	if (in)
		mms_punch(vctx, start, n);
	return 0;
}

void mms_alloc_punch_free(mms_env *env)
{
	if (mms_alloc_ready(env))
		return;
	struct mms_alloc_state *a = env->alloc;
	if (a->punch_all) {
		for (struct mms_rs_it it = mms_rs_begin(&a->free); it.r; mms_rs_next(&it))
			mms_punch(env, it.r->start, it.r->n);
	} else {
		/* only what became free since the free list was known to be
		 * holes: the noted runs, joined where they touch, and of them
		 * what is still free */
		if (a->nunp)
			qsort(a->unp, a->nunp, sizeof(*a->unp), mms_run_cmp);
		for (size_t i = 0; i < a->nunp;) {
			uint64_t st = a->unp[i].start, end = st + a->unp[i].n;
			for (i++; i < a->nunp && a->unp[i].start <= end; i++)
				if (a->unp[i].start + a->unp[i].n > end)
					end = a->unp[i].start + a->unp[i].n;
			mms_rs_split(&a->free, st, end - st, mms_punch_part, env);
		}
	}
	/* (a host that cannot punch: nothing is a hole) */
	a->punch_all = !__atomic_load_n(&a->punch_ok, __ATOMIC_RELAXED);
	a->nunp = 0;
	mms_rs_clear(&a->punch_now);
}

bool mms_alloc_free_punched(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	return a && a->loaded && !a->load_rc && !a->punch_all && a->nunp == 0;
}

size_t mms_alloc_loaded_pending(mms_env *env)
{
	return env->alloc ? env->alloc->load_pending : 0;
}

/* Keep the held runs in pending (after a reload or a sync made them
 * free). */
static int mms_rehold(struct mms_alloc_state *a)
{
	int rc = 0;
	for (struct mms_rs_it it = mms_rs_begin(&a->held); it.r && !rc; mms_rs_next(&it)) {
		struct mms_run r = *it.r;
		rc = fl_free_del(a, r.start, r.n);
		if (!rc)
			rc = fl_pend_del(a, r.start, r.n);
		if (!rc)
			rc = fl_pend_add(a, r.start, r.n);
	}
	return rc;
}

/* rs_split callback: hold the parts of a run that are free. */
static int mms_hold_part(void *vctx, uint64_t start, uint64_t n, int in)
{
	struct mms_alloc_state *a = vctx;
	return in ? mms_rs_add(&a->held, start, n) : 0;
}

struct mms_hold_ctx {
	struct mms_alloc_state *a;
	int rc;
};

/* mms_rs_filter callback: a long run of punch_now is held (what of it is
 * free), and leaves punch_now; after a failure, runs stay. */
static bool mms_hold_run(void *vctx, const struct mms_run *r)
{
	struct mms_hold_ctx *ctx = vctx;
	if (r->n < MMS_PUNCH_NOW || ctx->rc)
		return false;
	ctx->rc = mms_rs_split(&ctx->a->free, r->start, r->n, mms_hold_part, ctx->a);
	return ctx->rc == 0;
}

/* The long runs of punch_now move to held (and back to pending): only
 * what is free of them (a trim may have cut the file under a run). */
static int mms_hold_long(struct mms_alloc_state *a)
{
	struct mms_hold_ctx ctx = { a, 0 };
	mms_rs_filter(&a->punch_now, mms_hold_run, &ctx);
	return ctx.rc ? ctx.rc : mms_rehold(a);
}

int mms_alloc_punch_held(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	int rc = 0;
	for (struct mms_rs_it it = mms_rs_begin(&a->held);
	     it.r && __atomic_load_n(&a->punch_ok, __ATOMIC_RELAXED); mms_rs_next(&it)) {
		rc = mms_io_punch(env->fd, it.r->start * MMS_PAGE_SIZE, it.r->n * MMS_PAGE_SIZE);
		if (rc)
			__atomic_store_n(&a->punch_ok, 0, __ATOMIC_RELAXED);
	}
	return rc == EOPNOTSUPP ? 0 : rc;
}

void mms_alloc_drop_later(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	for (struct mms_rs_it it = mms_rs_begin(&a->drop_later); it.r; mms_rs_next(&it))
		mms_file_drop(env, it.r->start, it.r->n);
	mms_rs_clear(&a->drop_later);
}

void mms_alloc_release_held(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	for (struct mms_rs_it it = mms_rs_begin(&a->held); it.r; mms_rs_next(&it)) {
		struct mms_run r = *it.r;
		if (fl_pend_del(a, r.start, r.n) || fl_free_add(a, r.start, r.n))
			mms_txn_poison(env); /* out of memory: the free state is unknown */
	}
	mms_rs_clear(&a->held);
}

void mms_alloc_synced(mms_env *env, int keep)
{
	if (mms_alloc_ready(env)) {
		mms_txn_poison(env);
		return;
	}
	struct mms_alloc_state *a = env->alloc;
	/* pages the synced state reached become reusable: readers of them
	 * outside the caller's lock finish first (MMS_MAP_STABLE) */
	if (env->reuse_hook && a->pending.n)
		env->reuse_hook(env->reuse_ctx);
	for (struct mms_rs_it it = mms_rs_begin(&a->pending); it.r; mms_rs_next(&it)) {
		if (mms_punch_later(env, it.r->start, it.r->n) || mms_rs_add(&a->free, it.r->start, it.r->n))
			mms_txn_poison(env);
		unp_note(a, it.r->start, it.r->n);
	}
	if (a->pending.n)
		jr_note(a, FL_PEND_FREED, 0, 0); /* one change for all of them */
	mms_rs_clear(&a->pending);
	mms_rs_clear(&a->fresh);
	/* what was written is clean now: the caller caches it (MMS_CACHE_ONCE);
	 * a keep-sync leaves the drop to mms_alloc_drop_later */
	if (keep && a->drop_later.n == 0) {
		struct mms_runset t = a->drop_later;
		a->drop_later = a->written;
		a->written = t;
	} else {
		for (struct mms_rs_it it = mms_rs_begin(&a->written); it.r; mms_rs_next(&it))
			mms_file_drop(env, it.r->start, it.r->n);
	}
	mms_rs_clear(&a->written);
	/* Long runs are punched now (or held for the caller to punch without
	 * its lock); short ones (the old copies of pages overwritten since the
	 * last sync, one syscall each) wait until they join others or the
	 * store closes: first fit reuses them soon. */
	if (keep ? mms_hold_long(a) : mms_rehold(a))
		mms_txn_poison(env);
	if (!keep)
		mms_alloc_punch(env);
}

/* Apply one logged change (entry idx of log page pgno; pgno 0: of the
 * meta's tail) to the sets being loaded: a change the writer could not
 * have made means a damaged log. */
static int mms_log_apply(mms_env *env, uint64_t pgno, size_t idx, unsigned op, uint64_t st,
                         uint64_t n)
{
	struct mms_alloc_state *a = env->alloc;
	const uint64_t max = MMS_FILE_PAGES_MAX;
	struct mms_runset *s = (op == FL_FREE_ADD || op == FL_FREE_DEL) ? &a->free : &a->pending;

	switch (op) {
	case FL_FREE_ADD:
	case FL_PEND_ADD:
		if (!n || st < MMS_META_PAGES || st > max || n > max - st || mms_rs_overlaps(s, st, n))
			break;
		return mms_rs_add(s, st, n);
	case FL_FREE_DEL:
	case FL_PEND_DEL:
		if (!n || st > max || n > max - st)
			break;
		return mms_rs_remove(s, st, n);
	case FL_PEND_FREED:
		if (st || n)
			break;
		for (struct mms_rs_it it = mms_rs_begin(&a->pending); it.r; mms_rs_next(&it)) {
			const struct mms_run *r = it.r;
			if (mms_rs_overlaps(&a->free, r->start, r->n))
				goto bad;
			int rc = mms_rs_add(&a->free, r->start, r->n);
			if (rc)
				return rc;
		}
		mms_rs_clear(&a->pending);
		return 0;
	}
bad:
	if (!pgno)
		return mms_fail(env, MMS_CORRUPT, "meta: free-list log tail, entry %zu (change %u, "
		                "pages %llu+%llu): not a change the free list allows", idx, op,
		                (unsigned long long)st, (unsigned long long)n);
	return mms_fail(env, MMS_CORRUPT, "free-list log page %llu, entry %zu (change %u, pages %llu+%llu): "
	                "not a change the free list allows", (unsigned long long)pgno, idx, op,
	                (unsigned long long)st, (unsigned long long)n);
}

/* Read log page pgno into buf and check it: its crc (the one that names
 * it: want), its place and its number of entries. */
static int mms_log_read(mms_env *env, uint64_t pgno, uint32_t want, uint8_t *buf)
{
	int rc = mms_check_run(env, pgno, 1, "free-list log");
	if (!rc)
		rc = mms_blob_read(env, pgno, buf, MMS_PAGE_SIZE);
	if (rc)
		return rc;
	uint32_t crc = mms_get_le32(buf);
	if (crc != want || mms_crc32c(0, buf + 4, MMS_PAGE_SIZE - 4) != crc)
		return mms_fail(env, MMS_CORRUPT, "free-list log page %llu: checksum mismatch",
		                (unsigned long long)pgno);
	if (memcmp(buf + 4, mms_log_magic, 4) || mms_get_le64(buf + 8) != pgno ||
	    mms_get_le32(buf + 36) > MMS_LOG_PER_PAGE)
		return mms_fail(env, MMS_CORRUPT, "free-list log page %llu: not a log page of this place",
		                (unsigned long long)pgno);
	return 0;
}

static int mms_u64_cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

/* Read the log the meta names (newest page first, each naming the one
 * before) and replay it, oldest first, over the base already loaded. */
static int mms_log_load(mms_env *env, const uint8_t *metapg)
{
	struct mms_alloc_state *a = env->alloc;
	uint64_t head = mms_get_le64(metapg + MMS_META_LOG);
	uint32_t n = mms_get_le32(metapg + MMS_META_LOG + 8), want = mms_get_le32(metapg + MMS_META_LOG + 12);
	uint8_t *buf = NULL;
	uint32_t *crcs = NULL;
	uint64_t *sorted = NULL;
	int rc = 0;

	if (!n) {
		if (head || want)
			return mms_fail(env, MMS_CORRUPT, "meta: a free-list log of no pages names page %llu",
			                (unsigned long long)head);
		return 0;
	}
	if (n > env->meta.file_pages)
		return mms_fail(env, MMS_CORRUPT, "meta: a free-list log of %u pages in a file of %llu",
		                n, (unsigned long long)env->meta.file_pages);
	uint64_t *log = realloc(a->log, (size_t)n * sizeof(*log));
	if (!log)
		return ENOMEM;
	a->log = log;
	a->caplog = n;
	crcs = malloc((size_t)n * sizeof(*crcs));
	sorted = malloc((size_t)n * sizeof(*sorted));
	if (!crcs || !sorted || posix_memalign((void **)&buf, MMS_PAGE_SIZE, MMS_PAGE_SIZE)) {
		rc = ENOMEM;
		goto out;
	}
	uint64_t p = head;
	for (uint32_t i = n; i-- > 0 && !rc;) {
		rc = mms_log_read(env, p, want, buf);
		if (rc)
			break;
		log[i] = sorted[i] = p;
		crcs[i] = want;
		p = mms_get_le64(buf + 24);
		want = mms_get_le32(buf + 32);
		if ((i == 0) != (p == 0))
			rc = mms_fail(env, MMS_CORRUPT, "free-list log page %llu: the meta counts %u log pages, "
			              "the chain %s", (unsigned long long)log[i], n, p ? "goes on" : "ends sooner");
	}
	if (rc)
		goto out;
	qsort(sorted, n, sizeof(*sorted), mms_u64_cmp);
	for (uint32_t i = 1; i < n; i++)
		if (sorted[i] == sorted[i - 1]) {
			rc = mms_fail(env, MMS_CORRUPT, "free-list log: page %llu is in the chain twice",
			              (unsigned long long)sorted[i]);
			goto out;
		}
	for (uint32_t i = 0; i < n && !rc; i++) {
		rc = mms_log_read(env, log[i], crcs[i], buf);
		uint32_t cnt = rc ? 0 : mms_get_le32(buf + 36);
		for (uint32_t e = 0; e < cnt && !rc; e++) {
			struct mms_jop o = mms_jop_get(buf + MMS_LOG_HDR + e * 12);
			rc = mms_log_apply(env, log[i], e, o.op, o.start, o.n);
		}
	}
	if (!rc) {
		a->nlog = n;
		a->log_crc = mms_get_le32(metapg + MMS_META_LOG + 12);
	}
out:
	free(buf);
	free(crcs);
	free(sorted);
	return rc;
}

/* Replay the meta's tail of the log (format 5) and keep it for the next
 * commits, which write it again. */
static int mms_tail_load(mms_env *env, const uint8_t *metapg)
{
	struct mms_alloc_state *a = env->alloc;
	uint32_t n = mms_get_le32(metapg + MMS_META_TAIL);
	if (n > MMS_META_TAIL_MAX)
		return mms_fail(env, MMS_CORRUPT, "meta: a free-list log tail of %u changes (at most %u fit)",
		                n, (unsigned)MMS_META_TAIL_MAX);
	for (uint32_t e = 0; e < n; e++) {
		struct mms_jop o = mms_jop_get(metapg + MMS_META_TAIL + 4 + e * 12);
		int rc = mms_log_apply(env, 0, e, o.op, o.start, o.n);
		if (rc)
			return rc;
		a->tail[e] = o;
	}
	a->ntail = n;
	return 0;
}

/* The loaded sets: inside the file, apart from each other and from the
 * pages that hold the free list itself. */
static int mms_sets_check(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	const struct mms_runset *sets[] = { &a->free, &a->pending };
	for (int k = 0; k < 2; k++) {
		const struct mms_runset *s = sets[k];
		const struct mms_run *last = mms_rs_last(s);
		if (last && last->start + last->n > env->meta.file_pages)
			return mms_fail(env, MMS_CORRUPT, "free list: %s run %llu+%llu past the end of the file",
			                k ? "pending" : "free", (unsigned long long)last->start,
			                (unsigned long long)last->n);
	}
	for (struct mms_rs_it it = mms_rs_begin(&a->pending); it.r; mms_rs_next(&it))
		if (mms_rs_overlaps(&a->free, it.r->start, it.r->n))
			return mms_fail(env, MMS_CORRUPT, "free list: pages %llu+%llu are both free and pending",
			                (unsigned long long)it.r->start, (unsigned long long)it.r->n);
	for (size_t i = 0; i <= a->nlog; i++) {
		uint64_t st = i < a->nlog ? a->log[i] : env->meta.free_blob;
		uint64_t n = i < a->nlog ? 1 : env->meta.free_blob_pages;
		if (n && (mms_rs_overlaps(&a->free, st, n) || mms_rs_overlaps(&a->pending, st, n)))
			return mms_fail(env, MMS_CORRUPT, "free list: it counts its own pages %llu+%llu as free",
			                (unsigned long long)st, (unsigned long long)n);
	}
	return 0;
}

static int mms_alloc_load(mms_env *env, const uint8_t *metapg, int synced)
{
	struct mms_alloc_state *a = env->alloc;
	uint32_t nfree = mms_get_le32(metapg + 208), npend = mms_get_le32(metapg + 212);
	uint64_t total = (uint64_t)nfree + npend;
	const uint8_t *src;
	uint8_t *blob = NULL;
	int rc = 0;

	jr_clear(a);
	a->nlog = 0;
	a->log_crc = 0;
	a->ntail = 0;
	/* free runs are holes only if the meta says so (a close punched them) */
	a->punch_all = !(mms_get_le32(metapg + 20) & MMS_META_HOLES);
	a->nunp = 0;
	a->base_nfree = a->base_npend = a->base_crc = 0;
	a->journal_on = env->meta.free_blob != 0;
	if (env->meta.free_blob) {
		uint64_t bytes = total * 12;
		if (bytes > env->meta.free_blob_pages * MMS_PAGE_SIZE)
			return mms_fail(env, MMS_CORRUPT, "meta: free list of %llu runs does not fit its %llu pages",
			                (unsigned long long)total, (unsigned long long)env->meta.free_blob_pages);
		rc = mms_check_run(env, env->meta.free_blob, env->meta.free_blob_pages, "free list");
		if (rc)
			return rc;
		blob = malloc(bytes ? bytes : 1);
		if (!blob)
			return ENOMEM;
		rc = mms_blob_read(env, env->meta.free_blob, blob, bytes);
		if (!rc && mms_crc32c(0, blob, bytes) != mms_get_le32(metapg + 216))
			rc = mms_fail(env, MMS_CORRUPT, "free list at page %llu: checksum mismatch",
			              (unsigned long long)env->meta.free_blob);
		src = blob;
		a->base_nfree = nfree;
		a->base_npend = npend;
		a->base_crc = mms_get_le32(metapg + 216);
	} else {
		if (total > mms_meta_inline_max(env))
			return mms_fail(env, MMS_CORRUPT, "meta: %llu inline free runs (at most %u fit)",
			                (unsigned long long)total, mms_meta_inline_max(env));
		src = metapg + MMS_META_INLINE_OFF;
	}
	/* a base may reach past the file: a log can record the file's
	 * shrinking (mms_sets_check looks at the end result) */
	const uint64_t max = MMS_FILE_PAGES_MAX;
	uint64_t prev_end = 0;
	for (uint64_t i = 0; i < total && !rc; i++) {
		uint64_t st = mms_get_le64(src + i * 12), n = mms_get_le32(src + i * 12 + 8);
		if (i == nfree)
			prev_end = 0;
		if (n == 0 || st < MMS_META_PAGES || st < prev_end || st > max || n > max - st) {
			rc = mms_fail(env, MMS_CORRUPT, "free list entry %llu (pages %llu+%llu) is out of order or bounds",
			              (unsigned long long)i, (unsigned long long)st, (unsigned long long)n);
			break;
		}
		prev_end = st + n;
		rc = mms_rs_add(i < nfree ? &a->free : &a->pending, st, n);
	}
	free(blob);
	if (!rc && env->meta.free_blob && env->meta.version >= MMS_FORMAT_V4)
		rc = mms_log_load(env, metapg);
	if (!rc && env->meta.free_blob && env->meta.version >= MMS_FORMAT_V5)
		rc = mms_tail_load(env, metapg);
	if (!rc)
		rc = mms_sets_check(env);
	a->load_pending = a->pending.n;
	if (!rc && synced && a->pending.n) {
		/* the synced meta that reached the pending runs is superseded:
		 * they are free, and punched */
		for (struct mms_rs_it it = mms_rs_begin(&a->pending); it.r && !rc; mms_rs_next(&it)) {
			rc = mms_rs_add(&a->free, it.r->start, it.r->n);
			mms_punch(env, it.r->start, it.r->n);
		}
		mms_rs_clear(&a->pending);
		jr_note(a, FL_PEND_FREED, 0, 0); /* the persisted sets still say pending */
	}
	return rc;
}

int mms_alloc_open(mms_env *env, const uint8_t *metapg, int synced)
{
	struct mms_alloc_state *a = calloc(1, sizeof(*a));
	if (!a)
		return ENOMEM;
	a->punch_ok = 1;
	a->load_synced = synced;
	pthread_mutex_init(&a->load_lock, NULL);
	env->alloc = a;
	if (metapg != env->meta_page)
		memcpy(env->meta_page, metapg, MMS_PAGE_SIZE);
	return 0;
}

void mms_alloc_close(mms_env *env)
{
	struct mms_alloc_state *a = env->alloc;
	if (!a)
		return;
	mms_rs_fini(&a->free);
	mms_rs_fini(&a->pending);
	mms_rs_fini(&a->fresh);
	mms_rs_fini(&a->written);
	mms_rs_fini(&a->txn_free);
	mms_rs_fini(&a->txn_alloc);
	mms_rs_fini(&a->punch);
	mms_rs_fini(&a->punch_now);
	mms_rs_fini(&a->held);
	mms_rs_fini(&a->drop_later);
	free(a->jr.e);
	free(a->log);
	free(a->unp);
	pthread_mutex_destroy(&a->load_lock);
	free(a);
	env->alloc = NULL;
}

int mms_alloc_rollback(mms_env *env, const uint8_t *metapg)
{
	struct mms_alloc_state *a = env->alloc;
	int punch_ok = a->punch_ok;
	uint64_t limit = a->limit;
	/* Runs punched earlier stay punched; fresh is forgotten, which only
	 * delays reuse of some runs until the next sync. */
	mms_rs_clear(&a->free);
	mms_rs_clear(&a->pending);
	mms_rs_clear(&a->fresh);
	mms_rs_clear(&a->txn_free);
	mms_rs_clear(&a->txn_alloc);
	mms_rs_clear(&a->punch);
	mms_rs_clear(&a->punch_now);
	a->punch_ok = punch_ok;
	a->limit = limit;
	/* pending runs of a synced meta are free: that meta superseded the one
	 * that reached them */
	a->load_rc = mms_alloc_load(env, metapg, mms_get_le32(metapg + 20) & 1);
	if (!a->load_rc)
		a->load_rc = mms_rehold(a); /* still being punched */
	__atomic_store_n(&a->loaded, 1, __ATOMIC_RELEASE);
	return a->load_rc;
}

void mms_alloc_totals(mms_env *env, uint64_t *freep, uint64_t *pendingp, uint64_t *nruns,
                      uint64_t *largest)
{
	struct mms_alloc_state *a = env->alloc;
	uint64_t big = 0;
	(void)mms_alloc_ready(env); /* on a damaged free list the sets stay empty */
	for (struct mms_rs_it it = mms_rs_begin(&a->free); it.r; mms_rs_next(&it))
		if (it.r->n > big)
			big = it.r->n;
	if (freep)
		*freep = a->free.total;
	if (pendingp)
		*pendingp = a->pending.total + a->txn_free.total;
	if (nruns)
		*nruns = a->free.n;
	if (largest)
		*largest = big;
}

int mms_alloc_walk(mms_env *env, int (*fn)(void *, uint64_t, uint64_t, int), void *ctx)
{
	int lrc = mms_alloc_ready(env);
	if (lrc)
		return lrc;
	struct mms_alloc_state *a = env->alloc;
	int rc = 0;
	const struct mms_runset *sets[] = { &a->free, &a->pending, &a->txn_free };
	for (int k = 0; k < 3; k++)
		for (struct mms_rs_it it = mms_rs_begin(sets[k]); it.r && !rc; mms_rs_next(&it))
			rc = fn(ctx, it.r->start, it.r->n, k > 0);
	return rc;
}

int mms_alloc_list_pages(mms_env *env, int (*fn)(void *, uint64_t, uint64_t, int), void *ctx)
{
	int lrc = mms_alloc_ready(env);
	if (lrc)
		return lrc;
	struct mms_alloc_state *a = env->alloc;
	int rc = 0;
	if (env->meta.free_blob)
		rc = fn(ctx, env->meta.free_blob, env->meta.free_blob_pages, 0);
	for (size_t i = 0; i < a->nlog && !rc; i++)
		rc = fn(ctx, a->log[i], 1, 1);
	return rc;
}

uint64_t mms_alloc_used_end(mms_env *env)
{
	if (mms_alloc_ready(env))
		return env->meta.file_pages;
	const struct mms_run *tail = mms_free_tail(env);
	return tail ? tail->start : env->meta.file_pages;
}

uint64_t mms_alloc_used_from(mms_env *env, uint64_t pgno)
{
	uint64_t end = env->meta.file_pages;
	if (pgno >= end)
		return 0;
	if (mms_alloc_ready(env))
		return end - pgno;
	struct mms_alloc_state *a = env->alloc;
	uint64_t unused = mms_rs_count_from(&a->free, pgno) + mms_rs_count_from(&a->pending, pgno) +
	                  mms_rs_count_from(&a->txn_free, pgno);
	return unused < end - pgno ? end - pgno - unused : 0;
}

void mms_alloc_set_limit(mms_env *env, uint64_t limit)
{
	env->alloc->limit = limit;
}

int mms_alloc_trim_tail(mms_env *env, uint64_t *newpages)
{
	int lrc = mms_alloc_ready(env);
	if (lrc)
		return lrc;
	struct mms_alloc_state *a = env->alloc;
	uint64_t end = mms_alloc_used_end(env);
	if (end < MMS_META_PAGES)
		end = MMS_META_PAGES;
	/* The commit that records the shorter file writes its free list
	 * first fit (log pages, or a new base).  If no free run below the new
	 * end holds that, the pages it may need stay at the end: else that
	 * commit would grow the file again, by a whole segment. */
	uint64_t keep = mms_commit_need(env);
	if (keep && end < env->meta.file_pages) {
		struct mms_rs_it it = mms_rs_fit(&a->free, keep);
		if (!it.r || it.r->start + keep > end)
			end = env->meta.file_pages - end > keep ? end + keep : env->meta.file_pages;
	}
	if (end < env->meta.file_pages) {
		int rc = fl_free_del(a, end, env->meta.file_pages - end);
		if (rc)
			return rc;
		mms_rs_remove(&a->punch, end, env->meta.file_pages - end);
		mms_rs_remove(&a->punch_now, end, env->meta.file_pages - end);
		env->meta.file_pages = end;
	}
	*newpages = end;
	return 0;
}
