/*
 * test_btree.c - the copy-on-write B+tree against a sorted in-memory model:
 * random puts (small and large values, variable keys), replaces, deletes,
 * cursors both ways, seeks GE/LE, commits, rollbacks and reopens; pages are
 * given back when keys go; sequential keys fill pages.
 * Uses the XATTR tree of a fresh store as a scratch tree.
 */
#define MMS_TEST_HOOKS 1 /* links tests/libmms_test.la: mms_file_test_tight_map */
#include "mms_int.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>

#define T MMS_TREE_XATTR
#define NKEYS 6000

struct kv {
	char key[64];
	size_t kl;
	uint32_t vseed;
	size_t vl;
	int live;
};

static struct kv model[NKEYS];
static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
	return tap_xorshift(&rng);
}

static void fill(uint8_t *buf, uint32_t seed, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 31 + i * 7);
}

static int cmp_kv(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->kl < y->kl ? x->kl : y->kl);
	return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

/* Compare the whole tree with the model, forward and backward. */
static int verify(mms_env *env, const char *when)
{
	static struct kv sorted[NKEYS];
	size_t n = 0;
	for (int i = 0; i < NKEYS; i++)
		if (model[i].live)
			sorted[n++] = model[i];
	qsort(sorted, n, sizeof(sorted[0]), cmp_kv);
	struct mms_bt_cursor c;
	uint8_t want[MMS_BT_VAL_MAX];
	size_t i = 0;
	int rc = mms_bt_first(&c, env, T), bad = 0;
	while (rc == 0 && i < n) {
		const void *k, *v;
		size_t kl, vl;
		mms_bt_item(&c, &k, &kl, &v, &vl);
		fill(want, sorted[i].vseed, sorted[i].vl);
		if (kl != sorted[i].kl || memcmp(k, sorted[i].key, kl) || vl != sorted[i].vl || memcmp(v, want, vl)) {
			bad = 1;
			break;
		}
		i++;
		rc = mms_bt_next(&c);
	}
	ok(!bad && i == n && (n == 0 || rc == MMS_NOTFOUND), "%s: forward scan matches %zu keys (got %zu)", when, n, i);
	/* backward */
	size_t j = n;
	bad = 0;
	if (n) {
		const struct kv *last = &sorted[n - 1];
		rc = mms_bt_seek(&c, env, T, last->key, last->kl, MMS_BT_LE);
		while (rc == 0 && j > 0) {
			const void *k;
			size_t kl;
			mms_bt_item(&c, &k, &kl, NULL, NULL);
			if (kl != sorted[j - 1].kl || memcmp(k, sorted[j - 1].key, kl)) {
				bad = 1;
				break;
			}
			j--;
			rc = mms_bt_prev(&c);
		}
	}
	ok(!bad && j == 0, "%s: backward scan matches", when);
	/* point gets */
	bad = 0;
	for (int k = 0; k < NKEYS; k++) {
		const void *v;
		size_t vl;
		int r = mms_bt_get(env, T, model[k].key, model[k].kl, &v, &vl);
		if (model[k].live ? (r || vl != model[k].vl) : r != MMS_NOTFOUND)
			bad++;
	}
	is_int(bad, 0, "point gets agree with the model");
	return 0;
}

