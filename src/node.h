/*
 * node.h - the layout of a tree page, shared by the pager (which verifies
 * each page on first use) and the tree (which reads and builds them).
 *
 * A page: a 32-byte header (MMS_PG_HDR, fields in doc/FORMAT.md), then the
 * 2-byte offsets of its items in key order; the items themselves (le16 key
 * length, le16 value length, key, value) fill the page from its end down
 * to the heap mark.  Keys compare in memcmp order, a prefix first.
 */
#ifndef MMS_NODE_H
#define MMS_NODE_H

#include "mms_int.h"

#define PG_USABLE (MMS_PAGE_SIZE - MMS_PG_HDR)

struct bt_item {
	const uint8_t *k;
	size_t kl;
	const uint8_t *v;
	size_t vl;
};

static inline unsigned pg_n(const uint8_t *p) { return mms_get_le16(p + 6); }
static inline unsigned pg_level(const uint8_t *p) { return mms_get_le16(p + 26); }
static inline unsigned pg_heap(const uint8_t *p) { return mms_get_le16(p + 24); }
static inline const uint8_t *pg_it(const uint8_t *p, unsigned i)
{
	return p + mms_get_le16(p + MMS_PG_HDR + 2 * i);
}
static inline size_t it_kl(const uint8_t *it) { return mms_get_le16(it); }
static inline size_t it_vl(const uint8_t *it) { return mms_get_le16(it + 2); }
static inline const uint8_t *it_k(const uint8_t *it) { return it + 4; }
static inline const uint8_t *it_v(const uint8_t *it) { return it + 4 + it_kl(it); }
static inline size_t it_size(size_t kl, size_t vl) { return 4 + kl + vl + 2; /* with slot */ }

static inline struct bt_item pg_item(const uint8_t *p, unsigned i)
{
	const uint8_t *it = pg_it(p, i);
	return (struct bt_item){ it_k(it), it_kl(it), it_v(it), it_vl(it) };
}

static inline uint64_t pg_child(const uint8_t *p, unsigned i)
{
	return mms_get_le64(it_v(pg_it(p, i)));
}

/* memcmp order, shorter first on a tie.  Most keys start with big-endian
 * integers: compare whole words first. */
static inline int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
	const uint8_t *x = a, *y = b;
	size_t n = al < bl ? al : bl, i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t u, v;
		memcpy(&u, x + i, 8);
		memcpy(&v, y + i, 8);
		if (u != v) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			u = __builtin_bswap64(u);
			v = __builtin_bswap64(v);
#endif
			return u < v ? -1 : 1;
		}
	}
	/* the last 1-7 bytes (separators are cut short: a call to memcmp
	 * would cost more than they do) */
	for (; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return al < bl ? -1 : al > bl;
}

/* 1 if page p (its checksum is fine) is a well-formed tree page; else 0
 * with the reason in why. */
int mms_node_valid(const uint8_t *p, char *why, size_t whylen);

#endif
