/*
 * test_model.c - randomized model test of libmms.
 *
 * Runs thousands of random operations on a store and, side by side, on an
 * in-memory model of what the store must hold (a tree of nodes: type,
 * permission bits, owner, sparse bytes, xattrs, symlink target, holds).
 * After every step the touched keys are compared; every CHECK_EVERY steps,
 * and after every reopen, vacuum and rollback, everything is: every path
 * resolves to the right inode, every byte reads back (through mms_map,
 * mms_read and mms_seek), every xattr, every directory listing (with
 * cookie resumption), the held orphans, and the store's counters.
 * Operations that must fail are checked for their exact code and for the
 * store being unchanged (and their out-parameters untouched).  After every
 * reopen and vacuum mms_check() must report no problem.  Some reopens go
 * through a read-only open (everything compared, changes refused with
 * MMS_READONLY).  Some steps cap the store with mms_set_max_size() and run
 * calls that need space: each may fail with MMS_FULL, which must change
 * nothing and leave the transaction usable, and removing a file must still
 * work when the cap left room for the engine's floor.
 *
 * Inode numbers: a new inode must not reuse a number that was ever part of
 * a committed state; reuse of a number handed out in a transaction that was
 * then rolled back is only noted (a diagnostic).
 *
 * On the first disagreement the last OPLOG_TAIL operations are printed as
 * TAP diagnostics and the test fails (and stops: later steps would only
 * repeat the same difference).
 *
 * Environment:
 *   MMS_SEED       seed of the run (default: from the clock and pid); always
 *                  printed, so a failing run can be replayed exactly.
 *   MMS_MODEL_OPS  number of random operations (default DEFAULT_OPS).
 *   MMS_MODEL_TRACE=1  print every operation as it runs.
 *
 * Spilling: an odd seed opens every store with a spill limit of 2 to 8
 * pages (mms_pager_set_spill), so that transactions write their dirty pages
 * out early and read them back through the map, across rollbacks, commits
 * and reopens; an even seed keeps the default limit.
 *
 * Rollback and in-place writes.  mms_rollback() keeps the bytes written over
 * data that existed at the last commit (data is written in place).  The
 * model does not try to predict which bytes those are.  Instead, a rollback
 * is issued only when no data operation (write, truncate, fallocate, punch)
 * touched, since the last commit, an inode that existed at that commit;
 * when one did, the step commits instead.  Then the store must be exactly
 * the model copy taken at the last commit.  Holds live in memory only, so
 * they are all released before a rollback, and a rollback is also skipped
 * when the last commit contained held orphans (their hold would be gone).
 */
#define _GNU_SOURCE
#include "mms.h"
#include "tap.h"
#include "sparse.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_OPS 6000       /* steps when MMS_MODEL_OPS is not set (~6 s under ASan) */
#define CHECK_EVERY 50         /* a full comparison every this many steps */
#define OPLOG_SIZE 64          /* operations remembered */
#define OPLOG_TAIL 20          /* operations printed on a mismatch */
#define MAXNODES 400           /* model slots (the namespace stays smaller) */
#define MAXLINKS 64            /* extra names (hard links) */
#define MAXDEPTH 4             /* directories below the root */
#define MAXXATTRS 8
#define INLINE_LIMIT 1632u     /* MMS_INLINE_MAX of the engine (sizes around it) */
#define XATTR_INLINE_LIMIT 1024u /* MMS_XATTR_INLINE_MAX (xattr values around it) */
#define LISTMAX 1024           /* directory entries a listing may return */

/* ---- Deterministic random numbers (splitmix64) ---------------------------- */

static uint64_t rng_state;

/* Next 64 random bits. */
static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A number in [0, n), 0 when n is 0. */
static uint64_t rng_below(uint64_t n)
{
	return n ? rng_next() % n : 0;
}

/* A number in [lo, hi]. */
static uint64_t rng_range(uint64_t lo, uint64_t hi)
{
	return lo + rng_below(hi - lo + 1);
}

/* True with probability pct percent. */
static bool rng_pct(unsigned pct)
{
	return rng_below(100) < pct;
}

/* Fill buf with random bytes. */
static void rng_fill(uint8_t *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint64_t v = rng_next();
		for (int k = 0; k < 8 && i < len; k++, v >>= 8)
			buf[i++] = (uint8_t)v;
	}
}

static uint64_t md_some_nonzero(const struct mdata *d)
{
	if (d->n == 0)
		return UINT64_MAX;
	size_t start = (size_t)rng_below(d->n);
	for (size_t k = 0; k < d->n; k++) {
		const struct mpage *p = &d->pg[(start + k) % d->n];
		for (size_t j = 0; j < PG; j++)
			if (p->b[j] && p->idx * PG + j < d->size)
				return p->idx * PG + j;
	}
	return UINT64_MAX;
}

/* ---- The model ------------------------------------------------------------------ */

enum mtype { T_NONE, T_FILE, T_DIR, T_LINK, T_FIFO };

#define P_ROOT (-1)   /* parent of the root */
#define P_ORPHAN (-2) /* parent of an unlinked, still held inode */

struct mxattr {
	char name[MMS_XATTR_NAME_MAX];
	size_t nlen;
	uint8_t *val;
	size_t vlen;
};

struct mnode {
	int type;                  /* enum mtype; T_NONE: free slot */
	int parent;                /* slot of the directory, P_ROOT, P_ORPHAN */
	char name[MMS_NAME_MAX];
	size_t nlen;
	uint64_t ino;
	uint32_t perm, uid, gid;
	struct mdata data;         /* T_FILE */
	char *target;              /* T_LINK */
	size_t tlen;
	struct mxattr xa[MAXXATTRS];
	size_t nxa;
	int holds;                 /* mms_hold() count */
};

/* A name of a node besides its own (a hard link): node 0 is a free slot
 * (the root has no links).  A node's own parent and name are its primary
 * name; removing it promotes one of its links, as the store does. */
struct mlink {
	int node;
	int parent;
	char name[MMS_NAME_MAX];
	size_t nlen;
};

struct model {
	struct mnode n[MAXNODES];  /* slot 0 is the root */
	struct mlink l[MAXLINKS];
};

static uint32_t type_bits(int type)
{
	switch (type) {
	case T_FILE: return S_IFREG;
	case T_DIR: return S_IFDIR;
	case T_LINK: return S_IFLNK;
	case T_FIFO: return S_IFIFO;
	}
	return 0;
}

static const char *type_name(int type)
{
	switch (type) {
	case T_FILE: return "file";
	case T_DIR: return "dir";
	case T_LINK: return "symlink";
	case T_FIFO: return "fifo";
	}
	return "none";
}

/* Named: present in the namespace (the root included). */
static bool m_named(const struct model *m, int i)
{
	return m->n[i].type != T_NONE && m->n[i].parent != P_ORPHAN;
}

static void node_free(struct mnode *n)
{
	md_free(&n->data);
	free(n->target);
	for (size_t i = 0; i < n->nxa; i++)
		free(n->xa[i].val);
	memset(n, 0, sizeof *n);
}

static void m_free(struct model *m)
{
	for (int i = 0; i < MAXNODES; i++)
		node_free(&m->n[i]);
	memset(m->l, 0, sizeof m->l);
}

/* Deep copy (dst is freed first). */
static void m_copy(struct model *dst, const struct model *src)
{
	m_free(dst);
	memcpy(dst->l, src->l, sizeof dst->l);
	for (int i = 0; i < MAXNODES; i++) {
		const struct mnode *s = &src->n[i];
		struct mnode *d = &dst->n[i];
		*d = *s;
		md_copy(&d->data, &s->data);
		if (s->target) {
			d->target = malloc(s->tlen);
			memcpy(d->target, s->target, s->tlen);
		}
		for (size_t k = 0; k < s->nxa; k++) {
			d->xa[k].val = malloc(s->xa[k].vlen + 1);
			memcpy(d->xa[k].val, s->xa[k].val, s->xa[k].vlen);
		}
	}
}

/* The slot of `name` in directory `dir`, or -1. */
static int m_child(const struct model *m, int dir, const char *name, size_t nlen)
{
	for (int i = 1; i < MAXNODES; i++)
		if (m->n[i].type != T_NONE && m->n[i].parent == dir &&
		    m->n[i].nlen == nlen && memcmp(m->n[i].name, name, nlen) == 0)
			return i;
	return -1;
}

/* The node named `name` in directory `dir` by a primary name or a link
 * (*link gets the link's slot, or -1), or -1. */
static int m_lookup(const struct model *m, int dir, const char *name, size_t nlen, int *link)
{
	int i = m_child(m, dir, name, nlen);
	*link = -1;
	if (i >= 0)
		return i;
	for (int k = 0; k < MAXLINKS; k++)
		if (m->l[k].node && m->l[k].parent == dir && m->l[k].nlen == nlen &&
		    memcmp(m->l[k].name, name, nlen) == 0) {
			*link = k;
			return m->l[k].node;
		}
	return -1;
}

/* Names in directory `dir`: primary ones and links. */
static int m_nchildren(const struct model *m, int dir)
{
	int c = 0;
	for (int i = 1; i < MAXNODES; i++)
		if (m->n[i].type != T_NONE && m->n[i].parent == dir)
			c++;
	for (int k = 0; k < MAXLINKS; k++)
		if (m->l[k].node && m->l[k].parent == dir)
			c++;
	return c;
}

/* Links of node i. */
static int m_nlinks(const struct model *m, int i)
{
	int c = 0;
	for (int k = 0; k < MAXLINKS; k++)
		if (m->l[k].node == i)
			c++;
	return c;
}

/* st_nlink of slot i: its names; a directory 2 + its subdirectories; an
 * orphan 0. */
static uint32_t m_nlink(const struct model *m, int i)
{
	if (m->n[i].parent == P_ORPHAN)
		return 0;
	if (m->n[i].type != T_DIR)
		return 1 + (uint32_t)m_nlinks(m, i);
	uint32_t c = 2;
	for (int j = 1; j < MAXNODES; j++)
		if (m->n[j].type == T_DIR && m->n[j].parent == i)
			c++;
	return c;
}

/* Directories from the root to i (root: 0). */
static int m_depth(const struct model *m, int i)
{
	int d = 0;
	while (i > 0) {
		i = m->n[i].parent;
		d++;
	}
	return d;
}

/* True if a is b or an ancestor of b (both named). */
static bool m_is_ancestor(const struct model *m, int a, int b)
{
	for (int i = b; i >= 0; i = m->n[i].parent)
		if (i == a)
			return true;
	return false;
}

/* True if directory a is node i or above its name in directory `dir` (a
 * node with several names is above the one given, not its primary one). */
static bool m_name_under(const struct model *m, int a, int dir, int i)
{
	return a == i || m_is_ancestor(m, a, dir);
}

/* The path of named slot i ("" for the root) into buf; returns its length. */
static size_t m_path(const struct model *m, int i, char *buf, size_t cap)
{
	if (i <= 0) {
		buf[0] = '\0';
		return 0;
	}
	size_t len = m_path(m, m->n[i].parent, buf, cap);
	if (len)
		buf[len++] = '/';
	if (len + m->n[i].nlen + 1 > cap)
		abort();
	memcpy(buf + len, m->n[i].name, m->n[i].nlen);
	len += m->n[i].nlen;
	buf[len] = '\0';
	return len;
}

/* A free slot (aborts the test when the model is full). */
static int m_alloc(struct model *m)
{
	for (int i = 1; i < MAXNODES; i++)
		if (m->n[i].type == T_NONE)
			return i;
	return -1;
}

/* Remove a name: the inode lives on as an orphan while held. */
static void m_unlink(struct model *m, int i)
{
	if (m->n[i].holds > 0)
		m->n[i].parent = P_ORPHAN;
	else
		node_free(&m->n[i]);
}

/* Remove name `link` (a link slot, or -1: the primary name) of node i: a
 * link goes; the primary name goes with a link promoted in its place, or
 * at the last name the node is unlinked. */
static void m_unlink_name(struct model *m, int i, int link)
{
	if (link >= 0) {
		memset(&m->l[link], 0, sizeof m->l[link]);
		return;
	}
	for (int k = 0; k < MAXLINKS; k++)
		if (m->l[k].node == i) {
			m->n[i].parent = m->l[k].parent;
			memcpy(m->n[i].name, m->l[k].name, m->l[k].nlen);
			m->n[i].nlen = m->l[k].nlen;
			memset(&m->l[k], 0, sizeof m->l[k]);
			return;
		}
	m_unlink(m, i);
}

/* Name `link` (or the primary name) of node i becomes `name` in `dir`. */
static void m_rename_name(struct model *m, int i, int link, int dir, const char *name,
                          size_t nlen)
{
	if (link >= 0) {
		m->l[link].parent = dir;
		memcpy(m->l[link].name, name, nlen);
		m->l[link].nlen = nlen;
	} else {
		m->n[i].parent = dir;
		memcpy(m->n[i].name, name, nlen);
		m->n[i].nlen = nlen;
	}
}

