/*
 * runset.c - sets of page runs in chunks (see runset.h).
 */
#include "runset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CH MMS_RS_CHUNK


static void ch_maxn(struct mms_rs_chunk *ch)
{
	uint64_t m = 0;
	for (unsigned j = 0; j < ch->n; j++)
		if (ch->r[j].n > m)
			m = ch->r[j].n;
	ch->maxn = m;
}

/* A run of ch changed from old pages to its present length. */
static void ch_changed(struct mms_rs_chunk *ch, uint64_t old, uint64_t now)
{
	if (now > ch->maxn)
		ch->maxn = now;
	else if (old == ch->maxn && now < old)
		ch_maxn(ch);
}

static int ensure_slots(struct mms_runset *s, size_t need)
{
	if (s->capc >= need)
		return 0;
	size_t ncap = s->capc ? s->capc * 2 : 8;
	if (ncap < need)
		ncap = need;
	struct mms_rs_chunk **nc = realloc(s->c, ncap * sizeof(*nc));
	if (!nc)
		return ENOMEM;
	s->c = nc;
	s->capc = ncap;
	return 0;
}

static struct mms_rs_chunk *ch_take(struct mms_runset *s)
{
	struct mms_rs_chunk *ch = NULL;
	for (int k = 0; k < 2 && !ch; k++)
		if (s->spare[k]) {
			ch = s->spare[k];
			s->spare[k] = NULL;
		}
	if (!ch)
		ch = malloc(sizeof(*ch));
	if (ch) {
		ch->n = 0;
		ch->maxn = 0;
	}
	return ch;
}

/* A chunk the set no longer uses: kept (two at most: a set emptied at
 * every commit and refilled allocates nothing), or freed. */
static void ch_give(struct mms_runset *s, struct mms_rs_chunk *ch)
{
	for (int k = 0; k < 2; k++)
		if (!s->spare[k]) {
			s->spare[k] = ch;
			return;
		}
	free(ch);
}

int mms_rs_reserve(struct mms_runset *s)
{
	if (ensure_slots(s, s->nc + 1))
		return ENOMEM;
	if (!s->spare[0] && !s->spare[1] && !(s->spare[0] = malloc(sizeof(*s->spare[0]))))
		return ENOMEM;
	return 0;
}

/* Put run at place (c, j) (j may be the chunk's count: after its last;
 * c == nc: after the set's last run).  0 or ENOMEM, the set unchanged. */
static int insert_at(struct mms_runset *s, size_t c, unsigned j, struct mms_run run)
{
	if (s->nc == 0) {
		if (ensure_slots(s, 1))
			return ENOMEM;
		struct mms_rs_chunk *ch = ch_take(s);
		if (!ch)
			return ENOMEM;
		s->c[0] = ch;
		s->nc = 1;
		c = 0;
		j = 0;
	} else if (c == s->nc) {
		c = s->nc - 1;
		j = s->c[c]->n;
	}
	struct mms_rs_chunk *ch = s->c[c];
	if (ch->n == CH) {
		/* split: the upper half goes to a new chunk after this one */
		if (ensure_slots(s, s->nc + 1))
			return ENOMEM;
		struct mms_rs_chunk *nx = ch_take(s);
		if (!nx)
			return ENOMEM;
		memcpy(nx->r, ch->r + CH / 2, (CH - CH / 2) * sizeof(*ch->r));
		nx->n = CH - CH / 2;
		ch->n = CH / 2;
		ch_maxn(ch);
		ch_maxn(nx);
		memmove(s->c + c + 2, s->c + c + 1, (s->nc - c - 1) * sizeof(*s->c));
		s->c[c + 1] = nx;
		s->nc++;
		if (j > ch->n) {
			j -= ch->n;
			ch = nx;
		}
	}
	memmove(ch->r + j + 1, ch->r + j, (ch->n - j) * sizeof(*ch->r));
	ch->r[j] = run;
	ch->n++;
	if (run.n > ch->maxn)
		ch->maxn = run.n;
	s->n++;
	return 0;
}

/* Take chunk c out of the set (it is empty, or its runs moved). */
static void drop_chunk(struct mms_runset *s, size_t c)
{
	ch_give(s, s->c[c]);
	memmove(s->c + c, s->c + c + 1, (s->nc - c - 1) * sizeof(*s->c));
	s->nc--;
}

