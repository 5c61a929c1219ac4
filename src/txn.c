/*
 * txn.c - meta pages and the commit rule: commit, sync, rollback, and the
 * reservation of space a modifying call makes before its first change.
 *
 * Above the tree, the pager and the allocator, whose state a commit writes
 * out and a rollback forgets; below the data and inode layers, vacuum and
 * env.c (open and close), which call it.
 *
 * Pages 0 and 1 are meta pages (layout in doc/FORMAT.md).  Each carries a
 * checksum, a generation, the id of the boot it was written under and a
 * `synced` flag.  Open (env.c) picks the newest valid meta that can be
 * trusted: a synced one, or one written during the current boot (an
 * unsynced meta from an earlier boot may point at pages that never reached
 * the disk).
 *
 * The commit rule:
 *   commit  write the dirty tree pages and the free list, then a meta page
 *           (unsynced) into the commit slot.  Survives a crash of the
 *           process: pwrite() has handed everything to the kernel.
 *   sync    commit, fdatasync, write the same meta marked synced into the
 *           commit slot, fdatasync; the slots then swap roles.  Survives a
 *           crash of the machine.
 * Commits never overwrite the slot that holds the last synced meta, so a
 * torn or lost meta write always leaves a trusted meta to fall back to, and
 * alloc.c never reuses a page that meta reaches before the next sync.
 */
#define _GNU_SOURCE
#include "mms_int.h"
#include "io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char mms_magic[8] = { 'M', 'M', 'S', 'T', 'O', 'R', 'E', 0 };

void mms_set_reuse_hook(mms_env *env, void (*fn)(void *ctx), void *ctx)
{
	env->reuse_hook = fn;
	env->reuse_ctx = ctx;
}

/* ---- meta pages ------------------------------------------------------------ */

/* Where a meta page keeps the root of `tree`: five after another from
 * byte 104, the LINK tree's (format 2) and the SHARE tree's (format 3) at
 * the end of the page. */
static size_t mms_meta_root_off(int tree)
{
	if (tree == MMS_TREE_LINK)
		return MMS_META_LINK_ROOT;
	if (tree == MMS_TREE_SHARE)
		return MMS_META_SHARE_ROOT;
	return 104u + 8u * (unsigned)tree;
}

/* Whether a meta page of `version` has the root of `tree`. */
static bool mms_meta_has_root(uint32_t version, int tree)
{
	if (tree == MMS_TREE_LINK)
		return version >= MMS_FORMAT_V2;
	if (tree == MMS_TREE_SHARE)
		return version >= MMS_FORMAT_V3;
	return true;
}

/* Encode env->meta into bytes 0..215 and the LINK root of pg, and checksum
 * the page. */
static void mms_meta_encode_of(mms_env *env, const struct mms_meta *m, uint8_t *pg, uint32_t flags)
{
	memcpy(pg, mms_magic, 8);
	mms_put_le32(pg + 12, m->version);
	mms_put_le32(pg + 16, MMS_PAGE_SIZE);
	mms_put_le32(pg + 20, flags);
	mms_put_le64(pg + 24, m->generation);
	mms_put_le64(pg + 32, m->synced_generation);
	memcpy(pg + 40, env->boot_id, 16);
	memcpy(pg + 56, m->uuid, 16);
	mms_put_le64(pg + 72, m->file_pages);
	mms_put_le64(pg + 80, m->max_pages);
	mms_put_le64(pg + 88, m->next_ino);
	mms_put_le64(pg + 96, m->created_ns);
	for (int t = 0; t < MMS_NTREES; t++)
		if (mms_meta_has_root(m->version, t))
			mms_put_le64(pg + mms_meta_root_off(t), m->root[t]);
	mms_put_le64(pg + 144, m->keys);
	mms_put_le64(pg + 152, m->dirs);
	mms_put_le64(pg + 160, m->orphans);
	mms_put_le64(pg + 168, m->tree_pages);
	mms_put_le64(pg + 176, m->data_pages);
	mms_put_le64(pg + 184, m->blob_pages);
	mms_put_le64(pg + 192, m->free_blob);
	mms_put_le64(pg + 200, m->free_blob_pages);
	mms_put_le32(pg + 8, 0);
	mms_put_le32(pg + 8, mms_crc32c(0, pg, MMS_PAGE_SIZE));
}

