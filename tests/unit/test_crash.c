/*
 * test_crash.c - crash test of libmms: kill -9 a writer, reopen, compare.
 *
 * Each round forks a child that opens the store read-write and runs random
 * operations, committing often (sometimes with mms_sync, sometimes through
 * mms_vacuum).  The parent kills it with SIGKILL after a random 0..50 ms,
 * then opens the store itself: the open must succeed, mms_check() must find
 * no problem, no orphan may be left, and the store must hold exactly the
 * last committed state.  200 rounds run in a row on the same store.
 *
 * Knowing the committed states.  The child's operations are a pure function
 * of the round's seed and of the model of the store at the round's start
 * (which the parent has just verified).  The child writes "A k" to a pipe
 * before its k-th commit call and "C k" after it returned; the parent
 * replays the same generator on its model to get the state of every commit.
 * After the kill the store must equal state K where K is the last "C", or,
 * when an "A K+1" followed, state K+1 (the commit may have reached the file
 * before the kill).  State 0 is the state at the round's start.  The state
 * that matched is the next round's start.
 *
 * In-place writes.  Bytes written over data of the last commit reach the
 * file at once (mms.h), so a kill would expose them.  The generator
 * therefore never touches bytes below a file's committed size between two
 * commits: data operations on a file that existed at the last commit start
 * at or after its committed size (appends, sparse writes, truncation that
 * stays at or above it, fallocate and punch beyond it); files created since
 * the commit are free game.  This still exercises the subtle case of bytes
 * written past the committed end of a page that a kill leaves there: a later
 * extension must read them as zeros.
 *
 * Environment: MMS_SEED (default: clock and pid; printed), MMS_CRASH_ROUNDS
 * (default 200).  For debugging: MMS_CRASH_STEP=N makes each child stop by
 * itself (_exit, no close) before a step in 1..N chosen from the round's
 * seed instead of being killed at a random time, so a run replays exactly;
 * MMS_CRASH_TRACE=1 prints all the failing round's operations, not only the
 * last OPLOG_TAIL.
 * A machine crash (lost unsynced writes) is not simulated.
 */
#define _GNU_SOURCE
#include "mms.h"
#include "tap.h"
#include "sparse.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_ROUNDS 200
#define KILL_MAX_US 50000     /* the child lives 0..this many microseconds */
#define CHILD_MAX_STEPS 3000  /* a child that is never killed stops here */
#define CMAX 96               /* model slots */
#define CLIVE 48              /* at most this many files and directories */
#define CDEPTH 4              /* levels of names below the root */
#define CXATTRS 4
#define OPLOG_SIZE 4096
#define OPLOG_TAIL 20
#define LISTMAX 256

/* ---- Deterministic random numbers (splitmix64) ----------------------------- */

static uint64_t rng_state;

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_next(void)
{
	return mix64(rng_state += 0x9e3779b97f4a7c15ull);
}

static uint64_t rng_below(uint64_t n)
{
	return n ? rng_next() % n : 0;
}

static uint64_t rng_range(uint64_t lo, uint64_t hi)
{
	return lo + rng_below(hi - lo + 1);
}

static bool rng_pct(unsigned pct)
{
	return rng_below(100) < pct;
}

static void rng_fill(uint8_t *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint64_t v = rng_next();
		for (int k = 0; k < 8 && i < len; k++, v >>= 8)
			buf[i++] = (uint8_t)v;
	}
}

/* ---- The model ---------------------------------------------------------------------- */

enum ctype { C_NONE, C_FILE, C_DIR };

struct cxattr {
	char name[8];
	size_t nlen;
	uint8_t *val;
	size_t vlen;
};

struct cnode {
	int type;          /* enum ctype */
	int parent;        /* slot of the directory; -1 for the root */
	char name[8];
	size_t nlen;
	uint32_t perm;
	struct mdata data;
	bool fresh;        /* created since the last commit */
	uint64_t csize;    /* size at the last commit (when not fresh) */
	struct cxattr xa[CXATTRS];
	size_t nxa;
	uint64_t ino;      /* child only: the store's inode of this slot */
};

struct cmodel {
	struct cnode n[CMAX];
};

static void cnode_free(struct cnode *n)
{
	md_free(&n->data);
	for (size_t k = 0; k < n->nxa; k++)
		free(n->xa[k].val);
	memset(n, 0, sizeof *n);
}

static void cm_free(struct cmodel *m)
{
	for (int i = 0; i < CMAX; i++)
		cnode_free(&m->n[i]);
}

static void cm_copy(struct cmodel *dst, const struct cmodel *src)
{
	cm_free(dst);
	for (int i = 0; i < CMAX; i++) {
		const struct cnode *s = &src->n[i];
		struct cnode *d = &dst->n[i];
		*d = *s;
		md_copy(&d->data, &s->data);
		for (size_t k = 0; k < s->nxa; k++) {
			d->xa[k].val = malloc(s->xa[k].vlen + 1);
			memcpy(d->xa[k].val, s->xa[k].val, s->xa[k].vlen);
		}
	}
}

static void cm_init(struct cmodel *m)
{
	memset(m, 0, sizeof *m);
	m->n[0].type = C_DIR;
	m->n[0].parent = -1;
	m->n[0].ino = MMS_ROOT_INO;
}

static int cm_child(const struct cmodel *m, int dir, const char *name, size_t nlen)
{
	for (int i = 1; i < CMAX; i++)
		if (m->n[i].type != C_NONE && m->n[i].parent == dir && m->n[i].nlen == nlen &&
		    memcmp(m->n[i].name, name, nlen) == 0)
			return i;
	return -1;
}

