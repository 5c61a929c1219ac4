/*
 * share.c - data pages that several extents reference (format 3).
 *
 * mms_copy_range shares whole pages instead of copying them: the target's
 * extents point at the source's pages.  The SHARE tree counts the
 * references of every page that has more than one:
 *
 *   SHARE: be64 first physical page -> le64 pages, le32 references (>= 2)
 *
 * Items never overlap.  A data page that no item covers has exactly one
 * reference (the extent that holds it) or none (it is free).  So a store
 * that shares nothing has an empty SHARE tree and pays nothing here: a drop
 * then frees the pages at once, without a look at the tree.
 *
 * Two rules keep shared bytes safe.  A shared page is never written in
 * place: mms_share_add takes its pages out of the allocator's fresh set
 * (mms_alloc_settle), so data.c copies them on write like synced pages,
 * even after the count drops back to one - a rollback or a crash may bring
 * back the state in which they were shared.  And every release of data
 * pages goes through mms_share_drop, which frees only the pages whose last
 * reference goes.
 * Items are split where a change starts or ends inside one; neighbours with
 * equal counts are not merged (a later split would only undo it).
 *
 * Layer: above the tree (btree.c) and the allocator (alloc.c), which it
 * uses; below data.c and vacuum.c, which call it.
 */
#include "mms_int.h"

/* One decoded SHARE item: references of pages [first, first+n). */
struct mms_share_run {
	uint64_t first, n;
	uint32_t refs;
};

static void mms_share_key(uint8_t key[8], uint64_t first)
{
	mms_put_be64(key, first);
}

static int mms_share_decode(mms_env *env, const struct mms_bt_cursor *c, struct mms_share_run *r)
{
	const void *k, *v;
	size_t kl, vl;
	mms_bt_item(c, &k, &kl, &v, &vl);
	if (kl != 8 || vl != 12)
		return mms_fail(env, MMS_CORRUPT, "share tree: malformed item (key %zu, value %zu bytes)",
		                kl, vl);
	r->first = mms_get_be64(k);
	r->n = mms_get_le64(v);
	r->refs = mms_get_le32((const uint8_t *)v + 8);
	if (r->n == 0 || r->refs < 2 || r->first < MMS_META_PAGES || r->first > UINT64_MAX - r->n ||
	    r->first + r->n > env->meta.file_pages)
		return mms_fail(env, MMS_CORRUPT,
		                "share tree: item at page %llu: %llu pages, %u references (file %llu pages)",
		                (unsigned long long)r->first, (unsigned long long)r->n, r->refs,
		                (unsigned long long)env->meta.file_pages);
	return 0;
}

static int mms_share_put(mms_env *env, uint64_t first, uint64_t n, uint32_t refs)
{
	uint8_t key[8], val[12];
	mms_share_key(key, first);
	mms_put_le64(val, n);
	mms_put_le32(val + 8, refs);
	return mms_bt_put(env, MMS_TREE_SHARE, key, sizeof key, val, sizeof val);
}

static int mms_share_del(mms_env *env, uint64_t first)
{
	uint8_t key[8];
	mms_share_key(key, first);
	return mms_bt_del(env, MMS_TREE_SHARE, key, sizeof key);
}

/*
 * The item that covers page p, or else the first one after it: *found
 * false when there is neither.
 */
static int mms_share_at(mms_env *env, uint64_t p, struct mms_share_run *r, bool *found)
{
	struct mms_bt_cursor c;
	uint8_t key[8];
	int rc;

	*found = false;
	mms_share_key(key, p);
	rc = mms_bt_seek(&c, env, MMS_TREE_SHARE, key, sizeof key, MMS_BT_LE);
	if (rc == 0) {
		rc = mms_share_decode(env, &c, r);
		if (rc)
			return rc;
		if (r->first + r->n > p) {
			*found = true;
			return 0;
		}
		rc = mms_bt_next(&c);
	} else if (rc == MMS_NOTFOUND) {
		rc = mms_bt_seek(&c, env, MMS_TREE_SHARE, key, sizeof key, MMS_BT_GE);
	}
	if (rc == MMS_NOTFOUND)
		return 0;
	if (rc == 0)
		rc = mms_share_decode(env, &c, r);
	if (rc == 0)
		*found = true;
	return rc;
}

/*
 * Add `delta` (+1 or -1) to the references of pages [p, p+n).  Pages no
 * item covers have one reference: +1 makes an item of 2 for them, -1
 * frees them (*freed counts those).
 */