static int m_find_xattr(const struct mnode *n, const char *name, size_t nlen)
{
	for (size_t k = 0; k < n->nxa; k++)
		if (n->xa[k].nlen == nlen && memcmp(n->xa[k].name, name, nlen) == 0)
			return (int)k;
	return -1;
}

/* Slot holding inode `ino`, or -1. */
static int m_find_ino(const struct model *m, uint64_t ino)
{
	for (int i = 0; i < MAXNODES; i++)
		if (m->n[i].type != T_NONE && m->n[i].ino == ino)
			return i;
	return -1;
}

/* ---- Test state ------------------------------------------------------------------ */

static mms_env *env;
static char store_path[4200];
static struct model cur;        /* what the store must hold now */
static struct model snap;       /* as of the last commit */
static uint64_t seed;
static long step;
static bool failed;
static bool touched_committed;  /* a data op hit an inode of the last commit */
static bool dirty;              /* a successful change since the last commit */
static uint64_t max_ino_seen;       /* largest inode number ever handed out */
static uint64_t max_ino_txn;        /* ... by a create since the last commit */
static uint64_t max_ino_committed;  /* largest that was part of a committed state */
static bool noted_ino_reuse;

/* Counters, printed at the end. */
static long n_ops[32];          /* steps run per opcode */
static long n_expected_errors, n_full_checks, n_reopens, n_rollbacks,
	n_rollbacks_skipped, n_commits, n_vacuums, n_checks;

static char oplog[OPLOG_SIZE][400];
static bool trace;              /* MMS_MODEL_TRACE: print every operation */
static long oplog_count;