static int cm_nchildren(const struct cmodel *m, int dir)
{
	int c = 0;
	for (int i = 1; i < CMAX; i++)
		if (m->n[i].type != C_NONE && m->n[i].parent == dir)
			c++;
	return c;
}

static bool cm_is_ancestor(const struct cmodel *m, int a, int b)
{
	for (int i = b; i >= 0; i = m->n[i].parent)
		if (i == a)
			return true;
	return false;
}

static size_t cm_path(const struct cmodel *m, int i, char *buf, size_t cap)
{
	if (i <= 0) {
		buf[0] = '\0';
		return 0;
	}
	size_t len = cm_path(m, m->n[i].parent, buf, cap);
	if (len)
		buf[len++] = '/';
	if (len + m->n[i].nlen + 1 > cap)
		abort();
	memcpy(buf + len, m->n[i].name, m->n[i].nlen);
	len += m->n[i].nlen;
	buf[len] = '\0';
	return len;
}

static const char *cpath(const struct cmodel *m, int i)
{
	static char bufs[4][128];
	static int which;
	char *b = bufs[which++ % 4];
	if (cm_path(m, i, b, sizeof bufs[0]) == 0)
		strcpy(b, "/");
	return b;
}

static int cm_find_xattr(const struct cnode *n, const char *name, size_t nlen)
{
	for (size_t k = 0; k < n->nxa; k++)
		if (n->xa[k].nlen == nlen && memcmp(n->xa[k].name, name, nlen) == 0)
			return (int)k;
	return -1;
}

/* The lowest offset data operations may touch in this transaction. */
static uint64_t cm_floor(const struct cnode *n)
{
	return n->fresh ? 0 : n->csize;
}

/* A commit: nothing is fresh any more. */
static void cm_committed(struct cmodel *m)
{
	for (int i = 0; i < CMAX; i++) {
		m->n[i].fresh = false;
		m->n[i].csize = m->n[i].data.size;
	}
}

/* ---- Operations: generated from the model and the seed only ----------------------- */

enum cop {
	K_CREATE, K_MKDIR, K_WRITE, K_TRUNCATE, K_FALLOC, K_RENAME, K_UNLINK, K_RMDIR,
	K_SETXATTR, K_REMOVEXATTR, K_HOLD_UNLINK, K_COMMIT, K_SYNC, K_VACUUM, K_NOP
};

struct op {
	int kind;
	int a, b;              /* slots: source / target (or the node) */
	int dir;               /* new parent slot */
	char name[8];
	size_t nlen;
	uint64_t off, len;     /* bytes, sizes */
	unsigned flags;
	uint32_t perm;
	uint8_t *buf;          /* K_WRITE, K_SETXATTR: len bytes */
	char xname[8];
	size_t xnlen;
	int sdir;              /* K_RENAME: the source's directory slot ... */
	char sname[8];         /* ... and name, before the move */
	size_t snlen;
	uint64_t ino;          /* K_HOLD_UNLINK: the inode (child only) */
	char text[200];        /* for the op log */
};

static const char *const fnames[] = { "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7" };
static const char *const dnames[] = { "d0", "d1", "d2" };
static const char *const xnames[] = { "user.a", "user.b", "user.c" };

static int pick(const struct cmodel *m, int type, bool root_ok)
{
	int cand[CMAX], n = 0;
	for (int i = root_ok ? 0 : 1; i < CMAX; i++)
		if (m->n[i].type == type)
			cand[n++] = i;
	return n ? cand[rng_below((uint64_t)n)] : -1;
}

/* A directory at depth <= 1 (the root or one of its subdirectories). */
static int pick_dir(const struct cmodel *m, bool for_dir)
{
	int d = pick(m, C_DIR, true);
	if (d > 0 && m->n[d].parent != 0 && for_dir)
		return 0;
	return d;
}

/* A free slot while the model is below CLIVE nodes, else -1. */
static int free_slot(const struct cmodel *m)
{
	int live = 0, slot = -1;
	for (int i = 1; i < CMAX; i++) {
		if (m->n[i].type != C_NONE)
			live++;
		else if (slot < 0)
			slot = i;
	}
	return live < CLIVE ? slot : -1;
}

/* Directories from the root down to slot i (the root: 0). */
static int cm_depth(const struct cmodel *m, int i)
{
	int d = 0;
	for (; i > 0; i = m->n[i].parent)
		d++;
	return d;
}

/* Levels of the subtree below slot i (a file or an empty directory: 0). */
static int cm_height(const struct cmodel *m, int i)
{
	int h = 0;
	for (int c = 1; c < CMAX; c++)
		if (m->n[c].type != C_NONE && m->n[c].parent == i) {
			int ch = 1 + cm_height(m, c);
			if (ch > h)
				h = ch;
		}
	return h;
}

/* Would node s placed in directory d stay within CDEPTH levels? */
static bool cm_fits(const struct cmodel *m, int s, int d)
{
	return cm_depth(m, d) + 1 + cm_height(m, s) <= CDEPTH;
}

/* Length of a value: mostly small, some over the inline limit. */
static uint64_t pick_len(void)
{
	switch (rng_below(6)) {
	case 0: return rng_range(1, 64);
	case 1: return rng_range(1000, 1100);
	case 2: return rng_range(PG - 8, PG + 8);
	case 3: return rng_range(1, 9000);
	default: return rng_range(1, 2000);
	}
}

/*
 * Generate the next operation for model m and apply it to m.  Everything
 * generated succeeds on a correct store.  o->buf must be freed by the caller.
 */
