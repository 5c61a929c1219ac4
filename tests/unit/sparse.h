/*
 * sparse.h - the byte model of test_model.c and test_crash.c: a value as
 * its size plus the pages ever written, sorted by index; absent pages read
 * as zeros.  Bytes at and past `size` are always zero (truncation clears
 * them), so growing the size exposes zeros.  Header-only, like tap.h.
 */
#ifndef MMS_TEST_SPARSE_H
#define MMS_TEST_SPARSE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PG 4096u /* page size of the store and of the model */

struct mpage {
	uint64_t idx;
	uint8_t *b; /* PG bytes */
};

struct mdata {
	uint64_t size;
	struct mpage *pg;
	size_t n, cap;
};

/* Index of the first page with idx >= `idx`. */
static size_t md_lower(const struct mdata *d, uint64_t idx)
{
	size_t lo = 0, hi = d->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (d->pg[mid].idx < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The page `idx`, created (zeroed) when absent. */
static uint8_t *md_page(struct mdata *d, uint64_t idx)
{
	size_t at = md_lower(d, idx);
	if (at < d->n && d->pg[at].idx == idx)
		return d->pg[at].b;
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->pg = realloc(d->pg, d->cap * sizeof *d->pg);
		if (!d->pg)
			abort();
	}
	memmove(d->pg + at + 1, d->pg + at, (d->n - at) * sizeof *d->pg);
	d->pg[at].idx = idx;
	d->pg[at].b = calloc(1, PG);
	if (!d->pg[at].b)
		abort();
	d->n++;
	return d->pg[at].b;
}

/* Store `len` bytes at `off`, growing the size. */
static void md_write(struct mdata *d, uint64_t off, const uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		uint64_t o = off + done;
		size_t in = (size_t)(o % PG);
		size_t n = PG - in < len - done ? PG - in : len - done;
		memcpy(md_page(d, o / PG) + in, buf + done, n);
		done += n;
	}
	if (off + len > d->size)
		d->size = off + len;
}

/* Make [off, off+len) zeros (the size does not change). */
static void md_zero(struct mdata *d, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;
	for (size_t i = md_lower(d, off / PG); i < d->n; i++) {
		uint64_t ps = d->pg[i].idx * PG, pe = ps + PG;
		if (ps >= end)
			break;
		uint64_t s = off > ps ? off : ps, e = end < pe ? end : pe;
		if (s < e)
			memset(d->pg[i].b + (s - ps), 0, (size_t)(e - s));
	}
}

/* Set the size: shrinking zeroes and drops the tail. */
static void md_truncate(struct mdata *d, uint64_t size)
{
	if (size < d->size) {
		md_zero(d, size, d->size - size);
		size_t keep = md_lower(d, (size + PG - 1) / PG);
		for (size_t i = keep; i < d->n; i++)
			free(d->pg[i].b);
		d->n = keep;
	}
	d->size = size;
}

/* Copy [off, off+len) into out (zeros for holes and past the size). */
static void md_read(const struct mdata *d, uint64_t off, size_t len, uint8_t *out)
{
	memset(out, 0, len);
	uint64_t end = off + len;
	for (size_t i = md_lower(d, off / PG); i < d->n; i++) {
		uint64_t ps = d->pg[i].idx * PG, pe = ps + PG;
		if (ps >= end)
			break;
		uint64_t s = off > ps ? off : ps, e = end < pe ? end : pe;
		if (s < e)
			memcpy(out + (s - off), d->pg[i].b + (s - ps), (size_t)(e - s));
	}
}

/* Offset of some nonzero byte below the size, or UINT64_MAX. */
static void md_free(struct mdata *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->pg[i].b);
	free(d->pg);
	memset(d, 0, sizeof *d);
}

static void md_copy(struct mdata *dst, const struct mdata *src)
{
	dst->size = src->size;
	dst->n = dst->cap = src->n;
	dst->pg = src->n ? malloc(src->n * sizeof *dst->pg) : NULL;
	for (size_t i = 0; i < src->n; i++) {
		dst->pg[i].idx = src->pg[i].idx;
		dst->pg[i].b = malloc(PG);
		if (!dst->pg[i].b)
			abort();
		memcpy(dst->pg[i].b, src->pg[i].b, PG);
	}
}

#endif /* MMS_TEST_SPARSE_H */
