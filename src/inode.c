/*
 * inode.c - inodes, names, directories, directory cursors, holds and
 * orphans, symlinks and extended attributes.
 *
 * Trees used here (layout in mms_int.h, format in doc/FORMAT.md):
 *   INODE   be64 ino -> compact record (at most MMS_INODE_REC bytes) [+ inline value bytes]
 *   NAME    be64 parent, be64 hash, name -> le64 ino, le32 type bits
 *   XATTR   be64 ino, name -> kind 0 + bytes | kind 1 + le64 page, le32 len, le32 crc32c
 *   ORPHAN  be64 ino -> (empty)
 *   LINK    be64 ino, be64 dir, name -> (empty): a name other than the primary one
 *
 * Invariants kept by this module:
 *   - Every live inode but the root has at least one name, a directory
 *     exactly one.  Its record's `parent` is the directory holding its
 *     primary name; the LINK tree holds each of its other names (an inode
 *     with one name has no LINK item), and `nlink` counts them all.  So the
 *     one name not in the LINK tree is in directory `parent`, and removing
 *     it promotes a LINK item.  A directory's nlink is 2 + its
 *     subdirectories.  The root's parent is itself.  An unlinked inode still
 *     held has parent 0, nlink 0 and an ORPHAN item.
 *   - meta.keys counts named non-directories, meta.dirs named directories
 *     (the root included), meta.orphans the items of the ORPHAN tree; so the
 *     INODE tree holds exactly keys + dirs + orphans items.
 *   - Inode numbers come from meta.next_ino and are never reused.
 *   - The NAME tree's hash (mms_name_hash) is on disk: never change it.
 *
 * Modifying calls follow the engine's rule: mms_txn_enter, validate, reserve
 * space, then change; a failure after the first change poisons the
 * transaction (mms_txn_poison).
 */
#include "mms_int.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Longest NAME key: parent, hash, name. */
#define MMS_NAME_KEY_MAX (16u + MMS_NAME_MAX)
/* Bytes of a NAME value: le64 ino, le32 mode. */
#define MMS_NAME_VAL 12u
/* XATTR value kinds. */
#define MMS_XATTR_KIND_INLINE 0u
#define MMS_XATTR_KIND_BLOB 1u
#define MMS_XATTR_BLOB_VAL 17u /* kind, le64 page, le32 len, le32 crc */

/* Rewrite the record of `in` keeping the inline bytes stored with it (the
 * item is read again: page pointers do not survive modifications). */
static int mms_inode_update(mms_env *env, const struct mms_inode *in)
{
	struct mms_inode cur;
	const void *inl;
	size_t inl_len;
	uint8_t tail[MMS_INLINE_MAX];
	struct mms_inode rec = *in;
	int rc;

	rc = mms_inode_get(env, in->ino, &cur, &inl, &inl_len);
	if (rc)
		return rc;
	if (inl_len)
		memcpy(tail, inl, inl_len);
	rec.flags = (rec.flags & ~MMS_INO_INLINE) | (cur.flags & MMS_INO_INLINE);
	return mms_inode_put(env, &rec, inl ? tail : NULL, inl_len);
}

/* ns since the epoch -> timespec (floor division for times before 1970). */
static struct timespec mms_ns_to_ts(int64_t ns)
{
	struct timespec ts;
	int64_t sec = ns / 1000000000, rem = ns % 1000000000;

	if (rem < 0) {
		rem += 1000000000;
		sec--;
	}
	ts.tv_sec = (time_t)sec;
	ts.tv_nsec = (long)rem;
	return ts;
}

/* timespec -> ns, saturating at the int64 range; MMS_INVAL for a bad tv_nsec. */
static int mms_ts_to_ns(const struct timespec *ts, int64_t *ns)
{
	const int64_t lim = INT64_MAX / 1000000000 - 1;

	if (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)
		return MMS_INVAL;
	if ((int64_t)ts->tv_sec > lim)
		*ns = INT64_MAX;
	else if ((int64_t)ts->tv_sec < -lim)
		*ns = INT64_MIN;
	else
		*ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
	return 0;
}

void mms_inode_to_stat(const struct mms_inode *in, struct mms_stat *st)
{
	memset(st, 0, sizeof *st);
	st->ino = in->ino;
	st->gen = in->gen;
	st->mode = in->mode;
	st->uid = in->uid;
	st->gid = in->gid;
	st->nlink = in->nlink;
	st->size = in->size;
	/* bytes kept in the inode item take space too: a sparse-aware tool
	 * must not take a small key for a hole */
	st->blocks = (in->flags & MMS_INO_INLINE) ? in->size : in->pages * MMS_PAGE_SIZE;
	st->rdev = in->rdev;
	st->parent = in->parent;
	st->atime = mms_ns_to_ts(in->atime);
	st->mtime = mms_ns_to_ts(in->mtime);
	st->ctime = mms_ns_to_ts(in->ctime);
}

/* ---- Space reservation --------------------------------------------------------
 * A call reserves, before its first change, the pages its tree operations may
 * allocate.  The bound follows the trees' real depth rather than a fixed
 * guess, so that removing keys still works in a store that is full: one
 * operation copies its path (depth pages), may split every level and add a
 * root (depth + 1 more), and a deletion may merge into a sibling. */

/* Depth of a tree (0: empty); MMS_BT_MAXDEPTH when it cannot be read. */
static uint64_t mms_tree_depth(mms_env *env, int tree)
{
	unsigned depth;

	if (mms_bt_depth(env, tree, &depth))
		return MMS_BT_MAXDEPTH; /* damaged: the call fails later with the detail */
	return depth;
}

/* Pages an insert into `tree` may allocate: its path, a split of every
 * level and a new root. */
static uint64_t mms_cost_put(mms_env *env, int tree)
{
	return 2 * mms_tree_depth(env, tree) + 1;
}

/* Pages a deletion from `tree` may allocate: its path and, where a page
 * merges, the sibling on every level. */
static uint64_t mms_cost_del(mms_env *env, int tree)
{
	return 2 * mms_tree_depth(env, tree);
}

/* Pages rewriting an item of `tree` in place may allocate. */
static uint64_t mms_cost_upd(mms_env *env, int tree)
{
	return mms_tree_depth(env, tree) + 1;
}

/* Pages deleting inode `in` (value, xattrs, record) may allocate: its
 * extent items may span several leaves (about 100 to a page), its xattrs
 * two leaves. */
static uint64_t mms_delete_cost(mms_env *env, const struct mms_inode *in)
{
	return mms_cost_del(env, MMS_TREE_EXTENT) + in->pages / 64 +
	       mms_share_cost(env, in->pages / 64 + 1, false) +
	       2 * mms_cost_del(env, MMS_TREE_XATTR) + mms_cost_del(env, MMS_TREE_INODE);
}

/* Pages unlinking inode `in` may allocate: freeing it, or if it is held,
 * making it an orphan (record update and ORPHAN item). */
static uint64_t mms_unlink_cost(mms_env *env, const struct mms_inode *in);

/* ---- Names -------------------------------------------------------------- */