/* Remove the run at (c, j).  Never allocates.  A chunk left under a
 * quarter full joins a neighbour both fit in half of, so that chunks
 * stay few.  1 if chunks went or joined (places after (c, j) moved), else
 * 0: (c, j) is then the next run's place, or the chunk's end. */
static int remove_at(struct mms_runset *s, size_t c, unsigned j)
{
	struct mms_rs_chunk *ch = s->c[c];
	uint64_t gone = ch->r[j].n;
	memmove(ch->r + j, ch->r + j + 1, (ch->n - j - 1) * sizeof(*ch->r));
	ch->n--;
	s->n--;
	if (ch->n == 0) {
		drop_chunk(s, c);
		return 1;
	}
	if (gone == ch->maxn)
		ch_maxn(ch);
	if (ch->n >= CH / 4)
		return 0;
	if (c + 1 < s->nc && ch->n + s->c[c + 1]->n <= CH / 2) {
		struct mms_rs_chunk *nx = s->c[c + 1];
		memcpy(ch->r + ch->n, nx->r, nx->n * sizeof(*nx->r));
		ch->n += nx->n;
		if (nx->maxn > ch->maxn)
			ch->maxn = nx->maxn;
		drop_chunk(s, c + 1);
		return 1;
	}
	if (c > 0 && s->c[c - 1]->n + ch->n <= CH / 2) {
		struct mms_rs_chunk *pv = s->c[c - 1];
		memcpy(pv->r + pv->n, ch->r, ch->n * sizeof(*ch->r));
		pv->n += ch->n;
		if (ch->maxn > pv->maxn)
			pv->maxn = ch->maxn;
		drop_chunk(s, c);
		return 1;
	}
	return 0;
}

int mms_rs_add(struct mms_runset *s, uint64_t start, uint64_t n)
{
	if (!n)
		return 0;
	/* at or past the end (the allocator's sets grow mostly there): no
	 * search */
	if (s->nc) {
		struct mms_rs_chunk *lc = s->c[s->nc - 1];
		struct mms_run *last = &lc->r[lc->n - 1];
		uint64_t le = mms_rs_end_(last);
		if (start == le) {
			last->n += n;
			if (last->n > lc->maxn)
				lc->maxn = last->n;
			s->total += n;
			return 0;
		}
		if (start > le && lc->n < CH) {
			lc->r[lc->n++] = (struct mms_run){ start, n };
			if (n > lc->maxn)
				lc->maxn = n;
			s->n++;
			s->total += n;
			return 0;
		}
	}
	size_t c;
	unsigned j;
	mms_rs_find_(s, start, &c, &j);
	/* the run before the place, if any */
	struct mms_rs_chunk *pch = NULL;
	unsigned pj = 0;
	if (j > 0) {
		pch = s->c[c];
		pj = j - 1;
	} else if (c > 0) {
		pch = s->c[c - 1];
		pj = pch->n - 1;
	}
	struct mms_run *prev = pch ? &pch->r[pj] : NULL;
	struct mms_run *next = c < s->nc ? &s->c[c]->r[j] : NULL;
	int join_prev = prev && mms_rs_end_(prev) == start;
	int join_next = next && next->start == start + n;
	if (join_prev && join_next) {
		uint64_t old = prev->n;
		prev->n += n + next->n;
		ch_changed(pch, old, prev->n);
		remove_at(s, c, j);
	} else if (join_prev) {
		uint64_t old = prev->n;
		prev->n += n;
		ch_changed(pch, old, prev->n);
	} else if (join_next) {
		uint64_t old = next->n;
		next->start = start;
		next->n += n;
		ch_changed(s->c[c], old, next->n);
	} else if (insert_at(s, c, j, (struct mms_run){ start, n })) {
		return ENOMEM;
	}
	s->total += n;
	return 0;
}

