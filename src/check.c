/*
 * check.c - the consistency checker behind `mmstore check`.
 *
 * One pass over everything the meta reaches, trusting nothing:
 *   - the meta pages (a rejected slot is reported even if the other one
 *     opened the store);
 *   - every tree page: checksum, structure, level, key order, and that its
 *     keys lie within the bounds its parent gives it;
 *   - every item: lengths, inode records, names (hash, validity, target,
 *     parent), extents (bounds, overlaps inside a value, page counts),
 *     xattr values (bounds, checksum), orphans;
 *   - reachability: every live inode is named as often as its link count
 *     says (a directory once), the LINK tree holds exactly its names but
 *     the primary one, which is in its recorded parent, a directory's link
 *     count is 2 + its subdirectories, and its chain of parents reaches the
 *     root;
 *   - space: every page of the file is exactly one of meta, tree, data,
 *     blob, free or pending; the counters in the meta match.
 * Each problem goes to the report callback with where it is.
 */
#include "mms_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* What the check learns of an inode, one per inode of the store: kept
 * small (64 bytes), since a store of 100M keys needs 100M of them. */
struct ck_inode {
	uint64_t ino;       /* 0: empty slot */
	uint64_t parent;
	uint64_t pages;     /* recorded */
	uint64_t counted;   /* found in the EXTENT tree */
	uint32_t mode;
	uint32_t names;     /* NAME items pointing at it */
	uint32_t nlink;     /* recorded */
	uint32_t links;     /* LINK items of it */
	uint32_t in_parent; /* NAME items in its recorded parent */
	uint32_t links_in_parent; /* LINK items in its recorded parent */
	uint32_t subdirs;   /* a directory: NAME items of directories in it (at
	                     * most UINT32_MAX: more than a link count can say) */
	uint8_t inl;        /* the value is inline (MMS_INO_INLINE) */
	uint8_t orphan;     /* has an ORPHAN item */
	uint8_t reach;      /* its chain of parents: CK_REACH_* */
};
_Static_assert(sizeof(struct ck_inode) <= 64, "the checker's entry of an inode grew past 64 bytes");

/* Whether an inode's chain of parents reaches the root, found once per
 * inode (linear in the store, whatever the depth of its directories). */
enum { CK_REACH_UNKNOWN, CK_REACH_PATH, CK_REACH_ROOT, CK_REACH_LOOP, CK_REACH_BROKEN };

struct ck {
	mms_env *env;
	mms_problem_fn report;
	void *rctx;
	mms_progress_fn progress;
	void *pctx;
	uint64_t problems;
	uint8_t *owner;        /* a byte per page: what uses it (CK_*) */
	uint64_t pages;
	struct ck_inode *inodes;
	size_t icap, icount;
	int direct;            /* inodes[ino] is inode ino (dense numbers), else a hash table */
	uint64_t tree_pages, data_pages, blob_pages;
	uint64_t visited, total;
	uint64_t prev_ino, prev_end; /* last extent seen: its inode, logical end page */
	struct ck_share *shares;     /* SHARE items, in page order */
	size_t nshares, cshares;
	uint8_t *resident;           /* pages the page cache held at the start (mincore) */
	uint64_t nresident;
};

/* A SHARE item and the references the extents make to each of its pages. */
struct ck_share {
	uint64_t first, n;
	uint32_t refs;
	uint32_t *seen; /* n counters, allocated when an extent first reaches it */
};

enum { CK_NONE, CK_META, CK_TREE, CK_DATA, CK_BLOB, CK_FREE, CK_PENDING, CK_FREELIST };
static const char *const ck_what[] = {
	"nothing", "a meta page", "a tree page", "a data extent", "an xattr value",
	"the free list", "the pending list", "the free-list blob"
};

static void ck_problem(struct ck *ck, const char *fmt_where, const char *what, ...)
	__attribute__((format(printf, 3, 4)));

static struct ck_inode *ck_find(struct ck *ck, uint64_t ino);

/*
 * Does c's chain of parents reach the root?  Walks up until an inode whose
 * answer is known, then writes the answer on every inode of the walk, so
 * each inode is visited a bounded number of times.  *bad gets the missing
 * or non-directory ancestor for CK_REACH_BROKEN.
 */
static int ck_reach(struct ck *ck, struct ck_inode *c, uint64_t *bad)
{
	struct ck_inode **path = NULL;
	size_t n = 0, cap = 0;
	int r = CK_REACH_UNKNOWN;
	struct ck_inode *at = c;
	for (;;) {
		if (at->ino == MMS_ROOT_INO) {
			r = CK_REACH_ROOT;
			break;
		}
		if (at->reach == CK_REACH_PATH) {
			r = CK_REACH_LOOP;
			break;
		}
		if (at->reach != CK_REACH_UNKNOWN) {
			r = at->reach;
			break;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct ck_inode **np = realloc(path, ncap * sizeof *np);
			if (!np) {
				r = CK_REACH_UNKNOWN; /* out of memory: no verdict */
				break;
			}
			path = np;
			cap = ncap;
		}
		path[n++] = at;
		at->reach = CK_REACH_PATH;
		struct ck_inode *p = ck_find(ck, at->parent);
		if (!p || (p->mode & S_IFMT) != S_IFDIR) {
			*bad = at->parent;
			r = CK_REACH_BROKEN;
			break;
		}
		at = p;
	}
	for (size_t i = 0; i < n; i++)
		path[i]->reach = (uint8_t)r;
	free(path);
	return r;
}
static void ck_problem(struct ck *ck, const char *where, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ck->problems++;
	if (ck->report)
		ck->report(ck->rctx, where, msg);
}