void mms_meta_encode(mms_env *env, uint8_t *pg, int synced)
{
	mms_meta_encode_of(env, &env->meta, pg, synced ? MMS_META_SYNCED : 0);
}

/* Validate a meta page; on success fill *m.  Writes a reason into why.
 * A page of format 1 is valid only with `old_ok` (mms_upgrade's open). */
int mms_meta_decode(const uint8_t *pg, struct mms_meta *m, int old_ok, char *why,
                    size_t whylen)
{
	uint8_t copy[MMS_PAGE_SIZE];
	if (memcmp(pg, mms_magic, 8)) {
		snprintf(why, whylen, "bad magic");
		return MMS_NOTSTORE;
	}
	memcpy(copy, pg, MMS_PAGE_SIZE);
	mms_put_le32(copy + 8, 0);
	uint32_t want = mms_get_le32(pg + 8), got = mms_crc32c(0, copy, MMS_PAGE_SIZE);
	if (want != got) {
		snprintf(why, whylen, "checksum mismatch (stored %08x, computed %08x)", want, got);
		return MMS_CORRUPT;
	}
	uint32_t version = mms_get_le32(pg + 12);
	bool old = version == MMS_FORMAT_V1 || version == MMS_FORMAT_V2 || version == MMS_FORMAT_V3 ||
	           version == MMS_FORMAT_V4;
	if (old && !old_ok) {
		snprintf(why, whylen, "format version %u, older than this build's %u: convert it "
		         "in place with 'mmstore upgrade' (it keeps every key)", version,
		         MMS_FORMAT_VERSION);
		return MMS_VERSION;
	}
	if (version != MMS_FORMAT_VERSION && !old) {
		snprintf(why, whylen, "format version %u (this build reads %u)", version,
		         MMS_FORMAT_VERSION);
		return MMS_VERSION;
	}
	if (mms_get_le32(pg + 16) != MMS_PAGE_SIZE) {
		snprintf(why, whylen, "page size %u", mms_get_le32(pg + 16));
		return MMS_CORRUPT;
	}
	memset(m, 0, sizeof(*m));
	m->version = version;
	m->generation = mms_get_le64(pg + 24);
	m->synced_generation = mms_get_le64(pg + 32);
	memcpy(m->uuid, pg + 56, 16);
	m->file_pages = mms_get_le64(pg + 72);
	m->max_pages = mms_get_le64(pg + 80);
	m->next_ino = mms_get_le64(pg + 88);
	m->created_ns = mms_get_le64(pg + 96);
	for (int t = 0; t < MMS_NTREES; t++)
		if (mms_meta_has_root(version, t))
			m->root[t] = mms_get_le64(pg + mms_meta_root_off(t));
	m->keys = mms_get_le64(pg + 144);
	m->dirs = mms_get_le64(pg + 152);
	m->orphans = mms_get_le64(pg + 160);
	m->tree_pages = mms_get_le64(pg + 168);
	m->data_pages = mms_get_le64(pg + 176);
	m->blob_pages = mms_get_le64(pg + 184);
	m->free_blob = mms_get_le64(pg + 192);
	m->free_blob_pages = mms_get_le64(pg + 200);
	if (m->file_pages < MMS_META_PAGES || m->file_pages > MMS_FILE_PAGES_MAX ||
	    (m->max_pages && m->max_pages < MMS_META_PAGES) || m->next_ino <= MMS_ROOT_INO) {
		snprintf(why, whylen, "implausible sizes (file %llu pages, max %llu, next inode %llu)",
		         (unsigned long long)m->file_pages, (unsigned long long)m->max_pages,
		         (unsigned long long)m->next_ino);
		return MMS_CORRUPT;
	}
	for (int t = 0; t < MMS_NTREES; t++) {
		if (m->root[t] && (m->root[t] < MMS_META_PAGES || m->root[t] >= m->file_pages)) {
			snprintf(why, whylen, "%s tree root %llu outside the file", mms_tree_name(t),
			         (unsigned long long)m->root[t]);
			return MMS_CORRUPT;
		}
	}
	if (!m->root[MMS_TREE_INODE]) {
		snprintf(why, whylen, "no inode tree");
		return MMS_CORRUPT;
	}
	return 0;
}