uint64_t mms_name_hash(const char *name, size_t len)
{
	/* FNV-1a 64, then the splitmix64 finalizer to spread the bits.  On disk:
	 * never change. */
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)name[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

int mms_name_valid(const char *name, size_t len)
{
	if (len == 0)
		return MMS_BADNAME;
	if (len > MMS_NAME_MAX)
		return MMS_NAMETOOLONG;
	if (!name)
		return MMS_INVAL;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return MMS_BADNAME;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return MMS_BADNAME;
	return 0;
}

size_t mms_name_key(uint8_t *key, uint64_t parent, const char *name, size_t len)
{
	mms_put_be64(key, parent);
	mms_put_be64(key + 8, mms_name_hash(name, len));
	memcpy(key + 16, name, len);
	return 16 + len;
}

/* Find `name` in directory `dir` (not checked to be a directory). */
/* `for_write`: the caller is a modifying call that will insert near this
 * key (see mms_bt_get_w); read-only calls, which may run concurrently,
 * pass 0. */
/* mms_name_find with the NAME key already built (key, klen). */
static int mms_name_find_k(mms_env *env, uint64_t dir, const char *name, size_t len,
                           const uint8_t *key, size_t klen, uint64_t *ino, uint32_t *mode,
                           int for_write)
{
	const void *val;
	size_t vlen;
	int rc;

	rc = for_write ? mms_bt_get_w(env, MMS_TREE_NAME, key, klen, &val, &vlen)
	               : mms_bt_get(env, MMS_TREE_NAME, key, klen, &val, &vlen);
	if (rc)
		return rc;
	if (vlen != MMS_NAME_VAL)
		return mms_fail(env, MMS_CORRUPT, "directory %llu, name '%.*s': entry of %zu bytes, expected %u",
		                (unsigned long long)dir, (int)len, name, vlen, MMS_NAME_VAL);
	*ino = mms_get_le64(val);
	*mode = mms_get_le32((const uint8_t *)val + 8);
	return 0;
}

static int mms_name_find(mms_env *env, uint64_t dir, const char *name, size_t len,
                         uint64_t *ino, uint32_t *mode, int for_write)
{
	uint8_t key[MMS_NAME_KEY_MAX];
	size_t klen = mms_name_key(key, dir, name, len);
	return mms_name_find_k(env, dir, name, len, key, klen, ino, mode, for_write);
}

static int mms_name_get(mms_env *env, uint64_t dir, const char *name, size_t len,
                        uint64_t *ino, uint32_t *mode)
{
	return mms_name_find(env, dir, name, len, ino, mode, 0);
}

/* Write the NAME item of key (key, klen) for inode ino of this mode. */
static int mms_name_put_k(mms_env *env, const uint8_t *key, size_t klen, uint64_t ino,
                          uint32_t mode)
{
	uint8_t val[MMS_NAME_VAL];

	mms_put_le64(val, ino);
	mms_put_le32(val + 8, mode & S_IFMT);
	return mms_bt_put(env, MMS_TREE_NAME, key, klen, val, sizeof val);
}

static int mms_name_put(mms_env *env, uint64_t dir, const char *name, size_t len,
                        uint64_t ino, uint32_t mode)
{
	uint8_t key[MMS_NAME_KEY_MAX];
	size_t klen = mms_name_key(key, dir, name, len);
	return mms_name_put_k(env, key, klen, ino, mode);
}

static int mms_name_del(mms_env *env, uint64_t dir, const char *name, size_t len)
{
	uint8_t key[MMS_NAME_KEY_MAX];
	size_t klen = mms_name_key(key, dir, name, len);

	return mms_bt_del(env, MMS_TREE_NAME, key, klen);
}

/* ---- Hard links ----------------------------------------------------------- */

/* Build the LINK key of (ino, dir, name) into key; returns its length. */
static size_t mms_link_key(uint8_t *key, uint64_t ino, uint64_t dir, const char *name, size_t len)
{
	mms_put_be64(key, ino);
	mms_put_be64(key + 8, dir);
	memcpy(key + 16, name, len);
	return 16 + len;
}

static int mms_link_put(mms_env *env, uint64_t ino, uint64_t dir, const char *name, size_t len)
{
	uint8_t key[MMS_NAME_KEY_MAX];

	return mms_bt_put(env, MMS_TREE_LINK, key, mms_link_key(key, ino, dir, name, len), "", 0);
}

/* Delete the LINK item (ino, dir, name): MMS_NOTFOUND, changing nothing,
 * if it is not there (the name is the inode's primary one). */
static int mms_link_del(mms_env *env, uint64_t ino, uint64_t dir, const char *name, size_t len)
{
	uint8_t key[MMS_NAME_KEY_MAX];

	return mms_bt_del(env, MMS_TREE_LINK, key, mms_link_key(key, ino, dir, name, len));
}

/* Remove the first LINK item of `ino`; *dir gets its directory.
 * MMS_NOTFOUND if there is none. */
static int mms_link_pop(mms_env *env, uint64_t ino, uint64_t *dir)
{
	struct mms_bt_cursor c;
	uint8_t prefix[8], key[MMS_NAME_KEY_MAX];
	const void *k, *v;
	size_t klen, vlen;
	int rc;

	mms_put_be64(prefix, ino);
	rc = mms_bt_seek(&c, env, MMS_TREE_LINK, prefix, sizeof prefix, MMS_BT_GE);
	if (rc)
		return rc;
	mms_bt_item(&c, &k, &klen, &v, &vlen);
	if (klen < 8 || memcmp(k, prefix, 8) != 0)
		return MMS_NOTFOUND;
	if (klen <= 16 || klen > sizeof key)
		return mms_fail(env, MMS_CORRUPT, "inode %llu: link item key of %zu bytes",
		                (unsigned long long)ino, klen);
	memcpy(key, k, klen);
	*dir = mms_get_be64(key + 8);
	return mms_bt_del(env, MMS_TREE_LINK, key, klen);
}

/* Read directory `dir`: MMS_NOTFOUND, MMS_NOTDIR.  With `live`, an unlinked
 * directory (still held) counts as absent: nothing may be created in it. */
static int mms_dir_get(mms_env *env, uint64_t dir, struct mms_inode *in, int live)
{
	int rc = mms_inode_get(env, dir, in, NULL, NULL);

	if (rc)
		return rc;
	if (!S_ISDIR(in->mode))
		return MMS_NOTDIR;
	if (live && in->parent == 0)
		return MMS_NOTFOUND;
	return 0;
}

/*
 * The inode named `name` in directory `parent`.  Only directories hold
 * names, so the parent is read only to explain a miss (MMS_NOTDIR, or
 * MMS_NOTFOUND for a missing directory or name): a hit costs two look-ups.
 */
static int mms_child_get_inl(mms_env *env, uint64_t parent, const char *name, size_t len,
                             struct mms_inode *in, const void **inl, size_t *inl_len)
{
	struct mms_inode dir;
	uint64_t ino;
	uint32_t mode;
	int rc = mms_name_valid(name, len);

	if (rc)
		return rc;
	rc = mms_name_get(env, parent, name, len, &ino, &mode);
	if (rc == MMS_NOTFOUND) {
		int drc = mms_dir_get(env, parent, &dir, 0);
		return drc ? drc : MMS_NOTFOUND;
	}
	if (rc)
		return rc;
	rc = mms_inode_get(env, ino, in, inl, inl_len);
	if (rc == MMS_NOTFOUND)
		return mms_fail(env, MMS_CORRUPT, "directory %llu, name '%.*s': inode %llu is missing",
		                (unsigned long long)parent, (int)len, name, (unsigned long long)ino);
	return rc;
}

static int mms_child_get(mms_env *env, uint64_t parent, const char *name, size_t len,
                         struct mms_inode *in)
{
	return mms_child_get_inl(env, parent, name, len, in, NULL, NULL);
}

/* 0 if directory `dir` has no entries, MMS_NOTEMPTY if it has. */
static int mms_dir_empty(mms_env *env, uint64_t dir)
{
	struct mms_bt_cursor c;
	uint8_t key[8];
	const void *k, *v;
	size_t klen, vlen;
	int rc;

	mms_put_be64(key, dir);
	rc = mms_bt_seek(&c, env, MMS_TREE_NAME, key, sizeof key, MMS_BT_GE);
	if (rc == MMS_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	mms_bt_item(&c, &k, &klen, &v, &vlen);
	if (klen >= 8 && memcmp(k, key, 8) == 0)
		return MMS_NOTEMPTY;
	return 0;
}

/* Set a directory's mtime and ctime (it gained or lost an entry) and add
 * `subdirs` (+1, 0 or -1) to its link count. */
static int mms_dir_touch(mms_env *env, uint64_t dir, int64_t now, int subdirs)
{
	struct mms_inode in;
	int rc = mms_inode_get(env, dir, &in, NULL, NULL);

	if (rc)
		return rc;
	uint32_t nlink = in.nlink;
	/* a count already wrong stays at 2 (mmstore check reports it) */
	if (subdirs < 0 && in.nlink > 2)
		in.nlink--;
	else if (subdirs > 0 && in.nlink < UINT32_MAX)
		in.nlink++;
	if (in.mtime == now && in.ctime == now && in.nlink == nlink)
		return 0; /* unchanged (times are ticks: mms_now_ns) */
	in.mtime = now;
	in.ctime = now;
	return mms_inode_update(env, &in);
}

/* ---- Holds -------------------------------------------------------------- */

struct mms_hold_ent {
	uint64_t ino;
	uint64_t count;
	struct mms_hold_ent *next;
};

struct mms_holds {
	size_t nbuckets; /* power of two */
	size_t count;    /* entries */
	struct mms_hold_ent **bucket;
};

static size_t mms_holds_slot(const struct mms_holds *h, uint64_t ino)
{
	uint64_t x = ino * 0x9e3779b97f4a7c15ull;

	return (size_t)(x >> 32) & (h->nbuckets - 1);
}

static struct mms_hold_ent *mms_holds_find(const mms_env *env, uint64_t ino)
{
	const struct mms_holds *h = env->holds;

	if (!h || !h->nbuckets)
		return NULL;
	for (struct mms_hold_ent *e = h->bucket[mms_holds_slot(h, ino)]; e; e = e->next)
		if (e->ino == ino)
			return e;
	return NULL;
}

/* Nonzero if inode `ino` is held. */
static int mms_is_held(const mms_env *env, uint64_t ino)
{
	return mms_holds_find(env, ino) != NULL;
}

static int mms_holds_grow(struct mms_holds *h)
{
	size_t n = h->nbuckets ? h->nbuckets * 2 : 64;
	struct mms_hold_ent **b = calloc(n, sizeof *b);
	struct mms_holds nh = { n, h->count, b };

	if (!b)
		return ENOMEM;
	for (size_t i = 0; i < h->nbuckets; i++) {
		struct mms_hold_ent *e = h->bucket[i], *next;

		for (; e; e = next) {
			size_t s = mms_holds_slot(&nh, e->ino);

			next = e->next;
			e->next = b[s];
			b[s] = e;
		}
	}
	free(h->bucket);
	*h = nh;
	return 0;
}

void mms_holds_free(mms_env *env)
{
	struct mms_holds *h = env->holds;

	if (!h)
		return;
	for (size_t i = 0; i < h->nbuckets; i++) {
		struct mms_hold_ent *e = h->bucket[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(h->bucket);
	free(h);
	env->holds = NULL;
}

static uint64_t mms_unlink_cost(mms_env *env, const struct mms_inode *in)
{
	if (!S_ISDIR(in->mode) && in->nlink > 1)
		return mms_cost_upd(env, MMS_TREE_INODE) + 2 * mms_cost_del(env, MMS_TREE_LINK);
	if (mms_is_held(env, in->ino))
		return mms_cost_upd(env, MMS_TREE_INODE) + mms_cost_put(env, MMS_TREE_ORPHAN);
	return mms_delete_cost(env, in);
}

/* ---- Deleting inodes ------------------------------------------------------ */

/* Free the value of an xattr item (a blob), checking its bounds first. */
static int mms_xattr_free_value(mms_env *env, uint64_t ino, const void *k, size_t klen,
                                const uint8_t *v, size_t vlen)
{
	uint64_t pg;
	uint32_t len;
	int rc;

	if (vlen < 1)
		return mms_fail(env, MMS_CORRUPT, "inode %llu, xattr '%.*s': empty item",
		                (unsigned long long)ino, (int)(klen - 8), (const char *)k + 8);
	if (v[0] == MMS_XATTR_KIND_INLINE)
		return 0;
	if (v[0] != MMS_XATTR_KIND_BLOB || vlen != MMS_XATTR_BLOB_VAL)
		return mms_fail(env, MMS_CORRUPT, "inode %llu, xattr '%.*s': bad item kind %u, %zu bytes",
		                (unsigned long long)ino, (int)(klen - 8), (const char *)k + 8, v[0], vlen);
	pg = mms_get_le64(v + 1);
	len = mms_get_le32(v + 9);
	if (len > MMS_XATTR_VALUE_MAX)
		return mms_fail(env, MMS_CORRUPT, "inode %llu, xattr '%.*s': value of %u bytes",
		                (unsigned long long)ino, (int)(klen - 8), (const char *)k + 8, len);
	rc = mms_check_run(env, pg, (len + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE, "xattr value");
	if (rc)
		return rc;
	mms_blob_free(env, pg, len);
	return 0;
}

/* Delete every xattr of inode `ino`, freeing blob values. */
static int mms_xattrs_delete_all(mms_env *env, uint64_t ino)
{
	uint8_t prefix[8];
	uint8_t key[MMS_BT_KEY_MAX];
	int rc;

	mms_put_be64(prefix, ino);
	for (;;) {
		struct mms_bt_cursor c;
		const void *k, *v;
		size_t klen, vlen;

		rc = mms_bt_seek(&c, env, MMS_TREE_XATTR, prefix, sizeof prefix, MMS_BT_GE);
		if (rc == MMS_NOTFOUND)
			return 0;
		if (rc)
			return rc;
		mms_bt_item(&c, &k, &klen, &v, &vlen);
		if (klen < 8 || memcmp(k, prefix, 8) != 0)
			return 0;
		if (klen == 8 || klen > MMS_BT_KEY_MAX)
			return mms_fail(env, MMS_CORRUPT, "inode %llu: xattr key of %zu bytes",
			                (unsigned long long)ino, klen);
		memcpy(key, k, klen);
		rc = mms_xattr_free_value(env, ino, k, klen, v, vlen);
		if (rc)
			return rc;
		rc = mms_bt_del(env, MMS_TREE_XATTR, key, klen);
		if (rc)
			return rc;
	}
}

/* Delete inode `ino` with its value and xattrs (the name is already gone).
 * Counters are the caller's. */
static int mms_inode_delete(mms_env *env, struct mms_inode *in)
{
	int rc;

	rc = mms_data_free_all(env, in);
	if (rc)
		return rc;
	rc = mms_xattrs_delete_all(env, in->ino);
	if (rc)
		return rc;
	return mms_inode_del(env, in->ino);
}

static void mms_count_dec(uint64_t *counter)
{
	if (*counter)
		(*counter)--;
}

/* The inode lost its last name (already removed from the NAME tree): free it,
 * or if it is held make it an orphan that the last release frees. */
static int mms_inode_unlinked(mms_env *env, struct mms_inode *in, int64_t now)
{
	uint8_t key[8];
	int rc;

	if (S_ISDIR(in->mode))
		mms_count_dec(&env->meta.dirs);
	else
		mms_count_dec(&env->meta.keys);
	if (!mms_is_held(env, in->ino))
		return mms_inode_delete(env, in);
	in->parent = 0;
	in->nlink = 0;
	in->ctime = now;
	rc = mms_inode_update(env, in);
	if (rc)
		return rc;
	mms_put_be64(key, in->ino);
	rc = mms_bt_put(env, MMS_TREE_ORPHAN, key, sizeof key, "", 0);
	if (rc)
		return rc;
	env->meta.orphans++;
	return 0;
}

/*
 * Name `name` of directory `dir` no longer names `in` (already removed from
 * the NAME tree).  An inode with other names loses this one (a LINK item,
 * or if it was the primary name, a LINK item becomes the primary one);
 * at its last name it is unlinked (mms_inode_unlinked).
 */
static int mms_name_gone(mms_env *env, struct mms_inode *in, uint64_t dir, const char *name,
                         size_t len, int64_t now)
{
	int rc;

	if (S_ISDIR(in->mode) || in->nlink <= 1)
		return mms_inode_unlinked(env, in, now);
	rc = mms_link_del(env, in->ino, dir, name, len);
	if (rc == MMS_NOTFOUND) {
		uint64_t other;

		rc = mms_link_pop(env, in->ino, &other);
		if (rc == MMS_NOTFOUND)
			rc = mms_damaged(env, "inode %llu has link count %u but no name besides "
			                 "its primary one", (unsigned long long)in->ino, in->nlink);
		if (rc)
			return rc;
		in->parent = other;
	} else if (rc) {
		return rc;
	}
	in->nlink--;
	in->ctime = now;
	return mms_inode_update(env, in);
}

/* Name (from, fromname) of `in` becomes (to, toname), the NAME tree
 * already changed: a LINK item moves, or the primary name's directory
 * changes.  The caller writes the record. */
static int mms_name_moved(mms_env *env, struct mms_inode *in, uint64_t from,
                          const char *fromname, size_t fromlen, uint64_t to,
                          const char *toname, size_t tolen)
{
	if (!S_ISDIR(in->mode) && in->nlink > 1) {
		int rc = mms_link_del(env, in->ino, from, fromname, fromlen);

		if (rc == 0)
			return mms_link_put(env, in->ino, to, toname, tolen);
		if (rc != MMS_NOTFOUND)
			return rc;
	}
	in->parent = to;
	return 0;
}

/* Delete orphan `ino`: its inode (if present) and its ORPHAN item. */
static int mms_orphan_free(mms_env *env, uint64_t ino)
{
	struct mms_inode in;
	uint8_t key[8];
	int rc;

	rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc == 0)
		rc = mms_inode_delete(env, &in);
	else if (rc == MMS_NOTFOUND)
		rc = 0;
	if (rc)
		return rc;
	mms_put_be64(key, ino);
	rc = mms_bt_del(env, MMS_TREE_ORPHAN, key, sizeof key);
	if (rc)
		return rc;
	mms_count_dec(&env->meta.orphans);
	return 0;
}

/* Pages freeing orphan `ino` may allocate. */
static uint64_t mms_orphan_cost(mms_env *env, uint64_t ino)
{
	struct mms_inode in;

	memset(&in, 0, sizeof in);
	if (mms_inode_get(env, ino, &in, NULL, NULL))
		in.pages = 0;
	return mms_delete_cost(env, &in) + mms_cost_del(env, MMS_TREE_ORPHAN);
}

int mms_orphans_reclaim(mms_env *env)
{
	int entered = 0;
	int rc;

	for (;;) {
		struct mms_bt_cursor c;
		const void *k, *v;
		size_t klen, vlen;
		uint64_t ino;

		rc = mms_bt_first(&c, env, MMS_TREE_ORPHAN);
		if (rc == MMS_NOTFOUND)
			return 0;
		if (rc)
			goto fail;
		mms_bt_item(&c, &k, &klen, &v, &vlen);
		if (klen != 8) {
			rc = mms_fail(env, MMS_CORRUPT, "orphan tree: key of %zu bytes", klen);
			goto fail;
		}
		ino = mms_get_be64(k);
		if (!entered) {
			rc = mms_txn_enter(env);
			if (rc)
				return rc;
			entered = 1;
		}
		if (mms_is_held(env, ino))
			return 0; /* cannot happen at open; never free a held inode */
		/* An orphan is an unlinked inode.  One that is still named is a
		 * damaged orphan list: freeing it would delete a live key. */
		struct mms_inode oin;
		rc = mms_inode_get(env, ino, &oin, NULL, NULL);
		if (rc == MMS_NOTFOUND)
			rc = 0; /* mms_orphan_free drops the stray item */
		else if (rc == 0 && oin.parent != 0)
			rc = mms_fail(env, MMS_CORRUPT,
			              "the orphan list names inode %llu, which is still named in "
			              "directory %llu: the list is damaged (nothing was changed; open "
			              "the store read-only, or see mmstore check)",
			              (unsigned long long)ino, (unsigned long long)oin.parent);
		if (rc)
			goto fail;
		rc = mms_reserve_free(env, mms_orphan_cost(env, ino));
		if (rc)
			goto fail;
		rc = mms_orphan_free(env, ino);
		if (rc)
			goto fail;
	}
fail:
	if (entered)
		mms_txn_poison(env);
	return rc;
}

int mms_hold(mms_env *env, uint64_t ino)
{
	struct mms_inode in;
	struct mms_hold_ent *e;
	struct mms_holds *h;
	size_t s;
	int rc;

	rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc)
		return rc;
	e = mms_holds_find(env, ino);
	if (e) {
		e->count++;
		return 0;
	}
	if (!env->holds) {
		h = calloc(1, sizeof *h);
		if (!h)
			return ENOMEM;
		env->holds = h;
	}
	h = env->holds;
	if (h->count >= h->nbuckets) {
		rc = mms_holds_grow(h);
		if (rc)
			return rc;
	}
	e = malloc(sizeof *e);
	if (!e)
		return ENOMEM;
	e->ino = ino;
	e->count = 1;
	s = mms_holds_slot(h, ino);
	e->next = h->bucket[s];
	h->bucket[s] = e;
	h->count++;
	return 0;
}

int mms_release(mms_env *env, uint64_t ino)
{
	struct mms_holds *h = env->holds;
	struct mms_hold_ent **pp, *e;
	uint8_t key[8];
	const void *v;
	size_t vlen;
	int rc;

	if (!h || !h->nbuckets)
		return mms_fail(env, MMS_INVAL, "release of inode %llu, which is not held",
		                (unsigned long long)ino);
	for (pp = &h->bucket[mms_holds_slot(h, ino)]; *pp; pp = &(*pp)->next)
		if ((*pp)->ino == ino)
			break;
	e = *pp;
	if (!e)
		return mms_fail(env, MMS_INVAL, "release of inode %llu, which is not held",
		                (unsigned long long)ino);
	if (--e->count > 0)
		return 0;
	*pp = e->next;
	free(e);
	h->count--;

	/* The last hold is gone: free the inode if it is an orphan.  A read-only
	 * env leaves orphans to the next read-write open.  The hold is dropped
	 * even if freeing fails: the orphan then stays in the ORPHAN tree and
	 * the next read-write open frees it. */
	if (env->flags & MMS_RDONLY)
		return 0;
	mms_put_be64(key, ino);
	rc = mms_bt_get(env, MMS_TREE_ORPHAN, key, sizeof key, &v, &vlen);
	if (rc == MMS_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	rc = mms_reserve_free(env, mms_orphan_cost(env, ino));
	if (rc)
		return rc;
	rc = mms_orphan_free(env, ino);
	if (rc)
		mms_txn_poison(env);
	return rc;
}

/* ---- Lookups ------------------------------------------------------------- */

int mms_lookup(mms_env *env, uint64_t parent, const char *name, size_t len,
               struct mms_stat *st)
{
	struct mms_inode in;
	int rc = mms_child_get(env, parent, name, len, &in);

	if (rc)
		return rc;
	if (st)
		mms_inode_to_stat(&in, st);
	return 0;
}

/* The regular file `name` of `parent` with its inline bytes: MMS_ISDIR,
 * MMS_INVAL for another type. */
static int mms_get_file(mms_env *env, uint64_t parent, const char *name, size_t len,
                        struct mms_inode *in, const void **inl, size_t *inl_len)
{
	int rc = mms_child_get_inl(env, parent, name, len, in, inl, inl_len);
	if (rc)
		return rc;
	if (S_ISDIR(in->mode))
		return MMS_ISDIR;
	return S_ISREG(in->mode) ? 0 : MMS_INVAL;
}

int mms_get(mms_env *env, uint64_t parent, const char *name, size_t len, void *buf,
            size_t bufsize, size_t *vlen, struct mms_stat *st)
{
	struct mms_inode in;
	const void *inl;
	size_t inl_len, n;
	int rc = mms_get_file(env, parent, name, len, &in, &inl, &inl_len);

	if (!rc && bufsize && !buf)
		rc = MMS_INVAL;
	if (!rc)
		rc = mms_data_get(env, &in, inl, inl_len, buf, bufsize, &n);
	if (rc)
		return rc;
	if (vlen)
		*vlen = (size_t)in.size;
	if (st)
		mms_inode_to_stat(&in, st);
	return 0;
}

int mms_get_ref(mms_env *env, uint64_t parent, const char *name, size_t len,
                const void **data, size_t *vlen, struct mms_stat *st)
{
	struct mms_inode in;
	const void *inl, *p;
	size_t inl_len;
	int rc = mms_get_file(env, parent, name, len, &in, &inl, &inl_len);

	if (!rc)
		rc = mms_data_ref(env, &in, inl, inl_len, &p);
	if (rc)
		return rc;
	*data = p;
	if (vlen)
		*vlen = (size_t)in.size;
	if (st)
		mms_inode_to_stat(&in, st);
	return 0;
}

int mms_getattr(mms_env *env, uint64_t ino, struct mms_stat *st)
{
	struct mms_inode in;
	int rc = mms_inode_get(env, ino, &in, NULL, NULL);

	if (rc)
		return rc;
	if (st)
		mms_inode_to_stat(&in, st);
	return 0;
}

int mms_resolve(mms_env *env, const char *path, size_t len, struct mms_stat *st)
{
	uint64_t cur = MMS_ROOT_INO;
	uint32_t curmode = S_IFDIR;
	size_t i = 0;
	int rc;

	if (len > MMS_PATH_MAX)
		return MMS_NAMETOOLONG;
	if (!path && len)
		return MMS_INVAL;
	while (i < len) {
		size_t s, n;

		while (i < len && path[i] == '/')
			i++;
		if (i == len)
			break;
		s = i;
		while (i < len && path[i] != '/')
			i++;
		n = i - s;
		rc = mms_name_valid(path + s, n);
		if (rc)
			return rc;
		if (!S_ISDIR(curmode))
			return MMS_NOTDIR;
		rc = mms_name_get(env, cur, path + s, n, &cur, &curmode);
		if (rc)
			return rc;
	}
	return mms_getattr(env, cur, st);
}

/* ---- Creating ------------------------------------------------------------ */

/* Create an inode of `mode` named `name` in `parent`; *out gets it. */
static int mms_create(mms_env *env, uint64_t parent, const char *name, size_t len,
                      uint32_t mode, uint64_t rdev, uint32_t uid, uint32_t gid,
                      uint64_t extra_pages, const void *inl, size_t inl_len,
                      struct mms_inode *out)
{
	struct mms_inode dir, in;
	uint64_t ino;
	uint32_t m;
	int64_t now;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	rc = mms_pager_spill(env); /* a top-level call: nothing points into dirty pages */
	if (rc)
		return rc;
	rc = mms_name_valid(name, len);
	if (rc)
		return rc;
	rc = mms_dir_get(env, parent, &dir, 1);
	if (rc)
		return rc;
	uint8_t nkey[MMS_NAME_KEY_MAX]; /* built once for the check and the put */
	size_t nklen = mms_name_key(nkey, parent, name, len);
	rc = mms_name_find_k(env, parent, name, len, nkey, nklen, &ino, &m, 1);
	if (rc == 0)
		return MMS_EXISTS;
	if (rc != MMS_NOTFOUND)
		return rc;
	/* (the directory's update, reserved now, is written at the commit) */
	uint64_t dir_cost = mms_cost_upd(env, MMS_TREE_INODE);
	rc = mms_reserve(env, mms_cost_put(env, MMS_TREE_INODE) + dir_cost +
	                 mms_cost_put(env, MMS_TREE_NAME) + extra_pages);
	if (rc)
		return rc;

	now = mms_now_ns();
	memset(&in, 0, sizeof in);
	in.ino = env->meta.next_ino++;
	in.mode = mode & (S_IFMT | 07777);
	in.uid = uid;
	in.gid = gid;
	in.gen = (uint32_t)env->meta.generation + 1;
	in.atime = in.mtime = in.ctime = now;
	in.parent = parent;
	in.nlink = mms_nlink_implied(in.mode, parent);
	in.rdev = rdev;
	in.size = inl_len;
	rc = mms_inode_put(env, &in, inl_len ? inl : NULL, inl_len);
	if (rc)
		goto fail;
	rc = mms_name_put_k(env, nkey, nklen, in.ino, in.mode);
	if (rc)
		goto fail;
	/* the directory read above: no need to look it up again; its record
	 * is written once for a run of creates in it (at the commit), and not
	 * at all when it already holds these times (mms_now_ns: a tick) */
	int subdir = S_ISDIR(in.mode) && dir.nlink < UINT32_MAX;
	if (subdir || dir.mtime != now || dir.ctime != now) {
		dir.mtime = dir.ctime = now;
		dir.nlink += subdir;
		rc = mms_inode_defer(env, &dir, dir_cost);
		if (rc)
			goto fail;
	}
	if (S_ISDIR(in.mode))
		env->meta.dirs++;
	else
		env->meta.keys++;
	*out = in;
	return 0;
fail:
	mms_txn_poison(env);
	return rc;
}

int mms_inode_create_root(mms_env *env)
{
	struct mms_inode in;
	int64_t now;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	rc = mms_inode_get(env, MMS_ROOT_INO, &in, NULL, NULL);
	if (rc == 0)
		return MMS_EXISTS;
	if (rc != MMS_NOTFOUND)
		return rc;
	rc = mms_reserve(env, mms_cost_put(env, MMS_TREE_INODE));
	if (rc)
		return rc;
	now = mms_now_ns();
	memset(&in, 0, sizeof in);
	in.ino = MMS_ROOT_INO;
	in.mode = S_IFDIR | 0755;
	in.uid = (uint32_t)geteuid();
	in.gid = (uint32_t)getegid();
	in.gen = (uint32_t)env->meta.generation + 1;
	in.atime = in.mtime = in.ctime = now;
	in.parent = MMS_ROOT_INO; /* the root's ".." is itself */
	in.nlink = 2;
	rc = mms_inode_put(env, &in, NULL, 0);
	if (rc) {
		mms_txn_poison(env);
		return rc;
	}
	if (env->meta.next_ino <= MMS_ROOT_INO)
		env->meta.next_ino = MMS_ROOT_INO + 1;
	env->meta.dirs++;
	return 0;
}

int mms_mkdev(mms_env *env, uint64_t parent, const char *name, size_t len,
              uint32_t mode, uint64_t rdev, uint32_t uid, uint32_t gid, struct mms_stat *st)
{
	struct mms_inode in;
	int rc;

	switch (mode & S_IFMT) {
	case S_IFCHR:
	case S_IFBLK:
		break;
	case S_IFREG:
	case S_IFDIR:
	case S_IFIFO:
	case S_IFSOCK:
		rdev = 0;
		break;
	default:
		rc = mms_txn_enter(env);
		return rc ? rc : MMS_INVAL;
	}
	rc = mms_create(env, parent, name, len, mode, rdev, uid, gid, 0, NULL, 0, &in);
	if (rc)
		return rc;
	if (st)
		mms_inode_to_stat(&in, st);
	return 0;
}

int mms_mknod(mms_env *env, uint64_t parent, const char *name, size_t len,
              uint32_t mode, uint32_t uid, uint32_t gid, struct mms_stat *st)
{
	if (S_ISCHR(mode) || S_ISBLK(mode)) {
		int rc = mms_txn_enter(env);
		return rc ? rc : MMS_INVAL; /* a device needs its number: mms_mkdev */
	}
	return mms_mkdev(env, parent, name, len, mode, 0, uid, gid, st);
}

int mms_link(mms_env *env, uint64_t ino, uint64_t parent, const char *name, size_t len,
             struct mms_stat *st)
{
	struct mms_inode in, dir;
	uint64_t other;
	uint32_t m;
	int64_t now;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	rc = mms_name_valid(name, len);
	if (rc)
		return rc;
	rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc)
		return rc;
	if (S_ISDIR(in.mode))
		return MMS_XDEV;
	if (in.parent == 0)
		return MMS_NOTFOUND; /* unlinked: linkat(2) of an O_TMPFILE aside, ENOENT */
	if (in.nlink >= MMS_NLINK_MAX)
		return MMS_MLINK;
	rc = mms_dir_get(env, parent, &dir, 1);
	if (rc)
		return rc;
	rc = mms_name_find(env, parent, name, len, &other, &m, 1);
	if (rc == 0)
		return MMS_EXISTS;
	if (rc != MMS_NOTFOUND)
		return rc;
	rc = mms_reserve(env, mms_cost_put(env, MMS_TREE_NAME) + mms_cost_put(env, MMS_TREE_LINK) +
	                 2 * mms_cost_upd(env, MMS_TREE_INODE));
	if (rc)
		return rc;
	now = mms_now_ns();
	rc = mms_name_put(env, parent, name, len, ino, in.mode);
	if (!rc)
		rc = mms_link_put(env, ino, parent, name, len);
	if (!rc) {
		in.nlink++;
		in.ctime = now;
		rc = mms_inode_update(env, &in);
	}
	if (!rc) {
		/* the directory read above: no need to look it up again */
		dir.mtime = dir.ctime = now;
		rc = mms_inode_put(env, &dir, NULL, 0);
	}
	if (rc) {
		mms_txn_poison(env);
		return rc;
	}
	if (st)
		mms_inode_to_stat(&in, st);
	return 0;
}

int mms_mkdir(mms_env *env, uint64_t parent, const char *name, size_t len,
              uint32_t mode, uint32_t uid, uint32_t gid, struct mms_stat *st)
{
	return mms_mknod(env, parent, name, len, S_IFDIR | (mode & 07777), uid, gid, st);
}

/* Write the bytes of an empty inode this call made (or emptied), then its
 * attributes into *st (may be NULL).  The call has changed the store
 * already: a failure poisons the transaction. */
static int mms_fill(mms_env *env, uint64_t ino, const void *data, size_t dlen, struct mms_stat *st)
{
	struct mms_inode in;
	int rc = dlen ? mms_write(env, ino, data, dlen, 0) : 0;

	if (!rc)
		rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc) {
		mms_txn_poison(env);
		return rc;
	}
	if (st)
		mms_inode_to_stat(&in, st);
	return 0;
}

int mms_symlink(mms_env *env, uint64_t parent, const char *name, size_t len,
                const char *target, size_t tlen, uint32_t uid, uint32_t gid,
                struct mms_stat *st)
{
	struct mms_inode in;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	if (tlen == 0 || !target)
		return MMS_INVAL;
	if (tlen > MMS_SYMLINK_MAX)
		return MMS_NAMETOOLONG;
	if (memchr(target, '\0', tlen))
		return MMS_INVAL;
	if (tlen <= MMS_INLINE_MAX) {
		rc = mms_create(env, parent, name, len, S_IFLNK | 0777, 0, uid, gid, 0, target, tlen, &in);
		if (rc == 0 && st)
			mms_inode_to_stat(&in, st);
		return rc;
	}
	rc = mms_create(env, parent, name, len, S_IFLNK | 0777, 0, uid, gid,
	                mms_cost_put(env, MMS_TREE_EXTENT) + mms_cost_upd(env, MMS_TREE_INODE) +
	                (tlen + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE, NULL, 0, &in);
	if (rc)
		return rc;
	return mms_fill(env, in.ino, target, tlen, st);
}

int mms_put(mms_env *env, uint64_t parent, const char *name, size_t len, const void *data,
            size_t dlen, uint32_t mode, uint32_t uid, uint32_t gid, struct mms_stat *st)
{
	struct mms_inode in;
	uint64_t pages = (dlen + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE;
	int rc = mms_txn_enter(env);

	if (rc)
		return rc;
	if (dlen && !data)
		return MMS_INVAL;
	if ((uint64_t)dlen > MMS_SIZE_MAX)
		return MMS_TOOBIG;
	/* a new key first (the common case: one look-up of the name); small
	 * bytes go into the inode item as it is made */
	if (dlen <= MMS_INLINE_MAX) {
		rc = mms_create(env, parent, name, len, S_IFREG | (mode & 07777), 0, uid, gid, 0,
		                data, dlen, &in);
		if (rc == 0 && st)
			mms_inode_to_stat(&in, st);
		if (rc != MMS_EXISTS)
			return rc;
	} else {
		rc = mms_create(env, parent, name, len, S_IFREG | (mode & 07777), 0, uid, gid,
		                pages + 4 * mms_cost_put(env, MMS_TREE_EXTENT) + mms_cost_upd(env, MMS_TREE_INODE),
		                NULL, 0, &in);
		if (rc == 0)
			goto write; /* created empty, with room for the bytes reserved */
		if (rc != MMS_EXISTS)
			return rc;
	}
	/* the name exists: replace the bytes of a regular file */
	rc = mms_child_get(env, parent, name, len, &in);
	if (rc)
		return rc;
	if (S_ISDIR(in.mode))
		return MMS_ISDIR;
	if (!S_ISREG(in.mode))
		return MMS_INVAL;
	/* room for the new bytes before the old ones go, so a full store fails
	 * here with nothing changed */
	rc = mms_reserve(env, pages + 4 * mms_cost_put(env, MMS_TREE_EXTENT) +
	                 2 * mms_cost_upd(env, MMS_TREE_INODE));
	if (rc)
		return rc;
	rc = mms_truncate(env, in.ino, 0);
	if (rc)
		goto fail;
write:
	return mms_fill(env, in.ino, data, dlen, st);
fail:
	mms_txn_poison(env);
	return rc;
}

int mms_readlink(mms_env *env, uint64_t ino, char *buf, size_t bufsize, size_t *lenp)
{
	struct mms_inode in;
	size_t n;
	int rc;

	rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc)
		return rc;
	if (!S_ISLNK(in.mode))
		return MMS_NOTLINK;
	if (in.size == 0 || in.size > MMS_SYMLINK_MAX)
		return mms_fail(env, MMS_CORRUPT, "symlink inode %llu: target of %llu bytes",
		                (unsigned long long)ino, (unsigned long long)in.size);
	if (bufsize < in.size)
		return MMS_RANGE;
	rc = mms_read(env, ino, buf, (size_t)in.size, 0, &n);
	if (rc)
		return rc;
	if (n != in.size)
		return mms_fail(env, MMS_CORRUPT, "symlink inode %llu: read %zu of %llu target bytes",
		                (unsigned long long)ino, n, (unsigned long long)in.size);
	*lenp = n;
	return 0;
}

/* ---- Removing and renaming ------------------------------------------------ */

/* Common part of unlink and rmdir. */
static int mms_remove(mms_env *env, uint64_t parent, const char *name, size_t len, int want_dir)
{
	struct mms_inode in;
	int64_t now;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	rc = mms_child_get(env, parent, name, len, &in);
	if (rc)
		return rc;
	if (want_dir) {
		if (!S_ISDIR(in.mode))
			return MMS_NOTDIR;
		if (in.ino == MMS_ROOT_INO)
			return MMS_BUSY;
		rc = mms_dir_empty(env, in.ino);
		if (rc)
			return rc;
	} else if (S_ISDIR(in.mode)) {
		return MMS_ISDIR;
	}
	rc = mms_reserve_free(env, mms_cost_del(env, MMS_TREE_NAME) + mms_cost_upd(env, MMS_TREE_INODE) +
	                 mms_unlink_cost(env, &in));
	if (rc)
		return rc;

	now = mms_now_ns();
	rc = mms_name_del(env, parent, name, len);
	if (rc)
		goto fail;
	rc = mms_dir_touch(env, parent, now, want_dir ? -1 : 0);
	if (rc)
		goto fail;
	rc = mms_name_gone(env, &in, parent, name, len, now);
	if (rc)
		goto fail;
	return 0;
fail:
	mms_txn_poison(env);
	return rc;
}

int mms_unlink(mms_env *env, uint64_t parent, const char *name, size_t len)
{
	return mms_remove(env, parent, name, len, 0);
}

int mms_rmdir(mms_env *env, uint64_t parent, const char *name, size_t len)
{
	return mms_remove(env, parent, name, len, 1);
}

/* MMS_LOOP if directory `dir` is `from` or one of its ancestors (moving
 * `dir` below `from` would cut it from the root). */
static int mms_check_loop(mms_env *env, uint64_t dir, uint64_t from)
{
	uint64_t p = from;
	/* Only directories are ancestors: more steps than directories means
	 * the parent pointers form a cycle (damage). */
	uint64_t limit = env->meta.dirs + env->meta.orphans + 2;

	for (uint64_t steps = 0; steps < limit; steps++) {
		struct mms_inode in;
		int rc;

		if (p == dir)
			return MMS_LOOP;
		if (p == MMS_ROOT_INO)
			return 0;
		rc = mms_inode_get(env, p, &in, NULL, NULL);
		if (rc == MMS_NOTFOUND)
			return mms_fail(env, MMS_CORRUPT, "directory %llu: parent inode %llu is missing",
			                (unsigned long long)from, (unsigned long long)p);
		if (rc)
			return rc;
		if (in.parent == 0)
			return MMS_NOTFOUND; /* an unlinked directory */
		p = in.parent;
	}
	return mms_fail(env, MMS_CORRUPT, "directory %llu: parent pointers form a cycle",
	                (unsigned long long)from);
}

int mms_rename(mms_env *env, uint64_t oldparent, const char *oldname, size_t oldlen,
               uint64_t newparent, const char *newname, size_t newlen, unsigned flags)
{
	struct mms_inode odir, ndir, src, dst;
	uint64_t sino, dino;
	uint32_t smode, dmode;
	int have_dst;
	int64_t now;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	if ((flags & ~(MMS_RENAME_NOREPLACE | MMS_RENAME_EXCHANGE)) ||
	    flags == (MMS_RENAME_NOREPLACE | MMS_RENAME_EXCHANGE))
		return MMS_INVAL;
	rc = mms_name_valid(oldname, oldlen);
	if (rc)
		return rc;
	rc = mms_name_valid(newname, newlen);
	if (rc)
		return rc;
	rc = mms_dir_get(env, oldparent, &odir, 0);
	if (rc)
		return rc;
	rc = mms_dir_get(env, newparent, &ndir, 1);
	if (rc)
		return rc;
	rc = mms_name_get(env, oldparent, oldname, oldlen, &sino, &smode);
	if (rc)
		return rc;
	rc = mms_inode_get(env, sino, &src, NULL, NULL);
	if (rc == MMS_NOTFOUND)
		return mms_fail(env, MMS_CORRUPT, "directory %llu, name '%.*s': inode %llu is missing",
		                (unsigned long long)oldparent, (int)oldlen, oldname,
		                (unsigned long long)sino);
	if (rc)
		return rc;
	if (oldparent == newparent && oldlen == newlen && memcmp(oldname, newname, oldlen) == 0)
		return (flags & MMS_RENAME_NOREPLACE) ? MMS_EXISTS : 0;

	rc = mms_name_get(env, newparent, newname, newlen, &dino, &dmode);
	if (rc && rc != MMS_NOTFOUND)
		return rc;
	have_dst = rc == 0;
	if (have_dst) {
		rc = mms_inode_get(env, dino, &dst, NULL, NULL);
		if (rc == MMS_NOTFOUND)
			return mms_fail(env, MMS_CORRUPT, "directory %llu, name '%.*s': inode %llu is missing",
			                (unsigned long long)newparent, (int)newlen, newname,
			                (unsigned long long)dino);
		if (rc)
			return rc;
	}
	if ((flags & MMS_RENAME_EXCHANGE) && !have_dst)
		return MMS_NOTFOUND;
	if ((flags & MMS_RENAME_NOREPLACE) && have_dst)
		return MMS_EXISTS;
	/* two names of one inode: POSIX says rename does nothing */
	if (have_dst && dst.ino == src.ino)
		return 0;

	/* A directory may not move below itself. */
	if (S_ISDIR(src.mode) && oldparent != newparent) {
		rc = mms_check_loop(env, src.ino, newparent);
		if (rc)
			return rc;
	}
	if ((flags & MMS_RENAME_EXCHANGE) && S_ISDIR(dst.mode) && oldparent != newparent) {
		rc = mms_check_loop(env, dst.ino, oldparent);
		if (rc)
			return rc;
	}
	if (have_dst && !(flags & MMS_RENAME_EXCHANGE)) {
		if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode))
			return MMS_NOTDIR;
		if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode))
			return MMS_ISDIR;
		if (S_ISDIR(dst.mode)) {
			rc = mms_dir_empty(env, dst.ino);
			if (rc)
				return rc;
		}
	}
	rc = mms_reserve_free(env, mms_cost_del(env, MMS_TREE_NAME) + mms_cost_put(env, MMS_TREE_NAME) +
	                 4 * mms_cost_upd(env, MMS_TREE_INODE) +
	                 2 * (mms_cost_del(env, MMS_TREE_LINK) + mms_cost_put(env, MMS_TREE_LINK)) +
	                 (have_dst ? mms_unlink_cost(env, &dst) : 0));
	if (rc)
		return rc;

	/* subdirectories each directory gains (+) or loses (-) */
	int dold = 0, dnew = 0;
	if (S_ISDIR(src.mode) && oldparent != newparent) {
		dold--;
		dnew++;
	}
	now = mms_now_ns();
	if (flags & MMS_RENAME_EXCHANGE) {
		rc = mms_name_put(env, oldparent, oldname, oldlen, dst.ino, dst.mode);
		if (rc)
			goto fail;
		rc = mms_name_put(env, newparent, newname, newlen, src.ino, src.mode);
		if (rc)
			goto fail;
		rc = mms_name_moved(env, &dst, newparent, newname, newlen, oldparent, oldname, oldlen);
		if (rc)
			goto fail;
		dst.ctime = now;
		rc = mms_inode_update(env, &dst);
		if (rc)
			goto fail;
		if (S_ISDIR(dst.mode) && oldparent != newparent) {
			dnew--;
			dold++;
		}
	} else {
		rc = mms_name_del(env, oldparent, oldname, oldlen);
		if (rc)
			goto fail;
		rc = mms_name_put(env, newparent, newname, newlen, src.ino, src.mode);
		if (rc)
			goto fail;
		if (have_dst) {
			rc = mms_name_gone(env, &dst, newparent, newname, newlen, now);
			if (rc)
				goto fail;
			if (S_ISDIR(dst.mode))
				dnew--;
		}
	}
	rc = mms_name_moved(env, &src, oldparent, oldname, oldlen, newparent, newname, newlen);
	if (rc)
		goto fail;
	src.ctime = now;
	rc = mms_inode_update(env, &src);
	if (rc)
		goto fail;
	rc = mms_dir_touch(env, oldparent, now, oldparent == newparent ? dold + dnew : dold);
	if (rc)
		goto fail;
	if (newparent != oldparent) {
		rc = mms_dir_touch(env, newparent, now, dnew);
		if (rc)
			goto fail;
	}
	return 0;