/* Claim pages [pg, pg+n) for `what`; overlaps and bounds are problems. */
static void ck_claim(struct ck *ck, uint64_t pg, uint64_t n, int what, const char *where)
{
	if (n == 0 || pg >= ck->pages || n > ck->pages - pg) {
		ck_problem(ck, where, "pages %llu+%llu lie outside the file (%llu pages)",
		           (unsigned long long)pg, (unsigned long long)n, (unsigned long long)ck->pages);
		return;
	}
	uint64_t reported = 0;
	for (uint64_t i = pg; i < pg + n; i++) {
		if (ck->owner[i] != CK_NONE) {
			if (reported++ < 1)
				ck_problem(ck, where, "page %llu is %s and also %s", (unsigned long long)i,
				           ck_what[what], ck_what[ck->owner[i]]);
			continue;
		}
		ck->owner[i] = (uint8_t)what;
	}
}

/* ---- inode table ------------------------------------------------------------- */

/*
 * Inode numbers are handed out in order and never reused, so in most
 * stores they are dense: the table is then an array indexed by inode
 * number (mms_check sizes it from the meta), else (many numbers deleted,
 * or a damaged number past the array) a hash table with linear probing.
 */
static size_t ck_slot(struct ck *ck, uint64_t ino)
{
	size_t i = (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 17) & (ck->icap - 1);
	while (ck->inodes[i].ino && ck->inodes[i].ino != ino)
		i = (i + 1) & (ck->icap - 1);
	return i;
}

static struct ck_inode *ck_find(struct ck *ck, uint64_t ino)
{
	if (!ck->icap)
		return NULL;
	if (ck->direct)
		return ino && ino < ck->icap && ck->inodes[ino].ino == ino ? &ck->inodes[ino] : NULL;
	struct ck_inode *in = &ck->inodes[ck_slot(ck, ino)];
	return in->ino ? in : NULL;
}

/* Move the table into a hash table of ncap slots.  0, or -1 out of memory. */
static int ck_rehash(struct ck *ck, size_t ncap)
{
	struct ck_inode *old = ck->inodes, *nw = calloc(ncap, sizeof(*nw));
	size_t ocap = ck->icap;
	if (!nw)
		return -1;
	ck->inodes = nw;
	ck->icap = ncap;
	ck->direct = 0;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].ino)
			ck->inodes[ck_slot(ck, old[i].ino)] = old[i];
	free(old);
	return 0;
}

static struct ck_inode *ck_add(struct ck *ck, uint64_t ino)
{
	if (ck->direct && (ino == 0 || ino >= ck->icap)) {
		size_t ncap = 1024;
		while (ncap < 2 * (ck->icount + 1))
			ncap *= 2;
		if (ck_rehash(ck, ncap))
			return NULL;
	}
	if (ck->direct) {
		struct ck_inode *in = &ck->inodes[ino];
		ck->icount += !in->ino;
		in->ino = ino;
		return in;
	}
	if ((ck->icount + 1) * 2 > ck->icap && ck_rehash(ck, ck->icap ? ck->icap * 2 : 1024))
		return NULL;
	struct ck_inode *in = &ck->inodes[ck_slot(ck, ino)];
	in->ino = ino;
	ck->icount++;
	return in;
}

/* ---- tree pages -------------------------------------------------------------- */

static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

typedef void (*ck_item_fn)(struct ck *ck, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                           uint64_t pgno);

/* A branch's child and the separator before it, copied out of the page. */
struct ck_kid {
	uint64_t child;
	size_t kl;
	uint8_t k[MMS_BT_KEY_MAX];
};

/*
 * Ask for the children of a branch before walking them: a check of a store
 * the page cache does not hold (after a reboot) waited on one read of a
 * random page at a time (55 s for a store of 10M keys, 4.6 s warm; 8.5 s
 * cold with this); asked for together, the reads overlap.  Children the
 * cache held when the check started are not asked for, runs of adjacent
 * ones in one call.
 */
static void ck_prefetch(struct ck *ck, const struct ck_kid *kids, unsigned n)
{
	uint64_t first = 0, len = 0;
	for (unsigned i = 0; i <= n; i++) {
		uint64_t c = i < n ? kids[i].child : 0;
		if (c >= ck->pages || (c < ck->nresident && (ck->resident[c] & 1)))
			c = 0; /* out of the file (reported by the walk), or held */
		if (len && c == first + len) {
			len++;
			continue;
		}
		if (len)
			mms_file_prefetch(ck->env, first, len);
		first = c;
		len = c ? 1 : 0;
	}
}