int mms_rs_remove(struct mms_runset *s, uint64_t start, uint64_t n)
{
	if (!s->n)
		return 0;
	uint64_t end = start + n;
	size_t c;
	unsigned j;
	mms_rs_find_(s, start, &c, &j);
	while (c < s->nc) {
		struct mms_rs_chunk *ch = s->c[c];
		struct mms_run *r = &ch->r[j];
		if (r->start >= end)
			break;
		uint64_t rend = mms_rs_end_(r), old = r->n;
		uint64_t cut_lo = r->start > start ? r->start : start;
		uint64_t cut_hi = rend < end ? rend : end;
		if (cut_lo == r->start && cut_hi == rend) {
			s->total -= old;
			if (remove_at(s, c, j))
				mms_rs_find_(s, cut_hi, &c, &j); /* chunks went or joined */
			else if (j >= s->c[c]->n)
				c++, j = 0;
			continue;
		}
		if (cut_lo == r->start) {
			r->start = cut_hi;
			r->n = rend - cut_hi;
			ch_changed(ch, old, r->n);
			s->total -= cut_hi - cut_lo;
			break; /* it goes on past end */
		}
		if (cut_hi == rend) {
			r->n = cut_lo - r->start;
			ch_changed(ch, old, r->n);
			s->total -= cut_hi - cut_lo;
		} else {
			/* a hole in the middle: the head stays, the tail is a new run */
			r->n = cut_lo - r->start;
			if (insert_at(s, c, j + 1, (struct mms_run){ cut_hi, rend - cut_hi })) {
				r->n = old;
				return ENOMEM;
			}
			/* (the insert may have split the chunk: find the head again) */
			mms_rs_find_(s, cut_lo - 1, &c, &j);
			ch_maxn(s->c[c]);
			s->total -= cut_hi - cut_lo;
			break;
		}
		if (++j >= ch->n) {
			c++;
			j = 0;
		}
	}
	return 0;
}

struct mms_rs_it mms_rs_fit(const struct mms_runset *s, uint64_t n)
{
	for (size_t c = 0; c < s->nc; c++) {
		const struct mms_rs_chunk *ch = s->c[c];
		if (ch->maxn < n)
			continue;
		for (unsigned j = 0; j < ch->n; j++)
			if (ch->r[j].n >= n)
				return mms_rs_at_(s, c, j);
	}
	return mms_rs_at_(s, s->nc, 0);
}

const struct mms_run *mms_rs_last(const struct mms_runset *s)
{
	if (!s->nc)
		return NULL;
	const struct mms_rs_chunk *ch = s->c[s->nc - 1];
	return &ch->r[ch->n - 1];
}

int mms_rs_split(const struct mms_runset *s, uint64_t start, uint64_t n,
                 int (*fn)(void *, uint64_t, uint64_t, int), void *ctx)
{
	uint64_t pos = start, end = start + n;
	int rc = 0;
	while (pos < end && !rc) {
		/* looked up again after each part: fn may change s */
		struct mms_rs_it it = mms_rs_seek(s, pos);
		int in = it.r && it.r->start <= pos;
		uint64_t e = in ? mms_rs_end_(it.r) : it.r ? it.r->start : end;
		if (e > end)
			e = end;
		rc = fn(ctx, pos, e - pos, in);
		pos = e;
	}
	return rc;
}

uint64_t mms_rs_count_from(const struct mms_runset *s, uint64_t pgno)
{
	uint64_t n = 0;
	for (struct mms_rs_it it = mms_rs_seek(s, pgno); it.r; mms_rs_next(&it))
		n += it.r->n - (it.r->start < pgno ? pgno - it.r->start : 0);
	return n;
}

void mms_rs_filter(struct mms_runset *s, bool (*drop)(void *, const struct mms_run *), void *ctx)
{
	size_t kc = 0;
	for (size_t c = 0; c < s->nc; c++) {
		struct mms_rs_chunk *ch = s->c[c];
		unsigned k = 0;
		for (unsigned j = 0; j < ch->n; j++) {
			if (drop(ctx, &ch->r[j])) {
				s->n--;
				s->total -= ch->r[j].n;
			} else {
				ch->r[k++] = ch->r[j];
			}
		}
		ch->n = k;
		if (k == 0) {
			ch_give(s, ch);
			continue;
		}
		ch_maxn(ch);
		s->c[kc++] = ch;
	}
	s->nc = kc;
}

void mms_rs_clear(struct mms_runset *s)
{
	for (size_t c = 0; c < s->nc; c++)
		ch_give(s, s->c[c]);
	s->nc = 0;
	s->n = 0;
	s->total = 0;
}

void mms_rs_fini(struct mms_runset *s)
{
	mms_rs_clear(s);
	free(s->spare[0]);
	free(s->spare[1]);
	free(s->c);
	memset(s, 0, sizeof(*s));
}
