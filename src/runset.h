/*
 * runset.h - sets of page runs: sorted, coalesced, in memory.
 *
 * The allocator (alloc.c) keeps where every non-live page of the store
 * stands in such sets: free, pending, fresh, the open transaction's
 * allocations and frees...  A set holds disjoint runs [start, start+n) in
 * address order, and never two that touch (adding a run joins its
 * neighbours).
 *
 * A set is a sequence of chunks of at most MMS_RS_CHUNK runs, each chunk
 * knowing its longest run, so that adding or removing a run moves at most
 * one chunk's runs (and, when a chunk splits or empties, the chunk
 * pointers), and finding the first run of at least n pages skips whole
 * chunks: a store whose free space lies in a hundred thousand runs costs
 * a commit no more than one with ten (the sorted array this replaced moved
 * the whole array for each run it took or gave back at its front).
 *
 * Invariants: no chunk is empty; runs are sorted and apart across chunks;
 * n and total count the runs and pages of the whole set; a chunk's maxn is
 * the length of its longest run.  A zeroed struct is an empty set.
 */
#ifndef MMS_RUNSET_H
#define MMS_RUNSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mms_run {
	uint64_t start, n;
};

#define MMS_RS_CHUNK 64u

struct mms_rs_chunk {
	unsigned n;
	uint64_t maxn;
	struct mms_run r[MMS_RS_CHUNK];
};

struct mms_runset {
	struct mms_rs_chunk **c;    /* chunks in address order */
	size_t nc, capc;
	struct mms_rs_chunk *spare[2]; /* for the next splits (mms_rs_reserve),
	                                * and a cleared set's first chunk */
	size_t n;                   /* runs */
	uint64_t total;             /* pages */
};

/* A place in a set: the run it.r (NULL past the last). */
struct mms_rs_it {
	const struct mms_runset *s;
	size_t c;
	unsigned j;
	const struct mms_run *r;
};

/* (inline: the allocator looks runs up several times per page it takes or
 * gives back) */
static inline uint64_t mms_rs_end_(const struct mms_run *r) { return r->start + r->n; }

/* The place (c, j) as an iterator (c == nc: past the last run). */
static inline struct mms_rs_it mms_rs_at_(const struct mms_runset *s, size_t c, unsigned j)
{
	return (struct mms_rs_it){ s, c, j, c < s->nc ? &s->c[c]->r[j] : NULL };
}

/* The place of the first run that ends past pgno: chunk *c (nc: none),
 * run *j. */
static inline void mms_rs_find_(const struct mms_runset *s, uint64_t pgno, size_t *c, unsigned *j)
{
	size_t lo = 0, hi = s->nc;
	if (hi == 1 && mms_rs_end_(&s->c[0]->r[s->c[0]->n - 1]) > pgno)
		hi = 0; /* one chunk (most sets): no search among chunks */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct mms_rs_chunk *ch = s->c[mid];
		if (mms_rs_end_(&ch->r[ch->n - 1]) <= pgno)
			lo = mid + 1;
		else
			hi = mid;
	}
	*c = lo;
	*j = 0;
	if (lo == s->nc)
		return;
	const struct mms_rs_chunk *ch = s->c[lo];
	unsigned l = 0, h = ch->n;
	while (l < h) {
		unsigned mid = (l + h) / 2;
		if (mms_rs_end_(&ch->r[mid]) <= pgno)
			l = mid + 1;
		else
			h = mid;
	}
	*j = l;
}

/* Does [start, start+n) overlap a run of s? */
static inline bool mms_rs_overlaps(const struct mms_runset *s, uint64_t start, uint64_t n)
{
	size_t c;
	unsigned j;
	mms_rs_find_(s, start, &c, &j);
	return c < s->nc && s->c[c]->r[j].start < start + n;
}

/* The first run that ends past pgno (holds it, or comes after it). */
static inline struct mms_rs_it mms_rs_seek(const struct mms_runset *s, uint64_t pgno)
{
	size_t c;
	unsigned j;
	mms_rs_find_(s, pgno, &c, &j);
	return mms_rs_at_(s, c, j);
}

/* Make the next mms_rs_add of a run that touches none of the set succeed
 * without allocating.  0 or ENOMEM. */
int mms_rs_reserve(struct mms_runset *s);
/* Add [start, start+n), which must not overlap the set; joins neighbours.
 * 0 or ENOMEM (the set is then unchanged). */
int mms_rs_add(struct mms_runset *s, uint64_t start, uint64_t n);
/* Remove whatever part of [start, start+n) the set holds.  0 or ENOMEM
 * (cutting a run in two may need a chunk; the set then holds what it
 * held). */
int mms_rs_remove(struct mms_runset *s, uint64_t start, uint64_t n);
/* Call fn(ctx, start, n, in) on each sub-range of [start, start+n), in
 * order: in = 1 inside the set, 0 outside.  fn may change s in the part
 * it is given (the allocator's callbacks take that part out of s).  Stops
 * at fn's first non-zero return, which it returns. */
int mms_rs_split(const struct mms_runset *s, uint64_t start, uint64_t n,
                 int (*fn)(void *, uint64_t, uint64_t, int), void *ctx);
/* Pages of s at or past pgno. */
uint64_t mms_rs_count_from(const struct mms_runset *s, uint64_t pgno);
/* Remove every run for which drop(ctx, run) is true; never allocates. */
void mms_rs_filter(struct mms_runset *s, bool (*drop)(void *, const struct mms_run *), void *ctx);
/* Empty the set, keeping its chunk pointers and two chunks for refilling
 * it; mms_rs_fini frees it all. */
void mms_rs_clear(struct mms_runset *s);
void mms_rs_fini(struct mms_runset *s);

/* Iteration, in address order; the set must not change meanwhile:
 *   for (struct mms_rs_it it = mms_rs_begin(s); it.r; mms_rs_next(&it))
 * (begin and next are inline: the allocator walks sets on every commit) */
static inline struct mms_rs_it mms_rs_begin(const struct mms_runset *s)
{
	return mms_rs_at_(s, 0, 0);
}

static inline void mms_rs_next(struct mms_rs_it *it)
{
	if (it->j + 1 < it->s->c[it->c]->n)
		*it = mms_rs_at_(it->s, it->c, it->j + 1);
	else
		*it = mms_rs_at_(it->s, it->c + 1, 0);
}

/* The first run of at least n pages, by address (chunks without one are
 * skipped whole). */
struct mms_rs_it mms_rs_fit(const struct mms_runset *s, uint64_t n);
/* The last run, or NULL. */
const struct mms_run *mms_rs_last(const struct mms_runset *s);

#endif