/* Printable form of a byte string: rotating static buffers. */
static const char *esc(const char *s, size_t len)
{
	static char bufs[8][128];
	static int which;
	char *out = bufs[which++ % 8];
	size_t o = 0;
	for (size_t i = 0; i < len && o < 100; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i == 20 && len > 40) {
			o += (size_t)snprintf(out + o, 128 - o, "...(%zu bytes)", len);
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, 128 - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

/* Printable path of slot i. */
static const char *pathname(const struct model *m, int i)
{
	char p[MMS_PATH_MAX + 1];
	size_t len = m_path(m, i, p, sizeof p);
	if (len == 0)
		return "/";
	return esc(p, len);
}

/* Remember the operation about to run. */
__attribute__((format(printf, 1, 2)))
static void logop(const char *fmt, ...)
{
	char *slot = oplog[oplog_count++ % OPLOG_SIZE];
	int n = snprintf(slot, sizeof oplog[0], "step %ld: ", step);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(slot + n, sizeof oplog[0] - (size_t)n, fmt, ap);
	va_end(ap);
	if (trace)
		tap_diag("%s", slot);
}

/* Record the first mismatch: the log tail, then a failed check. */
__attribute__((format(printf, 1, 2)))
static void fail(const char *fmt, ...)
{
	if (failed)
		return;
	failed = true;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	long first = oplog_count > OPLOG_TAIL ? oplog_count - OPLOG_TAIL : 0;
	tap_diag("last %ld operations (seed %" PRIu64 "):", oplog_count - first, seed);
	for (long k = first; k < oplog_count; k++)
		tap_diag("  %s", oplog[k % OPLOG_SIZE]);
	tap_diag("mismatch: %s", msg);
	ok(0, "step %ld (seed %" PRIu64 "): %s", step, seed, msg);
}

/* A return code as "-30700 (no such ...)". */
static const char *rcname(int rc)
{
	static char bufs[4][160];
	static int which;
	char *b = bufs[which++ % 4];
	snprintf(b, sizeof bufs[0], "%d (%s)", rc, mms_strerror(rc));
	return b;
}

/* rc must be one of the n codes in want (0 for success). */
static bool expect_rc(const char *what, int rc, const int *want, int n)
{
	for (int k = 0; k < n; k++)
		if (rc == want[k])
			return true;
	char list[400];
	size_t o = 0;
	for (int k = 0; k < n && o < sizeof list - 100; k++)
		o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", k ? " or " : "",
		                      rcname(want[k]));
	fail("%s returned %s, expected %s%s%s", what, rcname(rc), list,
	     env && rc ? ": " : "", env && rc ? mms_errdetail(env) : "");
	return false;
}

static bool expect1(const char *what, int rc, int want)
{
	return expect_rc(what, rc, &want, 1);
}

/* ---- Comparing the store with the model ----------------------------------------- */

/* Compare the store bytes of inode `ino` with d (size, map, reads, seek). */
static bool check_bytes(uint64_t ino, const struct mdata *d, const char *who)
{
	struct mms_stat st;
	int rc = mms_getattr(env, ino, &st);
	if (rc) {
		fail("getattr %s (ino %" PRIu64 "): %s", who, ino, rcname(rc));
		return false;
	}
	if (st.size != d->size) {
		fail("%s: size %" PRIu64 ", model %" PRIu64, who, st.size, d->size);
		return false;
	}
	size_t bufcap = 256 * 1024;
	uint8_t *got = malloc(bufcap), *want = malloc(bufcap);
	bool good = false;
	if (!got || !want)
		abort();

	/* 1. The map covers [0, size) with consecutive pieces; the data pieces
	 *    read back as the model; a spot in each hole reads as zeros. */
	uint64_t off = 0, pieces = 0, databytes = 0;
	while (off < d->size) {
		struct mms_extent ext[64];
		size_t cnt = 0;
		rc = mms_map(env, ino, off, d->size - off, ext, 64, &cnt);
		if (rc) {
			fail("map %s at %" PRIu64 ": %s", who, off, rcname(rc));
			goto out;
		}
		if (cnt == 0 || cnt > 64) {
			fail("map %s at %" PRIu64 " (size %" PRIu64 "): %zu pieces", who, off,
			     d->size, cnt);
			goto out;
		}
		for (size_t k = 0; k < cnt; k++) {
			const struct mms_extent *e = &ext[k];
			if (e->logical != off || e->length == 0 || e->length > d->size - off) {
				fail("map %s: piece %zu is [%" PRIu64 ", +%" PRIu64 "), expected to start at %"
				     PRIu64 " and end by %" PRIu64, who, k, e->logical, e->length, off,
				     d->size);
				goto out;
			}
			if (e->flags & MMS_MAP_HOLE) {
				uint64_t at = off + rng_below(e->length);
				size_t n = e->length - (at - off) < 64 ? (size_t)(e->length - (at - off)) : 64;
				size_t nr = 0;
				rc = mms_read(env, ino, got, n, at, &nr);
				md_read(d, at, n, want);
				if (rc || nr != n || memcmp(got, want, n) != 0) {
					fail("%s: hole read at %" PRIu64 " (+%zu): rc %s, nread %zu, bytes %s",
					     who, at, n, rcname(rc), nr,
					     memcmp(got, want, n) ? "differ" : "agree");
					goto out;
				}
			} else if (e->flags & MMS_MAP_INLINE) {
				if (e->length > bufcap || !e->data) {
					fail("map %s: inline piece of %" PRIu64 " bytes, data %p", who,
					     e->length, e->data);
					goto out;
				}
				md_read(d, off, (size_t)e->length, want);
				if (memcmp(e->data, want, (size_t)e->length) != 0) {
					fail("map %s: inline bytes at %" PRIu64 " differ from the model",
					     who, off);
					goto out;
				}
			} else {
				databytes += e->length;
				if (databytes > (256u << 20)) {
					fail("map %s: more than 256 MiB of data extents (model has %zu pages)",
					     who, d->n);
					goto out;
				}
				for (uint64_t p = 0; p < e->length; p += bufcap) {
					size_t n = e->length - p < bufcap ? (size_t)(e->length - p) : bufcap;
					size_t nr = 0;
					rc = mms_read(env, ino, got, n, off + p, &nr);
					if (rc || nr != n) {
						fail("read %s at %" PRIu64 " (+%zu): %s, nread %zu", who,
						     off + p, n, rcname(rc), nr);
						goto out;
					}
					md_read(d, off + p, n, want);
					if (memcmp(got, want, n) != 0) {
						size_t x = 0;
						while (got[x] == want[x])
							x++;
						fail("%s: byte %" PRIu64 " is 0x%02x, model 0x%02x (data piece [%"
						     PRIu64 ", +%" PRIu64 ") at file offset %" PRIu64 ")", who,
						     off + p + x, got[x], want[x], e->logical, e->length,
						     e->physical);
						goto out;
					}
				}
			}
			off += e->length;
		}
		pieces += cnt;
		if (pieces > 1000000) {
			fail("map %s: more than a million pieces for size %" PRIu64, who, d->size);
			goto out;
		}
	}

	/* 2. Every page the model ever wrote reads back through mms_read. */
	for (size_t i = 0; i < d->n; i++) {
		uint64_t at = d->pg[i].idx * PG;
		if (at >= d->size)
			break;
		size_t n = d->size - at < PG ? (size_t)(d->size - at) : PG;
		size_t nr = 0;
		rc = mms_read(env, ino, got, n, at, &nr);
		if (rc || nr != n) {
			fail("read %s at %" PRIu64 " (+%zu): %s, nread %zu", who, at, n, rcname(rc), nr);
			goto out;
		}
		if (memcmp(got, d->pg[i].b, n) != 0) {
			size_t x = 0;
			while (got[x] == d->pg[i].b[x])
				x++;
			fail("%s: byte %" PRIu64 " reads 0x%02x, model 0x%02x", who, at + x, got[x],
			     d->pg[i].b[x]);
			goto out;
		}
	}

	/* 3. Reads are short only at the end. */
	{
		uint64_t at = d->size > 10 ? d->size - 10 : 0;
		size_t nr = 12345;
		rc = mms_read(env, ino, got, 100, at, &nr);
		if (rc || nr != d->size - at) {
			fail("read %s of 100 at %" PRIu64 " (size %" PRIu64 "): %s, nread %zu", who,
			     at, d->size, rcname(rc), nr);
			goto out;
		}
		nr = 12345;
		rc = mms_read(env, ino, got, 100, d->size + rng_below(3 * PG), &nr);
		if (rc || nr != 0) {
			fail("read %s past the end (size %" PRIu64 "): %s, nread %zu", who, d->size,
			     rcname(rc), nr);
			goto out;
		}
	}

	/* 4. seek: a nonzero byte is data; nothing follows the end. */
	{
		uint64_t res = 0;
		uint64_t at = md_some_nonzero(d);
		if (at != UINT64_MAX) {
			rc = mms_seek(env, ino, at, MMS_SEEK_DATA, &res);
			if (rc || res != at) {
				fail("seek_data %s at %" PRIu64 " (a nonzero byte): %s, result %" PRIu64,
				     who, at, rcname(rc), res);
				goto out;
			}
			rc = mms_seek(env, ino, at, MMS_SEEK_HOLE, &res);
			if (rc || res <= at || res > d->size) {
				fail("seek_hole %s at %" PRIu64 " (a nonzero byte, size %" PRIu64
				     "): %s, result %" PRIu64, who, at, d->size, rcname(rc), res);
				goto out;
			}
		}
		rc = mms_seek(env, ino, d->size, rng_pct(50) ? MMS_SEEK_DATA : MMS_SEEK_HOLE, &res);
		if (rc != MMS_NXIO) {
			fail("seek %s at its size %" PRIu64 ": %s, expected MMS_NXIO", who, d->size,
			     rcname(rc));
			goto out;
		}
	}
	good = true;
out:
	free(got);
	free(want);
	return good;
}

/* Compare the xattrs of inode `ino` with node n. */
static bool check_xattrs(uint64_t ino, const struct mnode *n, const char *who)
{
	size_t total = 0, len = 0;
	for (size_t k = 0; k < n->nxa; k++)
		total += n->xa[k].nlen + 1;
	int rc = mms_listxattr(env, ino, NULL, 0, &len);
	if (rc || len != total) {
		fail("listxattr %s (size only): %s, length %zu, model %zu", who, rcname(rc), len, total);
		return false;
	}
	char *list = malloc(total + 1);
	uint8_t *val = malloc(MMS_XATTR_VALUE_MAX + 1);
	bool good = false;
	if (!list || !val)
		abort();
	len = 0;
	rc = mms_listxattr(env, ino, list, total + 1, &len);
	if (rc || len != total) {
		fail("listxattr %s: %s, length %zu, model %zu", who, rcname(rc), len, total);
		goto out;
	}
	bool seen[MAXXATTRS] = { false };
	for (size_t o = 0; o < total;) {
		const char *nm = list + o;
		size_t nl = strnlen(nm, total - o);
		int k = m_find_xattr(n, nm, nl);
		if (nl == total - o || k < 0 || seen[k]) {
			fail("listxattr %s: unexpected or repeated name '%s'", who, esc(nm, nl));
			goto out;
		}
		seen[k] = true;
		o += nl + 1;
	}
	if (total >= 2) {
		rc = mms_listxattr(env, ino, list, total - 1, &len);
		if (!expect1("listxattr with a short buffer", rc, MMS_RANGE))
			goto out;
	}
	for (size_t k = 0; k < n->nxa; k++) {
		const struct mxattr *x = &n->xa[k];
		size_t vl = 0;
		rc = mms_getxattr(env, ino, x->name, x->nlen, NULL, 0, &vl);
		if (rc || vl != x->vlen) {
			fail("getxattr %s %s (size only): %s, length %zu, model %zu", who,
			     esc(x->name, x->nlen), rcname(rc), vl, x->vlen);
			goto out;
		}
		if (x->vlen == 0)
			continue;
		vl = 0;
		rc = mms_getxattr(env, ino, x->name, x->nlen, val, MMS_XATTR_VALUE_MAX + 1, &vl);
		if (rc || vl != x->vlen || memcmp(val, x->val, vl) != 0) {
			fail("getxattr %s %s: %s, length %zu (model %zu), bytes %s", who,
			     esc(x->name, x->nlen), rcname(rc), vl, x->vlen,
			     rc || vl != x->vlen ? "-" : "differ");
			goto out;
		}
		if (x->vlen >= 2) {
			rc = mms_getxattr(env, ino, x->name, x->nlen, val, x->vlen - 1, &vl);
			if (!expect1("getxattr with a short buffer", rc, MMS_RANGE))
				goto out;
		}
	}
	rc = mms_getxattr(env, ino, "user.absent", 11, val, 16, &len);
	if (!expect1("getxattr of an absent name", rc, MMS_NODATA))
		goto out;
	good = true;
out:
	free(list);
	free(val);
	return good;
}

/* Compare a stat with the node (identity, type, permissions, owner). */
static bool check_stat(const struct mms_stat *st, const struct mnode *n, uint32_t nlink,
                       const char *who)
{
	if (st->ino != n->ino || (st->mode & S_IFMT) != type_bits(n->type) ||
	    (st->mode & 07777) != n->perm || st->uid != n->uid || st->gid != n->gid ||
	    st->nlink != nlink) {
		fail("%s: store has ino %" PRIu64 " mode 0%o uid %u gid %u nlink %u; model ino %"
		     PRIu64 " %s mode 0%o uid %u gid %u nlink %u", who, st->ino, st->mode, st->uid,
		     st->gid, st->nlink, n->ino, type_name(n->type), n->perm, n->uid, n->gid, nlink);
		return false;
	}
	return true;
}

/* Compare the contents of a node found at inode n->ino. */
static bool check_contents(const struct mnode *n, const char *who)
{
	if (n->type == T_FILE && !check_bytes(n->ino, &n->data, who))
		return false;
	if (n->type == T_LINK) {
		char buf[MMS_SYMLINK_MAX + 1];
		size_t len = 0;
		int rc = mms_readlink(env, n->ino, buf, sizeof buf, &len);
		if (rc || len != n->tlen || memcmp(buf, n->target, len) != 0) {
			fail("readlink %s: %s, %zu bytes, model %zu bytes%s", who, rcname(rc), len,
			     n->tlen, rc || len != n->tlen ? "" : " (bytes differ)");
			return false;
		}
		if (n->tlen >= 2) {
			rc = mms_readlink(env, n->ino, buf, n->tlen - 1, &len);
			if (!expect1("readlink with a short buffer", rc, MMS_RANGE))
				return false;
		}
	}
	if (n->type != T_LINK || n->nxa)
		return check_xattrs(n->ino, n, who);
	return true;
}

/* Compare named slot i: path resolution, lookup, attributes, contents. */
static bool check_node(const struct model *m, int i)
{
	const struct mnode *n = &m->n[i];
	char path[MMS_PATH_MAX + 1];
	size_t plen = m_path(m, i, path, sizeof path);
	const char *who = pathname(m, i);
	struct mms_stat st;
	int rc = mms_resolve(env, path, plen, &st);
	if (rc) {
		fail("resolve '%s': %s, model has a %s (ino %" PRIu64 ")", who, rcname(rc),
		     type_name(n->type), n->ino);
		return false;
	}
	if (!check_stat(&st, n, m_nlink(m, i), who))
		return false;
	if (i > 0) {
		struct mms_stat st2;
		rc = mms_lookup(env, m->n[n->parent].ino, n->name, n->nlen, &st2);
		if (rc || st2.ino != n->ino) {
			fail("lookup '%s' in its directory: %s, ino %" PRIu64 ", model %" PRIu64, who,
			     rcname(rc), rc ? 0 : st2.ino, n->ino);
			return false;
		}
	}
	return check_contents(n, who);
}

/* `name` must not exist in directory slot `dir`. */
static bool check_absent(const struct model *m, int dir, const char *name, size_t nlen)
{
	struct mms_stat st;
	int rc = mms_lookup(env, m->n[dir].ino, name, nlen, &st);
	int want = m->n[dir].type == T_DIR ? MMS_NOTFOUND : MMS_NOTDIR;
	if (rc != want) {
		fail("lookup '%s' in %s: %s, but the model has no such name (expected %s)",
		     esc(name, nlen), pathname(m, dir), rc ? rcname(rc) : "found", rcname(want));
		return false;
	}
	return true;
}

/* A freed inode (unlinked, not held) must be gone. */
static bool check_gone(uint64_t ino, const char *who)
{
	struct mms_stat st;
	int rc = mms_getattr(env, ino, &st);
	if (rc != MMS_NOTFOUND) {
		fail("getattr of %s (ino %" PRIu64 ", unlinked and not held): %s, expected "
		     "MMS_NOTFOUND", who, ino, rcname(rc));
		return false;
	}
	return true;
}

/* An orphan (unlinked, held) keeps its attributes and bytes, nlink 0. */
static bool check_orphan(const struct mnode *n)
{
	char who[64];
	snprintf(who, sizeof who, "orphan ino %" PRIu64, n->ino);
	struct mms_stat st;
	int rc = mms_getattr(env, n->ino, &st);
	if (rc) {
		fail("getattr %s: %s", who, rcname(rc));
		return false;
	}
	return check_stat(&st, n, 0, who) && check_contents(n, who);
}

struct lent {
	uint64_t ino, cookie;
	uint32_t mode;
	char name[MMS_NAME_MAX];
	size_t nlen;
};

/* List directory `ino` from `cookie` into ents (at most LISTMAX). */
static int list_dir(uint64_t ino, uint64_t cookie, struct lent *ents, int *count)
{
	mms_cursor *cur = NULL;
	int rc = mms_dir_open(env, ino, cookie, &cur);
	if (rc)
		return rc;
	int n = 0;
	struct mms_dirent de;
	while ((rc = mms_dir_next(cur, &de)) == 0) {
		if (n == LISTMAX || de.namelen == 0 || de.namelen > MMS_NAME_MAX) {
			rc = MMS_INVAL;
			break;
		}
		ents[n].ino = de.ino;
		ents[n].cookie = de.cookie;
		ents[n].mode = de.mode;
		memcpy(ents[n].name, de.name, de.namelen);
		ents[n].nlen = de.namelen;
		n++;
	}
	mms_dir_close(cur);
	if (rc != MMS_NOTFOUND)
		return rc;
	*count = n;
	return 0;
}

/* The listing of directory slot `dir` equals its model children. */
static bool check_listing(const struct model *m, int dir)
{
	static struct lent ents[LISTMAX], tail[LISTMAX];
	const char *who = pathname(m, dir);
	int n = 0, nt = 0;
	int rc = list_dir(m->n[dir].ino, 0, ents, &n);
	if (rc) {
		fail("listing %s: %s", who, rcname(rc));
		return false;
	}
	int want = m_nchildren(m, dir);
	for (int k = 0; k < n; k++) {
		int lk;
		int c = m_lookup(m, dir, ents[k].name, ents[k].nlen, &lk);
		if (c < 0 || m->n[c].ino != ents[k].ino ||
		    (ents[k].mode & S_IFMT) != type_bits(m->n[c].type) ||
		    ents[k].cookie < MMS_COOKIE_MIN) {
			fail("listing %s: entry '%s' ino %" PRIu64 " mode 0%o cookie %" PRIu64
			     " is not in the model%s", who, esc(ents[k].name, ents[k].nlen),
			     ents[k].ino, ents[k].mode, ents[k].cookie,
			     c < 0 ? "" : " as such (ino/type/cookie differ)");
			return false;
		}
		for (int j = 0; j < k; j++)
			if (ents[j].nlen == ents[k].nlen &&
			    memcmp(ents[j].name, ents[k].name, ents[k].nlen) == 0) {
				fail("listing %s: '%s' returned twice", who,
				     esc(ents[k].name, ents[k].nlen));
				return false;
			}
	}
	if (n != want) {
		fail("listing %s: %d entries, model has %d", who, n, want);
		return false;
	}
	if (n >= 2) {
		int j = (int)rng_below((uint64_t)n - 1);
		rc = list_dir(m->n[dir].ino, ents[j].cookie, tail, &nt);
		bool same = rc == 0 && nt == n - j - 1;
		for (int k = 0; same && k < nt; k++)
			same = tail[k].ino == ents[j + 1 + k].ino;
		if (!same) {
			fail("listing %s resumed after entry %d of %d (cookie %" PRIu64 "): %s, %d "
			     "entries, expected the %d that followed", who, j, n, ents[j].cookie,
			     rcname(rc), nt, n - j - 1);
			return false;
		}
	}
	return true;
}

/* The store's counters agree with the model. */
static bool check_counts(const struct model *m)
{
	struct mms_info info;
	int rc = mms_stats(env, &info);
	if (rc) {
		fail("stats: %s", rcname(rc));
		return false;
	}
	uint64_t keys = 0, dirs = 0, orphans = 0;
	for (int i = 0; i < MAXNODES; i++) {
		if (m->n[i].type == T_NONE)
			continue;
		if (m->n[i].parent == P_ORPHAN)
			orphans++;
		else if (m->n[i].type == T_DIR)
			dirs++;
		else
			keys++;
	}
	/* Whether held orphans count as keys is not specified: both are accepted. */
	if ((info.keys != keys && info.keys != keys + orphans) || info.dirs != dirs ||
	    info.orphans != orphans) {
		fail("stats: keys %" PRIu64 " dirs %" PRIu64 " orphans %" PRIu64 "; model keys %"
		     PRIu64 " dirs %" PRIu64 " orphans %" PRIu64, info.keys, info.dirs,
		     info.orphans, keys, dirs, orphans);
		return false;
	}
	return true;
}

/* Compare everything. */
static bool check_full(const struct model *m)
{
	n_full_checks++;
	for (int i = 0; i < MAXNODES; i++) {
		const struct mnode *n = &m->n[i];
		if (n->type == T_NONE)
			continue;
		if (n->parent == P_ORPHAN) {
			if (!check_orphan(n))
				return false;
			continue;
		}
		if (!check_node(m, i))
			return false;
		if (n->type == T_DIR && !check_listing(m, i))
			return false;
	}
	for (int k = 0; k < MAXLINKS; k++) {
		const struct mlink *l = &m->l[k];
		struct mms_stat st;
		if (!l->node)
			continue;
		int rc = mms_lookup(env, m->n[l->parent].ino, l->name, l->nlen, &st);
		if (rc || st.ino != m->n[l->node].ino ||
		    !check_stat(&st, &m->n[l->node], m_nlink(m, l->node), "a hard link")) {
			fail("lookup of link '%s' in %s: %s, ino %" PRIu64 ", model ino %" PRIu64,
			     esc(l->name, l->nlen), pathname(m, l->parent), rcname(rc), rc ? 0 : st.ino,
			     m->n[l->node].ino);
			return false;
		}
	}
	/* Extra slashes are ignored by resolve. */
	int i = (int)rng_below(MAXNODES);
	if (m_named(m, i)) {
		char path[MMS_PATH_MAX + 1], slashy[MMS_PATH_MAX + 8];
		size_t len = m_path(m, i, path, sizeof path);
		int sl = snprintf(slashy, sizeof slashy, "//%s/", path);
		(void)len;
		struct mms_stat st;
		int rc = mms_resolve(env, slashy, (size_t)sl, &st);
		if (rc || st.ino != m->n[i].ino) {
			fail("resolve '/%s/' with extra slashes: %s", pathname(m, i), rcname(rc));
			return false;
		}
	}
	return check_counts(m);
}

static uint64_t check_problems;

static void on_problem(void *ctx, const char *where, const char *what)
{
	(void)ctx;
	if (check_problems++ < 20)
		tap_diag("mms_check: %s: %s", where, what);
}

/* mms_check must walk the store and find nothing. */
static bool run_check(const char *when)
{
	uint64_t np = 0;
	check_problems = 0;
	n_checks++;
	int rc = mms_check(env, on_problem, NULL, NULL, NULL, &np);
	if (rc || np != 0) {
		fail("mms_check %s: %s, %" PRIu64 " problems", when, rcname(rc), np);
		return false;
	}
	return true;
}

/* ---- Choosing names and targets --------------------------------------------------- */

static char longname[MMS_NAME_MAX];

struct bytes {
	const char *s;
	size_t len;
};

static const struct bytes namepool[] = {
	{ "a", 1 }, { "b", 1 }, { "c", 1 }, { "d", 1 }, { "e", 1 }, { "f", 1 },
	{ "x y", 3 }, { "\xc3\xbc", 2 }, { "\xff\x01", 2 }, { "...", 3 }, { ".h", 2 },
	{ longname, MMS_NAME_MAX },
};
#define NNAMES (sizeof namepool / sizeof namepool[0])

static char longxattr[MMS_XATTR_NAME_MAX];

static const struct bytes xnamepool[] = {
	{ "user.a", 6 }, { "user.b", 6 }, { "user.c", 6 }, { "user.dtype", 10 },
	{ "trusted.t", 9 }, { longxattr, MMS_XATTR_NAME_MAX },
};
#define NXNAMES (sizeof xnamepool / sizeof xnamepool[0])

static struct bytes pick_name(void)
{
	/* The long name is rarer: paths stay readable. */
	if (rng_pct(4))
		return namepool[NNAMES - 1];
	return namepool[rng_below(NNAMES - 1)];
}

/* Random named slot whose type is in `types` (bit per enum mtype). */
static int pick_node(const struct model *m, unsigned types, bool root_ok)
{
	int cand[MAXNODES], n = 0;
	for (int i = root_ok ? 0 : 1; i < MAXNODES; i++)
		if (m_named(m, i) && (types & (1u << m->n[i].type)))
			cand[n++] = i;
	return n ? cand[rng_below((uint64_t)n)] : -1;
}

/* Random link slot, or -1. */
static int pick_link(const struct model *m)
{
	int cand[MAXLINKS], n = 0;
	for (int k = 0; k < MAXLINKS; k++)
		if (m->l[k].node)
			cand[n++] = k;
	return n ? cand[rng_below((uint64_t)n)] : -1;
}

/* A random link's name: its slot (or -1 if there is none); *node, *dir and
 * *nm get the node it names, its directory and the name. */
static int pick_link_name(const struct model *m, int *node, int *dir, struct bytes *nm)
{
	int k = pick_link(m);
	if (k >= 0) {
		*node = m->l[k].node;
		*dir = m->l[k].parent;
		nm->s = m->l[k].name;
		nm->len = m->l[k].nlen;
	}
	return k;
}

/* Random orphan slot, or -1. */
static int pick_orphan(const struct model *m)
{
	int cand[MAXNODES], n = 0;
	for (int i = 1; i < MAXNODES; i++)
		if (m->n[i].type != T_NONE && m->n[i].parent == P_ORPHAN)
			cand[n++] = i;
	return n ? cand[rng_below((uint64_t)n)] : -1;
}

#define B(t) (1u << (t))
#define ANYTYPE (B(T_FILE) | B(T_DIR) | B(T_LINK) | B(T_FIFO))

/* A file to change the bytes of: named mostly, sometimes an orphan. */
static int pick_file(const struct model *m)
{
	int i = -1;
	if (rng_pct(15))
		i = pick_orphan(m);
	if (i < 0)
		i = pick_node(m, B(T_FILE), false);
	return i;
}

/* A directory for a new name; sometimes a non-directory (MMS_NOTDIR). */
static int pick_parent(const struct model *m)
{
	if (rng_pct(4)) {
		int f = pick_node(m, B(T_FILE) | B(T_LINK) | B(T_FIFO), false);
		if (f >= 0)
			return f;
	}
	int d = pick_node(m, B(T_DIR), true);
	return m_depth(m, d) >= MAXDEPTH ? 0 : d;
}

/* An offset for data operations, biased to interesting places. */
static uint64_t pick_offset(uint64_t size)
{
	switch (rng_below(12)) {
	case 0: return 0;
	case 1: return rng_range(INLINE_LIMIT - 8, INLINE_LIMIT + 8);
	case 2: return rng_range(1, 4) * PG - rng_below(9);
	case 3: return rng_range(1, 4) * PG + rng_below(9);
	case 4: return size;
	case 5: return size > 8 ? size - rng_range(1, 8) : 0;
	case 6: return rng_pct(80) ? rng_range(1, 64) << 20 : rng_range(1, 1024) << 30;
	default: return rng_below(size + 3 * PG);
	}
}

/* A length for data operations: small, near the inline limit, page-sized. */
static size_t pick_length(void)
{
	switch (rng_below(8)) {
	case 0: return (size_t)rng_range(1, 16);
	case 1: return (size_t)rng_range(1, 200);
	case 2: return (size_t)rng_range(INLINE_LIMIT - 8, INLINE_LIMIT + 8);
	case 3: return (size_t)rng_range(PG - 8, PG + 8);
	case 4: return (size_t)rng_range(2 * PG - 8, 3 * PG + 8);
	case 5: return (size_t)rng_range(1, 20000);
	case 6: return rng_pct(10) ? (size_t)rng_range(100000, 300000) : (size_t)rng_range(1, 4000);
	default: return (size_t)rng_range(1, 3000);
	}
}

static uint32_t pick_perm(bool dir)
{
	static const uint32_t perms[] = { 0644, 0600, 0755, 0700, 0444, 01777, 04755 };
	if (rng_pct(20))
		return (uint32_t)rng_below(07777 + 1);
	uint32_t p = perms[rng_below(sizeof perms / sizeof perms[0])];
	return dir && p == 0644 ? 0755 : p;
}

/* OP_FULL: the store has a max_size that calls may hit (MMS_FULL). */
static bool may_be_full;
static long n_full;

static bool full_unlink_ok;   /* the cap left too little room to promise unlink */

/*
 * An MMS_FULL that is allowed now.  The call must have changed nothing, and
 * the transaction must stay usable: a harmless change (the root's mode set
 * to what it is) must not get MMS_BADTXN.  Returns false for any other rc.
 */
static bool full_ok(int rc, const char *what)
{
	if (!may_be_full || rc != MMS_FULL)
		return false;
	n_full++;
	logop("  -> MMS_FULL (allowed: max_size is set)");
	struct mms_setattr a = { .mode = cur.n[0].perm };
	int rc2 = mms_setattr(env, MMS_ROOT_INO, &a, MMS_SET_MODE, NULL);
	if (rc2 != 0 && rc2 != MMS_FULL)
		fail("%s returned MMS_FULL (\"nothing was written\") but left the transaction "
		     "unusable: a chmod of the root then returned %s", what, rcname(rc2));
	return true;
}

/* Note a data change of slot i for the rollback rule. */
static void touch_data(int i)
{
	if (m_find_ino(&snap, cur.n[i].ino) >= 0)
		touched_committed = true;
}

/* Check a newly created inode number: never one that existed before. */
static bool check_new_ino(uint64_t ino, const char *who)
{
	if (ino <= max_ino_committed || m_find_ino(&cur, ino) >= 0) {
		fail("%s got inode %" PRIu64 ", already used (largest committed %" PRIu64 ")", who,
		     ino, max_ino_committed);
		return false;
	}
	if (ino <= max_ino_seen && !noted_ino_reuse) {
		noted_ino_reuse = true;
		tap_diag("note: %s got inode %" PRIu64 ", handed out before a rollback", who, ino);
	}
	if (ino > max_ino_seen)
		max_ino_seen = ino;
	if (ino > max_ino_txn)
		max_ino_txn = ino;
	return true;
}

/* ---- Operations --------------------------------------------------------------------- */

enum opcode {
	OP_CREATE, OP_MKDIR, OP_SYMLINK, OP_FIFO, OP_WRITE, OP_TRUNCATE, OP_FALLOCATE,
	OP_RENAME, OP_UNLINK, OP_RMDIR, OP_SETXATTR, OP_REMOVEXATTR, OP_SETATTR, OP_HOLD,
	OP_RELEASE, OP_HOLD_UNLINK, OP_BADNAME, OP_PROBE, OP_COMMIT, OP_SYNC, OP_ROLLBACK,
	OP_VACUUM, OP_REOPEN, OP_FULL, OP_LINK, OP_COPY, NOPS
};

static const char *const opnames[NOPS] = {
	"create", "mkdir", "symlink", "mkfifo", "write", "truncate", "fallocate", "rename",
	"unlink", "rmdir", "setxattr", "removexattr", "setattr", "hold", "release",
	"hold+unlink", "bad name", "probe", "commit", "sync", "rollback", "vacuum", "reopen",
	"full", "link", "copy range",
};

/* Weights per mille. */
static const int opweight[NOPS] = {
	[OP_CREATE] = 110, [OP_MKDIR] = 50, [OP_SYMLINK] = 15, [OP_FIFO] = 8,
	[OP_WRITE] = 200, [OP_TRUNCATE] = 65, [OP_FALLOCATE] = 55, [OP_RENAME] = 100,
	[OP_UNLINK] = 60, [OP_RMDIR] = 40, [OP_SETXATTR] = 70, [OP_REMOVEXATTR] = 25,
	[OP_SETATTR] = 25, [OP_HOLD] = 15, [OP_RELEASE] = 30, [OP_HOLD_UNLINK] = 15,
	[OP_BADNAME] = 10, [OP_PROBE] = 20, [OP_COMMIT] = 45, [OP_SYNC] = 12,
	[OP_ROLLBACK] = 25, [OP_VACUUM] = 8, [OP_REOPEN] = 4, [OP_FULL] = 8, [OP_LINK] = 40,
	[OP_COPY] = 45,
};

/* Mark the current model as committed. */
static void committed(void)
{
	m_copy(&snap, &cur);
	touched_committed = false;
	dirty = false;
	if (max_ino_txn > max_ino_committed)
		max_ino_committed = max_ino_txn;
	max_ino_txn = 0;
}

/* A sentinel stat, to check that failed calls leave out-parameters alone. */
static void poison_stat(struct mms_stat *st)
{
	memset(st, 0xa5, sizeof *st);
}

static bool stat_untouched(const struct mms_stat *st, const char *what)
{
	struct mms_stat p;
	poison_stat(&p);
	if (memcmp(&p, st, sizeof p) != 0) {
		fail("%s failed but wrote its stat out-parameter", what);
		return false;
	}
	return true;
}

static void op_create(int kind)
{
	int parent = pick_parent(&cur);
	struct bytes nm = pick_name();
	uint32_t perm = pick_perm(kind == T_DIR);
	uint32_t uid = rng_pct(70) ? 0 : (uint32_t)rng_below(70000);
	uint32_t gid = rng_pct(70) ? 0 : (uint32_t)rng_below(70000);
	char target[MMS_SYMLINK_MAX];
	size_t tlen = 0;
	if (kind == T_LINK) {
		tlen = rng_pct(5) ? MMS_SYMLINK_MAX : (size_t)rng_range(1, 100);
		for (size_t k = 0; k < tlen; k++)
			target[k] = (char)rng_range(1, 255);
	}
	int elink;
	int existing = cur.n[parent].type == T_DIR ? m_lookup(&cur, parent, nm.s, nm.len, &elink)
	                                           : -1;
	int want = cur.n[parent].type != T_DIR ? MMS_NOTDIR : existing >= 0 ? MMS_EXISTS : 0;
	int slot = want ? -1 : m_alloc(&cur);
	if (!want && slot < 0)
		return; /* model full: skip */
	logop("%s %s/%s perm 0%o uid %u gid %u%s -> expect %s", type_name(kind),
	      pathname(&cur, parent), esc(nm.s, nm.len), perm, uid, gid,
	      kind == T_LINK ? " (symlink)" : "", rcname(want));

	struct mms_stat st;
	poison_stat(&st);
	uint64_t pino = cur.n[parent].ino;
	int rc;
	switch (kind) {
	case T_DIR:
		rc = mms_mkdir(env, pino, nm.s, nm.len, perm, uid, gid, &st);
		break;
	case T_LINK:
		rc = mms_symlink(env, pino, nm.s, nm.len, target, tlen, uid, gid, &st);
		perm = 0777;
		break;
	default:
		rc = mms_mknod(env, pino, nm.s, nm.len, type_bits(kind) | perm, uid, gid, &st);
		break;
	}
	if (full_ok(rc, "create")) {
		if (!failed && stat_untouched(&st, "create") && check_node(&cur, parent))
			check_absent(&cur, parent, nm.s, nm.len);
		return;
	}
	if (!expect1(opnames[OP_CREATE], rc, want))
		return;
	if (want) {
		n_expected_errors++;
		if (!stat_untouched(&st, "create"))
			return;
		if (existing >= 0)
			check_node(&cur, existing);
		else
			check_node(&cur, parent);
		check_counts(&cur);
		return;
	}
	if (!check_new_ino(st.ino, "create"))
		return;
	struct mnode *n = &cur.n[slot];
	memset(n, 0, sizeof *n);
	n->type = kind;
	n->parent = parent;
	memcpy(n->name, nm.s, nm.len);
	n->nlen = nm.len;
	n->ino = st.ino;
	n->perm = perm;
	n->uid = uid;
	n->gid = gid;
	if (kind == T_LINK) {
		/* Symlink permission bits are not specified: take what the store says. */
		n->perm = st.mode & 07777;
		n->target = malloc(tlen);
		memcpy(n->target, target, tlen);
		n->tlen = tlen;
	}
	dirty = true;
	if (!check_stat(&st, n, kind == T_DIR ? 2 : 1, "the stat returned by create"))
		return;
	if (kind != T_LINK && st.size != 0) {
		fail("new %s has size %" PRIu64, type_name(kind), st.size);
		return;
	}
	check_node(&cur, slot);
}

static void op_write(void)
{
	int i = pick_file(&cur);
	if (i < 0)
		return;
	struct mnode *n = &cur.n[i];
	uint64_t off = pick_offset(n->data.size);
	size_t len = may_be_full ? (size_t)rng_range(64 * 1024, 1024 * 1024) : pick_length();
	if (rng_pct(1)) {
		/* Right at the size limit: ends exactly at it, or one byte past. */
		len = (size_t)rng_range(1, 100);
		off = MMS_SIZE_MAX - len + (rng_pct(50) ? 1 : 0);
	}
	int want = off + len > MMS_SIZE_MAX ? MMS_TOOBIG : 0;
	uint8_t *buf = malloc(len);
	if (!buf)
		abort();
	rng_fill(buf, len);
	logop("write %s (ino %" PRIu64 ", size %" PRIu64 ") at %" PRIu64 " len %zu -> expect %s",
	      n->parent == P_ORPHAN ? "orphan" : pathname(&cur, i), n->ino, n->data.size, off, len,
	      rcname(want));
	int rc = mms_write(env, n->ino, buf, len, off);
	if (full_ok(rc, "write")) {
		if (!failed)
			check_bytes(n->ino, &n->data, "file after a write that hit MMS_FULL");
		free(buf);
		return;
	}
	if (expect1(opnames[OP_WRITE], rc, want)) {
		if (!want) {
			touch_data(i);
			md_write(&n->data, off, buf, len);
			dirty = true;
		} else {
			n_expected_errors++;
		}
		check_bytes(n->ino, &n->data, "written file");
	}
	free(buf);
}

/* Bytes [soff, soff+n) of src over [doff, doff+n) of dst, growing its size
 * (src may be dst, the ranges apart).  Visits only the pages src has. */
static void md_copy_range(struct mdata *dst, uint64_t doff, const struct mdata *src, uint64_t soff,
                          uint64_t n)
{
	uint8_t buf[PG];
	uint64_t end = soff + n, next = soff / PG;
	if (dst->size > doff)
		md_zero(dst, doff, n < dst->size - doff ? n : dst->size - doff);
	for (;;) {
		/* found again each time: writing dst may move src's pages */
		size_t i = md_lower(src, next);
		if (i >= src->n || src->pg[i].idx * PG >= end)
			break;
		uint64_t ps = src->pg[i].idx * PG;
		uint64_t s = soff > ps ? soff : ps, e = end < ps + PG ? end : ps + PG;
		memcpy(buf, src->pg[i].b + (s - ps), (size_t)(e - s));
		next = src->pg[i].idx + 1;
		md_write(dst, doff + (s - soff), buf, (size_t)(e - s));
	}
	if (doff + n > dst->size)
		dst->size = doff + n;
}

/* mms_copy_range between two files (or two ranges of one): mostly at page
 * offsets, where whole pages are shared rather than copied; to the
 * source's end or past it; over bytes the destination has or past them. */
static void op_copy(void)
{
	int si = pick_file(&cur), di = pick_file(&cur);
	if (si < 0 || di < 0)
		return;
	struct mnode *sn = &cur.n[si], *dn = &cur.n[di];
	uint64_t ssize = sn->data.size;
	bool aligned = rng_pct(75);
	uint64_t soff = aligned ? rng_below(ssize / PG + 2) * PG : rng_below(ssize + PG);
	uint64_t doff = aligned ? rng_below(dn->data.size / PG + 3) * PG : rng_below(dn->data.size + PG);
	uint64_t len;
	switch (rng_below(4)) {
	case 0: len = ssize > soff ? ssize - soff : 1; break; /* to the source's end */
	case 1: len = rng_range(1, 4) * PG; break;
	case 2: len = rng_range(1, 3 * PG); break;
	default: len = rng_range(1, 64) << 20; break; /* more than there is */
	}
	uint64_t n = soff < ssize ? (len < ssize - soff ? len : ssize - soff) : 0;
	int want = 0;
	if (si == di && n && soff < doff + n && doff < soff + n)
		want = MMS_INVAL;
	else if (n && doff + len > MMS_SIZE_MAX)
		want = MMS_TOOBIG;
	logop("copy range %s (ino %" PRIu64 ", size %" PRIu64 ") at %" PRIu64 " to %s (ino %" PRIu64
	      ", size %" PRIu64 ") at %" PRIu64 " len %" PRIu64 " -> expect %s, %" PRIu64 " bytes",
	      sn->parent == P_ORPHAN ? "orphan" : pathname(&cur, si), sn->ino, ssize, soff,
	      dn->parent == P_ORPHAN ? "orphan" : pathname(&cur, di), dn->ino, dn->data.size, doff,
	      len, rcname(want), want ? 0 : n);
	uint64_t copied = UINT64_MAX;
	int rc = mms_copy_range(env, sn->ino, soff, dn->ino, doff, len, &copied);
	if (full_ok(rc, "copy range")) {
		if (!failed)
			check_bytes(dn->ino, &dn->data, "destination after a copy that hit MMS_FULL");
		return;
	}
	if (!expect1(opnames[OP_COPY], rc, want))
		return;
	if (want) {
		n_expected_errors++;
		check_bytes(dn->ino, &dn->data, "destination after a refused copy");
		return;
	}
	/* a full store may stop a copy short, at a piece's end */
	if (copied > n || (copied < n && !may_be_full)) {
		fail("copy range returned %" PRIu64 " bytes copied, expected %" PRIu64, copied, n);
		return;
	}
	if (copied) {
		touch_data(di);
		md_copy_range(&dn->data, doff, &sn->data, soff, copied);
		dirty = true;
	}
	check_bytes(dn->ino, &dn->data, "copy destination");
	if (!failed)
		check_bytes(sn->ino, &sn->data, "copy source");
}

static void op_truncate(void)
{
	if (rng_pct(5)) {
		/* A size change of a directory: MMS_ISDIR. */
		int d = pick_node(&cur, B(T_DIR), true);
		struct mms_setattr a = { .size = 0 };
		struct mms_stat st;
		poison_stat(&st);
		logop("setattr size 0 of directory %s -> expect MMS_ISDIR", pathname(&cur, d));
		int rc = mms_setattr(env, cur.n[d].ino, &a, MMS_SET_SIZE, &st);
		if (expect1("setattr size of a directory", rc, MMS_ISDIR) &&
		    stat_untouched(&st, "setattr"))
			check_node(&cur, d);
		n_expected_errors++;
		return;
	}
	int i = pick_file(&cur);
	if (i < 0)
		return;
	struct mnode *n = &cur.n[i];
	uint64_t size;
	switch (rng_below(8)) {
	case 0: size = 0; break;
	case 1: size = n->data.size / 2; break;
	case 2: size = rng_range(INLINE_LIMIT - 4, INLINE_LIMIT + 4); break;
	case 3: size = n->data.size + rng_range(1, 3 * PG); break;
	case 4: size = rng_range(1, 8) << 20; break;
	case 5: size = rng_pct(90) ? rng_range(1, 1024) << 30 : MMS_SIZE_MAX + rng_below(2); break;
	default: size = rng_below(n->data.size + 1); break;
	}
	int want = size > MMS_SIZE_MAX ? MMS_TOOBIG : 0;
	bool via_setattr = rng_pct(30);
	logop("%s %s (ino %" PRIu64 ", size %" PRIu64 ") to %" PRIu64 " -> expect %s",
	      via_setattr ? "setattr size" : "truncate",
	      n->parent == P_ORPHAN ? "orphan" : pathname(&cur, i), n->ino, n->data.size, size,
	      rcname(want));
	int rc;
	struct mms_stat st;
	if (via_setattr) {
		struct mms_setattr a = { .size = size };
		rc = mms_setattr(env, n->ino, &a, MMS_SET_SIZE, &st);
	} else {
		rc = mms_truncate(env, n->ino, size);
	}
	if (!expect1(opnames[OP_TRUNCATE], rc, want))
		return;
	if (want) {
		n_expected_errors++;
	} else {
		touch_data(i);
		md_truncate(&n->data, size);
		dirty = true;
		if (via_setattr && st.size != size) {
			fail("setattr size %" PRIu64 " returned a stat with size %" PRIu64, size, st.size);
			return;
		}
	}
	check_bytes(n->ino, &n->data, "truncated file");
}

static void op_fallocate(void)
{
	int i = pick_file(&cur);
	if (i < 0)
		return;
	struct mnode *n = &cur.n[i];
	unsigned mode;
	switch (rng_below(3)) {
	case 0: mode = 0; break;
	case 1: mode = MMS_FALLOC_KEEP_SIZE; break;
	default: mode = MMS_FALLOC_PUNCH_HOLE | MMS_FALLOC_KEEP_SIZE; break;
	}
	uint64_t off = rng_pct(30) ? rng_below(n->data.size / PG + 2) * PG
	                           : rng_below(n->data.size + 4 * PG);
	uint64_t len = may_be_full ? rng_range(16, 256) * PG
	             : rng_pct(30) ? rng_range(1, 4) * PG : rng_range(1, 40000);
	if (mode & MMS_FALLOC_PUNCH_HOLE && rng_pct(10)) {
		off = 0;
		len = n->data.size + rng_below(PG); /* the whole value */
		if (len == 0)
			len = 1;
	}
	int want = off + len > MMS_SIZE_MAX ? MMS_TOOBIG : 0;
	logop("fallocate %s (ino %" PRIu64 ", size %" PRIu64 ") mode %u at %" PRIu64
	      " len %" PRIu64 " -> expect %s", n->parent == P_ORPHAN ? "orphan" : pathname(&cur, i),
	      n->ino, n->data.size, mode, off, len, rcname(want));
	int rc = mms_fallocate(env, n->ino, mode, off, len);
	if (full_ok(rc, "fallocate")) {
		if (!failed)
			check_bytes(n->ino, &n->data, "file after a fallocate that hit MMS_FULL");
		return;
	}
	if (!expect1(opnames[OP_FALLOCATE], rc, want))
		return;
	if (want) {
		n_expected_errors++;
		check_bytes(n->ino, &n->data, "file after a failed fallocate");
		return;
	}
	touch_data(i);
	if (mode & MMS_FALLOC_PUNCH_HOLE) {
		if (off < n->data.size)
			md_zero(&n->data, off, len < n->data.size - off ? len : n->data.size - off);
	} else if (!(mode & MMS_FALLOC_KEEP_SIZE) && off + len > n->data.size) {
		md_truncate(&n->data, off + len);
	}
	dirty = true;
	check_bytes(n->ino, &n->data, "fallocated file");
}

static void op_rename(void)
{
	int src = -1, slink = -1;
	struct bytes srcname = pick_name();
	int srcdir = 0;
	int lk = rng_pct(25) ? pick_link_name(&cur, &src, &srcdir, &srcname) : -1;
	if (lk >= 0) {
		slink = lk;
	} else if (rng_pct(92)) {
		src = pick_node(&cur, ANYTYPE, false);
	}
	if (lk >= 0) {
		/* a link's name */
	} else if (src >= 0) {
		srcdir = cur.n[src].parent;
		srcname.s = cur.n[src].name;
		srcname.len = cur.n[src].nlen;
	} else {
		srcdir = pick_node(&cur, B(T_DIR), true);
		src = m_lookup(&cur, srcdir, srcname.s, srcname.len, &slink);
	}
	int dstdir = pick_parent(&cur);
	struct bytes dstname = pick_name();
	if (rng_pct(10) && src >= 0) {
		dstdir = srcdir; /* same directory */
	}
	unsigned flags = 0;
	uint64_t r = rng_below(10);
	if (r < 2)
		flags = MMS_RENAME_NOREPLACE;
	else if (r < 4)
		flags = MMS_RENAME_EXCHANGE;
	if (rng_pct(5) && src >= 0 && slink < 0 && m_nlinks(&cur, src) > 0) {
		/* onto another name of the same inode */
		for (int k = 0; k < MAXLINKS; k++)
			if (cur.l[k].node == src) {
				dstdir = cur.l[k].parent;
				dstname.s = cur.l[k].name;
				dstname.len = cur.l[k].nlen;
				break;
			}
	}
	int dlink = -1;
	int dst = cur.n[dstdir].type == T_DIR
	              ? m_lookup(&cur, dstdir, dstname.s, dstname.len, &dlink) : -1;
	if (dst >= 0 && dst == src)
		flags = 0; /* onto itself or another name of it: succeeds, changes nothing */

	/* Every error that applies; when several do, any of them is fine. */
	int want[6], nw = 0;
	if (src < 0 || cur.n[dstdir].type != T_DIR) {
		if (src < 0)
			want[nw++] = MMS_NOTFOUND;
		if (cur.n[dstdir].type != T_DIR)
			want[nw++] = MMS_NOTDIR;
	} else if (dst == src) {
		/* nothing */
	} else if (flags & MMS_RENAME_EXCHANGE) {
		if (dst < 0)
			want[nw++] = MMS_NOTFOUND;
		else if (m_name_under(&cur, src, dstdir, dst) || m_name_under(&cur, dst, srcdir, src))
			want[nw++] = MMS_LOOP;
	} else {
		bool sdir = cur.n[src].type == T_DIR;
		if (sdir && m_is_ancestor(&cur, src, dstdir))
			want[nw++] = MMS_LOOP;
		if (dst >= 0) {
			bool ddir = cur.n[dst].type == T_DIR;
			if (flags & MMS_RENAME_NOREPLACE)
				want[nw++] = MMS_EXISTS;
			else if (!sdir && ddir)
				want[nw++] = MMS_ISDIR;
			else if (sdir && !ddir)
				want[nw++] = MMS_NOTDIR;
			else if (sdir && ddir && m_nchildren(&cur, dst) > 0)
				want[nw++] = MMS_NOTEMPTY;
			if (nw && m_name_under(&cur, dst, srcdir, src) && !(flags & MMS_RENAME_NOREPLACE))
				want[nw++] = MMS_LOOP;
		}
	}
	if (nw == 0)
		want[nw++] = 0;
	logop("rename %s/%s -> %s/%s flags %u (dst %s) -> expect %s%s",
	      pathname(&cur, srcdir), esc(srcname.s, srcname.len), pathname(&cur, dstdir),
	      esc(dstname.s, dstname.len), flags, dst >= 0 ? type_name(cur.n[dst].type) : "absent",
	      rcname(want[0]), nw > 1 ? " (or another)" : "");

	/* Copy the names: the model slots change below. */
	char sname[MMS_NAME_MAX], dname[MMS_NAME_MAX];
	size_t slen = srcname.len, dlen = dstname.len;
	memcpy(sname, srcname.s, slen);
	memcpy(dname, dstname.s, dlen);
	int rc = mms_rename(env, cur.n[srcdir].ino, sname, slen, cur.n[dstdir].ino, dname, dlen,
	                    flags);
	if (!expect_rc(opnames[OP_RENAME], rc, want, nw))
		return;
	if (rc) {
		n_expected_errors++;
		if (src >= 0 && !check_node(&cur, src))
			return;
		if (dst >= 0 && !check_node(&cur, dst))
			return;
		if (dst < 0 && cur.n[dstdir].type == T_DIR && !check_absent(&cur, dstdir, dname, dlen))
			return;
		check_counts(&cur);
		return;
	}
	if (dst == src)
		return (void)check_node(&cur, src);
	dirty = true;
	if (flags & MMS_RENAME_EXCHANGE) {
		m_rename_name(&cur, src, slink, dstdir, dname, dlen);
		m_rename_name(&cur, dst, dlink, srcdir, sname, slen);
		if (check_node(&cur, src))
			check_node(&cur, dst);
		return;
	}
	uint64_t dino = dst >= 0 ? cur.n[dst].ino : 0;
	bool dlast = dst >= 0 && m_nlinks(&cur, dst) == 0;
	bool dorphan = dlast && cur.n[dst].holds > 0;
	if (dst >= 0)
		m_unlink_name(&cur, dst, dlink);
	m_rename_name(&cur, src, slink, dstdir, dname, dlen);
	if (!check_node(&cur, src) || !check_absent(&cur, srcdir, sname, slen))
		return;
	if (dlast && !dorphan && !check_gone(dino, "the replaced target"))
		return;
	if (dorphan && !check_orphan(&cur.n[dst]))
		return;
	if (dst >= 0 && !dlast && !check_node(&cur, dst))
		return;
	check_counts(&cur);
}

static void op_unlink(bool dir)
{
	int victim = -1, parent, vlink = -1;
	struct bytes nm;
	int lk = !dir && rng_pct(30) ? pick_link_name(&cur, &victim, &parent, &nm) : -1;
	if (lk >= 0) {
		vlink = lk;
	} else if (rng_pct(85)) {
		victim = pick_node(&cur, dir ? (rng_pct(85) ? B(T_DIR) : ANYTYPE) : ANYTYPE, false);
	}
	if (lk >= 0) {
		/* a link's name */
	} else if (victim >= 0) {
		parent = cur.n[victim].parent;
		nm.s = cur.n[victim].name;
		nm.len = cur.n[victim].nlen;
	} else {
		parent = pick_parent(&cur);
		nm = pick_name();
		if (cur.n[parent].type == T_DIR)
			victim = m_lookup(&cur, parent, nm.s, nm.len, &vlink);
	}
	int want;
	if (cur.n[parent].type != T_DIR)
		want = MMS_NOTDIR;
	else if (victim < 0)
		want = MMS_NOTFOUND;
	else if (dir)
		want = cur.n[victim].type != T_DIR ? MMS_NOTDIR
		       : m_nchildren(&cur, victim) ? MMS_NOTEMPTY : 0;
	else
		want = cur.n[victim].type == T_DIR ? MMS_ISDIR : 0;
	char name[MMS_NAME_MAX];
	size_t nlen = nm.len;
	memcpy(name, nm.s, nlen);
	logop("%s %s/%s (%s) -> expect %s", dir ? "rmdir" : "unlink", pathname(&cur, parent),
	      esc(name, nlen), victim >= 0 ? type_name(cur.n[victim].type) : "absent", rcname(want));
	int rc = dir ? mms_rmdir(env, cur.n[parent].ino, name, nlen)
	             : mms_unlink(env, cur.n[parent].ino, name, nlen);
	if (full_unlink_ok && full_ok(rc, dir ? "rmdir" : "unlink")) {
		if (!failed && victim >= 0)
			check_node(&cur, victim);
		return;
	}
	if (!expect1(dir ? "rmdir" : "unlink", rc, want))
		return;
	if (want) {
		n_expected_errors++;
		if (victim >= 0)
			check_node(&cur, victim);
		else if (cur.n[parent].type == T_DIR)
			check_absent(&cur, parent, name, nlen);
		check_counts(&cur);
		return;
	}
	uint64_t ino = cur.n[victim].ino;
	bool last = cur.n[victim].type == T_DIR || m_nlinks(&cur, victim) == 0;
	bool orphan = last && cur.n[victim].holds > 0;
	m_unlink_name(&cur, victim, vlink);
	dirty = true;
	if (!check_absent(&cur, parent, name, nlen))
		return;
	if (!last) {
		if (!check_node(&cur, victim))
			return;
	} else if (orphan ? !check_orphan(&cur.n[victim]) : !check_gone(ino, "the unlinked inode")) {
		return;
	}
	check_counts(&cur);
}

/* A hard link: a node (sometimes a directory or an orphan: refused) gets a
 * name in a directory. */
static void op_link(void)
{
	int i = -1;
	if (rng_pct(5))
		i = pick_node(&cur, B(T_DIR), true);
	else if (rng_pct(5))
		i = pick_orphan(&cur);
	if (i < 0)
		i = pick_node(&cur, B(T_FILE) | B(T_LINK) | B(T_FIFO), false);
	if (i < 0)
		return;
	int parent = pick_parent(&cur);
	struct bytes nm = pick_name();
	int slot = -1;
	for (int k = 0; k < MAXLINKS && slot < 0; k++)
		if (!cur.l[k].node)
			slot = k;
	if (slot < 0)
		return; /* the link table is full: skip */
	int elink;
	int existing = cur.n[parent].type == T_DIR ? m_lookup(&cur, parent, nm.s, nm.len, &elink)
	                                           : -1;
	int want[3], nw = 0;
	if (cur.n[i].type == T_DIR)
		want[nw++] = MMS_XDEV;
	else if (cur.n[i].parent == P_ORPHAN)
		want[nw++] = MMS_NOTFOUND;
	else if (cur.n[parent].type != T_DIR)
		want[nw++] = MMS_NOTDIR;
	else if (existing >= 0)
		want[nw++] = MMS_EXISTS;
	else
		want[nw++] = 0;
	logop("link %s (ino %" PRIu64 ") as %s/%s -> expect %s",
	      cur.n[i].parent == P_ORPHAN ? "orphan" : pathname(&cur, i), cur.n[i].ino,
	      pathname(&cur, parent), esc(nm.s, nm.len), rcname(want[0]));
	struct mms_stat st;
	poison_stat(&st);
	int rc = mms_link(env, cur.n[i].ino, cur.n[parent].ino, nm.s, nm.len, &st);
	if (full_ok(rc, "link")) {
		if (!failed && stat_untouched(&st, "link") && cur.n[i].parent != P_ORPHAN)
			check_node(&cur, i);
		return;
	}
	if (!expect_rc(opnames[OP_LINK], rc, want, nw))
		return;
	if (rc) {
		n_expected_errors++;
		if (!stat_untouched(&st, "link"))
			return;
		if (existing >= 0)
			check_node(&cur, existing);
		if (cur.n[i].parent != P_ORPHAN)
			check_node(&cur, i);
		check_counts(&cur);
		return;
	}
	struct mlink *l = &cur.l[slot];
	l->node = i;
	l->parent = parent;
	memcpy(l->name, nm.s, nm.len);
	l->nlen = nm.len;
	dirty = true;
	if (check_stat(&st, &cur.n[i], m_nlink(&cur, i), "the stat returned by link"))
		check_node(&cur, i);
}

static void op_setxattr(void)
{
	int i = rng_pct(10) ? pick_orphan(&cur) : -1;
	if (i < 0)
		i = pick_node(&cur, B(T_FILE) | B(T_DIR), true);
	struct mnode *n = &cur.n[i];
	struct bytes xn = xnamepool[rng_below(NXNAMES)];
	size_t vlen;
	switch (rng_below(10)) {
	case 0: vlen = 0; break;
	case 1: case 2: case 3: vlen = (size_t)rng_range(1, 64); break;
	case 4: case 5: vlen = (size_t)rng_range(XATTR_INLINE_LIMIT - 24, XATTR_INLINE_LIMIT + 24); break;
	case 6: case 7: vlen = (size_t)rng_range(1025, 9000); break;
	case 8: vlen = (size_t)rng_range(MMS_XATTR_VALUE_MAX - 100, MMS_XATTR_VALUE_MAX); break;
	default: vlen = rng_pct(30) ? MMS_XATTR_VALUE_MAX + 1 : (size_t)rng_range(1, 3000); break;
	}
	unsigned flags = 0;
	uint64_t r = rng_below(10);
	if (r < 2)
		flags = MMS_XATTR_CREATE;
	else if (r < 4)
		flags = MMS_XATTR_REPLACE;
	int k = m_find_xattr(n, xn.s, xn.len);
	int want[3], nw = 0;
	if (vlen > MMS_XATTR_VALUE_MAX)
		want[nw++] = MMS_TOOBIG;
	if (k >= 0 && (flags & MMS_XATTR_CREATE))
		want[nw++] = MMS_EXISTS;
	if (k < 0 && (flags & MMS_XATTR_REPLACE))
		want[nw++] = MMS_NODATA;
	if (k < 0 && n->nxa == MAXXATTRS && nw == 0)
		return; /* model limit */
	if (nw == 0)
		want[nw++] = 0;
	uint8_t *val = malloc(vlen + 1);
	if (!val)
		abort();
	rng_fill(val, vlen);
	logop("setxattr %s (ino %" PRIu64 ") %s len %zu flags %u -> expect %s",
	      n->parent == P_ORPHAN ? "orphan" : pathname(&cur, i), n->ino, esc(xn.s, xn.len), vlen,
	      flags, rcname(want[0]));
	int rc = mms_setxattr(env, n->ino, xn.s, xn.len, val, vlen, flags);
	if (full_ok(rc, "setxattr")) {
		free(val);
		if (!failed)
			check_xattrs(n->ino, n, "xattrs after a setxattr that hit MMS_FULL");
		return;
	}
	if (!expect_rc(opnames[OP_SETXATTR], rc, want, nw)) {
		free(val);
		return;
	}
	if (rc) {
		n_expected_errors++;
		free(val);
	} else {
		if (k < 0) {
			k = (int)n->nxa++;
			memcpy(n->xa[k].name, xn.s, xn.len);
			n->xa[k].nlen = xn.len;
		} else {
			free(n->xa[k].val);
		}
		n->xa[k].val = val;
		n->xa[k].vlen = vlen;
		dirty = true;
	}
	check_xattrs(n->ino, n, "xattrs after setxattr");
}

static void op_removexattr(void)
{
	int i = pick_node(&cur, B(T_FILE) | B(T_DIR), true);
	struct mnode *n = &cur.n[i];
	struct bytes xn = xnamepool[rng_below(NXNAMES)];
	if (n->nxa && rng_pct(75)) {
		int k = (int)rng_below(n->nxa);
		xn.s = n->xa[k].name;
		xn.len = n->xa[k].nlen;
	}
	int k = m_find_xattr(n, xn.s, xn.len);
	int want = k < 0 ? MMS_NODATA : 0;
	logop("removexattr %s %s -> expect %s", pathname(&cur, i), esc(xn.s, xn.len), rcname(want));
	int rc = mms_removexattr(env, n->ino, xn.s, xn.len);
	if (!expect1(opnames[OP_REMOVEXATTR], rc, want))
		return;
	if (k >= 0) {
		free(n->xa[k].val);
		n->xa[k] = n->xa[--n->nxa];
		memset(&n->xa[n->nxa], 0, sizeof n->xa[0]);
		dirty = true;
	} else {
		n_expected_errors++;
	}
	check_xattrs(n->ino, n, "xattrs after removexattr");
}

static void op_setattr(void)
{
	int i = pick_node(&cur, B(T_FILE) | B(T_DIR) | B(T_FIFO), true);
	struct mnode *n = &cur.n[i];
	unsigned mask = 0;
	struct mms_setattr a;
	memset(&a, 0, sizeof a);
	if (rng_pct(70)) {
		mask |= MMS_SET_MODE;
		a.mode = pick_perm(n->type == T_DIR) | (rng_pct(20) ? S_IFREG : 0);
	}
	if (rng_pct(40)) {
		mask |= MMS_SET_UID;
		a.uid = (uint32_t)rng_below(70000);
	}
	if (rng_pct(40) || !mask) {
		mask |= MMS_SET_GID;
		a.gid = (uint32_t)rng_below(70000);
	}
	logop("setattr %s mask 0x%x mode 0%o uid %u gid %u", pathname(&cur, i), mask, a.mode,
	      a.uid, a.gid);
	struct mms_stat st;
	int rc = mms_setattr(env, n->ino, &a, mask, &st);
	if (!expect1(opnames[OP_SETATTR], rc, 0))
		return;
	if (mask & MMS_SET_MODE)
		n->perm = a.mode & 07777; /* type bits are ignored */
	if (mask & MMS_SET_UID)
		n->uid = a.uid;
	if (mask & MMS_SET_GID)
		n->gid = a.gid;
	dirty = true;
	if (check_stat(&st, n, m_nlink(&cur, i), "stat returned by setattr"))
		check_node(&cur, i);
}

static void op_hold(bool then_unlink)
{
	int i = then_unlink ? pick_node(&cur, B(T_FILE), false) : pick_file(&cur);
	if (i < 0)
		return;
	struct mnode *n = &cur.n[i];
	logop("hold %s (ino %" PRIu64 ", holds %d)%s", n->parent == P_ORPHAN ? "orphan"
	      : pathname(&cur, i), n->ino, n->holds, then_unlink ? " then unlink it" : "");
	int rc = mms_hold(env, n->ino);
	if (!expect1("hold", rc, 0))
		return;
	n->holds++;
	if (!then_unlink)
		return;
	int parent = n->parent;
	char name[MMS_NAME_MAX];
	size_t nlen = n->nlen;
	memcpy(name, n->name, nlen);
	rc = mms_unlink(env, cur.n[parent].ino, name, nlen);
	if (!expect1("unlink of a held file", rc, 0))
		return;
	bool last = m_nlinks(&cur, i) == 0;
	m_unlink_name(&cur, i, -1);
	dirty = true;
	if (check_absent(&cur, parent, name, nlen) && (last ? check_orphan(n) : check_node(&cur, i)))
		check_counts(&cur);
}

static void op_release(void)
{
	int cand[MAXNODES], nc = 0;
	for (int i = 1; i < MAXNODES; i++)
		if (cur.n[i].type != T_NONE && cur.n[i].holds > 0)
			cand[nc++] = i;
	if (!nc)
		return;
	int i = cand[rng_below((uint64_t)nc)];
	struct mnode *n = &cur.n[i];
	bool orphan = n->parent == P_ORPHAN;
	logop("release %s (ino %" PRIu64 ", holds %d)", orphan ? "orphan" : pathname(&cur, i),
	      n->ino, n->holds);
	int rc = mms_release(env, n->ino);
	if (!expect1("release", rc, 0))
		return;
	n->holds--;
	if (orphan && n->holds == 0) {
		uint64_t ino = n->ino;
		node_free(n);
		dirty = true;
		if (check_gone(ino, "a released orphan"))
			check_counts(&cur);
	} else if (orphan) {
		check_orphan(n);
	} else {
		check_node(&cur, i);
	}
}

/* Release every hold (store and model). */
static bool release_all(void)
{
	for (int i = 1; i < MAXNODES; i++) {
		struct mnode *n = &cur.n[i];
		while (n->type != T_NONE && n->holds > 0) {
			int rc = mms_release(env, n->ino);
			if (!expect1("release", rc, 0))
				return false;
			if (--n->holds == 0 && n->parent == P_ORPHAN) {
				node_free(n);
				dirty = true;
			}
		}
	}
	return true;
}

static void op_badname(void)
{
	static const struct bytes bad[] = {
		{ "", 0 }, { ".", 1 }, { "..", 2 }, { "a/b", 3 }, { "a\0b", 3 }, { "/", 1 },
	};
	int d = pick_node(&cur, B(T_DIR), true);
	char toolong[MMS_NAME_MAX + 1];
	memset(toolong, 'x', sizeof toolong);
	struct bytes nm;
	int want;
	if (rng_pct(25)) {
		nm.s = toolong;
		nm.len = sizeof toolong;
		want = MMS_NAMETOOLONG;
	} else {
		nm = bad[rng_below(sizeof bad / sizeof bad[0])];
		want = MMS_BADNAME;
	}
	logop("bad name '%s' (%zu bytes) in %s -> expect %s", esc(nm.s, nm.len), nm.len,
	      pathname(&cur, d), rcname(want));
	struct mms_stat st;
	poison_stat(&st);
	uint64_t ino = cur.n[d].ino;
	int rc;
	switch (rng_below(4)) {
	case 0:
		rc = mms_mknod(env, ino, nm.s, nm.len, S_IFREG | 0644, 0, 0, &st);
		break;
	case 1:
		rc = mms_mkdir(env, ino, nm.s, nm.len, 0755, 0, 0, &st);
		break;
	case 2:
		rc = mms_lookup(env, ino, nm.s, nm.len, &st);
		break;
	default: {
		int src = pick_node(&cur, ANYTYPE, false);
		if (src < 0)
			return;
		rc = mms_rename(env, cur.n[cur.n[src].parent].ino, cur.n[src].name, cur.n[src].nlen,
		                ino, nm.s, nm.len, 0);
		break;
	}
	}
	n_expected_errors++;
	if (expect1("call with a bad name", rc, want) && stat_untouched(&st, "bad name"))
		check_counts(&cur);
}

/* Calls that must fail, read-only or rejected before any change. */
static void op_probe(void)
{
	int rc;
	struct mms_stat st;
	uint8_t buf[64];
	size_t nr;
	int f = pick_node(&cur, B(T_FILE), false);
	int d = pick_node(&cur, B(T_DIR), true);
	switch (rng_below(7)) {
	case 0:
		logop("read directory %s -> expect MMS_ISDIR", pathname(&cur, d));
		rc = mms_read(env, cur.n[d].ino, buf, sizeof buf, 0, &nr);
		expect1("read of a directory", rc, MMS_ISDIR);
		break;
	case 1:
		if (f < 0)
			return;
		logop("resolve %s/x through a file -> expect MMS_NOTDIR", pathname(&cur, f));
		{
			char path[MMS_PATH_MAX + 8];
			size_t len = m_path(&cur, f, path, sizeof path);
			memcpy(path + len, "/x", 3);
			poison_stat(&st);
			rc = mms_resolve(env, path, len + 2, &st);
			if (expect1("resolve through a file", rc, MMS_NOTDIR))
				stat_untouched(&st, "resolve");
		}
		break;
	case 2:
		logop("getattr of an unused inode %" PRIu64 " -> expect MMS_NOTFOUND",
		      max_ino_seen + 1000);
		rc = mms_getattr(env, max_ino_seen + 1000, &st);
		expect1("getattr of an unused inode", rc, MMS_NOTFOUND);
		break;
	case 3:
		if (f < 0)
			return;
		logop("truncate %s past MMS_SIZE_MAX -> expect MMS_TOOBIG", pathname(&cur, f));
		rc = mms_truncate(env, cur.n[f].ino, MMS_SIZE_MAX + 1 + rng_below(1000));
		if (expect1("truncate past MMS_SIZE_MAX", rc, MMS_TOOBIG))
			check_node(&cur, f);
		break;
	case 4:
		if (f < 0)
			return;
		logop("readlink of file %s -> expect MMS_NOTLINK", pathname(&cur, f));
		rc = mms_readlink(env, cur.n[f].ino, (char *)buf, sizeof buf, &nr);
		expect1("readlink of a file", rc, MMS_NOTLINK);
		break;
	case 5: {
		char *p = malloc(MMS_PATH_MAX + 2);
		memset(p, 'a', MMS_PATH_MAX + 1);
		for (size_t k = 100; k < MMS_PATH_MAX; k += 101)
			p[k] = '/';
		logop("resolve a path of %u bytes -> expect MMS_NAMETOOLONG", MMS_PATH_MAX + 1);
		rc = mms_resolve(env, p, MMS_PATH_MAX + 1, &st);
		expect1("resolve of a too long path", rc, MMS_NAMETOOLONG);
		free(p);
		break;
	}
	default:
		if (f < 0)
			return;
		logop("setxattr %s with a %u-byte name -> expect MMS_NAMETOOLONG or MMS_INVAL",
		      pathname(&cur, f), MMS_XATTR_NAME_MAX + 1);
		{
			char xn[MMS_XATTR_NAME_MAX + 1];
			memset(xn, 'u', sizeof xn);
			int w[] = { MMS_NAMETOOLONG, MMS_INVAL };
			rc = mms_setxattr(env, cur.n[f].ino, xn, sizeof xn, "v", 1, 0);
			if (expect_rc("setxattr with a too long name", rc, w, 2))
				check_xattrs(cur.n[f].ino, &cur.n[f], pathname(&cur, f));
		}
		break;
	}
	n_expected_errors++;
}

static void op_commit(bool sync)
{
	struct mms_info before, after;
	int rc = mms_stats(env, &before);
	if (!expect1("stats", rc, 0))
		return;
	logop("%s (dirty %d, generation %" PRIu64 ")", sync ? "sync" : "commit", dirty,
	      before.generation);
	rc = sync ? mms_sync(env) : mms_commit(env);
	if (!expect1(sync ? "sync" : "commit", rc, 0))
		return;
	rc = mms_stats(env, &after);
	if (!expect1("stats", rc, 0))
		return;
	if (after.generation < before.generation ||
	    (dirty && after.generation == before.generation) ||
	    (sync && after.synced_generation != after.generation)) {
		fail("%s: generation %" PRIu64 " -> %" PRIu64 " (synced %" PRIu64 "), with%s changes",
		     sync ? "sync" : "commit", before.generation, after.generation,
		     after.synced_generation, dirty ? "" : "out");
		return;
	}
	n_commits++;
	committed();
	if (rng_pct(10))
		run_check(sync ? "after a sync" : "after a commit");
}

static void op_rollback(void)
{
	logop("release all holds before a rollback");
	if (!release_all())
		return;
	bool snap_orphans = false;
	for (int i = 1; i < MAXNODES; i++)
		if (snap.n[i].type != T_NONE && snap.n[i].parent == P_ORPHAN)
			snap_orphans = true;
	if (touched_committed || snap_orphans) {
		/* See the top comment: the outcome would not be predictable. */
		n_rollbacks_skipped++;
		op_commit(false);
		return;
	}
	logop("rollback");
	int rc = mms_rollback(env);
	if (!expect1("rollback", rc, 0))
		return;
	m_copy(&cur, &snap);
	for (int i = 0; i < MAXNODES; i++)
		cur.n[i].holds = 0;
	dirty = false;
	max_ino_txn = 0;
	n_rollbacks++;
	check_full(&cur);
}

static bool progress_bad;                /* vacuum reported done > total ... */
static uint64_t progress_bad_done, progress_bad_total;
static bool vac_writers;                 /* this vacuum has competing writers */
static long n_vac_writes;
extern uint64_t mms_vac_test_batch;      /* tests/libmms_test.la: batch size */
extern int64_t mms_test_clock_ns;        /* tests/libmms_test.la: the engine's clock */
extern int64_t mms_test_clock_step_ns;   /* and its step per reading */
extern int mms_file_test_tight_map;      /* tests/libmms_test.la: map exactly the file */
extern unsigned mms_alloc_test_inline_max; /* tests/libmms_test.la: few free runs inline */
extern unsigned mms_alloc_test_tail_max;   /* and few changes in the log's tail */
/* tests/libmms_test.la (src/mms_int.h): the pager's spill limit, its count */
void mms_pager_set_spill(mms_env *env, size_t pages);
uint64_t mms_pager_spills(mms_env *env);
static size_t spill_pages; /* 0: the default */
static uint64_t n_spills;

/*
 * Between two batches the store is committed and other calls may run (mmfs
 * lets requests in there): a competing writer changes the store, and the
 * model with it, then commits, as a mmfs request would.
 */
static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
	(void)ctx;
	if (done > total && !progress_bad) {
		progress_bad = true;
		progress_bad_done = done;
		progress_bad_total = total;
	}
	/* between batches everything is committed (a rollback in a writer
	 * below goes back to here) */
	committed();
	if (vac_writers && !failed && rng_pct(60)) {
		for (int k = (int)rng_range(1, 3); k > 0 && !failed; k--) {
			n_vac_writes++;
			switch (rng_below(6)) {
			case 0: op_create(T_FILE); break;
			case 1: op_unlink(false); break;
			case 2: op_truncate(); break;
			case 3: op_fallocate(); break;
			default: op_write(); break;
			}
		}
		if (!failed)
			op_commit(false);
	}
	return 0;
}

