/*
 * mms_int.h - libmms internals shared by the engine's modules.
 *
 * Module map (one job each):
 *   io.c      every write, truncate, punch and fdatasync of the store file
 *   crc32c.c  checksums of pages and blobs
 *   runset.c  sets of page runs, in chunks (runset.h): the allocator's
 *             free, pending, fresh... sets
 *   err.c     the transaction's error state (mms_fail, poison, txn_enter)
 *   node.c    the layout of a tree page and its validation (node.h)
 *   file.c    the file map (read-only mmap of the store), growth, shrink,
 *             the verified-page bitmap, blob reads
 *   pager.c   tree pages: verification on first use, the dirty-page table
 *             of the open transaction (copy on write, spill), blob writes
 *   alloc.c   free space: the free set, pending sets, reservation
 *   btree.c   copy-on-write B+trees with byte-string keys (memcmp order)
 *   share.c   references of data pages several extents share (SHARE tree)
 *   env.c     open/close, locking, recovery, stats (the top)
 *   txn.c     meta pages, commit, sync, rollback, space reservation
 *   record.c  inode records and the INODE tree's items
 *   inode.c   names, directories, links, cursors, holds/orphans, xattrs
 *   data.c    value bytes: extents, inline data, read/write/truncate/...
 *   vacuum.c  online compaction
 *   check.c   the consistency checker
 *   json.c    dump/load (public API only)
 *
 * Invariants every module keeps:
 *   - A page reachable from the last synced meta is never written, nor a
 *     tree page reachable from the last committed meta.  Tree pages are
 *     copied on write (btree.c via pager.c); data pages are copied on write
 *     unless allocated since the last sync and never shared (data.c,
 *     mms_alloc_writable; share.c, mms_alloc_settle).
 *   - All store-file I/O goes through io.c (the crash simulator records it).
 *   - Every offset and length read from the file is bounds-checked before
 *     use; a bad one is MMS_CORRUPT with a detail naming the page or key.
 *   - A modifying call validates its arguments and reserves the space it may
 *     need (mms_reserve) before its first change, so MMS_FULL and argument
 *     errors leave the store untouched.  A failure after the first change
 *     poisons the transaction (mms_txn_poison): later calls get MMS_BADTXN
 *     until mms_rollback().
 *
 * The on-disk format is described in doc/FORMAT.md.
 */
#ifndef MMS_INT_H
#define MMS_INT_H

#include "mms.h"
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <pthread.h>

/* ---- Byte order: the file is little-endian; tree keys are big-endian so
 *      that memcmp() orders integers. */
static inline uint16_t mms_get_le16(const void *p)
{
	const uint8_t *b = p;
	return (uint16_t)(b[0] | b[1] << 8);
}
static inline uint32_t mms_get_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static inline uint64_t mms_get_le64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}
static inline void mms_put_le16(void *p, uint16_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}
static inline void mms_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}
static inline void mms_put_le64(void *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, 8);
}
/* Keys are compared word by word (node.h) and searched by number (btree.c):
 * these two are on every search's path, hence one load and a byte swap. */
static inline uint64_t mms_get_be64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}
static inline void mms_put_be64(void *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, 8);
}

/* ---- Constants of the format ------------------------------------------- */
#define MMS_FORMAT_VERSION 5u
/* Older versions are opened only by mms_upgrade's open (MMS_UPGRADE): see
 * doc/FORMAT.md.  Version 1: no link counts, no LINK tree, no device
 * numbers; version 2: no SHARE tree (its meta's inline free list held one
 * entry more, where version 3 keeps the SHARE root); version 3: a free list
 * past the meta is one blob, rewritten whole by every commit (version 4
 * adds the log: alloc.c); version 4: the log is all in log pages (version 5
 * keeps its newest changes in the meta page). */
#define MMS_FORMAT_V1 1u
#define MMS_FORMAT_V2 2u
#define MMS_FORMAT_V3 3u /* the first with the SHARE tree */
#define MMS_FORMAT_V4 4u /* the first with the free-list log */
#define MMS_FORMAT_V5 5u /* the first whose meta holds the log's newest changes */
#define MMS_PAGE_SHIFT 12
/* The most pages a store file may have: four times the largest value. */
#define MMS_FILE_PAGES_MAX ((MMS_SIZE_MAX >> MMS_PAGE_SHIFT) * 4)
#define MMS_META_PAGES 2u   /* pages 0 and 1 */
/* Where a meta page keeps the LINK tree's root (format 2) and the SHARE
 * tree's (format 3), after the room of the inline free list (alloc.c),
 * which ends at the first of them that the page's version has. */