static void gen(struct cmodel *m, struct op *o)
{
	memset(o, 0, sizeof *o);
	o->a = o->b = o->dir = -1;
	uint64_t r = rng_below(1000);
	int kind = r < 110 ? K_CREATE : r < 150 ? K_MKDIR : r < 420 ? K_WRITE : r < 500 ? K_TRUNCATE
	         : r < 560 ? K_FALLOC : r < 660 ? K_RENAME : r < 710 ? K_UNLINK : r < 730 ? K_RMDIR
	         : r < 790 ? K_SETXATTR : r < 810 ? K_REMOVEXATTR : r < 825 ? K_HOLD_UNLINK
	         : r < 975 ? K_COMMIT : r < 993 ? K_SYNC : K_VACUUM;
	o->kind = K_NOP;
	snprintf(o->text, sizeof o->text, "nop");
	switch (kind) {
	case K_CREATE:
	case K_MKDIR: {
		int d = pick_dir(m, kind == K_MKDIR);
		const char *nm = kind == K_MKDIR ? dnames[rng_below(3)] : fnames[rng_below(8)];
		int slot = free_slot(m);
		if (cm_child(m, d, nm, strlen(nm)) >= 0 || slot < 0)
			return;
		o->kind = kind;
		o->dir = d;
		o->a = slot;
		o->nlen = strlen(nm);
		memcpy(o->name, nm, o->nlen);
		o->perm = kind == K_MKDIR ? 0755 : rng_pct(50) ? 0644 : 0600;
		struct cnode *n = &m->n[slot];
		memset(n, 0, sizeof *n);
		n->type = kind == K_MKDIR ? C_DIR : C_FILE;
		n->parent = d;
		memcpy(n->name, nm, o->nlen);
		n->nlen = o->nlen;
		n->perm = o->perm;
		n->fresh = true;
		snprintf(o->text, sizeof o->text, "%s %s", kind == K_MKDIR ? "mkdir" : "create",
		         cpath(m, slot));
		return;
	}
	case K_WRITE: {
		int f = pick(m, C_FILE, false);
		if (f < 0)
			return;
		struct cnode *n = &m->n[f];
		uint64_t floor = cm_floor(n);
		uint64_t span = n->data.size > floor ? n->data.size - floor : 0;
		o->off = rng_pct(8) ? floor + (rng_range(1, 8) << 20) + rng_below(PG)
		       : rng_pct(20) ? (n->data.size > floor ? n->data.size : floor)
		       : floor + rng_below(span + 2 * PG);
		o->len = pick_len();
		o->buf = malloc(o->len);
		rng_fill(o->buf, o->len);
		o->kind = K_WRITE;
		o->a = f;
		md_write(&n->data, o->off, o->buf, o->len);
		snprintf(o->text, sizeof o->text, "write %s at %" PRIu64 " len %" PRIu64
		         " (floor %" PRIu64 ", size now %" PRIu64 ")", cpath(m, f), o->off, o->len,
		         floor, n->data.size);
		return;
	}
	case K_TRUNCATE: {
		int f = pick(m, C_FILE, false);
		if (f < 0)
			return;
		struct cnode *n = &m->n[f];
		uint64_t floor = cm_floor(n);
		switch (rng_below(4)) {
		case 0: o->off = floor; break;
		case 1: o->off = floor + rng_below(3 * PG); break;
		case 2: o->off = floor + (rng_range(1, 16) << 20); break;
		default: o->off = floor + rng_below(n->data.size - floor + 1 + PG); break;
		}
		if (o->off < floor || (n->data.size < floor))
			return;
		o->kind = K_TRUNCATE;
		o->a = f;
		snprintf(o->text, sizeof o->text, "truncate %s from %" PRIu64 " to %" PRIu64
		         " (floor %" PRIu64 ")", cpath(m, f), n->data.size, o->off, floor);
		md_truncate(&n->data, o->off);
		return;
	}
	case K_FALLOC: {
		int f = pick(m, C_FILE, false);
		if (f < 0)
			return;
		struct cnode *n = &m->n[f];
		uint64_t floor = cm_floor(n);
		uint64_t r2 = rng_below(3);
		o->flags = r2 == 0 ? 0 : r2 == 1 ? MMS_FALLOC_KEEP_SIZE
		         : MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE;
		o->off = floor + rng_below(n->data.size - floor + 2 * PG);
		o->len = rng_range(1, 3 * PG);
		o->kind = K_FALLOC;
		o->a = f;
		snprintf(o->text, sizeof o->text, "fallocate %s mode %u at %" PRIu64 " len %" PRIu64
		         " (size %" PRIu64 ", floor %" PRIu64 ")", cpath(m, f), o->flags, o->off,
		         o->len, n->data.size, floor);
		if (o->flags & MMS_FALLOC_PUNCH_HOLE) {
			if (o->off < n->data.size)
				md_zero(&n->data, o->off, o->len < n->data.size - o->off ? o->len
				        : n->data.size - o->off);
		} else if (!(o->flags & MMS_FALLOC_KEEP_SIZE) && o->off + o->len > n->data.size) {
			md_truncate(&n->data, o->off + o->len);
		}
		return;
	}
	case K_RENAME: {
		bool dir = rng_pct(20);
		int s = pick(m, dir ? C_DIR : C_FILE, false);
		if (s < 0)
			return;
		uint64_t r2 = rng_below(10);
		if (r2 < 2) {
			/* exchange with another node that is not its ancestor or descendant */
			int t = pick(m, rng_pct(50) ? C_FILE : C_DIR, false);
			if (t < 0 || t == s || cm_is_ancestor(m, s, t) || cm_is_ancestor(m, t, s) ||
			    !cm_fits(m, s, m->n[t].parent) || !cm_fits(m, t, m->n[s].parent))
				return;
			o->kind = K_RENAME;
			o->flags = MMS_RENAME_EXCHANGE;
			o->sdir = m->n[s].parent;
			o->snlen = m->n[s].nlen;
			memcpy(o->sname, m->n[s].name, o->snlen);
			o->a = s;
			o->b = t;
			o->dir = m->n[t].parent;
			o->nlen = m->n[t].nlen;
			memcpy(o->name, m->n[t].name, o->nlen);
			snprintf(o->text, sizeof o->text, "exchange %s and %s", cpath(m, s),
			         cpath(m, t));
			struct cnode *a = &m->n[s], *b = &m->n[t];
			int ap = a->parent;
			char an[8];
			size_t al = a->nlen;
			memcpy(an, a->name, al);
			a->parent = b->parent;
			memcpy(a->name, b->name, b->nlen);
			a->nlen = b->nlen;
			b->parent = ap;
			memcpy(b->name, an, al);
			b->nlen = al;
			return;
		}
		int d = pick_dir(m, dir);
		const char *nm = dir ? dnames[rng_below(3)] : fnames[rng_below(8)];
		if ((dir && cm_is_ancestor(m, s, d)) || !cm_fits(m, s, d))
			return;
		int t = cm_child(m, d, nm, strlen(nm));
		if (t == s)
			return;
		if (t >= 0 && (m->n[t].type != m->n[s].type ||
		               (dir && cm_nchildren(m, t) > 0) || r2 < 4))
			return;
		o->kind = K_RENAME;
		o->flags = r2 < 4 ? MMS_RENAME_NOREPLACE : 0;
		o->sdir = m->n[s].parent;
		o->snlen = m->n[s].nlen;
		memcpy(o->sname, m->n[s].name, o->snlen);
		o->a = s;
		o->b = t;
		o->dir = d;
		o->nlen = strlen(nm);
		memcpy(o->name, nm, o->nlen);
		char from[128];
		snprintf(from, sizeof from, "%s", cpath(m, s));
		if (t >= 0)
			cnode_free(&m->n[t]);
		m->n[s].parent = d;
		memcpy(m->n[s].name, nm, o->nlen);
		m->n[s].nlen = o->nlen;
		snprintf(o->text, sizeof o->text, "rename %s -> %s flags %u%s", from, cpath(m, s),
		         o->flags, t >= 0 ? " (replacing)" : "");
		return;
	}
	case K_UNLINK:
	case K_HOLD_UNLINK: {
		int f = pick(m, C_FILE, false);
		if (f < 0)
			return;
		o->kind = kind;
		o->a = f;
		o->ino = m->n[f].ino;
		o->dir = m->n[f].parent;
		o->nlen = m->n[f].nlen;
		memcpy(o->name, m->n[f].name, o->nlen);
		snprintf(o->text, sizeof o->text, "%s %s", kind == K_UNLINK ? "unlink" : "hold+unlink",
		         cpath(m, f));
		cnode_free(&m->n[f]);
		return;
	}
	case K_RMDIR: {
		int d = pick(m, C_DIR, false);
		if (d < 0 || cm_nchildren(m, d) > 0)
			return;
		o->kind = K_RMDIR;
		o->a = d;
		o->dir = m->n[d].parent;
		o->nlen = m->n[d].nlen;
		memcpy(o->name, m->n[d].name, o->nlen);
		snprintf(o->text, sizeof o->text, "rmdir %s", cpath(m, d));
		cnode_free(&m->n[d]);
		return;
	}
	case K_SETXATTR: {
		int i = rng_pct(70) ? pick(m, C_FILE, false) : pick(m, C_DIR, true);
		if (i < 0)
			return;
		struct cnode *n = &m->n[i];
		const char *xn = xnames[rng_below(3)];
		o->xnlen = strlen(xn);
		memcpy(o->xname, xn, o->xnlen);
		o->len = rng_pct(30) ? rng_range(1025, 6000) : rng_below(300);
		o->buf = malloc(o->len + 1);
		rng_fill(o->buf, o->len);
		o->kind = K_SETXATTR;
		o->a = i;
		int k = cm_find_xattr(n, xn, o->xnlen);
		if (k < 0) {
			k = (int)n->nxa++;
			memcpy(n->xa[k].name, xn, o->xnlen);
			n->xa[k].nlen = o->xnlen;
		} else {
			free(n->xa[k].val);
		}
		n->xa[k].val = malloc(o->len + 1);
		memcpy(n->xa[k].val, o->buf, o->len);
		n->xa[k].vlen = o->len;
		snprintf(o->text, sizeof o->text, "setxattr %s %s len %" PRIu64, cpath(m, i), xn, o->len);
		return;
	}
	case K_REMOVEXATTR: {
		int i = rng_pct(70) ? pick(m, C_FILE, false) : pick(m, C_DIR, true);
		if (i < 0 || m->n[i].nxa == 0)
			return;
		struct cnode *n = &m->n[i];
		int k = (int)rng_below(n->nxa);
		o->kind = K_REMOVEXATTR;
		o->a = i;
		o->xnlen = n->xa[k].nlen;
		memcpy(o->xname, n->xa[k].name, o->xnlen);
		snprintf(o->text, sizeof o->text, "removexattr %s %.*s", cpath(m, i), (int)o->xnlen,
		         o->xname);
		free(n->xa[k].val);
		n->xa[k] = n->xa[--n->nxa];
		memset(&n->xa[n->nxa], 0, sizeof n->xa[0]);
		return;
	}
	case K_COMMIT:
	case K_SYNC:
	case K_VACUUM:
		o->kind = kind;
		snprintf(o->text, sizeof o->text, "%s", kind == K_COMMIT ? "commit"
		         : kind == K_SYNC ? "sync" : "vacuum");
		cm_committed(m);
		return;
	}
}

