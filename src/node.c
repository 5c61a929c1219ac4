/*
 * node.c - validation of a tree page read from the file (layout: node.h).
 *
 * Below the pager, which runs it on a page's first use after open, and
 * the tree, which then trusts every offset, length and order it reads.
 */
#include "node.h"

#include <stdio.h>

/* Any two items fit in one page: a split of a full page always works. */
_Static_assert(2 * (4 + 2 + MMS_BT_KEY_MAX + MMS_BT_VAL_MAX) <= PG_USABLE,
               "two items of the longest key and value must fit in a page");

/* Structural check of a page read from the file (its checksum is fine). */
int mms_node_valid(const uint8_t *p, char *why, size_t whylen)
{
	unsigned n = pg_n(p), heap = pg_heap(p), level = pg_level(p);
	uint64_t starts[MMS_PAGE_SIZE / 64] = { 0 }; /* offsets where items start */
	if ((p[4] == MMS_PG_LEAF) != (level == 0) || level >= MMS_BT_MAXDEPTH) {
		snprintf(why, whylen, "type %u does not match level %u", p[4], level);
		return 0;
	}
	if (MMS_PG_HDR + 2 * n > heap || heap > MMS_PAGE_SIZE) {
		snprintf(why, whylen, "%u items and heap at %u do not fit", n, heap);
		return 0;
	}
	if (p[4] == MMS_PG_BRANCH && n == 0) {
		snprintf(why, whylen, "empty branch");
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned off = mms_get_le16(p + MMS_PG_HDR + 2 * i);
		if (off < heap || off + 4 > MMS_PAGE_SIZE) {
			snprintf(why, whylen, "item %u at offset %u outside the heap", i, off);
			return 0;
		}
		size_t kl = it_kl(p + off), vl = it_vl(p + off);
		if (off + 4 + kl + vl > MMS_PAGE_SIZE || kl > MMS_BT_KEY_MAX || vl > MMS_BT_VAL_MAX) {
			snprintf(why, whylen, "item %u (key %zu, value %zu bytes) overruns the page", i, kl, vl);
			return 0;
		}
		if (p[4] == MMS_PG_BRANCH && (vl != 8 || (i == 0 && kl != 0) || (i > 0 && kl == 0))) {
			snprintf(why, whylen, "branch item %u malformed", i);
			return 0;
		}
		if (p[4] == MMS_PG_LEAF && kl == 0) {
			snprintf(why, whylen, "leaf item %u has an empty key", i);
			return 0;
		}
		if (starts[off / 64] & (1ull << (off % 64))) {
			snprintf(why, whylen, "item %u at offset %u overlaps another item", i, off);
			return 0;
		}
		starts[off / 64] |= 1ull << (off % 64);
		if (i > 0) {
			const uint8_t *prev = p + mms_get_le16(p + MMS_PG_HDR + 2 * (i - 1));
			if (key_cmp(it_k(prev), it_kl(prev), it_k(p + off), kl) >= 0) {
				snprintf(why, whylen, "item %u is out of order", i);
				return 0;
			}
		}
	}
	/* Items may not share bytes (code that rebuilds a page copies each item
	 * once and would overrun it): in the order of their offsets, each one
	 * ends before the next begins. */
	unsigned prev_end = 0, prev_off = 0;
	for (unsigned w = 0; w < MMS_PAGE_SIZE / 64; w++) {
		for (uint64_t bits = starts[w]; bits; bits &= bits - 1) {
			unsigned off = w * 64 + (unsigned)__builtin_ctzll(bits);
			if (off < prev_end) {
				snprintf(why, whylen, "the item at offset %u overlaps the one at %u", off, prev_off);
				return 0;
			}
			prev_off = off;
			prev_end = off + 4 + (unsigned)it_kl(p + off) + (unsigned)it_vl(p + off);
		}
	}
	return 1;
}

static const char *const mms_tree_names[MMS_NTREES] = {
	"inode", "name", "extent", "xattr", "orphan", "link", "share"
};

const char *mms_tree_name(int tree)
{
	return (tree >= 0 && tree < MMS_NTREES) ? mms_tree_names[tree] : "?";
}