#define MMS_META_LINK_ROOT 4088u
#define MMS_META_SHARE_ROOT 4080u

/* The trees.  Keys and values (integers in keys big-endian, in values
 * little-endian):
 *   INODE:  be64 ino                     -> inode record (MMS_INODE_REC) [+ inline bytes]
 *   NAME:   be64 parent, be64 hash, name -> le64 ino, le32 mode (type bits)
 *   EXTENT: be64 ino, be64 first logical page -> le64 physical page, le64 npages
 *   XATTR:  be64 ino, name               -> u8 kind: 0 inline + bytes;
 *                                           1 blob + le64 page, le32 len, le32 crc32c
 *   ORPHAN: be64 ino                     -> (empty): unlinked, still held
 *   LINK:   be64 ino, be64 dir, name     -> (empty): a name of an inode with
 *                                           several, other than its primary one
 *   SHARE:  be64 first physical page     -> le64 pages, le32 references (>= 2):
 *                                           data pages several extents hold
 */
enum mms_tree {
	MMS_TREE_INODE,
	MMS_TREE_NAME,
	MMS_TREE_EXTENT,
	MMS_TREE_XATTR,
	MMS_TREE_ORPHAN,
	MMS_TREE_LINK,
	MMS_TREE_SHARE,
	MMS_NTREES
};

#define MMS_BT_KEY_MAX 280u   /* longest key an item may have */
/* Longest value an item may have: two items of the longest key and value
 * fit in a page (node.c asserts it), so a split always has room. */
#define MMS_BT_VAL_MAX (MMS_INODE_REC + MMS_INLINE_MAX)
#define MMS_INODE_REC 112u    /* most bytes an encoded inode record takes (101) */
#define MMS_INLINE_MAX 1632u  /* values up to this size live in the inode item */
#define MMS_XATTR_INLINE_MAX 1024u

/* Host form of an inode record. */
struct mms_inode {
	uint64_t ino;
	uint32_t mode, uid, gid, gen;
	uint64_t size;        /* logical bytes */
	int64_t atime, mtime, ctime; /* ns since the epoch */
	uint64_t parent;      /* directory holding the primary name; 0 once unlinked */
	uint64_t pages;       /* data pages allocated to the value (for st_blocks) */
	uint32_t flags;       /* MMS_INO_* */
	uint32_t nlink;       /* st_nlink: names (a directory: 2 + subdirectories),
	                       * 0 once unlinked */
	uint64_t rdev;        /* device number of a character or block device */
};
#define MMS_INO_INLINE 0x1u   /* the bytes follow the record in the item */

/* ---- In-memory meta: the state a commit writes -------------------------- */
struct mms_meta {
	uint32_t version;         /* format commits write: the store's own
	                           * (MMS_FORMAT_V1 until mms_upgrade) */
	uint64_t generation;      /* of the commit that wrote it */
	uint64_t synced_generation;
	uint64_t file_pages;      /* length of the file in pages */
	uint64_t max_pages;       /* 0: unlimited */
	uint64_t next_ino;
	uint64_t root[MMS_NTREES];/* root page of each tree, 0: empty tree */
	uint64_t keys, dirs, orphans;
	uint64_t tree_pages, data_pages, blob_pages; /* live pages by kind */
	uint64_t free_blob;       /* first page of the persisted free list, 0: inline */
	uint64_t free_blob_pages;
	uint64_t created_ns;
	uint8_t uuid[16];
};

/* Opaque per-module state. */
struct mms_alloc_state;
struct mms_pager_state;
struct mms_holds;

