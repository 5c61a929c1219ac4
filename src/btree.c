/*
 * btree.c - copy-on-write B+trees over store pages.
 *
 * Keys are byte strings ordered by memcmp (a shorter key that is a prefix
 * of a longer one sorts first); values are byte strings.  Leaves hold
 * items; a branch holds (separator, child) items whose first separator is
 * empty: child i covers keys >= separator i and < separator i+1.
 *
 * Every change copies the pages on the path from the root into the open
 * transaction (pager.c: a page already dirty is changed in place), so the
 * committed tree stays intact until a new meta points at the new root.
 * Splits cut by bytes, except that an item added at the right edge of the
 * tree goes alone into a new page (sequential keys fill pages fully).
 * Deletion merges a page that falls under a quarter full into a sibling
 * when both fit in one page, and removes empty pages, so deleting keys
 * gives pages back.
 *
 * Page layout and its validation: node.h, node.c.
 */
#include "mms_int.h"

#include <errno.h>
#include <stdlib.h>

#include "node.h"

/* The most items a page holds (the smallest item: a 1-byte key, no value,
 * and its slot), and one more being inserted. */
#define BT_ITEMS_MAX ((MMS_PAGE_SIZE - MMS_PG_HDR) / 7 + 1)

/* Room a split or a shift works in, once per env instead of a malloc per
 * split: bt_insert_at is done with items and copy before it recurses into
 * the parent, and a shift (leaves only) uses its own two. */
struct mms_bt_scratch {
	struct bt_item items[BT_ITEMS_MAX];       /* a page's items and the new one */
	struct bt_item all[2 * BT_ITEMS_MAX];     /* a shift: the sibling's and the moved */
	uint8_t copy[MMS_PAGE_SIZE], scopy[MMS_PAGE_SIZE];
};

static struct mms_bt_scratch *bt_scratch(mms_env *env)
{
	if (!env->bt_scratch)
		env->bt_scratch = malloc(sizeof(*env->bt_scratch));
	return env->bt_scratch;
}

static size_t pg_used(const uint8_t *p)
{
	size_t u = 0;
	for (unsigned i = 0, n = pg_n(p); i < n; i++) {
		const uint8_t *it = pg_it(p, i);
		u += it_size(it_kl(it), it_vl(it));
	}
	return u;
}

/* Leaf: first index with key >= k; *exact if equal. */
static unsigned leaf_search(const uint8_t *p, const void *k, size_t kl, int *exact)
{
	unsigned lo = 0, hi = pg_n(p);
	*exact = 0;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		const uint8_t *it = pg_it(p, mid);
		int c = key_cmp(it_k(it), it_kl(it), k, kl);
		if (c < 0) {
			lo = mid + 1;
		} else {
			if (c == 0)
				*exact = 1;
			hi = mid;
		}
	}
	return lo;
}