static void op_vacuum(void)
{
	if (rng_pct(50))
		op_commit(false);
	/* batches of a few pages, so that every straddling case happens */
	static const uint64_t batches[] = { 0, 1, 2, 3, 5, 8, 16, 64 };
	mms_vac_test_batch = batches[rng_below(sizeof batches / sizeof batches[0])];
	vac_writers = rng_pct(50);
	logop("vacuum (batches of %" PRIu64 " pages%s)", mms_vac_test_batch,
	      vac_writers ? ", with competing writers" : "");
	struct mms_vacuum_result res;
	memset(&res, 0, sizeof res);
	int rc = mms_vacuum(env, on_progress, NULL, &res);
	bool raced = vac_writers;
	vac_writers = false;
	mms_vac_test_batch = 0;
	if (failed)
		return;
	if (!expect1("vacuum", rc, 0))
		return;
	n_vacuums++;
	if (progress_bad) {
		fail("vacuum reported progress %" PRIu64 " of %" PRIu64, progress_bad_done,
		     progress_bad_total);
		return;
	}
	if (res.size_after > res.size_before && !raced) {
		fail("vacuum grew the file from %" PRIu64 " to %" PRIu64, res.size_before,
		     res.size_after);
		return;
	}
	committed();
	if (check_full(&cur))
		run_check("after a vacuum");
}