struct mms_env {
	int fd;
	char *path;
	unsigned flags;               /* MMS_RDONLY ... */
	int upgrading;                /* an older format may change: open's
	                               * recovery and mms_upgrade() only */
	struct mms_meta meta;         /* the state being changed */
	struct mms_meta committed;    /* as of the last commit (rollback target) */
	int commit_slot;              /* meta slot commits overwrite */
	int txn_active;               /* something changed since the last commit */
	int txn_bad;                  /* poisoned: MMS_BADTXN until rollback */
	uint64_t epoch;               /* bumped when a tree page is allocated, freed
	                               * or moved, and at rollback: page numbers
	                               * cached under an older epoch are stale */
	uint64_t mods;                /* bumped by every tree change */
	uint64_t op_mods;             /* mods when the current call began */
	struct mms_bt_wcache *wcache; /* btree.c: the leaves puts go to */
	struct mms_bt_scratch *bt_scratch; /* btree.c: room for splits and shifts */
	/* record.c: a directory's record that creates in it changed, not yet
	 * in the INODE tree (mms_inode_defer); the commit writes it through
	 * pre_commit, and mms_reserve keeps reserve_held pages for that */
	struct mms_inode dir_pend;
	int dir_pend_set;
	uint64_t reserve_held;
	int (*pre_commit)(mms_env *);
	int op_fresh_txn;             /* the current call began the transaction */
	uint8_t boot_id[16];
	char meta_problem[2][160];    /* why a meta slot was rejected at open, "" if fine */
	uint8_t *meta_page;           /* the last committed meta page (4096 bytes) */
	/* mms_sync_io's result, for mms_sync_end: the synced meta page written
	 * to the commit slot, and the generation it holds (0: none) */
	uint8_t *sync_page;
	uint8_t *commit_page;         /* the next commit's meta page: it and
	                               * meta_page trade places at each commit */
	int closing;                  /* mms_close's last sync: a synced meta
	                               * may say MMS_META_HOLES */
	uint64_t sync_gen;
	uint64_t file_pages;          /* the file's real length in pages: it may
	                               * pass meta.file_pages after a trim */
	uint64_t synced_pages;        /* meta.file_pages of the last synced meta */
	struct mms_file_state *file;
	struct mms_pager_state *pager;
	struct mms_alloc_state *alloc;
	struct mms_holds *holds;      /* inode.c: open counts */
	struct mms_deferred *defer;   /* mms_write_deferred() under way */
	void (*reuse_hook)(void *);   /* mms_set_reuse_hook() */
	void *reuse_ctx;
	pthread_mutex_t detail_lock;
	char detail[512];             /* mms_errdetail() */
	char poison_why[512];         /* the detail when the transaction was poisoned */
	int damaged;                  /* MMS_CORRUPT was met: no more changes */
	char damage[512];             /* the first damage met */
};

/* ---- err.c: the transaction's error state (below every module) ---------- */
/* Record a detail for mms_errdetail(); returns `err` so callers can
 * `return mms_fail(env, MMS_CORRUPT, "page %llu: ...", ...)`. */