int mms_pwrite_page(mms_env *env, const uint8_t *pg, uint64_t pgno)
{
	int rc = mms_io_pwrite(env->fd, pg, MMS_PAGE_SIZE, pgno * MMS_PAGE_SIZE);
	if (rc)
		return mms_fail(env, rc, "cannot write meta page %llu: %s", (unsigned long long)pgno,
		                strerror(rc));
	return 0;
}

int mms_datasync(mms_env *env)
{
	int rc = mms_io_datasync(env->fd);
	if (rc)
		return mms_fail(env, rc, "fdatasync failed: %s", strerror(rc));
	return 0;
}

/* ---- commit, sync, rollback ------------------------------------------------ */

int mms_commit(mms_env *env)
{
	if (env->flags & MMS_RDONLY)
		return 0;
	if (env->txn_bad)
		return mms_fail(env, MMS_BADTXN, "an earlier change failed half-way (%s); roll back first",
		                env->poison_why[0] ? env->poison_why : "no detail");
	if (!env->txn_active)
		return 0;
	if (__atomic_load_n(&env->damaged, __ATOMIC_ACQUIRE))
		return mms_fail(env, MMS_CORRUPT,
		                "the store is damaged (%s): nothing more is written; roll back",
		                env->damage);
	if (!env->commit_page && posix_memalign((void **)&env->commit_page, MMS_PAGE_SIZE, MMS_PAGE_SIZE))
		return ENOMEM;
	uint8_t *pg = env->commit_page;
	memset(pg, 0, MMS_PAGE_SIZE);
	/* what the upper layers keep back for the commit (record.c: a
	 * directory's deferred record) goes in first */
	int rc = env->pre_commit ? env->pre_commit(env) : 0;
	if (!rc)
		rc = mms_alloc_commit(env, pg);
	if (!rc)
		rc = mms_pager_flush(env);
	if (rc) {
		/* the in-memory free state already moved on: only a rollback,
		 * which reloads it from the committed meta, is safe now */
		mms_txn_poison(env);
		return rc;
	}
	env->meta.generation++;
	mms_meta_encode(env, pg, 0);
	rc = mms_pwrite_page(env, pg, (uint64_t)env->commit_slot);
	if (rc) {
		env->meta.generation--;
		mms_txn_poison(env);
		return rc;
	}
	/* the new page is the committed one; the old one takes the next commit */
	env->commit_page = env->meta_page;
	env->meta_page = pg;
	env->committed = env->meta;
	env->txn_active = 0;
	mms_alloc_punch(env);
	return 0;
}

/*
 * A sync in three steps, so that a server can let readers run during the
 * two fdatasyncs (mms.h: mms_sync_begin).  The commit slot holds the last
 * commit's meta; the other slot the last synced one, the fallback after a
 * machine crash.  mms_sync_io makes everything durable, then rewrites the
 * commit slot's meta marked synced and makes that durable.  No change may
 * run during mms_sync_io (the caller's shared lock); one that runs between
 * it and mms_sync_end commits into the same slot, over the synced meta:
 * the other slot still holds the older synced one, and mms_sync_end sees
 * the new generation and says MMS_BUSY (sync again).  Only mms_sync_end
 * moves the commit slot and makes the pages freed since the last sync
 * reusable, both of which need the new synced meta on disk.
 */
int mms_sync_begin(mms_env *env, int *needed)
{
	*needed = 0;
	if (env->flags & MMS_RDONLY)
		return 0;
	int rc = mms_commit(env);
	if (rc)
		return rc;
	env->sync_gen = 0;
	*needed = !(mms_get_le32(env->meta_page + 20) & MMS_META_SYNCED);
	return 0;
}

int mms_sync_io(mms_env *env)
{
	env->sync_gen = 0;
	if (!env->sync_page && posix_memalign((void **)&env->sync_page, MMS_PAGE_SIZE, MMS_PAGE_SIZE))
		return ENOMEM;
	int rc = mms_datasync(env);
	if (rc)
		return rc;
	struct mms_meta m = env->meta;
	m.synced_generation = m.generation;
	/* the committed page with its inline free list, marked synced (and,
	 * at a close that punched every free run, holes: MMS_META_HOLES) */
	memcpy(env->sync_page, env->meta_page, MMS_PAGE_SIZE);
	mms_meta_encode_of(env, &m, env->sync_page,
	                   MMS_META_SYNCED | (env->closing && mms_alloc_free_punched(env) ? MMS_META_HOLES : 0));
	rc = mms_pwrite_page(env, env->sync_page, (uint64_t)env->commit_slot);
	if (!rc)
		rc = mms_datasync(env);
	/* on failure the slot may hold either meta: both describe one state */
	if (!rc)
		env->sync_gen = m.generation;
	return rc;
}

