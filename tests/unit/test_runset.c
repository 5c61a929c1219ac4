/*
 * test_runset.c - run sets (src/runset.c) against a bitmap of pages: random
 * adds and removes over 40,000 pages make and undo thousands of runs (so
 * chunks split, empty and join), and after each step every query agrees
 * with the bitmap and the set's own invariants hold.
 */
#include "runset.h"
#include "tap.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGES 40000u

static uint8_t in[PAGES + 1]; /* the model: 1 if the page is in the set */
static uint64_t rng = 0x2545f4914f6cdd1dull;

/* Runs of the model, for comparison. */
static size_t model_runs(struct mms_run *out)
{
	size_t n = 0;
	for (uint64_t p = 0; p < PAGES;) {
		if (!in[p]) {
			p++;
			continue;
		}
		uint64_t s = p;
		while (p < PAGES && in[p])
			p++;
		out[n++] = (struct mms_run){ s, p - s };
	}
	return n;
}

static struct mms_run want[PAGES], got[PAGES];

/* The set's runs equal the model's, in order and coalesced; counts agree;
 * each chunk's longest run is right. */
static int same(const struct mms_runset *s, const char *when)
{
	size_t nw = model_runs(want), ng = 0;
	uint64_t pages = 0;
	for (struct mms_rs_it it = mms_rs_begin(s); it.r; mms_rs_next(&it)) {
		if (ng == PAGES)
			break;
		got[ng++] = *it.r;
	}
	for (size_t i = 0; i < nw; i++)
		pages += want[i].n;
	if (ng != nw || memcmp(got, want, nw * sizeof(*want)) || s->n != nw || s->total != pages) {
		tap_diag("%s: %zu runs (set counts %zu, %" PRIu64 " pages), model %zu runs, %" PRIu64 " pages",
		         when, ng, s->n, s->total, nw, pages);
		return 0;
	}
	for (size_t c = 0; c < s->nc; c++) {
		const struct mms_rs_chunk *ch = s->c[c];
		uint64_t m = 0;
		for (unsigned j = 0; j < ch->n; j++)
			m = ch->r[j].n > m ? ch->r[j].n : m;
		if (ch->n == 0 || ch->n > MMS_RS_CHUNK || ch->maxn != m) {
			tap_diag("%s: chunk %zu holds %u runs, longest %" PRIu64 " (it says %" PRIu64 ")", when, c,
			         ch->n, m, ch->maxn);
			return 0;
		}
	}
	const struct mms_run *last = mms_rs_last(s);
	if ((nw == 0) != (last == NULL) || (last && memcmp(last, &want[nw - 1], sizeof(*last)))) {
		tap_diag("%s: the last run is wrong", when);
		return 0;
	}
	return 1;
}

struct split_ctx {
	uint64_t pos;
	int bad;
};

static int split_check(void *vctx, uint64_t start, uint64_t n, int inside)
{
	struct split_ctx *ctx = vctx;
	if (start != ctx->pos || n == 0)
		ctx->bad = 1;
	for (uint64_t p = start; p < start + n; p++)
		if (in[p] != inside)
			ctx->bad = 1;
	ctx->pos = start + n;
	return 0;
}

/* The queries on [start, start+n) agree with the model. */
static int queries(const struct mms_runset *s, uint64_t start, uint64_t n)
{
	int ov = 0;
	for (uint64_t p = start; p < start + n; p++)
		ov |= in[p];
	if (mms_rs_overlaps(s, start, n) != ov)
		return 0;
	struct split_ctx ctx = { start, 0 };
	mms_rs_split(s, start, n, split_check, &ctx);
	if (ctx.bad || ctx.pos != start + n)
		return 0;
	uint64_t from = 0;
	for (uint64_t p = start; p < PAGES; p++)
		from += in[p];
	if (mms_rs_count_from(s, start) != from)
		return 0;
	/* seek: the first run ending past start */
	struct mms_rs_it it = mms_rs_seek(s, start);
	uint64_t p = start;
	if (p > 0 && in[p] && in[p - 1])
		while (p > 0 && in[p - 1])
			p--;
	while (p < PAGES && !in[p])
		p++;
	if (p == PAGES ? it.r != NULL : (!it.r || it.r->start != p))
		return 0;
	/* fit: the first run of at least n pages */
	it = mms_rs_fit(s, n);
	size_t nw = model_runs(want), i = 0;
	while (i < nw && want[i].n < n)
		i++;
	if (i == nw ? it.r != NULL : (!it.r || it.r->start != want[i].start || it.r->n != want[i].n))
		return 0;
	return 1;
}