int mms_fail(mms_env *env, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A structure claims what is not so, and acting on it would damage the
 * store further (a free list handing out a live page, an extent freeing
 * pages that are free or hold a tree): record the detail, poison the
 * transaction, and make the env take no more changes (mms_txn_enter and
 * mms_commit give MMS_CORRUPT; close writes nothing).  Returns MMS_CORRUPT. */
int mms_damaged(mms_env *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Call at the start of every modifying call: MMS_READONLY, MMS_BADTXN,
 * MMS_CORRUPT (mms_damaged), or 0 (and marks the transaction active). */
int mms_txn_enter(mms_env *env);
/* A modifying call failed after its first change. */
void mms_txn_poison(mms_env *env);
/* Current time in ns since the epoch, as of the last clock tick (the
 * kernel's file-time clock, CLOCK_REALTIME_COARSE). */
int64_t mms_now_ns(void);
#ifdef MMS_TEST_HOOKS
/* Test builds: non-zero, the clock (it advances mms_test_clock_step_ns,
 * 1 us unless a test sets it, per reading; 0 stands for readings within
 * one tick), so that a seeded test replays the same records and the same
 * page layout. */
extern int64_t mms_test_clock_ns;
extern int64_t mms_test_clock_step_ns;
#endif

/* ---- txn.c: meta pages, commit, sync, rollback ------------------------------ */
extern const char mms_magic[8]; /* bytes 0..7 of a meta page */
#define MMS_META_SYNCED 0x1u    /* meta flags: written by a sync */
/* meta flags (format 5): every run of this meta's free list is a hole (the
 * close that wrote it punched them), so the next close punches only what
 * became free since */
#define MMS_META_HOLES 0x2u
/* Encode the env's meta (env->meta) into page pg. */
void mms_meta_encode(mms_env *env, uint8_t *pg, int synced);
/* Decode and validate a meta page; old_ok: accept an older format version.
 * 0, or MMS_NOTSTORE / MMS_VERSION / MMS_CORRUPT with the reason in why. */
int mms_meta_decode(const uint8_t *pg, struct mms_meta *m, int old_ok, char *why,
                    size_t whylen);
/* Write one page of the store file (a meta page) / fdatasync it; detail
 * set on failure. */
int mms_pwrite_page(mms_env *env, const uint8_t *pg, uint64_t pgno);
int mms_datasync(mms_env *env);
/* Make sure n more pages (plus the commit's own needs) can be allocated by
 * this call without MMS_FULL; the first change of a transaction may sync
 * to reclaim pending space.  0 or MMS_FULL (with a detail). */
int mms_reserve(mms_env *env, uint64_t n);
/* mms_reserve() for calls that give space back or change only metadata:
 * may use the floor of pages mms_reserve() keeps unused. */
int mms_reserve_free(mms_env *env, uint64_t n);

/* ---- crc32c.c ------------------------------------------------------------ */
uint32_t mms_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- alloc.c ---------------------------------------------------------------
 * Runs of pages.  Allocation is first fit by address, so the file stays
 * compact; the file grows in segments when no free run fits.  Pages of an
 * allocated run hold undefined bytes: callers that need zeros use
 * mms_zero_pages(). */
#define MMS_ALLOC_TREE 0x1u  /* counts as tree pages */
#define MMS_ALLOC_DATA 0x2u  /* counts as data pages */
#define MMS_ALLOC_BLOB 0x4u  /* counts as blob pages (xattr values, free list) */
/* A contiguous run of exactly n pages.  MMS_FULL. */
int mms_alloc(mms_env *env, uint64_t n, unsigned kind, uint64_t *pgno);
/* A run of 1..n pages starting exactly at `at` if it is free (*got = 0 if
 * not): to extend an extent in place. */
int mms_alloc_at(mms_env *env, uint64_t at, uint64_t n, unsigned kind, uint64_t *got);
/* A run of 1..n pages, the first free one (for data that may be split over
 * several extents).  MMS_FULL. */
int mms_alloc_some(mms_env *env, uint64_t n, unsigned kind, uint64_t *pgno, uint64_t *got);
/* Free a run that the current state referenced.  Reused only when no
 * committed or synced meta can reach it any more.  kind as allocated. */
void mms_free(mms_env *env, uint64_t pgno, uint64_t n, unsigned kind);
/* 0 if n more pages (plus the commit's own needs, and with keep_floor the
 * floor of pages kept for calls that give space back) can be allocated
 * without MMS_FULL; else MMS_FULL (with a detail), and *sync_helps says
 * whether runs waiting for a sync or a commit would make the room. */
int mms_alloc_room(mms_env *env, uint64_t n, bool keep_floor, bool *sync_helps);
/* Make pages read as zeros, keeping their disk space allocated (a later
 * write there does not need host space). */
int mms_zero_pages(mms_env *env, uint64_t pgno, uint64_t n);
/* May page pgno be written in place?  Only if it was allocated since the
 * last sync: a page the last synced meta reaches is never written (data
 * pages are copied on write, like tree pages).  *run gets how many pages
 * from pgno (at most n) share the answer. */
int mms_alloc_writable(mms_env *env, uint64_t pgno, uint64_t n, uint64_t *run);
/* Pages [pgno, pgno+n) are written in place no more, as if synced, until
 * they are freed and handed out again (share.c: shared data pages). */
int mms_alloc_settle(mms_env *env, uint64_t pgno, uint64_t n);
/* None of [pgno, pgno+n) was allocated since the last sync: freed, these
 * pages wait for the next sync's end (the reuse hook) before reuse. */
bool mms_alloc_stable(mms_env *env, uint64_t pgno, uint64_t n);

/* ---- pager.c: blobs (multi-page byte strings outside the trees) ----------
 * (mms_blob_read is file.c's) */
/* Allocate ceil(len/4096) pages, write `data`, return the first page. */
int mms_blob_write(mms_env *env, const void *data, size_t len, uint64_t *pgno);
void mms_blob_free(mms_env *env, uint64_t pgno, size_t len);

/* ---- btree.c -------------------------------------------------------------
 * Values returned by get and by cursors point into page memory: valid until
 * the next modifying call on the env.  Any modification invalidates every
 * cursor of the env: re-seek after changing a tree. */
#define MMS_BT_MAXDEPTH 16

struct mms_bt_cursor {
	mms_env *env;
	int tree;
	int depth;                      /* levels on the path; 0: not positioned */
	uint64_t pgno[MMS_BT_MAXDEPTH]; /* [0] is the root */
	int idx[MMS_BT_MAXDEPTH];
};

int mms_bt_get(mms_env *env, int tree, const void *key, size_t klen,
               const void **val, size_t *vlen);
/* mms_bt_get() by a modifying call (never concurrent with others): also
 * lets a following mms_bt_put() near the same key skip its descent. */
int mms_bt_get_w(mms_env *env, int tree, const void *key, size_t klen,
                 const void **val, size_t *vlen);
/* Depth of a tree (0: empty), from its root page. */
int mms_bt_depth(mms_env *env, int tree, unsigned *depth);
/* Insert or replace.  klen 1..MMS_BT_KEY_MAX, vlen 0..MMS_BT_VAL_MAX. */
int mms_bt_put(mms_env *env, int tree, const void *key, size_t klen,
               const void *val, size_t vlen);
/* MMS_NOTFOUND if absent. */
int mms_bt_del(mms_env *env, int tree, const void *key, size_t klen);

#define MMS_BT_GE 0 /* first item with key >= the key */
#define MMS_BT_LE 1 /* last item with key <= the key */
/* Position the cursor; MMS_NOTFOUND when no item qualifies. */
int mms_bt_seek(struct mms_bt_cursor *c, mms_env *env, int tree,
                const void *key, size_t klen, int mode);
/* Position at the first item of the tree; MMS_NOTFOUND if empty. */
int mms_bt_first(struct mms_bt_cursor *c, mms_env *env, int tree);
int mms_bt_next(struct mms_bt_cursor *c); /* MMS_NOTFOUND at the end */
int mms_bt_prev(struct mms_bt_cursor *c); /* MMS_NOTFOUND at the start */
void mms_bt_item(const struct mms_bt_cursor *c, const void **key, size_t *klen,
                 const void **val, size_t *vlen);
/* Free every page of a tree (not the items' blobs). */
void mms_bt_drop(mms_env *env, int tree);
/* Free the env's B+tree caches (close). */
void mms_bt_cache_free(mms_env *env);

/* ---- record.c: inode records, the INODE tree ------------------------------ */
/* The link count a record leaves out: 1 for a named key, 2 for a named
 * directory, 0 unlinked. */
uint32_t mms_nlink_implied(uint32_t mode, uint64_t parent);
/* Decode the record at the start of an INODE value of `len` bytes; *reclen
 * gets its length (the inline bytes follow).  0 or MMS_CORRUPT. */
int mms_inode_decode(uint64_t ino, const void *rec, size_t len, struct mms_inode *out, size_t *reclen);
/* Encode into rec (MMS_INODE_REC bytes of room); returns the length. */
size_t mms_inode_encode(const struct mms_inode *in, void *rec);
/* Read inode `ino`; *inl and *inl_len get its inline bytes (pointer into page
 * memory; NULL/0 when none).  MMS_NOTFOUND, MMS_CORRUPT. */
int mms_inode_get(mms_env *env, uint64_t ino, struct mms_inode *out,
                  const void **inl, size_t *inl_len);
/* Write inode (record + inline bytes, inl_len <= MMS_INLINE_MAX; the
 * MMS_INO_INLINE flag is set from inl != NULL). */
int mms_inode_put(mms_env *env, const struct mms_inode *in,
                  const void *inl, size_t inl_len);
/* Remove inode `ino`'s record. */
int mms_inode_del(mms_env *env, uint64_t ino);
/* Write directory `dir`'s record (no inline bytes) later: at the commit,
 * or before a put or removal of it, or another deferral; a get returns it
 * meanwhile.  A run of creates in one directory so writes its times and
 * link count once.  `pages`: what writing it may take (kept reserved). */
int mms_inode_defer(mms_env *env, const struct mms_inode *dir, uint64_t pages);
/* Write the deferred record now (mms_check, the commit). */
int mms_inode_flush(mms_env *env);

/* ---- share.c: references of shared data pages ------------------------------ */
/* One more reference to each of pages [p, p+n) (an extent now holds them);
 * they are never written in place again (mms_alloc_settle). */
int mms_share_add(mms_env *env, uint64_t p, uint64_t n);
/* One reference less to each of pages [p, p+n) (an extent let go of them);
 * those left with none are freed, *freed (may be NULL) counts them.  The
 * one way data.c and vacuum.c release data pages. */
int mms_share_drop(mms_env *env, uint64_t p, uint64_t n, uint64_t *freed);
/* Vacuum moved shared pages [from, from+n), every reference to them, to
 * [to, to+n): move their item's part; *refs gets their references. */
int mms_share_move(mms_env *env, uint64_t from, uint64_t n, uint64_t to, uint32_t *refs);
/* The first shared pages at or after page p: [*first, *first+*n) with *refs
 * references each; MMS_NOTFOUND when there are none. */
int mms_share_next(mms_env *env, uint64_t p, uint64_t *first, uint64_t *n, uint32_t *refs);
/* Pages a call making `changes` adds or drops of references may allocate
 * in the SHARE tree (0 when it is empty, unless `adding`). */
uint64_t mms_share_cost(mms_env *env, uint64_t changes, bool adding);

/* ---- inode.c ------------------------------------------------------------- */
void mms_inode_to_stat(const struct mms_inode *in, struct mms_stat *st);
/* 64-bit hash of a name, the NAME tree's order. */
uint64_t mms_name_hash(const char *name, size_t len);
/* 0, MMS_BADNAME or MMS_NAMETOOLONG. */
int mms_name_valid(const char *name, size_t len);
void mms_holds_free(mms_env *env);
/* Free every orphan (unlinked inodes left by a crash): read-write open. */
int mms_orphans_reclaim(mms_env *env);
/* Create the root directory (inode MMS_ROOT_INO, mode 0755, owned by the
 * effective uid/gid) in a new store and count it in meta.dirs; sets
 * meta.next_ino past it.  MMS_EXISTS if the root exists. */
int mms_inode_create_root(mms_env *env);
/* Build the NAME key of (parent, name) into key (16 + len bytes); returns
 * its length. */
size_t mms_name_key(uint8_t *key, uint64_t parent, const char *name, size_t len);

/* ---- data.c ------------------------------------------------------------- */
/* Free all of an inode's value space (extents and inline bytes): used when
 * an inode is deleted.  Does not write the inode. */
int mms_data_free_all(mms_env *env, struct mms_inode *in);
/* The value of `in`, read with mms_inode_get() (its inline bytes `inl`,
 * inl_len): copy its first min(len, size) bytes into buf, *nread their
 * count (mms_get); or point *data at the whole value when it lies in one
 * piece, inline or one extent without holes, else MMS_RANGE (mms_get_ref). */
int mms_data_get(mms_env *env, const struct mms_inode *in, const void *inl, size_t inl_len,
                 void *buf, size_t len, size_t *nread);
int mms_data_ref(mms_env *env, const struct mms_inode *in, const void *inl, size_t inl_len,
                 const void **data);

/* ---- vacuum.c / check.c need the tree walkers of btree.c ----------------- */
/* Call fn for every page of a tree, parents before children, with its level
 * (0: leaf).  Stops at the first nonzero return, which it returns. */
typedef int (*mms_bt_page_fn)(void *ctx, uint64_t pgno, int level, const uint8_t *page);
int mms_bt_walk(mms_env *env, int tree, mms_bt_page_fn fn, void *ctx);


/* ---- Core plumbing: the tree-page layout, for node.h, pager.c, btree.c, check.c -- */
/* Tree page header (little-endian):
 *   0 u32 crc32c of bytes 4..4095   4 u8 type (1 leaf, 2 branch)   5 u8 tree
 *   6 u16 nitems   8 u64 page number (self)   16 u64 generation written
 *   24 u16 heap (lowest offset used by items)   26 u16 level (0: leaf)
 *   28 u32 reserved; then u16 slots (item offsets); items at the end:
 *   u16 klen, u16 vlen, key, value.  A branch item's value is le64 child;
 *   its first item's key is empty (minus infinity). */
#define MMS_PG_HDR 32u
#define MMS_PG_LEAF 1
#define MMS_PG_BRANCH 2

/* "inode", "name", ... for messages. */
const char *mms_tree_name(int tree);
/* ---- file.c: the store file's map, growth, verified pages ---------------- */
int mms_file_open(mms_env *env);     /* map the file (after the meta is chosen) */
void mms_file_close(mms_env *env);
int mms_file_remap(mms_env *env);    /* after the file grew past the map */
/* Where file bytes [off, off+len) are in the map of the store, or NULL if
 * the map does not hold them all. */
const uint8_t *mms_file_data(mms_env *env, uint64_t off, uint64_t len);
/* The map and the verified bitmap, inline for the pager's hot path: one
 * bit per page, in chunks of MMS_VCHUNK_PAGES made on first use (a sparse
 * store does not pay for its size in RAM); chunk pointers are set with a
 * compare-and-swap, the pointer array grows only under the write lock. */
struct mms_file_state {
	uint8_t *map;
	size_t map_len;
	uint8_t **verified;     /* one bit per page, in chunks made on first use */
	size_t verified_len;    /* chunk pointers */
};
#define MMS_VCHUNK_SHIFT 15 /* 32768 pages (128 MiB of store) per 4 KiB chunk */
#define MMS_VCHUNK_PAGES (1ull << MMS_VCHUNK_SHIFT)
/* Page pgno in the map (the caller checked it is inside the file). */
static inline const uint8_t *mms_file_page(mms_env *env, uint64_t pgno);
/* A page verified since open (pager.c sets it for tree pages it checked or
 * wrote, clears it when one is freed). */
static inline int mms_file_verified(mms_env *env, uint64_t pgno);
void mms_file_mark(mms_env *env, uint64_t pgno);
void mms_file_unmark(mms_env *env, uint64_t pgno);
/* Let go of the map's resident pages (their bytes stay in the page cache). */
void mms_file_release(mms_env *env);
/* Set meta.file_pages to `pages`, growing the file (never shortening it)
 * and the map with it. */
int mms_file_grow(mms_env *env, uint64_t pages);
/* Shorten the file to `pages` pages, or to what the current or the last
 * synced meta records if that is more. */
int mms_file_shrink(mms_env *env, uint64_t pages);
/* Drop the page cache of pages [pgno, pgno+n) of the store file, and their
 * mappings in the env's map (the kernel maps cached pages around a faulted
 * tree page, and a mapped page cannot be dropped). */
void mms_file_drop(mms_env *env, uint64_t pgno, uint64_t n);
/* Which of the file's first *npages pages the page cache holds now: a byte
 * per page, bit 0 set if held (mincore); malloc'd, or NULL if unknown. */
uint8_t *mms_file_resident(mms_env *env, uint64_t *npages);
/* Start reading pages [pgno, pgno+n) into the page cache, without waiting. */
void mms_file_prefetch(mms_env *env, uint64_t pgno, uint64_t n);
/* Ask for every page of [first, first+n) the page cache does not hold, in
 * runs of 8 MiB, for a walk that reads those pages in an order of its own
 * (a dump: the whole file; vacuum: what it moves): a cold walk waited on one
 * random read at a time.  Not done for more than half the machine's memory. */
void mms_file_warm(mms_env *env, uint64_t first, uint64_t n);
/* Read a blob, bounds-checked against the file. */
int mms_blob_read(mms_env *env, uint64_t pgno, void *buf, size_t len);
/* Page-granular bounds check of a run against the file: 0 or MMS_CORRUPT. */
int mms_check_run(mms_env *env, uint64_t pgno, uint64_t n, const char *what);

/* ---- pager.c ---------------------------------------------------------------- */
int mms_pager_open(mms_env *env);    /* the dirty-page table (after mms_file_open) */
void mms_pager_close(mms_env *env);
/* A tree page for reading: the open transaction's copy if dirty, else the
 * file's page, verified (checksum, self number, type) on first use.  NULL
 * with *rc = MMS_CORRUPT (detail set) on damage. */
const uint8_t *mms_page_get(mms_env *env, uint64_t pgno, int *rc);
/* A writable copy of page pgno for this transaction: the same page if it is
 * already dirty, else a new page (*newpgno) holding a copy; the old one is
 * freed.  NULL with *rc on failure. */
uint8_t *mms_page_cow(mms_env *env, uint64_t pgno, uint64_t *newpgno, int *rc);
/* A new zeroed dirty page. */
uint8_t *mms_page_new(mms_env *env, uint64_t *pgno, int *rc);
/* Free a tree page (dropping its dirty copy if any). */
void mms_page_free(mms_env *env, uint64_t pgno);
/* MMS_CORRUPT (detail naming `what`) if a page of [pgno, pgno+n) holds a
 * live tree page this open has read: what a damaged extent or free list
 * may claim, and what must then not be read as data, freed or reused. */
int mms_pager_not_tree(mms_env *env, uint64_t pgno, uint64_t n, const char *what);
/* Nonzero if page pgno is dirty in the open transaction. */
int mms_page_is_dirty(mms_env *env, uint64_t pgno);
/* Write every dirty page (checksummed) to the file; clear the table. */
int mms_pager_flush(mms_env *env);
/* Drop every dirty page (rollback). */
void mms_pager_discard(mms_env *env);
/* Dirty pages a transaction keeps in memory before it spills them. */
#define MMS_SPILL_MAX 16384u /* 64 MiB */
/* If more than the spill limit of dirty pages are in memory, write them
 * all to their (the transaction's own) pages and free their buffers (see
 * pager.c).  Only where no pointer into a dirty page is held: at the start
 * of a modifying call. */
int mms_pager_spill(mms_env *env);
/* Set the spill limit (0: MMS_SPILL_MAX); tests make it small. */
void mms_pager_set_spill(mms_env *env, size_t pages);
/* Spills since open (tests). */
uint64_t mms_pager_spills(mms_env *env);
/* Dirty pages in memory now, and the dirty table's slots (tests). */
void mms_pager_counts(mms_env *env, size_t *in_memory, size_t *slots);

int mms_alloc_open(mms_env *env, const uint8_t *metapg, int synced); /* load the free list */
void mms_alloc_close(mms_env *env);
/* Commit step 1: apply this transaction's frees, then choose where the free
 * list goes (inline in the meta page or a blob) and serialize it into the
 * meta page `metapg` (all zero: the commit's new page) / the blob.  Sets
 * meta.free_blob*. */
int mms_alloc_commit(mms_env *env, uint8_t *metapg);
/* Punch every free run (tree pages too): the disk holds live pages only. */
void mms_alloc_punch_free(mms_env *env);
/* Whether every free run is known to be a hole: the free list loaded from a
 * meta that said so, and whatever became free since has been punched. */
bool mms_alloc_free_punched(mms_env *env);
/* Pending runs the meta the free list was loaded from listed. */
size_t mms_alloc_loaded_pending(mms_env *env);
/* After a commit's meta is written: punch the data runs it freed. */
void mms_alloc_punch(mms_env *env);
/* After a sync is durable: pending runs become free (punched; keep: the
 * long runs are held for mms_alloc_punch_held instead). */
void mms_alloc_synced(mms_env *env, int keep);
/* Punch the held runs (no lock: see mms_sync_end_keep); then, under the
 * exclusive lock, mms_alloc_release_held makes them free. */
int mms_alloc_punch_held(mms_env *env);
void mms_alloc_release_held(mms_env *env);
/* Drop the cache of what a keep-sync made clean (MMS_CACHE_ONCE). */
void mms_alloc_drop_later(mms_env *env);
/* Rollback: reload the free list of the committed meta page. */
int mms_alloc_rollback(mms_env *env, const uint8_t *metapg);
/* Free/pending totals in pages and the number and size of free runs. */
void mms_alloc_totals(mms_env *env, uint64_t *freep, uint64_t *pendingp,
                      uint64_t *nruns, uint64_t *largest);
/* Call fn for every free and pending run (pending: 1).  For check.c. */
int mms_alloc_walk(mms_env *env, int (*fn)(void *ctx, uint64_t pgno, uint64_t n, int pending), void *ctx);
/* Call fn on the pages that hold the persisted free list: the base blob
 * (log = 0) and each log page (log = 1). */
int mms_alloc_list_pages(mms_env *env, int (*fn)(void *ctx, uint64_t pgno, uint64_t n, int log),
                         void *ctx);
/* Largest page number + 1 in use (not free), for vacuum's truncation. */
uint64_t mms_alloc_used_end(mms_env *env);
/* pages at or past pgno that are in use (neither free nor freed) */
uint64_t mms_alloc_used_from(mms_env *env, uint64_t pgno);
/* Vacuum: allocate only below `limit` (0: no limit); grows nothing when set. */
void mms_alloc_set_limit(mms_env *env, uint64_t limit);
/* Vacuum: give the free tail [pages, file_pages) back: shrink meta.file_pages. */
int mms_alloc_trim_tail(mms_env *env, uint64_t *newpages);

/* vacuum.c: give the free tail of the file back (both metas first, then
 * ftruncate).  Used by vacuum and by close. */
int mms_trim(mms_env *env);
/* btree.c: item count and items of a verified tree page (check.c). */
unsigned mms_bt_page_count(const uint8_t *p);
void mms_bt_page_item(const uint8_t *p, unsigned i, const void **k, size_t *kl,
                      const void **v, size_t *vl);
/* btree.c: copy pages of `tree` at or beyond page `limit` (vacuum), at most
 * `budget` of them (counted in *moved); *more is set if some are left. */
int mms_bt_relocate(mms_env *env, int tree, uint64_t limit, uint64_t budget, uint64_t *moved,
                    int *more);

#ifdef MMS_TEST_HOOKS
/* vacuum.c, test builds: move pages in batches of this many (0: the default). */
extern uint64_t mms_vac_test_batch;
/* file.c, test builds: map exactly the file, so every growth moves the map. */
extern int mms_file_test_tight_map;
/* alloc.c, test builds: commits keep at most this many free runs inline
 * (0: as many as fit), so small stores write a base and a log. */
extern unsigned mms_alloc_test_inline_max;
/* alloc.c, test builds: a log commit keeps at most this many changes in
 * the meta page before it writes them to a log page (0: as many as fit). */
extern unsigned mms_alloc_test_tail_max;
#endif


/* ---- file.c's inline accessors (declared above) ---------------------------- */
static inline const uint8_t *mms_file_page(mms_env *env, uint64_t pgno)
{
	return env->file->map + pgno * MMS_PAGE_SIZE;
}

static inline int mms_file_verified(mms_env *env, uint64_t pgno)
{
	const struct mms_file_state *f = env->file;
	size_t c = (size_t)(pgno >> MMS_VCHUNK_SHIFT);
	if (c >= f->verified_len)
		return 0;
	const uint8_t *chunk = __atomic_load_n(&f->verified[c], __ATOMIC_ACQUIRE);
	uint64_t b = pgno & (MMS_VCHUNK_PAGES - 1);
	return chunk && (__atomic_load_n(&chunk[b / 8], __ATOMIC_RELAXED) & (1u << (b % 8)));
}

#endif /* MMS_INT_H */