/* ---- The child: run the operations on the store --------------------------------- */

static int report_fd = -1;

/* Send a line to the parent (small writes to a pipe are atomic). */
__attribute__((format(printf, 1, 2)))
static void report(const char *fmt, ...)
{
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	ssize_t w = write(report_fd, line, (size_t)n);
	(void)w;
}

/* Report an unexpected result and end the child. */
static void child_die(long stepno, const struct op *o, const char *what, int rc, mms_env *env)
{
	report("E step %ld: %s: %s returned %d (%s) %s", stepno, o ? o->text : "-", what, rc,
	       mms_strerror(rc), env ? mms_errdetail(env) : mms_open_detail());
	_exit(2);
}

/* Execute o (generated from model m, which gen() has already changed; the
 * slots' ino fields are kept by the child). */
static void child_exec(mms_env *env, struct cmodel *m, const struct op *o, long stepno,
                       uint64_t *commits)
{
	int rc = 0;
	struct mms_stat st;
	switch (o->kind) {
	case K_NOP:
		return;
	case K_CREATE:
		rc = mms_mknod(env, m->n[o->dir].ino, o->name, o->nlen, S_IFREG | o->perm, 0, 0, &st);
		if (rc)
			child_die(stepno, o, "mknod", rc, env);
		m->n[o->a].ino = st.ino;
		return;
	case K_MKDIR:
		rc = mms_mkdir(env, m->n[o->dir].ino, o->name, o->nlen, o->perm, 0, 0, &st);
		if (rc)
			child_die(stepno, o, "mkdir", rc, env);
		m->n[o->a].ino = st.ino;
		return;
	case K_WRITE:
		rc = mms_write(env, m->n[o->a].ino, o->buf, o->len, o->off);
		break;
	case K_TRUNCATE:
		rc = mms_truncate(env, m->n[o->a].ino, o->off);
		break;
	case K_FALLOC:
		rc = mms_fallocate(env, m->n[o->a].ino, o->flags, o->off, o->len);
		break;
	case K_RENAME:
		rc = mms_rename(env, m->n[o->sdir].ino, o->sname, o->snlen, m->n[o->dir].ino, o->name,
		                o->nlen, o->flags);
		break;
	case K_UNLINK:
		rc = mms_unlink(env, m->n[o->dir].ino, o->name, o->nlen);
		break;
	case K_HOLD_UNLINK:
		rc = mms_hold(env, o->ino);
		if (rc)
			child_die(stepno, o, "hold", rc, env);
		rc = mms_unlink(env, m->n[o->dir].ino, o->name, o->nlen);
		break;
	case K_RMDIR:
		rc = mms_rmdir(env, m->n[o->dir].ino, o->name, o->nlen);
		break;
	case K_SETXATTR:
		rc = mms_setxattr(env, m->n[o->a].ino, o->xname, o->xnlen, o->buf, o->len, 0);
		break;
	case K_REMOVEXATTR:
		rc = mms_removexattr(env, m->n[o->a].ino, o->xname, o->xnlen);
		break;
	case K_COMMIT:
	case K_SYNC:
	case K_VACUUM:
		++*commits;
		report("A %" PRIu64, *commits);
		rc = o->kind == K_COMMIT ? mms_commit(env) : o->kind == K_SYNC ? mms_sync(env)
		   : mms_vacuum(env, NULL, NULL, NULL);
		if (rc)
			child_die(stepno, o, o->text, rc, env);
		report("C %" PRIu64, *commits);
		return;
	}
	if (rc)
		child_die(stepno, o, o->text, rc, env);
}