fail:
	mms_txn_poison(env);
	return rc;
}

/* ---- Attributes ------------------------------------------------------------ */

#define MMS_SET_ALL (MMS_SET_MODE | MMS_SET_UID | MMS_SET_GID | MMS_SET_SIZE | \
                     MMS_SET_ATIME | MMS_SET_MTIME | MMS_SET_ATIME_NOW |       \
                     MMS_SET_MTIME_NOW | MMS_SET_CTIME)

int mms_setattr(mms_env *env, uint64_t ino, const struct mms_setattr *attr,
                unsigned mask, struct mms_stat *st)
{
	struct mms_inode in;
	int64_t now, atime = 0, mtime = 0, ctime = 0;
	int changed = 0;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	if ((mask & ~MMS_SET_ALL) || (mask && !attr))
		return MMS_INVAL;
	rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc)
		return rc;
	if (mask & MMS_SET_SIZE) {
		if (S_ISDIR(in.mode))
			return MMS_ISDIR;
		if (attr->size > MMS_SIZE_MAX)
			return MMS_TOOBIG;
	}
	if ((mask & MMS_SET_ATIME) && !(mask & MMS_SET_ATIME_NOW) &&
	    mms_ts_to_ns(&attr->atime, &atime))
		return MMS_INVAL;
	if ((mask & MMS_SET_MTIME) && !(mask & MMS_SET_MTIME_NOW) &&
	    mms_ts_to_ns(&attr->mtime, &mtime))
		return MMS_INVAL;
	if ((mask & MMS_SET_CTIME) && mms_ts_to_ns(&attr->ctime, &ctime))
		return MMS_INVAL;
	rc = mms_reserve_free(env, mms_cost_upd(env, MMS_TREE_INODE));
	if (rc)
		return rc;

	if (mask & MMS_SET_SIZE) {
		/* data.c frees or extends the value and writes size, pages and
		 * times; it poisons on its own failures after a change. */
		rc = mms_truncate(env, ino, attr->size);
		if (rc)
			return rc;
		changed = 1;
		rc = mms_inode_get(env, ino, &in, NULL, NULL);
		if (rc)
			goto fail;
	}
	now = mms_now_ns();
	if (mask & MMS_SET_MODE)
		in.mode = (in.mode & S_IFMT) | (attr->mode & 07777);
	if (mask & MMS_SET_UID)
		in.uid = attr->uid;
	if (mask & MMS_SET_GID)
		in.gid = attr->gid;
	if (mask & MMS_SET_ATIME_NOW)
		in.atime = now;
	else if (mask & MMS_SET_ATIME)
		in.atime = atime;
	if (mask & MMS_SET_MTIME_NOW)
		in.mtime = now;
	else if (mask & MMS_SET_MTIME)
		in.mtime = mtime;
	in.ctime = (mask & MMS_SET_CTIME) ? ctime : now;
	changed = 1;
	rc = mms_inode_update(env, &in);
	if (rc)
		goto fail;
	if (st)
		mms_inode_to_stat(&in, st);
	return 0;