static int mms_share_adjust(mms_env *env, uint64_t p, uint64_t n, int delta, uint64_t *freed)
{
	uint64_t end = p + n;
	int rc = 0;

	while (p < end && rc == 0) {
		struct mms_share_run r;
		bool found = false;
		if (env->meta.root[MMS_TREE_SHARE])
			rc = mms_share_at(env, p, &r, &found);
		if (rc)
			break;
		if (!found || r.first >= end || r.first > p) {
			/* pages [p, gap_end) have one reference each */
			uint64_t gap_end = (!found || r.first >= end) ? end : r.first;
			if (delta > 0) {
				rc = mms_share_put(env, p, gap_end - p, 2);
			} else {
				mms_free(env, p, gap_end - p, MMS_ALLOC_DATA);
				*freed += gap_end - p;
			}
			p = gap_end;
			continue;
		}
		/* r covers p: split it into [r.first, p), [p, stop), [stop, r end) */
		uint64_t stop = r.first + r.n < end ? r.first + r.n : end;
		uint64_t rend = r.first + r.n;
		uint32_t refs = delta > 0 ? r.refs + 1 : r.refs - 1;
		if (delta > 0 && r.refs == UINT32_MAX)
			return mms_fail(env, MMS_TOOBIG, "page %llu has %u references already",
			                (unsigned long long)p, r.refs);
		if (r.first < p)
			rc = mms_share_put(env, r.first, p - r.first, r.refs);
		else
			rc = mms_share_del(env, r.first);
		if (rc == 0 && refs >= 2)
			rc = mms_share_put(env, p, stop - p, refs);
		if (rc == 0 && stop < rend)
			rc = mms_share_put(env, stop, rend - stop, r.refs);
		p = stop;
	}
	return rc;
}

int mms_share_add(mms_env *env, uint64_t p, uint64_t n)
{
	uint64_t unused = 0;
	int rc = mms_alloc_settle(env, p, n);
	return rc ? rc : mms_share_adjust(env, p, n, +1, &unused);
}

int mms_share_drop(mms_env *env, uint64_t p, uint64_t n, uint64_t *freed)
{
	uint64_t got = 0;
	int rc = 0;
	if (env->meta.root[MMS_TREE_SHARE]) {
		rc = mms_share_adjust(env, p, n, -1, &got);
	} else {
		mms_free(env, p, n, MMS_ALLOC_DATA);
		got = n;
	}
	if (freed)
		*freed = got;
	return rc;
}

int mms_share_move(mms_env *env, uint64_t from, uint64_t n, uint64_t to, uint32_t *refs)
{
	struct mms_share_run r;
	bool found;
	int rc = mms_share_at(env, from, &r, &found);
	if (rc)
		return rc;
	if (!found || r.first > from || r.first + r.n < from + n)
		return mms_fail(env, MMS_CORRUPT, "share tree: no item holds pages %llu+%llu",
		                (unsigned long long)from, (unsigned long long)n);
	uint64_t rend = r.first + r.n;
	if (r.first < from)
		rc = mms_share_put(env, r.first, from - r.first, r.refs);
	else
		rc = mms_share_del(env, r.first);
	if (rc == 0 && from + n < rend)
		rc = mms_share_put(env, from + n, rend - (from + n), r.refs);
	if (rc == 0)
		rc = mms_share_put(env, to, n, r.refs);
	*refs = r.refs;
	return rc;
}

int mms_share_next(mms_env *env, uint64_t p, uint64_t *first, uint64_t *n, uint32_t *refs)
{
	struct mms_share_run r;
	bool found = false;
	int rc = env->meta.root[MMS_TREE_SHARE] ? mms_share_at(env, p, &r, &found) : 0;
	if (rc)
		return rc;
	if (!found)
		return MMS_NOTFOUND;
	*first = r.first < p ? p : r.first;
	*n = r.first + r.n - *first;
	*refs = r.refs;
	return 0;
}

uint64_t mms_share_cost(mms_env *env, uint64_t changes, bool adding)
{
	unsigned depth = 0;
	if (!env->meta.root[MMS_TREE_SHARE] && !adding)
		return 0;
	if (mms_bt_depth(env, MMS_TREE_SHARE, &depth))
		depth = MMS_BT_MAXDEPTH; /* damaged: the call fails later with the detail */
	if (depth == 0)
		depth = 1;
	/* each change splits an item into at most three: two inserts */
	return 2 * (2 * (uint64_t)depth + 1) + changes / 8 + 1;
}