/* The child: open, learn the inodes of the model's slots, run until killed. */
static void child_main(const char *path, const struct cmodel *start, uint64_t round_seed,
                       long stop_at)
{
	static struct cmodel m;
	mms_env *env = NULL;
	int rc = mms_open(path, NULL, &env);
	if (rc)
		child_die(0, NULL, "open", rc, NULL);
	cm_copy(&m, start);
	for (int i = 1; i < CMAX; i++) {
		if (m.n[i].type == C_NONE)
			continue;
		char p[256];
		size_t len = cm_path(&m, i, p, sizeof p);
		struct mms_stat st;
		rc = mms_resolve(env, p, len, &st);
		if (rc) {
			report("E resolve %s at the start of the round: %d (%s)", p, rc, mms_strerror(rc));
			_exit(2);
		}
		m.n[i].ino = st.ino;
	}
	rng_state = round_seed;
	uint64_t commits = 0;
	for (long s = 1; s <= CHILD_MAX_STEPS; s++) {
		struct op o;
		gen(&m, &o);
		if (s == stop_at)
			_exit(0); /* a "crash" at a chosen step (MMS_CRASH_STEP) */
		child_exec(env, &m, &o, s, &commits);
		free(o.buf);
	}
	_exit(0); /* no close: a close would commit what is pending, unreported */
}

/* ---- The parent: compare the store with a model -------------------------------- */

static char diffmsg[1024];

/* Record why the store differs from a model; returns false. */
__attribute__((format(printf, 1, 2)))
static bool differ(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(diffmsg, sizeof diffmsg, fmt, ap);
	va_end(ap);
	return false;
}