int main(void)
{
	mms_file_test_tight_map = 1; /* every growth of the file moves the map */
	tap_plan_none();
	char *dir = tap_tmpdir();
	char path[512];
	snprintf(path, sizeof(path), "%s/bt.mms", dir);
	mms_env *env;
	int rc = mms_open(path, &(struct mms_options){ .flags = MMS_CREATE }, &env);
	if (!ok(rc == 0, "create"))
		return tap_done();
	uint8_t val[MMS_BT_VAL_MAX];
	for (int i = 0; i < NKEYS; i++) {
		/* keys share prefixes of various lengths, sizes 1..60 */
		int len = snprintf(model[i].key, sizeof(model[i].key), "%0*llu/%d", (int)(rnd() % 40) + 1,
		                   (unsigned long long)(rnd() % 100000), i);
		model[i].kl = (size_t)len;
	}
	static struct kv committed[NKEYS];
	int errors = 0;
	for (int round = 0; round < 6; round++) {
		mms_txn_enter(env);
		for (int op = 0; op < 8000; op++) {
			int i = (int)(rnd() % NKEYS);
			if (rnd() % 3) {
				model[i].vseed = (uint32_t)rnd();
				model[i].vl = rnd() % 8 ? rnd() % 100 : rnd() % MMS_BT_VAL_MAX;
				fill(val, model[i].vseed, model[i].vl);
				errors += mms_bt_put(env, T, model[i].key, model[i].kl, val, model[i].vl) != 0;
				model[i].live = 1;
			} else {
				int r = mms_bt_del(env, T, model[i].key, model[i].kl);
				errors += model[i].live ? r != 0 : r != MMS_NOTFOUND;
				model[i].live = 0;
			}
		}
		ok(errors == 0, "round %d: every put and delete returned what the model expects (%d errors)", round, errors);
		verify(env, "before commit");
		if (round == 2) {
			/* roll this round back */
			is_int(mms_rollback(env), 0, "rollback");
			memcpy(model, committed, sizeof(model));
			verify(env, "after rollback");
			continue;
		}
		is_int(mms_commit(env), 0, "commit");
		memcpy(committed, model, sizeof(model));
		if (round % 2) {
			is_int(mms_close(env), 0, "close");
			is_int(mms_open(path, NULL, &env), 0, "reopen");
			verify(env, "after reopen");
		}
	}
	/* seeks */
	mms_txn_enter(env);
	mms_bt_drop(env, T);
	memset(model, 0, sizeof(model));
	for (int i = 0; i < 100; i++) {
		char k[8];
		snprintf(k, sizeof(k), "k%03d", i * 2);
		mms_bt_put(env, T, k, 4, "v", 1);
	}
	struct mms_bt_cursor c;
	const void *k;
	size_t kl;
	is_int(mms_bt_seek(&c, env, T, "k051", 4, MMS_BT_GE), 0, "seek GE between keys");
	mms_bt_item(&c, &k, &kl, NULL, NULL);
	ok(kl == 4 && !memcmp(k, "k052", 4), "GE lands on the next key");
	is_int(mms_bt_seek(&c, env, T, "k051", 4, MMS_BT_LE), 0, "seek LE between keys");
	mms_bt_item(&c, &k, &kl, NULL, NULL);
	ok(kl == 4 && !memcmp(k, "k050", 4), "LE lands on the previous key");
	is_int(mms_bt_seek(&c, env, T, "k199", 4, MMS_BT_GE), MMS_NOTFOUND, "GE past the end");
	is_int(mms_bt_seek(&c, env, T, "a", 1, MMS_BT_LE), MMS_NOTFOUND, "LE before the start");
	/* pages come back when keys go; sequential keys fill pages */
	uint64_t base = env->meta.tree_pages;
	mms_bt_drop(env, T);
	uint64_t empty = env->meta.tree_pages;
	for (int i = 0; i < 50000; i++) {
		uint8_t key[8];
		mms_put_be64(key, (uint64_t)i);
		mms_bt_put(env, T, key, 8, val, 80);
	}
	uint64_t used = env->meta.tree_pages - empty;
	uint64_t ideal = 50000ull * (8 + 80 + 6) / (MMS_PAGE_SIZE - MMS_PG_HDR);
	ok(used <= ideal + ideal / 10 + 3, "sequential keys fill pages: %llu pages, ideal %llu",
	   (unsigned long long)used, (unsigned long long)ideal);
	for (int i = 0; i < 50000; i++) {
		uint8_t key[8];
		mms_put_be64(key, (uint64_t)((i * 7919) % 50000));
		if (mms_bt_del(env, T, key, 8))
			errors++;
	}
	is_int(errors, 0, "every key deleted");
	is_int(env->meta.root[T], 0, "the tree is empty");
	is_int(env->meta.tree_pages, empty, "every page came back");
	/* separators: 20,000 keys of 200 bytes that differ within their first
	 * 8 (then a shared tail, as name keys share none but differ in their
	 * hash) put in random order.  A leaf's separator is the shortest
	 * prefix that divides it from its neighbour: a few bytes, so the
	 * branches hold hundreds of children and the tree has 3 levels (with
	 * whole keys as separators, 19 children a branch, it would have 4). */
	uint8_t lkey[200];
	memset(lkey, 'T', sizeof lkey);
	errors = 0;
	for (int i = 0; i < 20000; i++) {
		mms_put_be64(lkey, tap_xorshift(&rng));
		errors += mms_bt_put(env, T, lkey, sizeof lkey, val, 8) != 0;
	}
	is_int(errors, 0, "20,000 keys of 200 bytes");
	struct mms_bt_cursor lc;
	is_int(mms_bt_first(&lc, env, T), 0, "first of them");
	is_int(lc.depth, 3, "the tree of 200-byte keys has 3 levels");
	size_t longest = 0, seps = 0;
	{
		/* the level-1 branches: the parents of every leaf, in a pass
		 * over the leaves */
		uint64_t last = 0;
		int r = mms_bt_first(&lc, env, T);
		while (r == 0) {
			uint64_t parent = lc.pgno[lc.depth - 2];
			if (parent != last) {
				const uint8_t *bp = mms_page_get(env, parent, &r);
				for (unsigned j = 1; bp && j < mms_bt_page_count(bp); j++) {
					const void *k, *v;
					size_t kl, vl;
					mms_bt_page_item(bp, j, &k, &kl, &v, &vl);
					longest = kl > longest ? kl : longest;
					seps++;
				}
				last = parent;
			}
			r = mms_bt_next(&lc);
		}
		is_int(r, MMS_NOTFOUND, "walked every leaf");
	}
	ok(seps > 50 && longest <= 8, "%zu separators of level 1, the longest %zu bytes of the keys' 200",
	   seps, longest);
	mms_bt_drop(env, T);
	(void)base;
	is_int(mms_commit(env), 0, "commit");
	is_int(mms_close(env), 0, "close");
	return tap_done();
}