/* mms_close(env), counting its spills first. */
static int close_store(void)
{
	n_spills += mms_pager_spills(env);
	return mms_close(env);
}

static bool open_store(void)
{
	int rc = mms_open(store_path, NULL, &env);
	if (rc) {
		fail("open %s: %s: %s", store_path, rcname(rc), mms_open_detail());
		env = NULL;
		return false;
	}
	mms_pager_set_spill(env, spill_pages);
	return true;
}

/*
 * Close, open read-only, compare everything, check that changes are refused
 * with MMS_READONLY, close again.  Holds are released first: a read-only
 * open cannot free orphans.
 */
static bool visit_readonly(void)
{
	if (!release_all())
		return false;
	logop("close and open read-only");
	int rc = close_store();
	env = NULL;
	if (!expect1("close", rc, 0))
		return false;
	struct mms_options ro = { .flags = MMS_RDONLY };
	rc = mms_open(store_path, &ro, &env);
	if (rc) {
		fail("open %s read-only: %s: %s", store_path, rcname(rc), mms_open_detail());
		env = NULL;
		return false;
	}
	committed();
	if (!check_full(&cur) || !run_check("read-only"))
		return false;
	struct mms_stat st;
	poison_stat(&st);
	int f = pick_node(&cur, B(T_FILE), false);
	rc = mms_mknod(env, MMS_ROOT_INO, "ro-new", 6, S_IFREG | 0644, 0, 0, &st);
	if (!expect1("mknod in a read-only store", rc, MMS_READONLY) ||
	    !stat_untouched(&st, "mknod"))
		return false;
	rc = mms_setxattr(env, MMS_ROOT_INO, "user.ro", 7, "x", 1, 0);
	if (!expect1("setxattr in a read-only store", rc, MMS_READONLY))
		return false;
	if (f >= 0) {
		rc = mms_write(env, cur.n[f].ino, "x", 1, 0);
		if (!expect1("write to a read-only store", rc, MMS_READONLY))
			return false;
		rc = mms_truncate(env, cur.n[f].ino, 0);
		if (!expect1("truncate in a read-only store", rc, MMS_READONLY))
			return false;
	}
	n_expected_errors += 4;
	if (!check_full(&cur))
		return false;
	rc = mms_close(env);
	env = NULL;
	return expect1("close of a read-only store", rc, 0);
}