static int mms_sync_end_as(mms_env *env, int keep)
{
	if (env->flags & MMS_RDONLY)
		return 0;
	if (!env->sync_gen || env->sync_gen != env->meta.generation || env->txn_active)
		return MMS_BUSY; /* a change came in after mms_sync_io: sync again */
	env->sync_gen = 0;
	env->meta.synced_generation = env->meta.generation;
	memcpy(env->meta_page, env->sync_page, MMS_PAGE_SIZE);
	env->committed = env->meta;
	env->commit_slot ^= 1;
	env->synced_pages = env->meta.file_pages;
	mms_alloc_synced(env, keep);
	return 0;
}

int mms_sync_end(mms_env *env)
{
	return mms_sync_end_as(env, 0);
}

int mms_sync_end_keep(mms_env *env)
{
	return mms_sync_end_as(env, 1);
}

int mms_sync_punch(mms_env *env)
{
	int rc = mms_alloc_punch_held(env);
	if (rc)
		return mms_fail(env, rc, "cannot punch freed space out of the store file: %s",
		                strerror(rc));
	return 0;
}

void mms_sync_drop(mms_env *env)
{
	mms_alloc_drop_later(env);
}

void mms_sync_release(mms_env *env)
{
	mms_alloc_release_held(env);
}

int mms_sync(mms_env *env)
{
	int needed = 0;
	int rc = mms_sync_begin(env, &needed);
	if (rc || !needed)
		return rc; /* nothing since the last sync */
	rc = mms_sync_io(env);
	return rc ? rc : mms_sync_end(env);
}

int mms_rollback(mms_env *env)
{
	if (env->flags & MMS_RDONLY)
		return 0;
	mms_pager_discard(env);
	__atomic_add_fetch(&env->epoch, 1, __ATOMIC_RELEASE);
	uint64_t grown = env->meta.file_pages, next_ino = env->meta.next_ino;
	env->meta = env->committed;
	/* numbers handed out by the dropped changes are not handed out again:
	 * a caller may have shown them to someone (NFS handles, FUSE) */
	env->meta.next_ino = next_ino;
	if (grown > env->meta.file_pages && env->file_pages > env->synced_pages) {
		/* a longer file is harmless (its tail is unused), so a failure
		 * to shorten it is not an error */
		if (mms_file_shrink(env, env->meta.file_pages))
			env->detail[0] = 0;
	}
	env->dir_pend_set = 0; /* a change of the dropped transaction */
	env->reserve_held = 0;
	int rc = mms_alloc_rollback(env, env->meta_page);
	if (rc)
		return rc;
	env->txn_active = 0;
	env->txn_bad = 0;
	env->poison_why[0] = 0;
	return 0;
}

/* ---- reservation ------------------------------------------------------------- */

/*
 * The allocator says whether there is room; when there is not, but a sync
 * would free what waits for it, a call that is the first change of its
 * transaction syncs and asks again.  Only then: a sync commits, and the
 * caller may still roll back earlier calls of a transaction.
 */
static int mms_reserve_as(mms_env *env, uint64_t n, bool keep_floor)
{
	bool sync_helps = false;
	n += env->reserve_held; /* for a deferred write the commit makes */
	int rc = mms_alloc_room(env, n, keep_floor, &sync_helps);
	if (rc == MMS_FULL && sync_helps && !env->txn_bad && env->mods == env->op_mods &&
	    env->op_fresh_txn) {
		rc = mms_sync(env);
		if (!rc)
			rc = mms_alloc_room(env, n, keep_floor, &sync_helps);
	}
	return rc;
}

int mms_reserve(mms_env *env, uint64_t n)
{
	return mms_reserve_as(env, n, true);
}

int mms_reserve_free(mms_env *env, uint64_t n)
{
	return mms_reserve_as(env, n, false);
}