/* The bytes of inode `ino` equal d: size, map pieces, reads. */
static bool cmp_bytes(mms_env *env, uint64_t ino, const struct mdata *d, const char *who)
{
	static uint8_t got[64 * 1024], want[64 * 1024];
	struct mms_stat st;
	int rc = mms_getattr(env, ino, &st);
	if (rc)
		return differ("getattr %s: %s", who, mms_strerror(rc));
	if (st.size != d->size)
		return differ("%s: size %" PRIu64 ", model %" PRIu64, who, st.size, d->size);
	uint64_t off = 0, pieces = 0;
	while (off < d->size) {
		struct mms_extent ext[32];
		size_t cnt = 0;
		rc = mms_map(env, ino, off, d->size - off, ext, 32, &cnt);
		if (rc || cnt == 0)
			return differ("map %s at %" PRIu64 ": %s, %zu pieces", who, off,
			              mms_strerror(rc), cnt);
		for (size_t k = 0; k < cnt; k++) {
			const struct mms_extent *e = &ext[k];
			if (e->logical != off || e->length == 0 || e->length > d->size - off)
				return differ("map %s: piece [%" PRIu64 ", +%" PRIu64 ") where [%" PRIu64
				              ", <=%" PRIu64 ") was expected", who, e->logical, e->length,
				              off, d->size);
			/* Holes: read a spot in the middle.  Data: read it all. */
			uint64_t from = off, to = off + e->length;
			if (e->flags & MMS_MAP_HOLE) {
				from = off + e->length / 2;
				to = from + 1;
			}
			for (uint64_t p = from; p < to; p += sizeof got) {
				size_t n = to - p < sizeof got ? (size_t)(to - p) : sizeof got;
				size_t nr = 0;
				rc = mms_read(env, ino, got, n, p, &nr);
				if (rc || nr != n)
					return differ("read %s at %" PRIu64 " (+%zu): %s, nread %zu", who, p,
					              n, mms_strerror(rc), nr);
				md_read(d, p, n, want);
				if (memcmp(got, want, n) != 0) {
					size_t x = 0;
					while (got[x] == want[x])
						x++;
					return differ("%s: byte %" PRIu64 " reads 0x%02x, expected 0x%02x "
					              "(in a %s piece [%" PRIu64 ", +%" PRIu64 "))", who, p + x,
					              got[x], want[x], e->flags & MMS_MAP_HOLE ? "hole"
					              : e->flags & MMS_MAP_INLINE ? "inline" : "data",
					              e->logical, e->length);
				}
			}
			off += e->length;
		}
		if ((pieces += cnt) > 100000)
			return differ("map %s: over 100000 pieces", who);
	}
	for (size_t i = 0; i < d->n; i++) {
		uint64_t at = d->pg[i].idx * PG;
		if (at >= d->size)
			break;
		size_t n = d->size - at < PG ? (size_t)(d->size - at) : PG;
		size_t nr = 0;
		rc = mms_read(env, ino, got, n, at, &nr);
		if (rc || nr != n || memcmp(got, d->pg[i].b, n) != 0)
			return differ("read %s page at %" PRIu64 ": %s, nread %zu of %zu%s", who, at,
			              mms_strerror(rc), nr, n, rc || nr != n ? "" : ", bytes differ");
	}
	return true;
}

static bool cmp_xattrs(mms_env *env, uint64_t ino, const struct cnode *n, const char *who)
{
	char list[256];
	static uint8_t val[MMS_XATTR_VALUE_MAX];
	size_t len = 0, total = 0;
	for (size_t k = 0; k < n->nxa; k++)
		total += n->xa[k].nlen + 1;
	int rc = mms_listxattr(env, ino, list, sizeof list, &len);
	if (rc || len != total)
		return differ("listxattr %s: %s, %zu bytes, model %zu", who, mms_strerror(rc), len,
		              total);
	for (size_t o = 0; o < len;) {
		size_t nl = strnlen(list + o, len - o);
		if (cm_find_xattr(n, list + o, nl) < 0)
			return differ("%s has xattr '%.*s', the model does not", who, (int)nl, list + o);
		o += nl + 1;
	}
	for (size_t k = 0; k < n->nxa; k++) {
		const struct cxattr *x = &n->xa[k];
		size_t vl = 0;
		rc = mms_getxattr(env, ino, x->name, x->nlen, val, sizeof val, &vl);
		if (rc || vl != x->vlen || memcmp(val, x->val, vl) != 0)
			return differ("getxattr %s %.*s: %s, %zu bytes, model %zu%s", who, (int)x->nlen,
			              x->name, mms_strerror(rc), vl, x->vlen,
			              rc || vl != x->vlen ? "" : ", bytes differ");
	}
	return true;
}

/* The listing of `dir` has exactly the model's children (names, types). */
static bool cmp_listing(mms_env *env, const struct cmodel *m, int dir, uint64_t ino,
                        const char *who)
{
	mms_cursor *cur = NULL;
	int rc = mms_dir_open(env, ino, 0, &cur);
	if (rc)
		return differ("dir_open %s: %s", who, mms_strerror(rc));
	struct mms_dirent de;
	int n = 0;
	bool seen[CMAX] = { false };
	while ((rc = mms_dir_next(cur, &de)) == 0) {
		int c = cm_child(m, dir, de.name, de.namelen);
		if (c < 0 || seen[c] || (de.mode & S_IFMT) != (m->n[c].type == C_DIR ? S_IFDIR
		                                                                       : S_IFREG)) {
			mms_dir_close(cur);
			return differ("listing %s: entry '%.*s' mode 0%o is %s", who, (int)de.namelen,
			              de.name, de.mode, c < 0 ? "not in the model"
			              : seen[c] ? "repeated" : "of the wrong type");
		}
		seen[c] = true;
		n++;
	}
	mms_dir_close(cur);
	if (rc != MMS_NOTFOUND)
		return differ("listing %s: %s", who, mms_strerror(rc));
	if (n != cm_nchildren(m, dir))
		return differ("listing %s: %d entries, model %d", who, n, cm_nchildren(m, dir));
	return true;
}