static void op_reopen(void)
{
	if (rng_pct(25) && !visit_readonly())
		return;
	logop("close and reopen (holds are dropped, orphans freed)");
	int rc = env ? close_store() : 0;
	env = NULL;
	if (!expect1("close", rc, 0))
		return;
	if (!open_store())
		return;
	n_reopens++;
	/* Orphans do not survive a close: the store frees them at open. */
	for (int i = 1; i < MAXNODES; i++) {
		if (cur.n[i].type == T_NONE)
			continue;
		cur.n[i].holds = 0;
		if (cur.n[i].parent == P_ORPHAN) {
			uint64_t ino = cur.n[i].ino;
			node_free(&cur.n[i]);
			if (!check_gone(ino, "an orphan after reopen"))
				return;
		}
	}
	committed();
	if (check_full(&cur))
		run_check("after a reopen");
}

/*
 * Cap the store at (about) its current file size, run a few calls that need
 * space (each may get MMS_FULL and must then change nothing; the
 * transaction must stay usable), check that freeing space works while full,
 * then lift the cap.
 */
static void op_full(void)
{
	struct mms_info info;
	int rc = mms_stats(env, &info);
	if (!expect1("stats", rc, 0))
		return;
	/* A tight cap (the store is full at once), or room for a few writes. */
	uint64_t max = info.file_size + (rng_pct(50) ? rng_below(8) : rng_range(128, 256)) * PG;
	/* Removing must work on a full store (the engine keeps a floor of at
	 * most 64 pages for it) unless the cap itself left less than that. */
	full_unlink_ok = info.free_bytes + (max - info.file_size) < 128 * PG;
	logop("set max_size %" PRIu64 " (file %" PRIu64 ", free %" PRIu64 ")%s", max,
	      info.file_size, info.free_bytes, full_unlink_ok ? "" : ", unlink must still work");
	rc = mms_set_max_size(env, max);
	if (!expect1("set_max_size", rc, 0))
		return;
	if (info.file_size >= 2 * PG) {
		rc = mms_set_max_size(env, info.file_size - PG);
		if (!expect1("set_max_size below the file size", rc, MMS_INVAL))
			return;
	}
	may_be_full = true;
	for (int k = (int)rng_range(1, 4); k > 0 && !failed; k--) {
		switch (rng_below(5)) {
		case 0: op_create(T_FILE); break;
		case 1: op_setxattr(); break;
		case 2: op_fallocate(); break;
		default: op_write(); break;
		}
	}
	if (!failed && rng_pct(50))
		op_unlink(false);
	may_be_full = false;
	full_unlink_ok = false;
	if (failed)
		return;
	logop("set max_size 0 (unlimited)");
	rc = mms_set_max_size(env, 0);
	if (!expect1("set_max_size 0", rc, 0))
		return;
	rc = mms_stats(env, &info);
	if (expect1("stats", rc, 0) && info.max_size != 0)
		fail("max_size is %" PRIu64 " after mms_set_max_size(0)", info.max_size);
}