/* Walk a subtree; keys must lie in [lo, hi) (NULL: unbounded). */
static int ck_page(struct ck *ck, int tree, uint64_t pgno, int level, const uint8_t *lo, size_t lol,
                   const uint8_t *hi, size_t hil, ck_item_fn fn, int depth)
{
	char where[96];
	int rc = 0;
	snprintf(where, sizeof(where), "page %llu (%s tree)", (unsigned long long)pgno, mms_tree_name(tree));
	if (depth >= MMS_BT_MAXDEPTH) {
		ck_problem(ck, where, "tree deeper than %d levels", MMS_BT_MAXDEPTH);
		return 0;
	}
	if (pgno < ck->pages && ck->owner[pgno] == CK_TREE) {
		ck_problem(ck, where, "reached twice: the tree has a cycle or shared page");
		return 0;
	}
	const uint8_t *p = mms_page_get(ck->env, pgno, &rc);
	if (!p) {
		/* the detail names the page already: do not say it twice */
		const char *d = mms_errdetail(ck->env);
		size_t wl = strlen(where);
		if (!strncmp(d, where, wl) && d[wl] == ':' && d[wl + 1] == ' ')
			d += wl + 2;
		ck_problem(ck, where, "%s", d);
		if (pgno < ck->pages && ck->owner[pgno] == CK_NONE)
			ck->owner[pgno] = CK_TREE; /* do not report it again as leaked */
		return 0;
	}
	ck_claim(ck, pgno, 1, CK_TREE, where);
	ck->tree_pages++;
	if (p[5] != tree)
		ck_problem(ck, where, "belongs to the %s tree", mms_tree_name(p[5]));
	unsigned plevel = mms_get_le16(p + 26);
	if (level >= 0 && (int)plevel != level)
		ck_problem(ck, where, "level %u where %d was expected", plevel, level);
	if (ck->progress && (++ck->visited & 255) == 0 &&
	    ck->progress(ck->pctx, ck->visited, ck->total))
		return ECANCELED;
	unsigned n = mms_bt_page_count(p);
	const void *pk = NULL;
	size_t pkl = 0;
	if (p[4] == MMS_PG_LEAF) {
		if (tree == MMS_TREE_NAME && ck->direct) {
			/* the inodes a leaf of names points at lie all over the
			 * table: ask for them all at once, so that their cache
			 * misses overlap (a check of 10M keys waited on them) */
			for (unsigned i = 0; i < n; i++) {
				const void *k, *v;
				size_t kl, vl;
				mms_bt_page_item(p, i, &k, &kl, &v, &vl);
				uint64_t ino = vl >= 8 ? mms_get_le64(v) : 0;
				if (ino < ck->icap)
					__builtin_prefetch(&ck->inodes[ino]);
			}
		}
		for (unsigned i = 0; i < n; i++) {
			const void *k, *v;
			size_t kl, vl;
			mms_bt_page_item(p, i, &k, &kl, &v, &vl);
			if (pk && key_cmp(pk, pkl, k, kl) >= 0)
				ck_problem(ck, where, "item %u is out of order", i);
			if ((lo && key_cmp(k, kl, lo, lol) < 0) || (hi && key_cmp(k, kl, hi, hil) >= 0))
				ck_problem(ck, where, "item %u lies outside the range its parent gives", i);
			pk = k;
			pkl = kl;
			fn(ck, k, kl, v, vl, pgno);
		}
		return 0;
	}
	/* copy the children and separators: the page pointer may not outlive
	 * the walk's other page reads if the map is replaced (it is not, but
	 * keys are needed after recursion anyway) */
	struct ck_kid *kids = malloc(n * sizeof(*kids));
	if (!kids)
		return ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		const void *k, *v;
		size_t kl, vl;
		mms_bt_page_item(p, i, &k, &kl, &v, &vl);
		kids[i].child = mms_get_le64(v);
		kids[i].kl = kl;
		memcpy(kids[i].k, k, kl);
		if (i > 1 && key_cmp(kids[i - 1].k, kids[i - 1].kl, k, kl) >= 0)
			ck_problem(ck, where, "separator %u is out of order", i);
		if (i > 0 && ((lo && key_cmp(k, kl, lo, lol) < 0) || (hi && key_cmp(k, kl, hi, hil) >= 0)))
			ck_problem(ck, where, "separator %u lies outside the range its parent gives", i);
	}
	ck_prefetch(ck, kids, n);
	for (unsigned i = 0; i < n && !rc; i++) {
		const uint8_t *clo = i ? kids[i].k : lo;
		size_t clol = i ? kids[i].kl : lol;
		const uint8_t *chi = i + 1 < n ? kids[i + 1].k : hi;
		size_t chil = i + 1 < n ? kids[i + 1].kl : hil;
		rc = ck_page(ck, tree, kids[i].child, (int)plevel - 1, clo, clol, chi, chil, fn, depth + 1);
	}
	free(kids);
	return rc;
}

/* ---- items ---------------------------------------------------------------------- */

static void ck_where_item(char *buf, size_t len, uint64_t pgno, const char *tree, uint64_t ino)
{
	snprintf(buf, len, "page %llu (%s tree), inode %llu", (unsigned long long)pgno, tree,
	         (unsigned long long)ino);
}

/* Where an inode or name item is, formatted only when a problem there is
 * reported: the trees of a big store are mostly these items, and
 * formatting each one's label was a quarter of a check. */
