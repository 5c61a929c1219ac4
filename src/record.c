/*
 * record.c - inode records: their compact encoding and the INODE tree's
 * items (be64 ino -> record [+ inline value bytes]).
 *
 * Below data.c, which reads and rewrites the records of the values it
 * changes, and inode.c (names, directories, links, xattrs), which makes
 * and removes them.  Format: doc/FORMAT.md, "Inode record".
 */
#include "mms_int.h"

#include <stdio.h>
#include <sys/stat.h>

/* ---- Records ------------------------------------------------------------ */

/*
 * The record is compact, since a store of small keys is mostly records:
 *   u8 fields present (MMS_REC_*), then LEB128 varints: mode, uid, gid,
 *   gen, size, zigzag(mtime), [zigzag(atime - mtime)], [zigzag(ctime -
 *   mtime)], parent, [pages], [flags other than INLINE], [nlink], [rdev].
 * nlink is written only when it differs from what `parent` implies (a named
 * inode: 1, a named directory: 2; unlinked: 0), so a key with one name and
 * a directory without subdirectories do not spend a byte on it.
 * A fresh key's record takes about 30 bytes.
 */
#define MMS_REC_INLINE 0x01u /* the value's bytes follow the record */
#define MMS_REC_ATIME  0x02u
#define MMS_REC_CTIME  0x04u
#define MMS_REC_PAGES  0x08u
#define MMS_REC_FLAGS  0x10u
#define MMS_REC_NLINK  0x20u /* format 2 */
#define MMS_REC_RDEV   0x40u /* format 2 */
#define MMS_REC_ALL    0x7fu

/* The link count a record leaves out. */
uint32_t mms_nlink_implied(uint32_t mode, uint64_t parent)
{
	return parent == 0 ? 0 : S_ISDIR(mode) ? 2 : 1;
}