static void run_op(int op)
{
	n_ops[op]++;
	switch (op) {
	case OP_CREATE: op_create(T_FILE); break;
	case OP_MKDIR: op_create(T_DIR); break;
	case OP_SYMLINK: op_create(T_LINK); break;
	case OP_FIFO: op_create(T_FIFO); break;
	case OP_WRITE: op_write(); break;
	case OP_TRUNCATE: op_truncate(); break;
	case OP_FALLOCATE: op_fallocate(); break;
	case OP_RENAME: op_rename(); break;
	case OP_UNLINK: op_unlink(false); break;
	case OP_RMDIR: op_unlink(true); break;
	case OP_SETXATTR: op_setxattr(); break;
	case OP_REMOVEXATTR: op_removexattr(); break;
	case OP_SETATTR: op_setattr(); break;
	case OP_HOLD: op_hold(false); break;
	case OP_RELEASE: op_release(); break;
	case OP_HOLD_UNLINK: op_hold(true); break;
	case OP_BADNAME: op_badname(); break;
	case OP_PROBE: op_probe(); break;
	case OP_COMMIT: op_commit(false); break;
	case OP_SYNC: op_commit(true); break;
	case OP_ROLLBACK: op_rollback(); break;
	case OP_VACUUM: op_vacuum(); break;
	case OP_REOPEN: op_reopen(); break;
	case OP_FULL: op_full(); break;
	case OP_LINK: op_link(); break;
	case OP_COPY: op_copy(); break;
	}
}