/* The whole store equals model m. */
static bool cmp_store(mms_env *env, const struct cmodel *m)
{
	uint64_t keys = 0, dirs = 0;
	for (int i = 0; i < CMAX; i++) {
		const struct cnode *n = &m->n[i];
		if (n->type == C_NONE)
			continue;
		char p[256];
		size_t len = cm_path(m, i, p, sizeof p);
		const char *who = i ? p : "/";
		struct mms_stat st;
		int rc = mms_resolve(env, p, len, &st);
		if (rc)
			return differ("resolve %s: %s (model: a %s)", who, mms_strerror(rc),
			              n->type == C_DIR ? "directory" : "file");
		if ((st.mode & S_IFMT) != (n->type == C_DIR ? S_IFDIR : S_IFREG) ||
		    (i && (st.mode & 07777) != n->perm))
			return differ("%s: mode 0%o, model %s 0%o", who, st.mode,
			              n->type == C_DIR ? "directory" : "file", n->perm);
		if (n->type == C_DIR) {
			dirs++;
			if (!cmp_listing(env, m, i, st.ino, who))
				return false;
		} else {
			keys++;
			if (!cmp_bytes(env, st.ino, &n->data, who))
				return false;
		}
		if (!cmp_xattrs(env, st.ino, n, who))
			return false;
	}
	struct mms_info info;
	int rc = mms_stats(env, &info);
	if (rc)
		return differ("stats: %s", mms_strerror(rc));
	if (info.keys != keys || info.dirs != dirs || info.orphans != 0)
		return differ("stats: keys %" PRIu64 " dirs %" PRIu64 " orphans %" PRIu64
		              "; model keys %" PRIu64 " dirs %" PRIu64 " orphans 0", info.keys,
		              info.dirs, info.orphans, keys, dirs);
	return true;
}

/* ---- The parent: rounds --------------------------------------------------------- */

static char oplog[OPLOG_SIZE][240];
static long oplog_count;
static bool trace; /* MMS_CRASH_TRACE: print the whole failing round */

/*
 * Replay the round's operations on a copy of `start` up to commit `upto`:
 * *last gets the state of commit `upto` (start itself for 0), *prev that of
 * commit upto-1.  The op log keeps the operations replayed.
 */
static void replay(const struct cmodel *start, uint64_t round_seed, uint64_t upto,
                   struct cmodel *prev, struct cmodel *last)
{
	static struct cmodel m;
	cm_copy(&m, start);
	cm_copy(prev, &m);
	cm_copy(last, &m);
	oplog_count = 0;
	rng_state = round_seed;
	uint64_t k = 0;
	for (long s = 1; s <= CHILD_MAX_STEPS && k < upto; s++) {
		struct op o;
		gen(&m, &o);
		free(o.buf);
		if (o.kind == K_NOP)
			continue;
		char *slot = oplog[oplog_count++ % OPLOG_SIZE];
		int n = snprintf(slot, sizeof oplog[0], "step %ld: %s", s, o.text);
		if (o.kind == K_COMMIT || o.kind == K_SYNC || o.kind == K_VACUUM) {
			k++;
			if (n > 0 && (size_t)n < sizeof oplog[0])
				snprintf(slot + n, sizeof oplog[0] - (size_t)n, " (commit %" PRIu64 ")", k);
			if (k + 1 == upto)
				cm_copy(prev, &m);
			if (k == upto)
				cm_copy(last, &m);
		}
	}
	cm_free(&m);
}

static void print_oplog(void)
{
	long tail = trace ? OPLOG_SIZE : OPLOG_TAIL;
	long first = oplog_count > tail ? oplog_count - tail : 0;
	tap_diag("the child's last %ld operations up to the last commit it announced:",
	         oplog_count - first);
	for (long k = first; k < oplog_count; k++)
		tap_diag("  %s", oplog[k % OPLOG_SIZE]);
}

static uint64_t check_problems;

static void on_problem(void *ctx, const char *where, const char *what)
{
	(void)ctx;
	if (check_problems++ < 20)
		tap_diag("mms_check: %s: %s", where, what);
}

/* What the child said through the pipe. */
struct childsays {
	uint64_t announced, done; /* last "A k" and "C k" */
	char error[600];          /* an "E ..." line, "" if none */
};

static void read_reports(int fd, struct childsays *cs)
{
	memset(cs, 0, sizeof *cs);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		abort();
	for (;;) {
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			if (!buf)
				abort();
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		unsigned long long k;
		if (sscanf(line, "A %llu", &k) == 1)
			cs->announced = k;
		else if (sscanf(line, "C %llu", &k) == 1)
			cs->done = k;
		else if (line[0] == 'E' && !cs->error[0])
			snprintf(cs->error, sizeof cs->error, "%s", line + 2);
		line = nl ? nl + 1 : NULL;
	}
	free(buf);
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);
	if (!s || !*s)
		return dflt;
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	if (*end) {
		tap_diag("ignoring %s=%s: not a number", name, s);
		return dflt;
	}
	return v;
}