static uint8_t *rec_put(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t unzz(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* The 7-bit groups of the low `bytes` (1-8) bytes of w, little-endian
 * varint order, packed into one number. */
static inline uint64_t rec_pack7(uint64_t w, unsigned bytes)
{
	if (bytes < 8)
		w &= (1ull << (8 * bytes)) - 1;
	w &= 0x7f7f7f7f7f7f7f7full;
	w = (w & 0x007f007f007f007full) | ((w & 0x7f007f007f007f00ull) >> 1);
	w = (w & 0x00003fff00003fffull) | ((w & 0x3fff00003fff0000ull) >> 2);
	return (w & 0x000000000fffffffull) | ((w & 0x0fffffff00000000ull) >> 4);
}

/* Read a varint of more than one byte from [*p, end); 0 on success.  Up to
 * 9 bytes (63 bits: times in ns take 9) from one 8-byte load when the
 * record has them; else, and for the longest, byte by byte. */
static int rec_get_long(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	const uint8_t *q = *p;
	if (end - q >= 9) {
		uint64_t w = mms_get_le64(q);
		uint64_t stop = ~w & 0x8080808080808080ull; /* bytes without a continuation bit */
		if (stop) {
			unsigned n = (unsigned)__builtin_ctzll(stop) / 8 + 1;
			*v = rec_pack7(w, n);
			*p = q + n;
			return 0;
		}
		if (q[8] < 0x80) {
			*v = rec_pack7(w, 8) | (uint64_t)q[8] << 56;
			*p = q + 9;
			return 0;
		}
	}
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -1;
		uint8_t b = *(*p)++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* Read a varint from [*p, end); 0 on success.  Most fields (uid, gid,
 * generation, parent of a small store...) take one byte: no loop then. */
static inline int rec_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	if (*p < end && **p < 0x80) {
		*v = *(*p)++;
		return 0;
	}
	return rec_get_long(p, end, v);
}

int mms_inode_decode(uint64_t ino, const void *rec, size_t len, struct mms_inode *out, size_t *reclen)
{
	const uint8_t *p = rec, *end = p + len;
	uint64_t f[13] = { 0 };
	if (len < 1)
		return MMS_CORRUPT;
	unsigned have = *p++;
	if (have & ~MMS_REC_ALL)
		return MMS_CORRUPT;
	/* mode uid gid gen size mtime [atime] [ctime] parent [pages] [flags]
	 * [nlink] [rdev] */
#define MMS_REC_GET(i) \
	do { \
		if (rec_get(&p, end, &f[i])) \
			return MMS_CORRUPT; \
	} while (0)
	MMS_REC_GET(0);
	MMS_REC_GET(1);
	MMS_REC_GET(2);
	MMS_REC_GET(3);
	MMS_REC_GET(4);
	MMS_REC_GET(5);
	if (have & MMS_REC_ATIME)
		MMS_REC_GET(6);
	if (have & MMS_REC_CTIME)
		MMS_REC_GET(7);
	MMS_REC_GET(8);
	if (have & MMS_REC_PAGES)
		MMS_REC_GET(9);
	if (have & MMS_REC_FLAGS)
		MMS_REC_GET(10);
	if (have & MMS_REC_NLINK)
		MMS_REC_GET(11);
	if (have & MMS_REC_RDEV)
		MMS_REC_GET(12);
#undef MMS_REC_GET
	if (f[0] > UINT32_MAX || f[1] > UINT32_MAX || f[2] > UINT32_MAX || f[3] > UINT32_MAX ||
	    f[10] > UINT32_MAX || f[11] > UINT32_MAX ||
	    (!S_ISDIR((uint32_t)f[0]) && f[11] > MMS_NLINK_MAX))
		return MMS_CORRUPT;
	/* sizes past the limit, and more pages than the largest value has,
	 * are damage: st_size and st_blocks must not wrap */
	if (f[4] > MMS_SIZE_MAX || f[9] > (MMS_SIZE_MAX >> MMS_PAGE_SHIFT))
		return MMS_CORRUPT;
	out->ino = ino;
	out->mode = (uint32_t)f[0];
	out->uid = (uint32_t)f[1];
	out->gid = (uint32_t)f[2];
	out->gen = (uint32_t)f[3];
	out->size = f[4];
	out->mtime = unzz(f[5]);
	out->atime = (int64_t)((uint64_t)out->mtime + (uint64_t)unzz(f[6]));
	out->ctime = (int64_t)((uint64_t)out->mtime + (uint64_t)unzz(f[7]));
	out->parent = f[8];
	out->pages = f[9];
	out->flags = ((uint32_t)f[10] & ~MMS_INO_INLINE) | ((have & MMS_REC_INLINE) ? MMS_INO_INLINE : 0);
	out->nlink = (have & MMS_REC_NLINK) ? (uint32_t)f[11] : mms_nlink_implied(out->mode, out->parent);
	out->rdev = f[12];
	*reclen = (size_t)(p - (const uint8_t *)rec);
	return 0;
}

size_t mms_inode_encode(const struct mms_inode *in, void *rec)
{
	uint8_t *r = rec, *p = r + 1;
	unsigned have = (in->flags & MMS_INO_INLINE) ? MMS_REC_INLINE : 0;
	uint64_t da = (uint64_t)in->atime - (uint64_t)in->mtime, dc = (uint64_t)in->ctime - (uint64_t)in->mtime;
	uint32_t other = in->flags & ~MMS_INO_INLINE;
	int nl = in->nlink != mms_nlink_implied(in->mode, in->parent);
	have |= (da ? MMS_REC_ATIME : 0) | (dc ? MMS_REC_CTIME : 0) | (in->pages ? MMS_REC_PAGES : 0) |
	        (other ? MMS_REC_FLAGS : 0) | (nl ? MMS_REC_NLINK : 0) | (in->rdev ? MMS_REC_RDEV : 0);
	p = rec_put(p, in->mode);
	p = rec_put(p, in->uid);
	p = rec_put(p, in->gid);
	p = rec_put(p, in->gen);
	p = rec_put(p, in->size);
	p = rec_put(p, zz(in->mtime));
	if (da)
		p = rec_put(p, zz((int64_t)da));
	if (dc)
		p = rec_put(p, zz((int64_t)dc));
	p = rec_put(p, in->parent);
	if (in->pages)
		p = rec_put(p, in->pages);
	if (other)
		p = rec_put(p, other);
	if (nl)
		p = rec_put(p, in->nlink);
	if (in->rdev)
		p = rec_put(p, in->rdev);
	r[0] = (uint8_t)have;
	return (size_t)(p - r);
}

/* The deferred record is written, or no longer needed. */
static void mms_inode_undefer(mms_env *env)
{
	env->dir_pend_set = 0;
	env->reserve_held = 0;
}

int mms_inode_get(mms_env *env, uint64_t ino, struct mms_inode *out,
                  const void **inl, size_t *inl_len)
{
	uint8_t key[8];
	const void *val;
	size_t vlen, reclen;
	struct mms_inode in;
	int rc;

	if (env->dir_pend_set && env->dir_pend.ino == ino) {
		*out = env->dir_pend; /* newer than the tree's */
		if (inl) {
			*inl = NULL;
			*inl_len = 0;
		}
		return 0;
	}
	mms_put_be64(key, ino);
	rc = mms_bt_get(env, MMS_TREE_INODE, key, sizeof key, &val, &vlen);
	if (rc)
		return rc;
	if (mms_inode_decode(ino, val, vlen, &in, &reclen))
		return mms_fail(env, MMS_CORRUPT, "inode %llu: malformed record (%zu bytes)",
		                (unsigned long long)ino, vlen);
	if (in.flags & MMS_INO_INLINE) {
		if (vlen - reclen > MMS_INLINE_MAX)
			return mms_fail(env, MMS_CORRUPT, "inode %llu: %zu inline bytes, at most %u",
			                (unsigned long long)ino, vlen - reclen, MMS_INLINE_MAX);
	} else if (vlen != reclen) {
		return mms_fail(env, MMS_CORRUPT, "inode %llu: %zu bytes after the record without the inline flag",
		                (unsigned long long)ino, vlen - reclen);
	}
	*out = in;
	if (inl) {
		*inl = (in.flags & MMS_INO_INLINE) ? (const uint8_t *)val + reclen : NULL;
		*inl_len = (in.flags & MMS_INO_INLINE) ? vlen - reclen : 0;
	}
	return 0;
}

int mms_inode_put(mms_env *env, const struct mms_inode *in,
                  const void *inl, size_t inl_len)
{
	uint8_t key[8];
	uint8_t buf[MMS_INODE_REC + MMS_INLINE_MAX];
	struct mms_inode rec = *in;

	if (inl_len > MMS_INLINE_MAX || (!inl && inl_len))
		return mms_fail(env, MMS_INVAL, "inode %llu: %zu inline bytes, at most %u",
		                (unsigned long long)in->ino, inl_len, MMS_INLINE_MAX);
	if (inl)
		rec.flags |= MMS_INO_INLINE;
	else
		rec.flags &= ~MMS_INO_INLINE;
	size_t reclen = mms_inode_encode(&rec, buf);
	if (inl_len)
		memcpy(buf + reclen, inl, inl_len);
	if (env->dir_pend_set && env->dir_pend.ino == in->ino)
		mms_inode_undefer(env); /* this record is the newer */
	mms_put_be64(key, in->ino);
	return mms_bt_put(env, MMS_TREE_INODE, key, sizeof key, buf, reclen + inl_len);
}

int mms_inode_del(mms_env *env, uint64_t ino)
{
	uint8_t key[8];
	if (env->dir_pend_set && env->dir_pend.ino == ino)
		mms_inode_undefer(env);
	mms_put_be64(key, ino);
	return mms_bt_del(env, MMS_TREE_INODE, key, sizeof key);
}

int mms_inode_flush(mms_env *env)
{
	if (!env->dir_pend_set)
		return 0;
	struct mms_inode dir = env->dir_pend;
	mms_inode_undefer(env);
	return mms_inode_put(env, &dir, NULL, 0);
}

int mms_inode_defer(mms_env *env, const struct mms_inode *dir, uint64_t pages)
{
	if (env->dir_pend_set && env->dir_pend.ino != dir->ino) {
		int rc = mms_inode_flush(env);
		if (rc)
			return rc;
	}
	env->dir_pend = *dir;
	env->dir_pend.flags &= ~MMS_INO_INLINE;
	env->dir_pend_set = 1;
	env->reserve_held = pages;
	env->pre_commit = mms_inode_flush;
	return 0;
}