fail:
	if (changed)
		mms_txn_poison(env);
	return rc;
}

/* ---- Upgrade ---------------------------------------------------------------- */

struct mms_subdirs {
	uint64_t dir, n;
};

/* Collect, in NAME tree order, the directories holding subdirectories and
 * how many (format 1 kept no count).  *out is malloc'd. */
static int mms_count_subdirs(mms_env *env, struct mms_subdirs **out, size_t *nout)
{
	struct mms_subdirs *v = NULL;
	size_t n = 0, cap = 0;
	struct mms_bt_cursor c;
	int rc = mms_bt_first(&c, env, MMS_TREE_NAME);

	for (; rc == 0; rc = mms_bt_next(&c)) {
		const void *k, *val;
		size_t klen, vlen;

		mms_bt_item(&c, &k, &klen, &val, &vlen);
		if (klen <= 16 || vlen != MMS_NAME_VAL) {
			rc = mms_fail(env, MMS_CORRUPT, "name tree: item of %zu+%zu bytes", klen, vlen);
			break;
		}
		if (!S_ISDIR(mms_get_le32((const uint8_t *)val + 8)))
			continue;
		uint64_t dir = mms_get_be64(k);
		if (n > 0 && v[n - 1].dir == dir) {
			v[n - 1].n++;
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			struct mms_subdirs *nv = realloc(v, ncap * sizeof *nv);
			if (!nv) {
				rc = ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[n].dir = dir;
		v[n].n = 1;
		n++;
	}
	if (rc != MMS_NOTFOUND) {
		free(v);
		return rc;
	}
	*out = v;
	*nout = n;
	return 0;
}

int mms_upgrade(mms_env *env)
{
	struct mms_subdirs *v = NULL;
	size_t n = 0;
	int rc;

	if (env->meta.version == MMS_FORMAT_VERSION)
		return 0;
	if (env->meta.version != MMS_FORMAT_V1 && env->meta.version != MMS_FORMAT_V2 &&
	    env->meta.version != MMS_FORMAT_V3 && env->meta.version != MMS_FORMAT_V4)
		return mms_fail(env, MMS_VERSION, "no upgrade from format version %u",
		                env->meta.version);
	env->upgrading = 1;
	rc = mms_txn_enter(env);
	/* version 2 to 3 adds the SHARE tree, empty, 3 to 4 the free-list
	 * log, empty, and 4 to 5 the log's tail in the meta, empty: only the
	 * meta changes */
	if (!rc && env->meta.version == MMS_FORMAT_V1)
		rc = mms_count_subdirs(env, &v, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		struct mms_inode in;

		rc = mms_reserve(env, mms_cost_upd(env, MMS_TREE_INODE));
		if (!rc)
			rc = mms_inode_get(env, v[i].dir, &in, NULL, NULL);
		if (rc == MMS_NOTFOUND || (!rc && !S_ISDIR(in.mode)))
			rc = mms_fail(env, MMS_CORRUPT, "names in directory %llu, which is not one "
			              "(see mmstore check)", (unsigned long long)v[i].dir);
		if (!rc) {
			in.nlink = (uint32_t)(v[i].n > UINT32_MAX - 2 ? UINT32_MAX : 2 + v[i].n);
			rc = mms_inode_update(env, &in);
		}
		if (rc)
			mms_txn_poison(env);
	}
	free(v);
	if (!rc) {
		env->meta.version = MMS_FORMAT_VERSION;
		rc = mms_sync(env);
	}
	/* a second sync puts a meta of the new format in the other slot too,
	 * so that no slot is left that this build refuses */
	if (!rc)
		rc = mms_txn_enter(env);
	if (!rc)
		rc = mms_sync(env);
	env->upgrading = 0;
	return rc;
}

/* ---- Directory cursors ----------------------------------------------------- */

struct mms_cursor {
	mms_env *env;
	uint64_t dir;
	int started;                     /* a key was returned: resume after it */
	uint64_t start_hash;             /* before the first return: seek here */
	int at_end;                      /* the cookie is past every entry */
	uint8_t key[MMS_NAME_KEY_MAX];   /* last returned NAME key */
	size_t klen;
	char name[MMS_NAME_MAX];         /* the name handed out by the last next() */
};

int mms_dir_open(mms_env *env, uint64_t dir, uint64_t cookie, mms_cursor **curp)
{
	struct mms_inode in;
	struct mms_cursor *cur;
	int rc;

	rc = mms_dir_get(env, dir, &in, 0);
	if (rc)
		return rc;
	cur = calloc(1, sizeof *cur);
	if (!cur)
		return ENOMEM;
	cur->env = env;
	cur->dir = dir;
	/* An entry's cookie is max(hash >> 1, MMS_COOKIE_MIN); resume at the
	 * first entry whose cookie is > `cookie`, i.e. hash >= 2 * (cookie + 1). */
	if (cookie < MMS_COOKIE_MIN)
		cur->start_hash = 0;
	else if (cookie >= (UINT64_MAX >> 1))
		cur->at_end = 1;
	else
		cur->start_hash = 2 * (cookie + 1);
	*curp = cur;
	return 0;
}

int mms_dir_next(mms_cursor *cur, struct mms_dirent *ent)
{
	mms_env *env = cur->env;
	struct mms_bt_cursor c;
	uint8_t seek[16];
	const void *k, *v;
	size_t klen, vlen, nlen;
	uint64_t hash, cookie;
	int rc;

	if (cur->at_end)
		return MMS_NOTFOUND;
	if (cur->started) {
		rc = mms_bt_seek(&c, env, MMS_TREE_NAME, cur->key, cur->klen, MMS_BT_GE);
		if (rc)
			goto out;
		mms_bt_item(&c, &k, &klen, &v, &vlen);
		if (klen == cur->klen && memcmp(k, cur->key, klen) == 0) {
			rc = mms_bt_next(&c);
			if (rc)
				goto out;
		}
	} else {
		mms_put_be64(seek, cur->dir);
		mms_put_be64(seek + 8, cur->start_hash);
		rc = mms_bt_seek(&c, env, MMS_TREE_NAME, seek, sizeof seek, MMS_BT_GE);
		if (rc)
			goto out;
	}
	mms_bt_item(&c, &k, &klen, &v, &vlen);
	if (klen < 8 || mms_get_be64(k) != cur->dir) {
		rc = MMS_NOTFOUND;
		goto out;
	}
	if (klen <= 16 || klen > MMS_NAME_KEY_MAX || vlen != MMS_NAME_VAL) {
		rc = mms_fail(env, MMS_CORRUPT, "directory %llu: entry with a %zu-byte key and a %zu-byte value",
		              (unsigned long long)cur->dir, klen, vlen);
		goto out;
	}
	if (cur->started) {
		/* a listing only moves forward, or a damaged tree could make it
		 * go round for ever */
		size_t m = klen < cur->klen ? klen : cur->klen;
		int c = memcmp(k, cur->key, m);
		if (c < 0 || (c == 0 && klen <= cur->klen)) {
			rc = mms_fail(env, MMS_CORRUPT, "directory %llu: the name tree is out of order",
			              (unsigned long long)cur->dir);
			goto out;
		}
	}
	memcpy(cur->key, k, klen);
	cur->klen = klen;
	cur->started = 1;
	nlen = klen - 16;
	memcpy(cur->name, (const uint8_t *)k + 16, nlen);
	hash = mms_get_be64((const uint8_t *)k + 8);
	cookie = hash >> 1;
	if (cookie < MMS_COOKIE_MIN)
		cookie = MMS_COOKIE_MIN;
	ent->ino = mms_get_le64(v);
	ent->mode = mms_get_le32((const uint8_t *)v + 8) & S_IFMT;
	ent->cookie = cookie;
	ent->name = cur->name;
	ent->namelen = nlen;
	return 0;
out:
	return rc;
}

void mms_dir_close(mms_cursor *cur)
{
	free(cur);
}

/* ---- Extended attributes ----------------------------------------------------- */

static int mms_xattr_name_valid(const char *name, size_t len)
{
	if (len == 0 || !name)
		return MMS_INVAL;
	if (len > MMS_XATTR_NAME_MAX)
		return MMS_NAMETOOLONG;
	if (memchr(name, '\0', len))
		return MMS_INVAL;
	return 0;
}

static size_t mms_xattr_key(uint8_t *key, uint64_t ino, const char *name, size_t len)
{
	mms_put_be64(key, ino);
	memcpy(key + 8, name, len);
	return 8 + len;
}

/* Update the ctime of inode `ino` (its xattrs changed). */
static int mms_inode_touch_ctime(mms_env *env, uint64_t ino, int64_t now)
{
	struct mms_inode in;
	int rc = mms_inode_get(env, ino, &in, NULL, NULL);

	if (rc)
		return rc;
	in.ctime = now;
	return mms_inode_update(env, &in);
}

int mms_setxattr(mms_env *env, uint64_t ino, const char *name, size_t namelen,
                 const void *value, size_t vlen, unsigned flags)
{
	uint8_t key[8 + MMS_XATTR_NAME_MAX];
	uint8_t val[1 + MMS_XATTR_INLINE_MAX];
	uint8_t old[MMS_XATTR_BLOB_VAL];
	size_t klen, oldlen = 0, newlen;
	struct mms_inode in;
	const void *v;
	size_t ovlen;
	uint64_t pg = 0;
	int have_old;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	if (flags & ~(MMS_XATTR_CREATE | MMS_XATTR_REPLACE))
		return MMS_INVAL;
	rc = mms_xattr_name_valid(name, namelen);
	if (rc)
		return rc;
	if (vlen > MMS_XATTR_VALUE_MAX)
		return MMS_TOOBIG;
	if (vlen && !value)
		return MMS_INVAL;
	rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc)
		return rc;
	klen = mms_xattr_key(key, ino, name, namelen);
	rc = mms_bt_get(env, MMS_TREE_XATTR, key, klen, &v, &ovlen);
	if (rc && rc != MMS_NOTFOUND)
		return rc;
	have_old = rc == 0;
	if (have_old && (flags & MMS_XATTR_CREATE))
		return MMS_EXISTS;
	if (!have_old && (flags & MMS_XATTR_REPLACE))
		return MMS_NODATA;
	if (have_old) {
		/* Keep a copy of a blob reference to free after the replacement. */
		if (ovlen < 1 || (((const uint8_t *)v)[0] == MMS_XATTR_KIND_BLOB &&
		                  ovlen != MMS_XATTR_BLOB_VAL) ||
		    ((const uint8_t *)v)[0] > MMS_XATTR_KIND_BLOB)
			return mms_fail(env, MMS_CORRUPT, "inode %llu, xattr '%.*s': bad item of %zu bytes",
			                (unsigned long long)ino, (int)namelen, name, ovlen);
		if (((const uint8_t *)v)[0] == MMS_XATTR_KIND_BLOB) {
			memcpy(old, v, MMS_XATTR_BLOB_VAL);
			oldlen = MMS_XATTR_BLOB_VAL;
		}
	}
	rc = mms_reserve(env, mms_cost_put(env, MMS_TREE_XATTR) + mms_cost_upd(env, MMS_TREE_INODE) +
	                 (vlen > MMS_XATTR_INLINE_MAX ? (vlen + MMS_PAGE_SIZE - 1) / MMS_PAGE_SIZE : 0));
	if (rc)
		return rc;

	if (vlen <= MMS_XATTR_INLINE_MAX) {
		val[0] = MMS_XATTR_KIND_INLINE;
		if (vlen)
			memcpy(val + 1, value, vlen);
		newlen = 1 + vlen;
	} else {
		/* nothing has changed yet: a full store leaves the transaction usable
		 * (the reserve counted pages; the blob needs them contiguous) */
		rc = mms_blob_write(env, value, vlen, &pg);
		if (rc)
			return rc;
		val[0] = MMS_XATTR_KIND_BLOB;
		mms_put_le64(val + 1, pg);
		mms_put_le32(val + 9, (uint32_t)vlen);
		mms_put_le32(val + 13, mms_crc32c(0, value, vlen));
		newlen = MMS_XATTR_BLOB_VAL;
	}
	rc = mms_bt_put(env, MMS_TREE_XATTR, key, klen, val, newlen);
	if (rc)
		goto fail;
	if (oldlen) {
		rc = mms_xattr_free_value(env, ino, key, klen, old, oldlen);
		if (rc)
			goto fail;
	}
	rc = mms_inode_touch_ctime(env, ino, mms_now_ns());
	if (rc)
		goto fail;
	return 0;
fail:
	mms_txn_poison(env);
	return rc;
}

int mms_getxattr(mms_env *env, uint64_t ino, const char *name, size_t namelen,
                 void *buf, size_t bufsize, size_t *vlenp)
{
	uint8_t key[8 + MMS_XATTR_NAME_MAX];
	struct mms_inode in;
	const uint8_t *v;
	const void *vp;
	uint8_t *tmp;
	size_t klen, vlen, len;
	int rc;

	rc = mms_xattr_name_valid(name, namelen);
	if (rc)
		return rc;
	rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc)
		return rc;
	klen = mms_xattr_key(key, ino, name, namelen);
	rc = mms_bt_get(env, MMS_TREE_XATTR, key, klen, &vp, &vlen);
	if (rc == MMS_NOTFOUND)
		return MMS_NODATA;
	if (rc)
		return rc;
	v = vp;
	if (vlen >= 1 && v[0] == MMS_XATTR_KIND_INLINE) {
		len = vlen - 1;
		if (len > MMS_XATTR_INLINE_MAX)
			return mms_fail(env, MMS_CORRUPT, "inode %llu, xattr '%.*s': inline value of %zu bytes",
			                (unsigned long long)ino, (int)namelen, name, len);
		if (bufsize == 0) {
			*vlenp = len;
			return 0;
		}
		if (bufsize < len)
			return MMS_RANGE;
		if (len)
			memcpy(buf, v + 1, len);
		*vlenp = len;
		return 0;
	}
	if (vlen == MMS_XATTR_BLOB_VAL && v[0] == MMS_XATTR_KIND_BLOB) {
		uint64_t pg = mms_get_le64(v + 1);
		uint32_t crc = mms_get_le32(v + 13);

		len = mms_get_le32(v + 9);
		if (len > MMS_XATTR_VALUE_MAX)
			return mms_fail(env, MMS_CORRUPT, "inode %llu, xattr '%.*s': value of %zu bytes",
			                (unsigned long long)ino, (int)namelen, name, len);
		if (bufsize == 0) {
			*vlenp = len;
			return 0;
		}
		if (bufsize < len)
			return MMS_RANGE;
		/* Read into a private buffer: the caller's is written only once the
		 * checksum has matched. */
		tmp = malloc(len ? len : 1);
		if (!tmp)
			return ENOMEM;
		rc = mms_blob_read(env, pg, tmp, len);
		if (rc == 0 && mms_crc32c(0, tmp, len) != crc)
			rc = mms_fail(env, MMS_CORRUPT,
			              "inode %llu, xattr '%.*s': value checksum mismatch (blob at page %llu)",
			              (unsigned long long)ino, (int)namelen, name, (unsigned long long)pg);
		if (rc == 0) {
			memcpy(buf, tmp, len);
			*vlenp = len;
		}
		free(tmp);
		return rc;
	}
	return mms_fail(env, MMS_CORRUPT, "inode %llu, xattr '%.*s': bad item of %zu bytes",
	                (unsigned long long)ino, (int)namelen, name, vlen);
}