struct ck_at {
	uint64_t pgno, ino, dir;
	const char *name; /* a NAME item's name (nl bytes), else NULL: an inode item */
	size_t nl;
	int done;
	char buf[400];
};

/* (not an initializer: that would clear buf for every item) */
static inline void ck_at_set(struct ck_at *a, uint64_t pgno, uint64_t ino, uint64_t dir,
                             const char *name, size_t nl)
{
	a->pgno = pgno;
	a->ino = ino;
	a->dir = dir;
	a->name = name;
	a->nl = nl;
	a->done = 0;
}

static const char *ck_at(struct ck_at *a)
{
	if (!a->done) {
		if (a->name)
			snprintf(a->buf, sizeof(a->buf), "page %llu (name tree), entry '%.*s' in directory %llu",
			         (unsigned long long)a->pgno, (int)(a->nl > 200 ? 200 : a->nl), a->name,
			         (unsigned long long)a->dir);
		else
			ck_where_item(a->buf, sizeof(a->buf), a->pgno, "inode", a->ino);
		a->done = 1;
	}
	return a->buf;
}

static void ck_inode_item(struct ck *ck, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                          uint64_t pgno)
{
	uint64_t ino = kl == 8 ? mms_get_be64(k) : 0;
	struct ck_at at;
	ck_at_set(&at, pgno, ino, 0, NULL, 0);
	struct mms_inode in;
	size_t reclen;
	if (kl != 8 || mms_inode_decode(ino, v, vl, &in, &reclen)) {
		ck_problem(ck, ck_at(&at), "malformed item (key %zu, value %zu bytes)", kl, vl);
		return;
	}
	if (ino == 0 || ino >= ck->env->meta.next_ino)
		ck_problem(ck, ck_at(&at), "inode number beyond the next one to allocate (%llu)",
		           (unsigned long long)ck->env->meta.next_ino);
	uint32_t type = in.mode & S_IFMT;
	if (type != S_IFREG && type != S_IFDIR && type != S_IFLNK && type != S_IFIFO &&
	    type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
		ck_problem(ck, ck_at(&at), "unknown type in mode %o", in.mode);
	if (in.rdev && type != S_IFCHR && type != S_IFBLK)
		ck_problem(ck, ck_at(&at), "device number %llu on a node of mode %o, not a device",
		           (unsigned long long)in.rdev, in.mode);
	size_t inl = vl - reclen;
	if (in.flags & MMS_INO_INLINE) {
		if (inl > MMS_INLINE_MAX || inl != in.size)
			ck_problem(ck, ck_at(&at), "inline value of %zu bytes for size %llu", inl,
			           (unsigned long long)in.size);
	} else if (inl) {
		ck_problem(ck, ck_at(&at), "%zu stray bytes after the record", inl);
	}
	if (in.size > MMS_SIZE_MAX)
		ck_problem(ck, ck_at(&at), "size %llu beyond the limit", (unsigned long long)in.size);
	struct ck_inode *c = ck_add(ck, ino);
	if (!c)
		return;
	c->parent = in.parent;
	c->pages = in.pages;
	c->mode = in.mode;
	c->inl = !!(in.flags & MMS_INO_INLINE);
	c->nlink = in.nlink;
}

static void ck_name_item(struct ck *ck, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                         uint64_t pgno)
{
	if (kl < 17 || vl < 12) {
		char where[64];
		snprintf(where, sizeof(where), "page %llu (name tree)", (unsigned long long)pgno);
		ck_problem(ck, where, "malformed item (key %zu, value %zu bytes)", kl, vl);
		return;
	}
	uint64_t parent = mms_get_be64(k), hash = mms_get_be64(k + 8), ino = mms_get_le64(v);
	const char *name = (const char *)k + 16;
	size_t nl = kl - 16;
	struct ck_at at;
	ck_at_set(&at, pgno, 0, parent, name, nl);
	if (mms_name_valid(name, nl))
		ck_problem(ck, ck_at(&at), "invalid name");
	if (mms_name_hash(name, nl) != hash)
		ck_problem(ck, ck_at(&at), "stored hash does not match the name");
	struct ck_inode *p = ck_find(ck, parent), *c = ck_find(ck, ino);
	if (!p)
		ck_problem(ck, ck_at(&at), "the directory does not exist");
	else if ((p->mode & S_IFMT) != S_IFDIR)
		ck_problem(ck, ck_at(&at), "the parent is not a directory");
	if (!c) {
		ck_problem(ck, ck_at(&at), "points at inode %llu, which does not exist", (unsigned long long)ino);
		return;
	}
	c->names++;
	if (c->parent == parent)
		c->in_parent++;
	else if (S_ISDIR(c->mode) || c->nlink <= 1)
		ck_problem(ck, ck_at(&at), "inode %llu records parent %llu", (unsigned long long)ino,
		           (unsigned long long)c->parent);
	if (p && S_ISDIR(c->mode) && p->subdirs < UINT32_MAX)
		p->subdirs++;
	if ((mms_get_le32(v + 8) & S_IFMT) != (c->mode & S_IFMT))
		ck_problem(ck, ck_at(&at), "entry type %o differs from inode %llu's %o", mms_get_le32(v + 8) & S_IFMT,
		           (unsigned long long)ino, c->mode & S_IFMT);
}



/* The SHARE tree is walked before the EXTENT tree: its items say which
 * data pages several extents may hold. */
static void ck_share_item(struct ck *ck, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                          uint64_t pgno)
{
	char where[96];
	snprintf(where, sizeof(where), "page %llu (share tree)", (unsigned long long)pgno);
	if (kl != 8 || vl != 12) {
		ck_problem(ck, where, "malformed item (key %zu, value %zu bytes)", kl, vl);
		return;
	}
	struct ck_share sh = { mms_get_be64(k), mms_get_le64(v), mms_get_le32(v + 8), NULL };
	snprintf(where, sizeof(where), "page %llu (share tree), pages %llu+%llu", (unsigned long long)pgno,
	         (unsigned long long)sh.first, (unsigned long long)sh.n);
	if (sh.n == 0 || sh.first >= ck->pages || sh.n > ck->pages - sh.first) {
		ck_problem(ck, where, "lies outside the file (%llu pages)", (unsigned long long)ck->pages);
		return;
	}
	if (sh.refs < 2)
		ck_problem(ck, where, "%u references: a shared page has at least 2", sh.refs);
	if (ck->nshares) {
		const struct ck_share *last = &ck->shares[ck->nshares - 1];
		if (sh.first < last->first + last->n) {
			ck_problem(ck, where, "overlaps the item before it");
			return;
		}
	}
	if (ck->nshares == ck->cshares) {
		size_t cap = ck->cshares ? 2 * ck->cshares : 64;
		struct ck_share *ns = realloc(ck->shares, cap * sizeof(*ns));
		if (!ns) {
			ck_problem(ck, where, "out of memory");
			return;
		}
		ck->shares = ns;
		ck->cshares = cap;
	}
	ck->shares[ck->nshares++] = sh;
}

/* The first SHARE item that ends after page pg (ck->nshares: none). */
static size_t ck_share_at(const struct ck *ck, uint64_t pg)
{
	size_t lo = 0, hi = ck->nshares;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ck->shares[mid].first + ck->shares[mid].n <= pg)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Claim the data pages [pg, pg+n) of an extent: pages no SHARE item covers
 * belong to it alone; those of an item count one reference more. */
static void ck_data(struct ck *ck, uint64_t pg, uint64_t n, const char *where)
{
	if (n == 0 || pg >= ck->pages || n > ck->pages - pg) {
		ck_claim(ck, pg, n, CK_DATA, where); /* reports the bounds */
		return;
	}
	uint64_t end = pg + n;
	for (size_t i = ck_share_at(ck, pg); pg < end; i++) {
		struct ck_share *sh = i < ck->nshares ? &ck->shares[i] : NULL;
		uint64_t stop = !sh || sh->first >= end ? end : sh->first > pg ? sh->first : pg;
		if (stop > pg) {
			ck_claim(ck, pg, stop - pg, CK_DATA, where);
			ck->data_pages += stop - pg;
			pg = stop;
		}
		if (!sh || pg >= end)
			break;
		if (!sh->seen && !(sh->seen = calloc(sh->n, sizeof(*sh->seen)))) {
			ck_problem(ck, where, "out of memory");
			return;
		}
		uint64_t e = sh->first + sh->n < end ? sh->first + sh->n : end;
		for (; pg < e; pg++)
			sh->seen[pg - sh->first]++;
	}
}

/* After the EXTENT tree: every shared page has as many references as its
 * item says, and is claimed once. */
static void ck_shares_done(struct ck *ck)
{
	for (size_t i = 0; i < ck->nshares; i++) {
		struct ck_share *sh = &ck->shares[i];
		char where[96];
		snprintf(where, sizeof(where), "share tree, pages %llu+%llu", (unsigned long long)sh->first,
		         (unsigned long long)sh->n);
		uint64_t bad = 0, first_bad = 0;
		uint32_t got = 0;
		for (uint64_t j = 0; j < sh->n; j++) {
			uint32_t c = sh->seen ? sh->seen[j] : 0;
			if (c != sh->refs && bad++ == 0) {
				first_bad = sh->first + j;
				got = c;
			}
		}
		if (bad)
			ck_problem(ck, where, "%u references recorded, but extents hold page %llu %u times "
			           "(%llu pages differ)", sh->refs, (unsigned long long)first_bad, got,
			           (unsigned long long)bad);
		ck_claim(ck, sh->first, sh->n, CK_DATA, where);
		ck->data_pages += sh->n;
		free(sh->seen);
	}
	free(ck->shares);
	ck->shares = NULL;
	ck->nshares = 0;
}

static void ck_extent_item(struct ck *ck, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                           uint64_t pgno)
{
	char where[160];
	if (kl != 16 || vl != 16) {
		snprintf(where, sizeof(where), "page %llu (extent tree)", (unsigned long long)pgno);
		ck_problem(ck, where, "malformed item (key %zu, value %zu bytes)", kl, vl);
		return;
	}
	uint64_t ino = mms_get_be64(k), lp = mms_get_be64(k + 8);
	uint64_t phys = mms_get_le64(v), n = mms_get_le64(v + 8);
	snprintf(where, sizeof(where), "page %llu (extent tree), inode %llu at byte %llu",
	         (unsigned long long)pgno, (unsigned long long)ino,
	         (unsigned long long)(lp * MMS_PAGE_SIZE));
	ck_data(ck, phys, n, where);
	struct ck_inode *c = ck_find(ck, ino);
	if (!c) {
		ck_problem(ck, where, "the inode does not exist");
		return;
	}
	c->counted += n;
	if (c->inl)
		ck_problem(ck, where, "an inline value also has extents");
	if ((c->mode & S_IFMT) != S_IFREG && (c->mode & S_IFMT) != S_IFLNK)
		ck_problem(ck, where, "extent of an inode that holds no bytes (mode %o)", c->mode);
	if (ck->prev_ino == ino && lp < ck->prev_end)
		ck_problem(ck, where, "overlaps the previous extent of the value");
	/* extents past the size are legal: fallocate with KEEP_SIZE */
	ck->prev_ino = ino;
	ck->prev_end = lp + n;
}

static void ck_xattr_item(struct ck *ck, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                          uint64_t pgno)
{
	char where[400];
	if (kl < 9 || vl < 1) {
		snprintf(where, sizeof(where), "page %llu (xattr tree)", (unsigned long long)pgno);
		ck_problem(ck, where, "malformed item (key %zu, value %zu bytes)", kl, vl);
		return;
	}
	uint64_t ino = mms_get_be64(k);
	snprintf(where, sizeof(where), "page %llu (xattr tree), inode %llu, attribute '%.*s'",
	         (unsigned long long)pgno, (unsigned long long)ino, (int)(kl - 8), (const char *)k + 8);
	if (!ck_find(ck, ino))
		ck_problem(ck, where, "the inode does not exist");
	if (v[0] == 0) {
		if (vl - 1 > MMS_XATTR_INLINE_MAX)
			ck_problem(ck, where, "inline value of %zu bytes", vl - 1);
		return;
	}
	if (v[0] != 1 || vl != 17) {
		ck_problem(ck, where, "unknown value kind %u (%zu bytes)", v[0], vl);
		return;
	}
	uint64_t pg = mms_get_le64(v + 1);
	uint32_t len = mms_get_le32(v + 9), crc = mms_get_le32(v + 13);
	uint64_t n = (len + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
	if (len > MMS_XATTR_VALUE_MAX) {
		ck_problem(ck, where, "value of %u bytes beyond the limit", len);
		return;
	}
	ck_claim(ck, pg, n ? n : 1, CK_BLOB, where);
	ck->blob_pages += n ? n : 1;
	if (pg >= ck->pages || (n ? n : 1) > ck->pages - pg)
		return;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return;
	if (mms_blob_read(ck->env, pg, buf, len))
		ck_problem(ck, where, "%s", mms_errdetail(ck->env));
	else if (mms_crc32c(0, buf, len) != crc)
		ck_problem(ck, where, "value checksum mismatch (at page %llu)", (unsigned long long)pg);
	free(buf);
}

static void ck_orphan_item(struct ck *ck, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                           uint64_t pgno)
{
	char where[128];
	(void)v;
	uint64_t ino = kl == 8 ? mms_get_be64(k) : 0;
	ck_where_item(where, sizeof(where), pgno, "orphan", ino);
	if (kl != 8 || vl != 0) {
		ck_problem(ck, where, "malformed item (key %zu, value %zu bytes)", kl, vl);
		return;
	}
	struct ck_inode *c = ck_find(ck, ino);
	if (!c)
		ck_problem(ck, where, "the inode does not exist");
	else if (c->parent != 0)
		ck_problem(ck, where, "the inode is still named (parent %llu)", (unsigned long long)c->parent);
	else
		c->orphan = 1;
}

static void ck_link_item(struct ck *ck, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                         uint64_t pgno)
{
	char where[400];
	uint8_t nkey[MMS_BT_KEY_MAX];
	const void *nv;
	size_t nvl;

	(void)v;
	if (kl <= 16 || vl != 0 || kl > 16 + MMS_NAME_MAX) {
		snprintf(where, sizeof(where), "page %llu (link tree)", (unsigned long long)pgno);
		ck_problem(ck, where, "malformed item (key %zu, value %zu bytes)", kl, vl);
		return;
	}
	uint64_t ino = mms_get_be64(k), dir = mms_get_be64(k + 8);
	const char *name = (const char *)k + 16;
	size_t nl = kl - 16;
	snprintf(where, sizeof(where), "page %llu (link tree), inode %llu, name '%.*s' in directory %llu",
	         (unsigned long long)pgno, (unsigned long long)ino, (int)(nl > 200 ? 200 : nl), name,
	         (unsigned long long)dir);
	struct ck_inode *c = ck_find(ck, ino);
	if (!c) {
		ck_problem(ck, where, "the inode does not exist");
		return;
	}
	if (S_ISDIR(c->mode))
		ck_problem(ck, where, "a directory has a second name");
	c->links++;
	if (dir == c->parent)
		c->links_in_parent++;
	/* the name must be in the NAME tree, naming this inode */
	int rc = mms_bt_get(ck->env, MMS_TREE_NAME, nkey, mms_name_key(nkey, dir, name, nl), &nv,
	                    &nvl);
	if (rc == MMS_NOTFOUND)
		ck_problem(ck, where, "no such name in the directory");
	else if (rc)
		ck_problem(ck, where, "%s", mms_errdetail(ck->env));
	else if (nvl != 12 || mms_get_le64(nv) != ino)
		ck_problem(ck, where, "the name holds another inode");
}

static int ck_free_run(void *vck, uint64_t pg, uint64_t n, int pending)
{
	struct ck *ck = vck;
	char where[64];
	snprintf(where, sizeof(where), pending ? "pending list" : "free list");
	ck_claim(ck, pg, n, pending ? CK_PENDING : CK_FREE, where);
	return 0;
}

/* mms_alloc_list_pages: the pages that hold the free list are in use */
static int ck_list_page(void *vck, uint64_t pg, uint64_t n, int log)
{
	struct ck *ck = vck;
	ck_claim(ck, pg, n, CK_FREELIST, log ? "free-list log" : "free-list blob");
	ck->blob_pages += n;
	return 0;
}

/* ---- the whole walk --------------------------------------------------------------- */

static void ck_reachability(struct ck *ck)
{
	char where[96];
	uint64_t keys = 0, dirs = 0, orphans = 0;
	for (size_t i = 0; i < ck->icap; i++) {
		struct ck_inode *c = &ck->inodes[i];
		if (!c->ino)
			continue;
		snprintf(where, sizeof(where), "inode %llu", (unsigned long long)c->ino);
		int is_dir = (c->mode & S_IFMT) == S_IFDIR;
		if (c->ino == MMS_ROOT_INO) {
			if (!is_dir)
				ck_problem(ck, where, "the root is not a directory");
			if (c->names)
				ck_problem(ck, where, "the root has a name");
			if (c->nlink != 2 + (uint64_t)c->subdirs)
				ck_problem(ck, where, "link count %u, but 2 + %llu subdirectories",
				           c->nlink, (unsigned long long)c->subdirs);
			dirs++;
			continue;
		}
		if (c->parent == 0) {
			orphans++;
			if (!c->orphan)
				ck_problem(ck, where, "unnamed and not in the orphan list (leaked)");
			if (c->names)
				ck_problem(ck, where, "unlinked but still named");
			if (c->links)
				ck_problem(ck, where, "unlinked but has %u link items", c->links);
		} else {
			if (is_dir && c->names != 1)
				ck_problem(ck, where, "a directory with %u names (expected 1)", c->names);
			else if (is_dir && c->nlink != 2 + (uint64_t)c->subdirs)
				ck_problem(ck, where, "link count %u, but 2 + %llu subdirectories",
				           c->nlink, (unsigned long long)c->subdirs);
			else if (!is_dir && c->names != c->nlink)
				ck_problem(ck, where, "link count %u, but %u names", c->nlink, c->names);
			else if (!is_dir && c->links + 1 != c->names)
				ck_problem(ck, where, "%u names, %u of them in the link tree (expected %u)",
				           c->names, c->links, c->names ? c->names - 1 : 0);
			else if (!is_dir && c->in_parent != c->links_in_parent + 1)
				ck_problem(ck, where, "its primary name is not in its recorded parent %llu",
				           (unsigned long long)c->parent);
			if (is_dir)
				dirs++;
			else
				keys++;
			/* the parent chain must reach the root */
			uint64_t bad = 0;
			int r = ck_reach(ck, c, &bad);
			if (r == CK_REACH_LOOP)
				ck_problem(ck, where, "its chain of parents loops");
			else if (r == CK_REACH_BROKEN)
				ck_problem(ck, where, "ancestor %llu is missing or not a directory",
				           (unsigned long long)bad);
		}
		if (!is_dir && !c->inl && c->counted != c->pages)
			ck_problem(ck, where, "records %llu data pages, extents hold %llu",
			           (unsigned long long)c->pages, (unsigned long long)c->counted);
	}
	if (!ck_find(ck, MMS_ROOT_INO))
		ck_problem(ck, "inode 1", "the root directory is missing");
	struct mms_meta *m = &ck->env->meta;
	if (keys != m->keys || dirs != m->dirs || orphans != m->orphans)
		ck_problem(ck, "meta", "counts %llu keys, %llu directories, %llu orphans; found %llu, %llu, %llu",
		           (unsigned long long)m->keys, (unsigned long long)m->dirs, (unsigned long long)m->orphans,
		           (unsigned long long)keys, (unsigned long long)dirs, (unsigned long long)orphans);
}

int mms_check(mms_env *env, mms_problem_fn report, void *rctx, mms_progress_fn progress, void *pctx,
              uint64_t *nproblems)
{
	struct ck ck = { .env = env, .report = report, .rctx = rctx, .progress = progress, .pctx = pctx };
	struct stat st;
	int rc = 0;

	if (env->txn_active && !(env->flags & MMS_RDONLY)) {
		/* check what is committed: the open transaction's pages are not on disk */
		rc = mms_commit(env);
		if (rc)
			return rc;
	}
	ck.pages = env->meta.file_pages;
	ck.total = env->meta.tree_pages ? env->meta.tree_pages : 1;
	ck.owner = calloc(ck.pages ? ck.pages : 1, 1);
	if (!ck.owner)
		return ENOMEM;
	/* The inode table at its final size at once: grown by doubling, a
	 * hash table rehashed every entry at each step and had the kernel zero
	 * four times its final size (a third of a check of 10M keys).  The
	 * meta's counts are a hint, bounded by what the tree pages could hold
	 * (an inode item takes more than 32 bytes); a wrong one only costs
	 * growth.  Dense numbers (at most twice the inodes): an array. */
	uint64_t want = env->meta.keys + env->meta.dirs + env->meta.orphans + 1;
	/* (the counts are not trusted: the tree pages are bounded by the
	 * file's, which open checked, so that `most` cannot wrap and the
	 * doubling below ends; a damaged meta made it loop forever) */
	uint64_t tp = env->meta.tree_pages < ck.pages ? env->meta.tree_pages : ck.pages;
	uint64_t most = tp * (MMS_PAGE_SIZE / 32) + 1;
	if (want > most || want == 0)
		want = most;
	size_t cap = 1024;
	while (cap < 2 * want)
		cap *= 2;
	int direct = env->meta.next_ino <= 2 * want + 1024;
	if (direct)
		cap = (size_t)env->meta.next_ino + 1;
	if ((ck.inodes = calloc(cap, sizeof(*ck.inodes)))) {
		ck.icap = cap;
		ck.direct = direct;
	}
	for (int s = 0; s < 2; s++) {
		char where[32];
		snprintf(where, sizeof(where), "meta %d", s);
		if (env->meta_problem[s][0])
			ck_problem(&ck, where, "%s", env->meta_problem[s]);
	}
	if (fstat(env->fd, &st) == 0 && (uint64_t)st.st_size < ck.pages * MMS_PAGE_SIZE)
		ck_problem(&ck, "store file", "%llu bytes, shorter than the %llu the meta records",
		           (unsigned long long)st.st_size, (unsigned long long)(ck.pages * MMS_PAGE_SIZE));
	ck_claim(&ck, 0, MMS_META_PAGES, CK_META, "meta");
	ck.resident = mms_file_resident(env, &ck.nresident);

	static const ck_item_fn fns[MMS_NTREES] = {
		[MMS_TREE_INODE] = ck_inode_item, [MMS_TREE_NAME] = ck_name_item,
		[MMS_TREE_EXTENT] = ck_extent_item, [MMS_TREE_XATTR] = ck_xattr_item,
		[MMS_TREE_ORPHAN] = ck_orphan_item, [MMS_TREE_LINK] = ck_link_item,
		[MMS_TREE_SHARE] = ck_share_item,
	};
	/* inodes first: the other trees are checked against them; the shared
	 * pages before the extents that hold them */
	static const int order[MMS_NTREES] = {
		MMS_TREE_INODE, MMS_TREE_SHARE, MMS_TREE_NAME, MMS_TREE_EXTENT,
		MMS_TREE_XATTR, MMS_TREE_ORPHAN, MMS_TREE_LINK,
	};
	for (int i = 0; i < MMS_NTREES && !rc; i++) {
		int t = order[i];
		if (env->meta.root[t])
			rc = ck_page(&ck, t, env->meta.root[t], -1, NULL, 0, NULL, 0, fns[t], 0);
		if (t == MMS_TREE_EXTENT)
			ck_shares_done(&ck);
	}
	if (rc == ECANCELED) {
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	ck_reachability(&ck);
	/* (a free list that does not load is one problem, named once; which
	 * pages are free is then unknown, so none is called leaked) */
	int list_ok = 1;
	if (mms_alloc_list_pages(env, ck_list_page, &ck) || mms_alloc_walk(env, ck_free_run, &ck)) {
		ck_problem(&ck, "free list", "%s", mms_errdetail(env));
		list_ok = 0;
	}

	/* every page accounted for */
	for (uint64_t i = 0; list_ok && i < ck.pages;) {
		if (ck.owner[i] != CK_NONE) {
			i++;
			continue;
		}
		uint64_t j = i;
		while (j < ck.pages && ck.owner[j] == CK_NONE)
			j++;
		char where[64];
		snprintf(where, sizeof(where), "pages %llu-%llu", (unsigned long long)i, (unsigned long long)(j - 1));
		ck_problem(&ck, where, "neither in use nor free (leaked)");
		i = j;
	}
	struct mms_meta *m = &env->meta;
	if (ck.tree_pages != m->tree_pages || ck.data_pages != m->data_pages ||
	    (list_ok && ck.blob_pages != m->blob_pages))
		ck_problem(&ck, "meta", "counts %llu tree, %llu data, %llu blob pages; found %llu, %llu, %llu",
		           (unsigned long long)m->tree_pages, (unsigned long long)m->data_pages,
		           (unsigned long long)m->blob_pages, (unsigned long long)ck.tree_pages,
		           (unsigned long long)ck.data_pages, (unsigned long long)ck.blob_pages);
	if (progress)
		progress(pctx, ck.total, ck.total);
out:
	for (size_t i = 0; i < ck.nshares; i++)
		free(ck.shares[i].seen);
	free(ck.shares);
	free(ck.owner);
	free(ck.inodes);
	free(ck.resident);
	if (!rc)
		*nproblems = ck.problems;
	return rc;
}