/* A split whose callback takes each inside part out of the set it splits
 * (as the allocator's frees do), after split_check has looked at it. */
struct take_ctx {
	struct split_ctx sc;
	struct mms_runset *s;
	uint64_t taken;
};

static int take_inside(void *vctx, uint64_t start, uint64_t n, int inside)
{
	struct take_ctx *ctx = vctx;
	split_check(&ctx->sc, start, n, inside);
	if (inside) {
		if (mms_rs_remove(ctx->s, start, n))
			ctx->sc.bad = 1;
		memset(in + start, 0, n);
		ctx->taken += n;
	}
	return 0;
}

static bool drop_odd(void *ctx, const struct mms_run *r)
{
	(void)ctx;
	return r->n % 2 == 1;
}

int main(void)
{
	tap_plan_none();
	struct mms_runset s;
	memset(&s, 0, sizeof s);
	int ok_same = 1, ok_q = 1, ok_rc = 1;
	size_t most = 0, most_chunks = 0;
	for (int step = 0; step < 30000; step++) {
		uint64_t r = tap_xorshift(&rng);
		/* mostly runs of 1-3 pages (thousands of runs); now and then 300 */
		uint64_t start = r % PAGES, n = 1 + (r >> 20) % ((r >> 16) % 16 == 0 ? 300 : 3);
		if (start + n > PAGES)
			n = PAGES - start;
		/* adds outweigh removes for the first half, then the reverse */
		int add = (int)((r >> 40) % 10) < (step < 15000 ? 7 : 3);
		if (add) {
			/* add the parts of the range the set lacks, one run each */
			for (uint64_t p = start; p < start + n;) {
				if (in[p]) {
					p++;
					continue;
				}
				uint64_t q = p;
				while (q < start + n && !in[q])
					q++;
				if (step % 2 && mms_rs_reserve(&s))
					ok_rc = 0;
				if (mms_rs_add(&s, p, q - p))
					ok_rc = 0;
				memset(in + p, 1, q - p);
				p = q;
			}
		} else {
			if (mms_rs_remove(&s, start, n))
				ok_rc = 0;
			memset(in + start, 0, n);
		}
		most = s.n > most ? s.n : most;
		most_chunks = s.nc > most_chunks ? s.nc : most_chunks;
		if (step % 31 == 0 || step > 29900) {
			char when[64];
			snprintf(when, sizeof when, "step %d", step);
			if (ok_same && !same(&s, when))
				ok_same = 0;
			uint64_t qs = tap_xorshift(&rng) % PAGES, qn = 1 + tap_xorshift(&rng) % 64;
			if (qs + qn > PAGES)
				qn = PAGES - qs;
			if (ok_q && !queries(&s, qs, qn)) {
				tap_diag("step %d: a query on %" PRIu64 "+%" PRIu64 " disagrees with the model", step, qs, qn);
				ok_q = 0;
			}
		}
	}
	ok(ok_rc, "every add and remove succeeded");
	ok(ok_same, "after 30,000 random adds and removes the set holds the model's runs (at most %zu "
	   "runs in %zu chunks)", most, most_chunks);
	ok(most > 20 * MMS_RS_CHUNK, "the set grew to many chunks (%zu runs)", most);
	ok(ok_q, "overlaps, split, count_from, seek and fit agree with the model");
	/* wide removes over many runs and chunks at once: every 8th step
	 * takes out up to 3,000 pages of a set of single pages */
	int ok_wide = 1;
	for (int step = 0; step < 4000 && ok_wide; step++) {
		uint64_t r = tap_xorshift(&rng), start = r % PAGES;
		if (step % 8 == 7) {
			uint64_t n = 1 + (r >> 24) % 3000;
			if (start + n > PAGES)
				n = PAGES - start;
			if (mms_rs_remove(&s, start, n))
				ok_rc = 0;
			memset(in + start, 0, n);
			char when[64];
			snprintf(when, sizeof when, "wide remove %d", step);
			ok_wide = same(&s, when);
		} else if (!in[start] && !(start && in[start - 1]) && !(start + 1 < PAGES && in[start + 1])) {
			if (mms_rs_add(&s, start, 1))
				ok_rc = 0;
			in[start] = 1;
		}
	}
	ok(ok_wide && ok_rc, "removes across hundreds of runs leave exactly the model's runs");
	/* splits whose callback removes what it is given from the set */
	int ok_take = 1;
	for (int k = 0; k < 300 && ok_take; k++) {
		uint64_t st = tap_xorshift(&rng) % PAGES, n = 1 + tap_xorshift(&rng) % 2000;
		if (st + n > PAGES)
			n = PAGES - st;
		uint64_t had = 0;
		for (uint64_t p = st; p < st + n; p++)
			had += in[p];
		struct take_ctx ctx = { { st, 0 }, &s, 0 };
		mms_rs_split(&s, st, n, take_inside, &ctx);
		ok_take = !ctx.sc.bad && ctx.sc.pos == st + n && ctx.taken == had && same(&s, "split and take");
		for (int a = 0; a < 40; a++) { /* fragment again */
			uint64_t p = tap_xorshift(&rng) % PAGES;
			if (!in[p] && !(p && in[p - 1]) && !(p + 1 < PAGES && in[p + 1])) {
				mms_rs_add(&s, p, 1);
				in[p] = 1;
			}
		}
	}
	ok(ok_take, "a split whose callback removes each part it is given from the set sees every part");
	/* filter: odd-length runs go */
	size_t nw = model_runs(want);
	for (size_t i = 0; i < nw; i++)
		if (want[i].n % 2)
			memset(in + want[i].start, 0, want[i].n);
	mms_rs_filter(&s, drop_odd, NULL);
	ok(same(&s, "filter"), "filter drops exactly the runs it is told to");
	/* clear: empty, and usable again */
	mms_rs_clear(&s);
	memset(in, 0, sizeof in);
	ok(same(&s, "clear") && s.nc == 0, "clear empties the set");
	is_int(mms_rs_add(&s, 10, 5), 0, "add after clear");
	in[10] = in[11] = in[12] = in[13] = in[14] = 1;
	is_int(mms_rs_remove(&s, 12, 1), 0, "a hole in the middle of a run");
	in[12] = 0;
	ok(same(&s, "hole"), "two runs around the hole");
	mms_rs_fini(&s);
	ok(s.c == NULL && s.n == 0, "fini frees it");
	/* adds at and past the end, as the allocator's fresh and transaction
	 * sets grow (mms_rs_add's path without a search): runs that join the
	 * last one, new last runs, through full chunks, longer and shorter
	 * than the chunk's longest */
	{
		struct mms_runset e;
		memset(&e, 0, sizeof e);
		memset(in, 0, sizeof in);
		uint64_t at = 5;
		int ok_end = 1;
		for (int k = 0; k < 5000 && ok_end && at < PAGES - 40; k++) {
			uint64_t r = tap_xorshift(&rng), n = 1 + r % ((r >> 8) % 8 == 0 ? 30 : 3);
			uint64_t gap = (r >> 16) % 3; /* 0: joins the last run */
			if (at + gap + n > PAGES)
				break;
			if (mms_rs_add(&e, at + gap, n))
				ok_rc = 0;
			memset(in + at + gap, 1, n);
			at += gap + n;
			if (k % 7 == 0 || k > 4990) {
				char when[64];
				snprintf(when, sizeof when, "append %d", k);
				ok_end = same(&e, when);
			}
		}
		ok(ok_end && ok_rc && e.nc > 3, "adds at the end keep the model's runs and every chunk's "
		   "longest (%zu runs in %zu chunks)", e.n, e.nc);
		mms_rs_fini(&e);
	}
	return tap_done();
}