int mms_xattr_prefix_used(mms_env *env, const char *prefix, size_t len, int *found)
{
	struct mms_bt_cursor c;
	uint8_t start[1] = { 0 };
	int rc;

	*found = 0;
	rc = mms_bt_seek(&c, env, MMS_TREE_XATTR, start, 0, MMS_BT_GE);
	while (rc == 0) {
		const void *k, *v;
		size_t klen, vlen;

		mms_bt_item(&c, &k, &klen, &v, &vlen);
		if (klen >= 8 + len && memcmp((const uint8_t *)k + 8, prefix, len) == 0) {
			*found = 1;
			return 0;
		}
		rc = mms_bt_next(&c);
	}
	return rc == MMS_NOTFOUND ? 0 : rc;
}

int mms_listxattr(mms_env *env, uint64_t ino, char *buf, size_t bufsize, size_t *lenp)
{
	struct mms_bt_cursor c;
	struct mms_inode in;
	uint8_t prefix[8];
	size_t total = 0;
	int pass, rc;

	rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc)
		return rc;
	mms_put_be64(prefix, ino);
	/* Pass 0 measures; pass 1 copies (only when the buffer is big enough). */
	for (pass = 0; pass < 2; pass++) {
		size_t off = 0;

		rc = mms_bt_seek(&c, env, MMS_TREE_XATTR, prefix, sizeof prefix, MMS_BT_GE);
		while (rc == 0) {
			const void *k, *v;
			size_t klen, vlen;

			mms_bt_item(&c, &k, &klen, &v, &vlen);
			if (klen < 8 || memcmp(k, prefix, 8) != 0)
				break;
			if (klen == 8 || klen > 8 + MMS_XATTR_NAME_MAX)
				return mms_fail(env, MMS_CORRUPT, "inode %llu: xattr key of %zu bytes",
				                (unsigned long long)ino, klen);
			if (pass == 1) {
				memcpy(buf + off, (const uint8_t *)k + 8, klen - 8);
				buf[off + klen - 8] = '\0';
			}
			off += klen - 8 + 1;
			rc = mms_bt_next(&c);
		}
		if (rc && rc != MMS_NOTFOUND)
			return rc;
		if (pass == 0) {
			total = off;
			if (bufsize == 0 || total == 0)
				break;
			if (bufsize < total)
				return MMS_RANGE;
		}
	}
	*lenp = total;
	return 0;
}