static int pick_op(void)
{
	int total = 0;
	for (int k = 0; k < NOPS; k++)
		total += opweight[k];
	int r = (int)rng_below((uint64_t)total);
	for (int k = 0; k < NOPS; k++) {
		if (r < opweight[k])
			return k;
		r -= opweight[k];
	}
	return OP_PROBE;
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
	seed = env_u64("MMS_SEED", (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
	                           ((uint64_t)getpid() << 40));
	long nops = (long)env_u64("MMS_MODEL_OPS", DEFAULT_OPS);
	trace = env_u64("MMS_MODEL_TRACE", 0) != 0;
	rng_state = seed;
	/* the engine's clock too, so that a seed replays the same layout */
	mms_test_clock_ns = 1700000000000000000ll + (int64_t)(seed % 1000000000u);
	/* seeds with bit 2 set run within one clock tick: creates then leave
	 * their directory's record unchanged (mms_create) */
	mms_test_clock_step_ns = (seed & 4) ? 0 : 1000;
	spill_pages = (seed & 1) ? 2 + (size_t)(seed / 2 % 7) : 0;
	/* every growth of the file moves the engine's map (libmms_test) */
	mms_file_test_tight_map = 1;
	/* seeds with bit 1 set keep few free runs inline: a base and a log */
	mms_alloc_test_inline_max = (seed & 2) ? 1 + (unsigned)(seed / 4 % 9) : 0;
	/* and of those, seeds with bit 3 set few changes in the log's tail */
	mms_alloc_test_tail_max = (seed & 10) == 10 ? 1 + (unsigned)(seed / 16 % 5) : 0;
	tap_diag("seed %" PRIu64 " (replay with MMS_SEED=%" PRIu64 "), %ld operations, spill %s%zu, "
	         "inline free list %s%u, log tail %s%u, clock %s", seed, seed, nops,
	         spill_pages ? "past " : "default ", spill_pages,
	         mms_alloc_test_inline_max ? "up to " : "default ", mms_alloc_test_inline_max,
	         mms_alloc_test_tail_max ? "up to " : "default ", mms_alloc_test_tail_max,
	         mms_test_clock_step_ns ? "moving" : "within one tick");
	memset(longname, 'L', sizeof longname);
	memset(longxattr, 'x', sizeof longxattr);
	memcpy(longxattr, "user.", 5);

	snprintf(store_path, sizeof store_path, "%s/model.mms", tap_tmpdir());
	struct mms_options opts = { .flags = MMS_CREATE | MMS_EXCL };
	int rc = mms_open(store_path, &opts, &env);
	if (!ok(rc == 0, "create %s", store_path)) {
		tap_diag("%s: %s", rcname(rc), mms_open_detail());
		return tap_done();
	}
	mms_pager_set_spill(env, spill_pages);
	struct mms_stat st;
	rc = mms_getattr(env, MMS_ROOT_INO, &st);
	if (!ok(rc == 0 && S_ISDIR(st.mode), "the root is a directory")) {
		mms_close(env);
		return tap_done();
	}
	struct mnode *root = &cur.n[0];
	root->type = T_DIR;
	root->parent = P_ROOT;
	root->ino = MMS_ROOT_INO;
	root->perm = st.mode & 07777;
	root->uid = st.uid;
	root->gid = st.gid;
	max_ino_seen = max_ino_committed = MMS_ROOT_INO;
	committed();

	for (step = 1; step <= nops && !failed; step++) {
		run_op(pick_op());
		if (!failed && step % CHECK_EVERY == 0)
			check_full(&cur);
	}
	if (!failed) {
		step = nops + 1;
		logop("final full check, reopen, check");
		if (check_full(&cur))
			op_reopen();
	}
	if (env && !failed)
		ok(run_check("at the end"), "mms_check finds no problem at the end");
	if (!failed)
		ok(1, "%ld random operations agree with the model (seed %" PRIu64 ")", nops, seed);
	{
		char counts[1024];
		size_t o = 0;
		for (int k = 0; k < NOPS && o < sizeof counts - 40; k++)
			o += (size_t)snprintf(counts + o, sizeof counts - o, "%s%s %ld", k ? ", " : "",
			                      opnames[k], n_ops[k]);
		tap_diag("steps: %s", counts);
	}
	tap_diag("%ld expected errors, %ld MMS_FULL, %ld full checks, %ld commits, %ld rollbacks "
	         "(%ld turned into commits), %ld vacuums (%ld competing writes), %ld reopens, %ld mms_check runs",
	         n_expected_errors, n_full, n_full_checks, n_commits, n_rollbacks,
	         n_rollbacks_skipped, n_vacuums, n_vac_writes, n_reopens, n_checks);
	if (env) {
		rc = close_store();
		ok(rc == 0, "close: %s", rcname(rc));
	}
	if (spill_pages)
		ok(n_spills > 0, "transactions spilled their dirty pages (%" PRIu64 " spills past %zu pages)",
		   n_spills, spill_pages);
	m_free(&cur);
	m_free(&snap);
	return tap_done();
}