int main(void)
{
	tap_plan_none();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t seed = env_u64("MMS_SEED", (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
	                                    ((uint64_t)getpid() << 40));
	long rounds = (long)env_u64("MMS_CRASH_ROUNDS", DEFAULT_ROUNDS);
	long step_mode = (long)env_u64("MMS_CRASH_STEP", 0);
	trace = env_u64("MMS_CRASH_TRACE", 0) != 0;
	if (step_mode)
		tap_diag("MMS_CRASH_STEP=%ld: no kill, each child stops before a step in 1..%ld",
		         step_mode, step_mode);
	tap_diag("seed %" PRIu64 " (replay with MMS_SEED=%" PRIu64 "), %ld rounds", seed, seed,
	         rounds);

	char path[4200];
	snprintf(path, sizeof path, "%s/crash.mms", tap_tmpdir());
	mms_env *env = NULL;
	struct mms_options opts = { .flags = MMS_CREATE | MMS_EXCL };
	int rc = mms_open(path, &opts, &env);
	if (!ok(rc == 0, "create %s", path)) {
		tap_diag("%s: %s", mms_strerror(rc), mms_open_detail());
		return tap_done();
	}
	rc = mms_close(env);
	if (!ok(rc == 0, "close the new store"))
		return tap_done();

	static struct cmodel start, prev, last;
	cm_init(&start);
	long r, commits_total = 0, ended_alone = 0, matched_announced = 0, killed_before = 0;
	bool good = true;
	for (r = 0; r < rounds && good; r++) {
		uint64_t round_seed = mix64(seed + (uint64_t)r * 0x5851f42d4c957f2dull);
		useconds_t delay = (useconds_t)(mix64(round_seed ^ 0xdeadbeef) % KILL_MAX_US);
		/* MMS_CRASH_STEP: the child stops by itself before a step chosen from
		 * the round's seed, so that a failure replays exactly. */
		long stop_at = step_mode ? (long)(mix64(round_seed ^ 0x57e9) % (uint64_t)step_mode) + 1 : 0;
		int pfd[2];
		if (pipe(pfd) != 0) {
			good = ok(0, "pipe: %s", strerror(errno));
			break;
		}
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0) {
			good = ok(0, "fork: %s", strerror(errno));
			break;
		}
		if (pid == 0) {
			close(pfd[0]);
			report_fd = pfd[1];
			child_main(path, &start, round_seed, stop_at);
			_exit(0);
		}
		close(pfd[1]);
		if (!stop_at) {
			usleep(delay);
			kill(pid, SIGKILL);
		}
		int status = 0;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		struct childsays cs;
		read_reports(pfd[0], &cs);
		close(pfd[0]);
		bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
		if (cs.error[0] || (!killed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))) {
			replay(&start, round_seed, cs.announced + 1, &prev, &last);
			print_oplog();
			good = ok(0, "round %ld (seed %" PRIu64 "): the child failed: %s", r, seed,
			          cs.error[0] ? cs.error : "exit without a report");
			break;
		}
		if (!killed && !stop_at)
			ended_alone++;
		if (cs.announced == 0)
			killed_before++;
		if (cs.announced < cs.done || cs.announced > cs.done + 1) {
			good = ok(0, "round %ld: the child announced commit %" PRIu64 " but finished %"
			          PRIu64, r, cs.announced, cs.done);
			break;
		}
		replay(&start, round_seed, cs.announced, &prev, &last);

		rc = mms_open(path, NULL, &env);
		if (rc) {
			print_oplog();
			good = ok(0, "round %ld (seed %" PRIu64 ", killed after %u us): open after the "
			          "kill: %s: %s", r, seed, (unsigned)delay, mms_strerror(rc),
			          mms_open_detail());
			break;
		}
		uint64_t np = 0;
		check_problems = 0;
		rc = mms_check(env, on_problem, NULL, NULL, NULL, &np);
		if (rc || np) {
			print_oplog();
			good = ok(0, "round %ld (seed %" PRIu64 ", killed after %u us, commit %" PRIu64
			          "/%" PRIu64 "): mms_check: %s, %" PRIu64 " problems", r, seed,
			          (unsigned)delay, cs.done, cs.announced, rc ? mms_strerror(rc) : "ok", np);
			mms_close(env);
			break;
		}
		/* Commit `announced` if it reached the file, else the one before. */
		char why_last[1024] = "", why_prev[1024] = "";
		bool is_last = cmp_store(env, &last);
		if (!is_last)
			snprintf(why_last, sizeof why_last, "%s", diffmsg);
		bool is_prev = !is_last && cs.announced > cs.done && cmp_store(env, &prev);
		if (!is_last && !is_prev && cs.announced > cs.done)
			snprintf(why_prev, sizeof why_prev, "%s", diffmsg);
		rc = mms_close(env);
		if (!is_last && !is_prev) {
			print_oplog();
			tap_diag("against commit %" PRIu64 ": %s", cs.announced, why_last);
			if (why_prev[0])
				tap_diag("against commit %" PRIu64 ": %s", cs.done, why_prev);
			good = ok(0, "round %ld (seed %" PRIu64 ", killed after %u us): the store holds "
			          "neither commit %" PRIu64 " nor %" PRIu64 " of the round", r, seed,
			          (unsigned)delay, cs.done, cs.announced);
			break;
		}
		if (rc) {
			good = ok(0, "round %ld: close after the check: %s", r, mms_strerror(rc));
			break;
		}
		if (is_last && cs.announced > cs.done)
			matched_announced++;
		commits_total += (long)(is_last ? cs.announced : cs.done);
		cm_copy(&start, is_last ? &last : &prev);
		cm_committed(&start);
	}
	if (good)
		ok(1, "%ld kill -9 rounds: the store opened, checked clean and held the last commit "
		   "every time (seed %" PRIu64 ")", r, seed);
	tap_diag("%ld commits survived in all; %ld rounds killed before the first commit, %ld "
	         "killed between a commit's write and its report, %ld children ended on their own",
	         commits_total, killed_before, matched_announced, ended_alone);
	int keys = 0;
	for (int i = 1; i < CMAX; i++)
		keys += start.n[i].type != C_NONE;
	tap_diag("final state: %d keys and directories", keys);
	cm_free(&start);
	cm_free(&prev);
	cm_free(&last);
	return tap_done();
}
