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
	struct mms_rs_chunk *spare; /* for the next split (mms_rs_reserve) */
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
/* Does [start, start+n) overlap a run of s? */
bool mms_rs_overlaps(const struct mms_runset *s, uint64_t start, uint64_t n);
/* Call fn(ctx, start, n, in) on each sub-range of [start, start+n), in
 * order: in = 1 inside the set, 0 outside.  fn must not change s.  Stops
 * at fn's first non-zero return, which it returns. */
int mms_rs_split(const struct mms_runset *s, uint64_t start, uint64_t n,
                 int (*fn)(void *, uint64_t, uint64_t, int), void *ctx);
/* Pages of s at or past pgno. */
uint64_t mms_rs_count_from(const struct mms_runset *s, uint64_t pgno);
/* Remove every run for which drop(ctx, run) is true; never allocates. */
void mms_rs_filter(struct mms_runset *s, bool (*drop)(void *, const struct mms_run *), void *ctx);
/* Empty the set (its memory is kept); mms_rs_fini frees it. */
void mms_rs_clear(struct mms_runset *s);
void mms_rs_fini(struct mms_runset *s);

/* Iteration, in address order; the set must not change meanwhile:
 *   for (struct mms_rs_it it = mms_rs_begin(s); it.r; mms_rs_next(&it)) */
struct mms_rs_it mms_rs_begin(const struct mms_runset *s);
/* The first run that ends past pgno (holds it, or comes after it). */
struct mms_rs_it mms_rs_seek(const struct mms_runset *s, uint64_t pgno);
/* The first run of at least n pages, by address (chunks without one are
 * skipped whole). */
struct mms_rs_it mms_rs_fit(const struct mms_runset *s, uint64_t n);
void mms_rs_next(struct mms_rs_it *it);
/* The last run, or NULL. */
const struct mms_run *mms_rs_last(const struct mms_runset *s);

#endif