int mms_removexattr(mms_env *env, uint64_t ino, const char *name, size_t namelen)
{
	uint8_t key[8 + MMS_XATTR_NAME_MAX];
	uint8_t old[MMS_XATTR_BLOB_VAL + 1];
	struct mms_inode in;
	const void *v;
	size_t klen, vlen, oldlen = 0;
	int rc;

	rc = mms_txn_enter(env);
	if (rc)
		return rc;
	rc = mms_xattr_name_valid(name, namelen);
	if (rc)
		return rc;
	rc = mms_inode_get(env, ino, &in, NULL, NULL);
	if (rc)
		return rc;
	klen = mms_xattr_key(key, ino, name, namelen);
	rc = mms_bt_get(env, MMS_TREE_XATTR, key, klen, &v, &vlen);
	if (rc == MMS_NOTFOUND)
		return MMS_NODATA;
	if (rc)
		return rc;
	if (vlen < 1 || ((const uint8_t *)v)[0] > MMS_XATTR_KIND_BLOB ||
	    (((const uint8_t *)v)[0] == MMS_XATTR_KIND_BLOB && vlen != MMS_XATTR_BLOB_VAL))
		return mms_fail(env, MMS_CORRUPT, "inode %llu, xattr '%.*s': bad item of %zu bytes",
		                (unsigned long long)ino, (int)namelen, name, vlen);
	if (((const uint8_t *)v)[0] == MMS_XATTR_KIND_BLOB) {
		memcpy(old, v, MMS_XATTR_BLOB_VAL);
		oldlen = MMS_XATTR_BLOB_VAL;
	}
	rc = mms_reserve_free(env, mms_cost_del(env, MMS_TREE_XATTR) + mms_cost_upd(env, MMS_TREE_INODE));
	if (rc)
		return rc;

	rc = mms_bt_del(env, MMS_TREE_XATTR, key, klen);
	if (rc)
		goto fail;
	if (oldlen) {
		rc = mms_xattr_free_value(env, ino, key, klen, old, oldlen);
		if (rc)
			goto fail;
	}
	rc = mms_inode_touch_ctime(env, ino, mms_now_ns());
	if (rc)
		goto fail;
	return 0;
fail:
	mms_txn_poison(env);
	return rc;
}