/* Branch: the child whose range holds k. */
static unsigned branch_search(const uint8_t *p, const void *k, size_t kl)
{
	unsigned lo = 1, hi = pg_n(p);
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		const uint8_t *it = pg_it(p, mid);
		if (key_cmp(it_k(it), it_kl(it), k, kl) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* Write items into page p from scratch (header fields other than type,
 * tree, count, heap and level are kept). */
static void pg_build(uint8_t *p, int type, int tree, unsigned level,
                     const struct bt_item *items, unsigned n)
{
	unsigned heap = MMS_PAGE_SIZE;
	uint8_t tmp[MMS_PAGE_SIZE];
	/* items may point into p itself: build in tmp */
	memcpy(tmp, p, MMS_PG_HDR);
	for (unsigned i = 0; i < n; i++) {
		size_t sz = 4 + items[i].kl + items[i].vl;
		heap -= (unsigned)sz;
		mms_put_le16(tmp + heap, (uint16_t)items[i].kl);
		mms_put_le16(tmp + heap + 2, (uint16_t)items[i].vl);
		if ((const uint8_t *)items[i].k + items[i].kl == items[i].v) {
			/* an item read from a page: key and value in one copy */
			memcpy(tmp + heap + 4, items[i].k, items[i].kl + items[i].vl);
		} else {
			memcpy(tmp + heap + 4, items[i].k, items[i].kl);
			memcpy(tmp + heap + 4 + items[i].kl, items[i].v, items[i].vl);
		}
		mms_put_le16(tmp + MMS_PG_HDR + 2 * i, (uint16_t)heap);
	}
	tmp[4] = (uint8_t)type;
	tmp[5] = (uint8_t)tree;
	mms_put_le16(tmp + 6, (uint16_t)n);
	mms_put_le16(tmp + 24, (uint16_t)heap);
	mms_put_le16(tmp + 26, (uint16_t)level);
	memset(tmp + MMS_PG_HDR + 2 * n, 0, heap - (MMS_PG_HDR + 2 * n));
	memcpy(p, tmp, MMS_PAGE_SIZE);
}

static void pg_compact(uint8_t *p)
{
	unsigned n = pg_n(p);
	struct bt_item *items = malloc((n ? n : 1) * sizeof(*items));
	uint8_t copy[MMS_PAGE_SIZE];
	memcpy(copy, p, MMS_PAGE_SIZE);
	if (!items) { /* cannot happen in practice; keep the page as is */
		return;
	}
	for (unsigned i = 0; i < n; i++)
		items[i] = pg_item(copy, i);
	pg_build(p, p[4], p[5], pg_level(p), items, n);
	free(items);
}

static int pg_fits(const uint8_t *p, size_t kl, size_t vl)
{
	unsigned n = pg_n(p);
	if (pg_heap(p) >= MMS_PG_HDR + 2 * (n + 1) + 4 + kl + vl)
		return 1; /* room without compaction */
	return pg_used(p) + it_size(kl, vl) <= PG_USABLE;
}

unsigned mms_bt_page_count(const uint8_t *p)
{
	return pg_n(p);
}

void mms_bt_page_item(const uint8_t *p, unsigned i, const void **k, size_t *kl, const void **v, size_t *vl)
{
	struct bt_item it = pg_item(p, i);
	*k = it.k;
	*kl = it.kl;
	*v = it.v;
	*vl = it.vl;
}

/* Insert at index i; the caller checked pg_fits(). */
static void pg_insert(uint8_t *p, unsigned i, const void *k, size_t kl, const void *v, size_t vl)
{
	unsigned n = pg_n(p);
	size_t sz = 4 + kl + vl;
	if (pg_heap(p) < MMS_PG_HDR + 2 * (n + 1) + sz)
		pg_compact(p);
	unsigned heap = pg_heap(p) - (unsigned)sz;
	mms_put_le16(p + heap, (uint16_t)kl);
	mms_put_le16(p + heap + 2, (uint16_t)vl);
	memcpy(p + heap + 4, k, kl);
	if (vl)
		memcpy(p + heap + 4 + kl, v, vl);
	memmove(p + MMS_PG_HDR + 2 * (i + 1), p + MMS_PG_HDR + 2 * i, 2 * (n - i));
	mms_put_le16(p + MMS_PG_HDR + 2 * i, (uint16_t)heap);
	mms_put_le16(p + 24, (uint16_t)heap);
	mms_put_le16(p + 6, (uint16_t)(n + 1));
}

static void pg_remove(uint8_t *p, unsigned i)
{
	unsigned n = pg_n(p);
	memmove(p + MMS_PG_HDR + 2 * i, p + MMS_PG_HDR + 2 * (i + 1), 2 * (n - i - 1));
	mms_put_le16(p + 6, (uint16_t)(n - 1));
	if (n == 1) /* reclaim the heap of an emptied page */
		mms_put_le16(p + 24, MMS_PAGE_SIZE);
}

/* ---- path handling ------------------------------------------------------- */

struct bt_path {
	int depth;
	uint64_t pg[MMS_BT_MAXDEPTH];
	int idx[MMS_BT_MAXDEPTH];
	const uint8_t *leaf; /* the leaf's bytes, valid until the tree changes */
};

static int bt_bad_child(mms_env *env, int tree, uint64_t parent, uint64_t child, const uint8_t *c,
                        unsigned want_level)
{
	return mms_fail(env, MMS_CORRUPT,
	                "page %llu (%s tree): child of page %llu has level %u and tree %u, expected level %u",
	                (unsigned long long)child, mms_tree_name(tree), (unsigned long long)parent,
	                pg_level(c), c[5], want_level);
}

/* Read-only descent to the leaf for key. */
static int bt_descend(mms_env *env, int tree, const void *k, size_t kl, struct bt_path *path)
{
	uint64_t pgno = env->meta.root[tree];
	int rc = 0;
	path->depth = 0;
	const uint8_t *p = mms_page_get(env, pgno, &rc);
	if (!p)
		return rc;
	if (p[5] != tree)
		return bt_bad_child(env, tree, 0, pgno, p, pg_level(p));
	for (;;) {
		if (path->depth >= MMS_BT_MAXDEPTH)
			return mms_fail(env, MMS_CORRUPT, "%s tree deeper than %d levels", mms_tree_name(tree),
			                MMS_BT_MAXDEPTH);
		path->pg[path->depth] = pgno;
		if (p[4] == MMS_PG_LEAF) {
			int exact;
			path->leaf = p;
			path->idx[path->depth++] = (int)leaf_search(p, k, kl, &exact);
			return exact ? 0 : MMS_NOTFOUND;
		}
		unsigned i = branch_search(p, k, kl);
		unsigned lvl = pg_level(p);
		path->idx[path->depth++] = (int)i;
		uint64_t child = pg_child(p, i);
		const uint8_t *c = mms_page_get(env, child, &rc);
		if (!c)
			return rc;
		if (pg_level(c) + 1 != lvl || c[5] != tree)
			return bt_bad_child(env, tree, pgno, child, c, lvl - 1);
		pgno = child;
		p = c;
	}
}

/* Make every page of the path writable, fixing child pointers and the root. */
static int bt_cow_path(mms_env *env, int tree, struct bt_path *path)
{
	int rc = 0;
	for (int d = 0; d < path->depth; d++) {
		uint64_t np;
		uint8_t *p = mms_page_cow(env, path->pg[d], &np, &rc);
		if (!p)
			return rc;
		if (np != path->pg[d]) {
			if (d == 0) {
				env->meta.root[tree] = np;
			} else {
				uint8_t *parent = mms_page_cow(env, path->pg[d - 1], &(uint64_t){ 0 }, &rc);
				mms_put_le64((uint8_t *)it_v(pg_it(parent, (unsigned)path->idx[d - 1])), np);
			}
			path->pg[d] = np;
		}
	}
	return 0;
}

static uint8_t *bt_dirty(mms_env *env, uint64_t pgno)
{
	int rc;
	uint64_t np;
	/* the page is dirty already: this returns its buffer */
	return mms_page_cow(env, pgno, &np, &rc);
}

/* Split point for items[0..n): left gets [0, s). */
static unsigned split_point(const struct bt_item *items, unsigned n, int append)
{
	if (append) {
		size_t left = 0;
		for (unsigned i = 0; i + 1 < n; i++)
			left += it_size(items[i].kl, items[i].vl);
		if (left <= PG_USABLE)
			return n - 1;
	}
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += it_size(items[i].kl, items[i].vl);
	size_t left = 0;
	unsigned best = 1;
	size_t bestdiff = (size_t)-1;
	for (unsigned s = 1; s < n; s++) {
		left += it_size(items[s - 1].kl, items[s - 1].vl);
		size_t right = total - left;
		if (left > PG_USABLE)
			break;
		if (right > PG_USABLE)
			continue;
		size_t diff = left > right ? left - right : right - left;
		if (diff < bestdiff) {
			bestdiff = diff;
			best = s;
		}
	}
	return best;
}

/* The length of the shortest prefix of r's key that sorts after l's (l's
 * key sorts before r's): the separator put between two leaves.  Any key
 * in (l, r] divides them; a short one makes more children fit in a
 * branch (name keys differ within their hash, so about 10 of their 16 to
 * 300 bytes go up), and trees one level lower. */
static size_t sep_len(const struct bt_item *l, const struct bt_item *r)
{
	size_t n = l->kl < r->kl ? l->kl : r->kl, i = 0;
	while (i < n && l->k[i] == r->k[i])
		i++;
	return i + 1; /* <= r->kl: r is not a prefix of l, which sorts first */
}

/* Replace the separator of child ci in branch page `parent` by (k, kl),
 * keeping its child pointer.  The caller checked that it fits. */
static void branch_set_key(uint8_t *parent, unsigned ci, const void *k, size_t kl)
{
	uint8_t child[8];
	memcpy(child, it_v(pg_it(parent, ci)), 8);
	pg_remove(parent, ci);
	pg_insert(parent, ci, k, kl, child, 8);
}

/*
 * Before splitting a full leaf, try to move items into a sibling under the
 * same parent that has room (as a B*-tree does): random inserts then fill
 * pages to about 80% instead of 70%.  items[0..n) is the leaf's content
 * with the new item in place.  Returns 1 when done, 0 to split instead,
 * -1 on error (*rc set).
 */
static int bt_try_shift(mms_env *env, int tree, struct bt_path *path, int d,
                        struct bt_item *items, unsigned n, int *rc)
{
	if (d == 0)
		return 0;
	uint8_t *parent = bt_dirty(env, path->pg[d - 1]);
	unsigned pi = (unsigned)path->idx[d - 1], pn = pg_n(parent);
	size_t total = 0;
	for (unsigned j = 0; j < n; j++)
		total += it_size(items[j].kl, items[j].vl);
	for (int side = -1; side <= 1; side += 2) {
		if ((side < 0 && pi == 0) || (side > 0 && pi + 1 >= pn))
			continue;
		unsigned si = side < 0 ? pi - 1 : pi + 1;
		uint64_t spg = pg_child(parent, si);
		const uint8_t *sp = mms_page_get(env, spg, rc);
		if (!sp)
			return -1;
		if (sp[4] != MMS_PG_LEAF)
			return 0;
		size_t sused = pg_used(sp);
		/* balance the two pages: move items until they hold about the same */
		size_t target = (total + sused) / 2, moved = 0;
		unsigned m = 0;
		while (m < n) {
			const struct bt_item *it = side < 0 ? &items[m] : &items[n - 1 - m];
			size_t sz = it_size(it->kl, it->vl);
			if (sused + moved + sz > PG_USABLE || (total - moved <= PG_USABLE && sused + moved + sz > target))
				break;
			moved += sz;
			m++;
		}
		if (m == 0 || m == n || total - moved > PG_USABLE)
			continue;
		/* the separator that changes: of this page (left move) or of the
		 * sibling; it divides the first item right of the cut from the
		 * one before it */
		const struct bt_item *first = side < 0 ? &items[m] : &items[n - m];
		size_t sepl = sep_len(first - 1, first);
		unsigned ci = side < 0 ? pi : si;
		size_t oldkl = it_kl(pg_it(parent, ci));
		/* (compaction inside pg_insert makes room if the total fits) */
		if (pg_used(parent) - oldkl + sepl > PG_USABLE)
			continue;
		unsigned sn = pg_n(sp);
		struct mms_bt_scratch *sc = bt_scratch(env); /* (bt_insert_at made it) */
		struct bt_item *all = sc->all;
		uint8_t *scopy = sc->scopy;
		uint8_t sep[MMS_BT_KEY_MAX];
		memcpy(scopy, sp, MMS_PAGE_SIZE);
		unsigned o = 0;
		if (side < 0) {
			for (unsigned j = 0; j < sn; j++)
				all[o++] = pg_item(scopy, j);
			for (unsigned j = 0; j < m; j++)
				all[o++] = items[j];
		} else {
			for (unsigned j = n - m; j < n; j++)
				all[o++] = items[j];
			for (unsigned j = 0; j < sn; j++)
				all[o++] = pg_item(scopy, j);
		}
		uint64_t nspg;
		uint8_t *w = mms_page_cow(env, spg, &nspg, rc);
		if (!w)
			return -1;
		pg_build(w, MMS_PG_LEAF, tree, 0, all, o);
		memcpy(sep, first->k, sepl);
		uint8_t *p = bt_dirty(env, path->pg[d]);
		pg_build(p, MMS_PG_LEAF, tree, 0, side < 0 ? items + m : items, n - m);
		parent = bt_dirty(env, path->pg[d - 1]);
		mms_put_le64((uint8_t *)it_v(pg_it(parent, si)), nspg);
		branch_set_key(parent, ci, sep, sepl);
		/* the two leaves' key ranges moved: cached bounds are stale */
		__atomic_add_fetch(&env->epoch, 1, __ATOMIC_RELEASE);
		return 1;
	}
	return 0;
}

/*
 * Insert (k, v) at index i of the page at path level d, splitting upward as
 * needed.  `append` marks an insertion at the right edge of the tree.
 */
static int bt_insert_at(mms_env *env, int tree, struct bt_path *path, int d, unsigned i,
                        const void *k, size_t kl, const void *v, size_t vl, int append)
{
	int rc = 0;
	uint8_t *p = bt_dirty(env, path->pg[d]);
	if (pg_fits(p, kl, vl)) {
		pg_insert(p, i, k, kl, v, vl);
		return 0;
	}
	/* split */
	unsigned n = pg_n(p);
	int type = p[4];
	unsigned level = pg_level(p);
	struct mms_bt_scratch *sc = bt_scratch(env);
	uint8_t sep[MMS_BT_KEY_MAX];
	size_t sepl;
	if (!sc || n + 1 > BT_ITEMS_MAX)
		return sc ? mms_fail(env, MMS_CORRUPT, "page %llu: %u items", (unsigned long long)path->pg[d], n)
		          : ENOMEM;
	struct bt_item *items = sc->items;
	uint8_t *copy = sc->copy;
	memcpy(copy, p, MMS_PAGE_SIZE);
	for (unsigned j = 0, o = 0; j <= n; j++) {
		if (j == i)
			items[j] = (struct bt_item){ k, kl, v, vl };
		else
			items[j] = pg_item(copy, o++);
	}
	if (!append && type == MMS_PG_LEAF) {
		int shifted = bt_try_shift(env, tree, path, d, items, n + 1, &rc);
		if (shifted) {
			if (shifted < 0)
				mms_txn_poison(env);
			goto out;
		}
	}
	unsigned s = split_point(items, n + 1, append && i == n);
	uint64_t rpg;
	uint8_t *r = mms_page_new(env, &rpg, &rc);
	if (!r)
		goto out;
	p = bt_dirty(env, path->pg[d]); /* the allocation may have grown the table */
	/* a leaf's separator is the shortest that divides it from its new
	 * sibling; a branch's moves up as it is */
	sepl = type == MMS_PG_LEAF ? sep_len(&items[s - 1], &items[s]) : items[s].kl;
	memcpy(sep, items[s].k, sepl);
	pg_build(p, type, tree, level, items, s);
	mms_put_le64(r + 8, rpg);
	if (type == MMS_PG_BRANCH) {
		struct bt_item first = items[s];
		first.kl = 0; /* the right page's first separator is minus infinity */
		items[s] = first;
	}
	pg_build(r, type, tree, level, items + s, n + 1 - s);
	uint8_t child[8];
	mms_put_le64(child, rpg);
	if (d == 0) {
		/* new root */
		uint64_t root;
		uint8_t *np = mms_page_new(env, &root, &rc);
		if (!np)
			goto out;
		mms_put_le64(np + 8, root);
		uint8_t left[8];
		mms_put_le64(left, path->pg[0]);
		struct bt_item two[2] = { { sep, 0, left, 8 }, { sep, sepl, child, 8 } };
		pg_build(np, MMS_PG_BRANCH, tree, level + 1, two, 2);
		env->meta.root[tree] = root;
	} else {
		/* (items and copy are free again: the parent's split may use them) */
		rc = bt_insert_at(env, tree, path, d - 1, (unsigned)path->idx[d - 1] + 1, sep, sepl, child, 8,
		                  append);
	}
out:
	return rc;
}

static int bt_key_ok(mms_env *env, size_t kl, size_t vl)
{
	if (kl == 0 || kl > MMS_BT_KEY_MAX || vl > MMS_BT_VAL_MAX)
		return mms_fail(env, MMS_INVAL, "tree item of %zu+%zu bytes", kl, vl);
	return 0;
}

static int bt_is_right_edge(const mms_env *env, const struct bt_path *path)
{
	int rc;
	for (int d = 0; d < path->depth - 1; d++) {
		const uint8_t *p = mms_page_get((mms_env *)env, path->pg[d], &rc);
		if (!p || (unsigned)path->idx[d] + 1 != pg_n(p))
			return 0;
	}
	return 1;
}

/*
 * The leaf of the last get, per thread and tree: a get whose key falls
 * between that leaf's first and last keys needs only that leaf (leaves
 * partition the key space).  Valid while env->epoch is unchanged: every
 * modification, commit and rollback bumps it.
 */
struct bt_last_leaf {
	const mms_env *env;
	uint64_t epoch;
	uint64_t pgno;
};
static __thread struct bt_last_leaf bt_last[MMS_NTREES];

static const uint8_t *bt_cached_leaf(mms_env *env, const struct bt_last_leaf *last, int tree,
                                     const void *k, size_t kl)
{
	int rc;
	if (last->env != env || last->epoch != __atomic_load_n(&env->epoch, __ATOMIC_ACQUIRE))
		return NULL;
	const uint8_t *p = mms_page_get(env, last->pgno, &rc);
	if (!p || p[4] != MMS_PG_LEAF || p[5] != tree || pg_n(p) == 0)
		return NULL;
	const uint8_t *lo = pg_it(p, 0), *hi = pg_it(p, pg_n(p) - 1);
	if (key_cmp(it_k(lo), it_kl(lo), k, kl) > 0 || key_cmp(it_k(hi), it_kl(hi), k, kl) < 0)
		return NULL;
	return p;
}

int mms_bt_get(mms_env *env, int tree, const void *key, size_t klen, const void **val, size_t *vlen)
{
	struct bt_path path;
	struct bt_last_leaf *last = &bt_last[tree]; /* one look-up of this thread's */
	const uint8_t *p = bt_cached_leaf(env, last, tree, key, klen);
	unsigned i;
	int exact, rc;
	if (p) {
		i = leaf_search(p, key, klen, &exact);
		if (!exact)
			return MMS_NOTFOUND;
	} else {
		if (!env->meta.root[tree])
			return MMS_NOTFOUND;
		rc = bt_descend(env, tree, key, klen, &path);
		if (rc)
			return rc;
		p = path.leaf;
		i = (unsigned)path.idx[path.depth - 1];
		last->env = env;
		last->epoch = __atomic_load_n(&env->epoch, __ATOMIC_ACQUIRE);
		last->pgno = path.pg[path.depth - 1];
	}
	const uint8_t *it = pg_it(p, i);
	*val = it_v(it);
	*vlen = it_vl(it);
	return 0;
}

/*
 * The leaf each tree's last put went to, with the key range its ancestors
 * give it, per env (puts are never concurrent).  A put whose key falls in
 * that range while the leaf is still a dirty page of the open transaction
 * and the item fits goes straight into it: no descent, no copy.  Valid
 * while env->epoch is unchanged: any page allocated, freed or moved, and
 * any change of separators, bumps it.
 */
struct mms_bt_wleaf {
	uint64_t pgno, epoch;
	int has_lo, has_hi;
	size_t lol, hil;
	uint8_t lo[MMS_BT_KEY_MAX], hi[MMS_BT_KEY_MAX];
};

#define MMS_BT_WLEAVES 4 /* per tree: a create touches the parent's leaf and the new inode's */

struct mms_bt_wcache {
	struct mms_bt_wleaf t[MMS_NTREES][MMS_BT_WLEAVES];
	unsigned next[MMS_NTREES]; /* round-robin replacement */
};

void mms_bt_cache_free(mms_env *env)
{
	free(env->wcache);
	env->wcache = NULL;
	free(env->bt_scratch);
	env->bt_scratch = NULL;
}

/* The range [lo, hi) of the leaf at the end of `path`, from its ancestors. */
static int bt_path_bounds(mms_env *env, const struct bt_path *path, struct mms_bt_wleaf *w)
{
	int rc = 0;
	w->has_lo = w->has_hi = 0;
	for (int d = 0; d + 1 < path->depth; d++) {
		const uint8_t *p = mms_page_get(env, path->pg[d], &rc);
		if (!p)
			return rc;
		unsigned i = (unsigned)path->idx[d], n = pg_n(p);
		if (i > 0) {
			const uint8_t *it = pg_it(p, i);
			w->lol = it_kl(it);
			memcpy(w->lo, it_k(it), w->lol);
			w->has_lo = 1;
		}
		if (i + 1 < n) {
			const uint8_t *it = pg_it(p, i + 1);
			w->hil = it_kl(it);
			memcpy(w->hi, it_k(it), w->hil);
			w->has_hi = 1;
		}
	}
	return 0;
}

/* The fast path of mms_bt_put(): 1 if done, 0 to take the slow path. */
static int bt_put_cached(mms_env *env, int tree, const void *key, size_t klen, const void *val,
                         size_t vlen)
{
	struct mms_bt_wleaf *w = NULL;
	if (!env->wcache)
		return 0;
	for (int j = 0; j < MMS_BT_WLEAVES && !w; j++) {
		struct mms_bt_wleaf *c = &env->wcache->t[tree][j];
		if (c->pgno && c->epoch == env->epoch &&
		    (!c->has_lo || key_cmp(key, klen, c->lo, c->lol) >= 0) &&
		    (!c->has_hi || key_cmp(key, klen, c->hi, c->hil) < 0))
			w = c;
	}
	if (!w || !mms_page_is_dirty(env, w->pgno))
		return 0;
	uint8_t *p = bt_dirty(env, w->pgno);
	if (!p || p[4] != MMS_PG_LEAF || p[5] != tree)
		return 0;
	int exact;
	unsigned i = leaf_search(p, key, klen, &exact);
	if (exact) {
		const uint8_t *it = pg_it(p, i);
		if (it_vl(it) == vlen) {
			memcpy((uint8_t *)it_v(it), val, vlen);
			return 1;
		}
		if (pg_used(p) - it_size(it_kl(it), it_vl(it)) + it_size(klen, vlen) > PG_USABLE)
			return 0;
		pg_remove(p, i);
	} else if (!pg_fits(p, klen, vlen)) {
		return 0;
	}
	pg_insert(p, i, key, klen, val, vlen);
	return 1;
}

/* mms_bt_get() for a caller about to change the tree (single-threaded,
 * like every modifying call): a miss or hit in a leaf the transaction has
 * already copied also primes the put cache, so the put that follows (a
 * create after its existence check) needs no second descent. */
int mms_bt_get_w(mms_env *env, int tree, const void *key, size_t klen, const void **val,
                 size_t *vlen)
{
	struct bt_path path;
	int rc;
	if (!env->meta.root[tree])
		return MMS_NOTFOUND;
	rc = bt_descend(env, tree, key, klen, &path);
	if (rc && rc != MMS_NOTFOUND)
		return rc;
	int found = rc == 0;
	uint64_t leaf = path.pg[path.depth - 1];
	if (mms_page_is_dirty(env, leaf) &&
	    (env->wcache || (env->wcache = calloc(1, sizeof(*env->wcache))))) {
		struct mms_bt_wleaf *w = &env->wcache->t[tree][env->wcache->next[tree]++ % MMS_BT_WLEAVES];
		w->pgno = 0;
		if (bt_path_bounds(env, &path, w) == 0) {
			w->pgno = leaf;
			w->epoch = env->epoch;
		}
	}
	if (!found)
		return MMS_NOTFOUND;
	const uint8_t *it = pg_it(path.leaf, (unsigned)path.idx[path.depth - 1]);
	*val = it_v(it);
	*vlen = it_vl(it);
	return 0;
}

int mms_bt_put(mms_env *env, int tree, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct bt_path path;
	int rc = bt_key_ok(env, klen, vlen);
	if (rc)
		return rc;
	env->mods++;
	if (!env->meta.root[tree]) {
		uint64_t pgno;
		uint8_t *p = mms_page_new(env, &pgno, &rc);
		if (!p)
			return rc;
		mms_put_le64(p + 8, pgno);
		struct bt_item it = { key, klen, val, vlen };
		pg_build(p, MMS_PG_LEAF, tree, 0, &it, 1);
		env->meta.root[tree] = pgno;
		return 0;
	}
	if (bt_put_cached(env, tree, key, klen, val, vlen))
		return 0;
	rc = bt_descend(env, tree, key, klen, &path);
	int exact = rc == 0;
	if (rc && rc != MMS_NOTFOUND)
		return rc;
	if (!env->wcache && !(env->wcache = calloc(1, sizeof(*env->wcache))))
		return ENOMEM;
	struct mms_bt_wleaf *w = &env->wcache->t[tree][env->wcache->next[tree]++ % MMS_BT_WLEAVES];
	w->pgno = 0;
	rc = bt_path_bounds(env, &path, w);
	if (rc)
		return rc;
	uint64_t epoch = env->epoch;
	rc = bt_cow_path(env, tree, &path);
	if (rc)
		return rc;
	int d = path.depth - 1;
	unsigned i = (unsigned)path.idx[d];
	uint8_t *p = bt_dirty(env, path.pg[d]);
	if (exact) {
		const uint8_t *it = pg_it(p, i);
		if (it_vl(it) == vlen) { /* same size: overwrite in place */
			memcpy((uint8_t *)it_v(it), val, vlen);
			goto cache;
		}
		pg_remove(p, i);
	}
	/* an item added (or grown) at the right edge of the tree */
	int append = i == pg_n(p) && bt_is_right_edge(env, &path);
	rc = bt_insert_at(env, tree, &path, d, i, key, klen, val, vlen, append);
	if (rc)
		return rc;
cache:
	/* nothing moved: the next put in this range may go straight here */
	if (env->epoch == epoch) {
		w->pgno = path.pg[d];
		w->epoch = epoch;
	}
	return 0;
}

/* Remove child item i of branch page at level d (the child page is freed by
 * the caller); keeps the first separator empty. */
static void branch_remove(uint8_t *p, unsigned i)
{
	pg_remove(p, i);
	if (i == 0 && pg_n(p) > 0) {
		/* the new first item's key becomes minus infinity */
		unsigned n = pg_n(p);
		struct bt_item *items = malloc(n * sizeof(*items));
		uint8_t copy[MMS_PAGE_SIZE];
		if (!items)
			return;
		memcpy(copy, p, MMS_PAGE_SIZE);
		for (unsigned j = 0; j < n; j++)
			items[j] = pg_item(copy, j);
		items[0].kl = 0;
		pg_build(p, MMS_PG_BRANCH, p[5], pg_level(p), items, n);
		free(items);
	}
}

/* Merge the children i and i+1 of the branch at level d into child i if
 * they fit in one page.  Returns 1 if merged. */
static int bt_try_merge(mms_env *env, int tree, struct bt_path *path, int d, unsigned i, int *rc)
{
	uint8_t *parent = bt_dirty(env, path->pg[d]);
	uint64_t lpg = pg_child(parent, i), rpg = pg_child(parent, i + 1);
	const uint8_t *l = mms_page_get(env, lpg, rc);
	const uint8_t *r = l ? mms_page_get(env, rpg, rc) : NULL;
	if (!r)
		return -1;
	size_t extra = 0;
	struct bt_item sep = pg_item(parent, i + 1);
	if (r[4] == MMS_PG_BRANCH)
		extra = sep.kl; /* r's first key becomes the parent's separator */
	if (pg_used(l) + pg_used(r) + extra > PG_USABLE)
		return 0;
	unsigned ln = pg_n(l), rn = pg_n(r);
	struct bt_item *items = malloc((ln + rn) * sizeof(*items));
	uint8_t *lc = malloc(MMS_PAGE_SIZE), *rcpy = malloc(MMS_PAGE_SIZE), *sepk = malloc(MMS_BT_KEY_MAX);
	if (!items || !lc || !rcpy || !sepk) {
		free(items); free(lc); free(rcpy); free(sepk);
		*rc = ENOMEM;
		return -1;
	}
	memcpy(lc, l, MMS_PAGE_SIZE);
	memcpy(rcpy, r, MMS_PAGE_SIZE);
	memcpy(sepk, sep.k, sep.kl);
	for (unsigned j = 0; j < ln; j++)
		items[j] = pg_item(lc, j);
	for (unsigned j = 0; j < rn; j++)
		items[ln + j] = pg_item(rcpy, j);
	if (r[4] == MMS_PG_BRANCH) {
		items[ln].k = sepk;
		items[ln].kl = sep.kl;
	}
	int type = lc[4];
	unsigned level = pg_level(lc);
	uint64_t nl;
	uint8_t *w = mms_page_cow(env, lpg, &nl, rc);
	if (!w) {
		free(items); free(lc); free(rcpy); free(sepk);
		return -1;
	}
	pg_build(w, type, tree, level, items, ln + rn);
	parent = bt_dirty(env, path->pg[d]);
	mms_put_le64((uint8_t *)it_v(pg_it(parent, i)), nl);
	mms_page_free(env, rpg);
	branch_remove(parent, i + 1);
	free(items); free(lc); free(rcpy); free(sepk);
	return 1;
}

int mms_bt_del(mms_env *env, int tree, const void *key, size_t klen)
{
	struct bt_path path;
	if (!env->meta.root[tree])
		return MMS_NOTFOUND;
	int rc = bt_descend(env, tree, key, klen, &path);
	if (rc)
		return rc;
	env->mods++;
	rc = bt_cow_path(env, tree, &path);
	if (rc)
		return rc;
	int d = path.depth - 1;
	uint8_t *p = bt_dirty(env, path.pg[d]);
	pg_remove(p, (unsigned)path.idx[d]);
	/* fix up from the leaf toward the root */
	for (; d > 0; d--) {
		p = bt_dirty(env, path.pg[d]);
		uint8_t *parent = bt_dirty(env, path.pg[d - 1]);
		unsigned pi = (unsigned)path.idx[d - 1];
		if (pg_n(p) == 0) {
			mms_page_free(env, path.pg[d]);
			branch_remove(parent, pi);
			continue;
		}
		if (pg_used(p) >= PG_USABLE / 4)
			break;
		int m = 0;
		if (pi + 1 < pg_n(parent))
			m = bt_try_merge(env, tree, &path, d - 1, pi, &rc);
		if (m == 0 && pi > 0)
			m = bt_try_merge(env, tree, &path, d - 1, pi - 1, &rc);
		if (m < 0)
			return rc;
		if (m == 0)
			break;
	}
	/* shrink the root */
	for (;;) {
		uint64_t root = env->meta.root[tree];
		const uint8_t *r = mms_page_get(env, root, &rc);
		if (!r)
			return rc;
		if (r[4] == MMS_PG_LEAF) {
			if (pg_n(r) == 0) {
				mms_page_free(env, root);
				env->meta.root[tree] = 0;
			}
			break;
		}
		if (pg_n(r) > 1)
			break;
		env->meta.root[tree] = pg_n(r) ? pg_child(r, 0) : 0;
		mms_page_free(env, root);
	}
	return 0;
}

/* ---- cursors ------------------------------------------------------------ */

/* Descend from level d (whose page and index are set) to the leftmost
 * (dir>0) or rightmost (dir<0) leaf below. */
static int cur_descend(struct mms_bt_cursor *c, int d, int dir)
{
	int rc = 0;
	for (;;) {
		const uint8_t *p = mms_page_get(c->env, c->pgno[d], &rc);
		if (!p)
			return rc;
		if (p[4] == MMS_PG_LEAF) {
			c->depth = d + 1;
			if (dir < 0)
				c->idx[d] = (int)pg_n(p) - 1;
			return 0;
		}
		if (d + 1 >= MMS_BT_MAXDEPTH)
			return mms_fail(c->env, MMS_CORRUPT, "%s tree too deep", mms_tree_name(c->tree));
		uint64_t child = pg_child(p, (unsigned)c->idx[d]);
		const uint8_t *cp = mms_page_get(c->env, child, &rc);
		if (!cp)
			return rc;
		if (pg_level(cp) + 1 != pg_level(p) || cp[5] != c->tree)
			return bt_bad_child(c->env, c->tree, c->pgno[d], child, cp, pg_level(p) - 1);
		c->pgno[d + 1] = child;
		c->idx[d + 1] = dir > 0 ? 0 : (int)pg_n(cp) - 1;
		d++;
	}
}

int mms_bt_depth(mms_env *env, int tree, unsigned *depth)
{
	int rc = 0;
	if (!env->meta.root[tree]) {
		*depth = 0;
		return 0;
	}
	const uint8_t *p = mms_page_get(env, env->meta.root[tree], &rc);
	if (!p)
		return rc;
	*depth = pg_level(p) + 1;
	return 0;
}

int mms_bt_first(struct mms_bt_cursor *c, mms_env *env, int tree)
{
	c->env = env;
	c->tree = tree;
	c->depth = 0;
	if (!env->meta.root[tree])
		return MMS_NOTFOUND;
	c->pgno[0] = env->meta.root[tree];
	c->idx[0] = 0;
	int rc = cur_descend(c, 0, 1);
	if (rc)
		return rc;
	int err;
	const uint8_t *p = mms_page_get(env, c->pgno[c->depth - 1], &err);
	if (pg_n(p) == 0) {
		c->depth = 0;
		return MMS_NOTFOUND;
	}
	return 0;
}

static int cur_step(struct mms_bt_cursor *c, int dir)
{
	int rc = 0;
	if (c->depth == 0)
		return MMS_NOTFOUND;
	int d = c->depth - 1;
	const uint8_t *p = mms_page_get(c->env, c->pgno[d], &rc);
	if (!p)
		return rc;
	int ni = c->idx[d] + dir;
	if (ni >= 0 && ni < (int)pg_n(p)) {
		c->idx[d] = ni;
		return 0;
	}
	for (d--; d >= 0; d--) {
		p = mms_page_get(c->env, c->pgno[d], &rc);
		if (!p)
			return rc;
		ni = c->idx[d] + dir;
		if (ni >= 0 && ni < (int)pg_n(p)) {
			c->idx[d] = ni;
			int saved = c->depth;
			rc = cur_descend(c, d, dir);
			if (rc) {
				c->depth = saved;
				return rc;
			}
			return 0;
		}
	}
	return MMS_NOTFOUND;
}

int mms_bt_next(struct mms_bt_cursor *c) { return cur_step(c, 1); }
int mms_bt_prev(struct mms_bt_cursor *c) { return cur_step(c, -1); }

int mms_bt_seek(struct mms_bt_cursor *c, mms_env *env, int tree, const void *key, size_t klen, int mode)
{
	struct bt_path path;
	c->env = env;
	c->tree = tree;
	c->depth = 0;
	if (!env->meta.root[tree])
		return MMS_NOTFOUND;
	int rc = bt_descend(env, tree, key, klen, &path);
	int exact = rc == 0;
	if (rc && rc != MMS_NOTFOUND)
		return rc;
	c->depth = path.depth;
	memcpy(c->pgno, path.pg, sizeof(path.pg[0]) * (size_t)path.depth);
	memcpy(c->idx, path.idx, sizeof(path.idx[0]) * (size_t)path.depth);
	int d = path.depth - 1;
	const uint8_t *p = mms_page_get(env, c->pgno[d], &rc);
	if (!p)
		return rc;
	if (mode == MMS_BT_GE) {
		if (c->idx[d] < (int)pg_n(p))
			return 0;
		c->idx[d] = (int)pg_n(p) - 1;
		rc = mms_bt_next(c);
	} else {
		if (exact)
			return 0;
		if (c->idx[d] > 0) {
			c->idx[d]--;
			return 0;
		}
		rc = mms_bt_prev(c);
	}
	if (rc)
		c->depth = 0;
	return rc;
}

void mms_bt_item(const struct mms_bt_cursor *c, const void **key, size_t *klen, const void **val,
                 size_t *vlen)
{
	int rc;
	const uint8_t *p = mms_page_get(c->env, c->pgno[c->depth - 1], &rc);
	const uint8_t *it = pg_it(p, (unsigned)c->idx[c->depth - 1]);
	if (key)
		*key = it_k(it);
	if (klen)
		*klen = it_kl(it);
	if (val)
		*val = it_v(it);
	if (vlen)
		*vlen = it_vl(it);
}

/* ---- whole-tree walks ------------------------------------------------------ */

static int bt_walk_page(mms_env *env, int tree, uint64_t pgno, int want_level, int depth,
                        mms_bt_page_fn fn, void *ctx)
{
	int rc = 0;
	if (depth >= MMS_BT_MAXDEPTH)
		return mms_fail(env, MMS_CORRUPT, "%s tree deeper than %d levels", mms_tree_name(tree),
		                MMS_BT_MAXDEPTH);
	const uint8_t *p = mms_page_get(env, pgno, &rc);
	if (!p)
		return rc;
	if (p[5] != tree || (want_level >= 0 && (int)pg_level(p) != want_level))
		return bt_bad_child(env, tree, 0, pgno, p, (unsigned)(want_level < 0 ? 0 : want_level));
	rc = fn(ctx, pgno, (int)pg_level(p), p);
	if (rc || p[4] == MMS_PG_LEAF)
		return rc;
	unsigned n = pg_n(p), level = pg_level(p);
	uint64_t *kids = malloc(n * sizeof(*kids));
	if (!kids)
		return ENOMEM;
	for (unsigned i = 0; i < n; i++)
		kids[i] = pg_child(p, i);
	for (unsigned i = 0; i < n && !rc; i++)
		rc = bt_walk_page(env, tree, kids[i], (int)level - 1, depth + 1, fn, ctx);
	free(kids);
	return rc;
}

int mms_bt_walk(mms_env *env, int tree, mms_bt_page_fn fn, void *ctx)
{
	if (!env->meta.root[tree])
		return 0;
	return bt_walk_page(env, tree, env->meta.root[tree], -1, 0, fn, ctx);
}

static int bt_drop_page(mms_env *env, uint64_t pgno, int depth)
{
	int rc = 0;
	const uint8_t *p = mms_page_get(env, pgno, &rc);
	if (!p || depth >= MMS_BT_MAXDEPTH)
		return rc ? rc : MMS_CORRUPT;
	if (p[4] == MMS_PG_BRANCH) {
		unsigned n = pg_n(p);
		uint64_t *kids = malloc(n * sizeof(*kids));
		if (!kids)
			return ENOMEM;
		for (unsigned i = 0; i < n; i++)
			kids[i] = pg_child(p, i);
		for (unsigned i = 0; i < n && !rc; i++)
			rc = bt_drop_page(env, kids[i], depth + 1);
		free(kids);
	}
	mms_page_free(env, pgno);
	return rc;
}

void mms_bt_drop(mms_env *env, int tree)
{
	__atomic_add_fetch(&env->epoch, 1, __ATOMIC_RELEASE);
	if (env->meta.root[tree] && bt_drop_page(env, env->meta.root[tree], 0))
		mms_txn_poison(env);
	env->meta.root[tree] = 0;
}

/* Copy the page path to `pgno`'s position so the page moves (vacuum):
 * rewrite every page of the tree at or beyond `limit` by copying it on
 * write, counting them in *moved.  Once `budget` pages have moved it stops,
 * leaving the rest, and sets *more. */
static int bt_relocate_page(mms_env *env, int tree, struct bt_path *path, uint64_t limit,
                            uint64_t budget, uint64_t *moved, int *more)
{
	int rc = 0;
	int d = path->depth - 1;
	const uint8_t *p = mms_page_get(env, path->pg[d], &rc);
	if (!p)
		return rc;
	if (path->pg[d] >= limit && !mms_page_is_dirty(env, path->pg[d])) {
		if (*moved >= budget) {
			*more = 1;
			return 0;
		}
		rc = bt_cow_path(env, tree, path);
		if (rc)
			return rc;
		(*moved)++;
		p = mms_page_get(env, path->pg[d], &rc);
		if (!p)
			return rc;
	}
	if (p[4] == MMS_PG_LEAF)
		return 0;
	if (path->depth >= MMS_BT_MAXDEPTH)
		return mms_fail(env, MMS_CORRUPT, "%s tree too deep", mms_tree_name(tree));
	unsigned n = pg_n(p), leaves = pg_level(p) == 1;
	for (unsigned i = 0; i < n && !rc && !*more; i++) {
		p = mms_page_get(env, path->pg[d], &rc);
		if (!p)
			return rc;
		/* a leaf below the limit stays: it is not even read (a tree is
		 * nearly all leaves, and a cold store reads each one from disk) */
		if (leaves && pg_child(p, i) < limit)
			continue;
		path->idx[d] = (int)i;
		path->pg[d + 1] = pg_child(p, i);
		path->depth = d + 2;
		rc = bt_relocate_page(env, tree, path, limit, budget, moved, more);
		path->depth = d + 1;
	}
	return rc;
}

int mms_bt_relocate(mms_env *env, int tree, uint64_t limit, uint64_t budget, uint64_t *moved,
                    int *more)
{
	struct bt_path path;
	*more = 0;
	if (!env->meta.root[tree])
		return 0;
	__atomic_add_fetch(&env->epoch, 1, __ATOMIC_RELEASE);
	path.depth = 1;
	path.pg[0] = env->meta.root[tree];
	return bt_relocate_page(env, tree, &path, limit, budget, moved, more);
}
